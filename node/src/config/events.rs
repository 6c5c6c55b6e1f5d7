//! `[events]` and `[[events.webhook]]` of `cluster.toml`: how much event history the cluster
//! keeps and the webhooks every event is delivered to.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[events]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EventsSection {
    /// Most events the retained history keeps (at least 1): how far back a consumer can resume.
    pub(crate) retain: u64,
    /// Events older than this many seconds (counted back from the newest event) are dropped
    /// too; 0: no age limit.
    pub(crate) retain_max_age_secs: u64,
    /// Webhook subscriptions: every event POSTed to each, in order, at least once.
    pub(crate) webhook: Vec<WebhookConfig>,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self { retain: 100_000, retain_max_age_secs: 0, webhook: Vec::new() }
    }
}

impl EventsSection {
    /// The retention the leader trims the history to (see `event_trim`).
    pub(crate) fn retention(&self) -> meridian_raft::EventRetention {
        meridian_raft::EventRetention {
            max_events: self.retain,
            max_age: (self.retain_max_age_secs > 0).then(|| Duration::from_secs(self.retain_max_age_secs)),
        }
    }

    /// Checks the retention and each webhook; webhook names must be unique, since delivery
    /// progress is recorded by name.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::invalid(path, field, message);
        if self.retain == 0 {
            return Err(invalid("events.retain".into(), "must be at least 1".into()));
        }
        let mut names = HashSet::new();
        for (i, hook) in self.webhook.iter().enumerate() {
            let field = |name: &str| format!("events.webhook[{i}].{name}");
            if hook.name.is_empty() || !hook.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid(field("name"), format!("{:?} must be letters, digits, '-' and '_'", hook.name)));
            }
            if !names.insert(hook.name.as_str()) {
                return Err(invalid(field("name"), format!("{:?} is used twice", hook.name)));
            }
            match reqwest::Url::parse(&hook.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => return Err(invalid(field("url"), format!("{:?} is not an http(s) URL", hook.url))),
            }
            if hook.secret.len() < 16 {
                return Err(invalid(field("secret"), "must be at least 16 characters".into()));
            }
            if !(1..=1000).contains(&hook.max_batch) {
                return Err(invalid(field("max_batch"), format!("{} is not within 1..=1000", hook.max_batch)));
            }
            if hook.timeout_ms == 0 {
                return Err(invalid(field("timeout_ms"), "must be greater than 0".into()));
            }
            if hook.retry_min_ms == 0 || hook.retry_max_ms < hook.retry_min_ms {
                return Err(invalid(
                    field("retry_max_ms"),
                    "retry_min_ms must be > 0 and retry_max_ms at least retry_min_ms".into(),
                ));
            }
        }
        Ok(())
    }
}

/// One `[[events.webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    /// Names the subscription: its delivery progress is recorded under this name, so renaming it
    /// starts over from the oldest retained event.
    pub(crate) name: String,
    /// Where events are POSTed (`http://` or `https://`).
    pub(crate) url: String,
    /// Key of the HMAC-SHA256 that signs each delivery, shared with the receiver.
    pub(crate) secret: String,
    /// Most events per POST: a receiver that was down catches up in batches of this size.
    #[serde(default = "WebhookConfig::default_max_batch")]
    pub(crate) max_batch: usize,
    /// How long one POST may take before it counts as failed.
    #[serde(default = "WebhookConfig::default_timeout_ms")]
    pub(crate) timeout_ms: u64,
    /// Delay before the first retry of a failed POST; doubles on each failure...
    #[serde(default = "WebhookConfig::default_retry_min_ms")]
    pub(crate) retry_min_ms: u64,
    /// ...up to this. Retries never stop while the node leads: dropping events would break
    /// at-least-once delivery.
    #[serde(default = "WebhookConfig::default_retry_max_ms")]
    pub(crate) retry_max_ms: u64,
}

impl WebhookConfig {
    fn default_max_batch() -> usize {
        100
    }
    fn default_timeout_ms() -> u64 {
        10_000
    }
    fn default_retry_min_ms() -> u64 {
        500
    }
    fn default_retry_max_ms() -> u64 {
        60_000
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, WEBHOOK, assert_errors_name_the_field, load_str};

    #[test]
    fn webhooks_load_with_defaults() {
        let config = load_str(&format!("{VALID}{WEBHOOK}")).expect("valid");
        let hook = &config.events.webhook[0];
        assert_eq!((hook.max_batch, hook.retry_min_ms, hook.retry_max_ms), (100, 500, 60_000));
        assert_eq!(config.events.retain, 100_000);
    }

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (format!("{VALID}\n[events]\nretain = 0\n"), "events.retain"),
            (format!("{VALID}{WEBHOOK}").replace("http://127.0.0.1:9/hook", "ftp://x"), "events.webhook[0].url"),
            (format!("{VALID}{WEBHOOK}").replace("0123456789abcdef-hook", "short"), "events.webhook[0].secret"),
            (format!("{VALID}{WEBHOOK}{WEBHOOK}"), "events.webhook[1].name"),
            (format!("{VALID}{WEBHOOK}max_batch = 0\n"), "events.webhook[0].max_batch"),
        ]);
    }
}
