//! `[shares]` of `cluster.toml`: how many wrong passwords and downloads a share link tolerates,
//! and how long the URLs handed out through shares live.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[shares]`: limits on guessing a share link's password (per node), and how long the URLs
/// handed out through shares live (see docs/admin.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SharesSection {
    /// Wrong passwords tolerated per link within the window, from anyone (1 to 10,000).
    pub(crate) password_attempts_per_link: u32,
    /// Wrong passwords tolerated per client (IPv4 address or IPv6 /64) within the window, over
    /// all links (1 to 10,000).
    pub(crate) password_attempts_per_client: u32,
    /// The window, seconds (1 to one day).
    pub(crate) password_window_secs: u64,
    /// Life of a presigned URL handed out through a share, seconds (5 to 3600): the most a URL
    /// outlives a revocation, so kept short (the download itself may take longer: S3 checks the
    /// expiry when the request starts).
    pub(crate) presign_secs: u64,
    /// Downloads through links tolerated per link within `uses_window_secs`, from anyone (1 to
    /// 100,000: each is remembered for the window).
    pub(crate) uses_per_link: u32,
    /// Downloads tolerated per client (IPv4 address or IPv6 /64) within the window, over all
    /// links (1 to 100,000).
    pub(crate) uses_per_client: u32,
    /// The window of the download limits, seconds (1 to one day).
    pub(crate) uses_window_secs: u64,
    /// How often downloads of links without a limit are committed as one count per link,
    /// milliseconds (50 to 60,000): what a node that stops may leave uncounted.
    pub(crate) flush_ms: u64,
}

impl Default for SharesSection {
    fn default() -> Self {
        let defaults = meridian_admin::ShareSettings::default();
        Self {
            password_attempts_per_link: defaults.attempts.per_link,
            password_attempts_per_client: defaults.attempts.per_client,
            password_window_secs: defaults.attempts.window.as_secs(),
            presign_secs: defaults.presign.as_secs(),
            uses_per_link: defaults.uses.per_link,
            uses_per_client: defaults.uses.per_client,
            uses_window_secs: defaults.uses.window.as_secs(),
            flush_ms: u64::try_from(defaults.flush_every.as_millis()).unwrap_or(1000),
        }
    }
}

impl SharesSection {
    /// The settings as the web listener applies them.
    pub(crate) fn settings(&self) -> meridian_admin::ShareSettings {
        meridian_admin::ShareSettings {
            attempts: meridian_admin::AttemptLimits {
                per_link: self.password_attempts_per_link,
                per_client: self.password_attempts_per_client,
                window: Duration::from_secs(self.password_window_secs),
            },
            presign: Duration::from_secs(self.presign_secs),
            uses: meridian_admin::AttemptLimits {
                per_link: self.uses_per_link,
                per_client: self.uses_per_client,
                window: Duration::from_secs(self.uses_window_secs),
            },
            flush_every: Duration::from_millis(self.flush_ms),
        }
    }

    /// Checks that every limit is within its documented range.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        for (field, value, min, max) in [
            ("password_attempts_per_link", u64::from(self.password_attempts_per_link), 1, 10_000),
            ("password_attempts_per_client", u64::from(self.password_attempts_per_client), 1, 10_000),
            ("password_window_secs", self.password_window_secs, 1, 86_400),
            ("presign_secs", self.presign_secs, 5, 3600),
            ("uses_per_link", u64::from(self.uses_per_link), 1, 100_000),
            ("uses_per_client", u64::from(self.uses_per_client), 1, 100_000),
            ("uses_window_secs", self.uses_window_secs, 1, 86_400),
            ("flush_ms", self.flush_ms, 50, 60_000),
        ] {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::invalid(path, format!("shares.{field}"), format!("must be {min} to {max}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, assert_errors_name_the_field};

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (format!("{VALID}[shares]\nuses_per_client = 0\n"), "shares.uses_per_client"),
            (format!("{VALID}[shares]\nflush_ms = 10\n"), "shares.flush_ms"),
        ]);
    }
}
