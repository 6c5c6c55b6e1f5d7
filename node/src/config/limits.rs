//! `[limits]` of `cluster.toml`: the timeouts and connection caps of the three listeners, so
//! no one client can hold a listener.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// `[limits]`: what one client can hold of a listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    /// Time a client has to send a request's headers (also how long an idle keep-alive
    /// connection stays open): bounds slowloris connections.
    pub(crate) header_read_timeout_ms: u64,
    /// A connection on which no byte moves for this long, while it waits on the client (a
    /// stalled body, an unread response), is closed. The server's own silence (a handler
    /// working, a long poll, an event stream between events) is not idle.
    pub(crate) idle_timeout_ms: u64,
    /// Most open connections on the S3 listener; further clients wait to be accepted.
    pub(crate) max_connections_s3: usize,
    /// Most open connections on the web listener.
    pub(crate) max_connections_web: usize,
    /// Most open connections on the internal listener (peers and the CLI only).
    pub(crate) max_connections_internal: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections_s3: 4096,
            max_connections_web: 4096,
            max_connections_internal: 256,
        }
    }
}

impl LimitsSection {
    /// Checks that each timeout and cap is within what a listener can work with.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let checks: [(&str, u64, u64, u64); 5] = [
            ("limits.header_read_timeout_ms", self.header_read_timeout_ms, 100, 600_000),
            ("limits.idle_timeout_ms", self.idle_timeout_ms, 100, 3_600_000),
            ("limits.max_connections_s3", self.max_connections_s3 as u64, 1, 1_000_000),
            ("limits.max_connections_web", self.max_connections_web as u64, 1, 1_000_000),
            ("limits.max_connections_internal", self.max_connections_internal as u64, 1, 1_000_000),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::invalid(path, field.into(), format!("{value} is not within {min}..={max}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, assert_errors_name_the_field, load_str};

    #[test]
    fn listener_limits_have_safe_defaults() {
        let config = load_str(VALID).expect("valid");
        let l = &config.limits;
        assert_eq!((l.header_read_timeout_ms, l.idle_timeout_ms), (10_000, 60_000));
        assert_eq!((l.max_connections_s3, l.max_connections_web, l.max_connections_internal), (4096, 4096, 256));
        let set = load_str(&format!("{VALID}[limits]\nmax_connections_s3 = 8\n")).expect("valid with limits");
        assert_eq!(set.limits.max_connections_s3, 8);
    }

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (format!("{VALID}[limits]\nheader_read_timeout_ms = 0\n"), "limits.header_read_timeout_ms"),
            (format!("{VALID}[limits]\nidle_timeout_ms = 5\n"), "limits.idle_timeout_ms"),
            (format!("{VALID}[limits]\nmax_connections_s3 = 0\n"), "limits.max_connections_s3"),
            (format!("{VALID}[limits]\nmax_connections_web = 0\n"), "limits.max_connections_web"),
            (format!("{VALID}[limits]\nmax_connections_internal = 0\n"), "limits.max_connections_internal"),
        ]);
    }
}
