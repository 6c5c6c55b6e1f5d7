//! Webhook delivery: every event of the bus POSTed to each `[[events.webhook]]` of
//! `cluster.toml`, in order, at least once.
//!
//! Who delivers: only the node that currently leads Raft, so a healthy cluster sends each event
//! once rather than once per node. After each successful POST the leader records the
//! subscription's last delivered cursor through Raft ([`Command::WebhookDelivered`]); a new
//! leader resumes behind the recorded cursor. Events the old leader delivered after its last
//! recorded cursor are then delivered again: delivery is at least once, and receivers drop
//! events whose cursor they have already seen.
//!
//! Each POST carries a small ordered batch (`{"subscription": NAME, "events": [...]}`, events as
//! on `GET /api/v1/events`) and is signed: `X-Meridian-Signature: sha256=HEX`, the HMAC-SHA256,
//! keyed with the subscription secret, of `TIMESTAMP.BODY`, where `TIMESTAMP` is the
//! `X-Meridian-Timestamp` header (Unix seconds). Binding the time lets receivers refuse replays.
//! A failed POST (an error, a timeout, any non-2xx answer) is retried with exponential backoff
//! up to `retry_max_ms`, and the batch after it waits: order is never given up for progress.

use std::time::Duration;

use meridian_admin::events::EventJson;
use meridian_raft::{Command, Cursor, Event, EventsError, MetaStore};
use serde::Serialize;

use crate::config::WebhookConfig;
use crate::shutdown::Shutdown;

/// How often an idle subscription checks whether this node still leads (new events wake it
/// sooner).
const LEADER_CHECK: Duration = Duration::from_secs(1);
/// Wait after a failure to read the local store before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Header with the Unix time (seconds) the delivery was signed at.
const TIMESTAMP_HEADER: &str = "x-meridian-timestamp";
/// Header with `sha256=` and the hex HMAC of `TIMESTAMP.BODY`.
const SIGNATURE_HEADER: &str = "x-meridian-signature";
/// Header naming the subscription.
const SUBSCRIPTION_HEADER: &str = "x-meridian-subscription";

/// Why delivery of a subscription paused.
enum Pause {
    /// This node no longer leads: another node delivers now.
    NotLeader,
    /// The node is stopping.
    Shutdown,
}

/// The body of one POST.
#[derive(Serialize)]
struct Delivery<'a> {
    /// The subscription's name.
    subscription: &'a str,
    /// The events, in cursor order.
    events: Vec<EventJson>,
}

/// Runs every subscription's delivery until shutdown.
pub(crate) async fn run(meta: MetaStore, subscriptions: Vec<WebhookConfig>, shutdown: Shutdown) {
    if subscriptions.is_empty() {
        return;
    }
    // No redirects: a 301/302 would turn the POST into a body-less GET whose 200 would count the
    // batch as delivered. A redirect is a failed delivery, retried and logged with its status.
    let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
    let client = match builder.redirect(reqwest::redirect::Policy::none()).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are off");
            return;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for config in subscriptions {
        let subscription = Subscription { meta: meta.clone(), client: client.clone(), config };
        tasks.spawn(subscription.run(shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

/// One subscription's delivery.
struct Subscription {
    /// Events, the delivered cursor, leadership, and where progress is proposed.
    meta: MetaStore,
    /// The HTTP client shared by every subscription (one connection pool).
    client: reqwest::Client,
    /// The subscription as configured.
    config: WebhookConfig,
}

impl Subscription {
    /// Delivers whenever this node leads, until shutdown.
    async fn run(self, shutdown: Shutdown) {
        loop {
            if self.meta.is_leader() {
                tracing::info!(subscription = %self.config.name, "leading: delivering webhook events");
                match self.deliver_while_leading(&shutdown).await {
                    Pause::Shutdown => return,
                    Pause::NotLeader => {
                        tracing::info!(subscription = %self.config.name, "no longer leading: webhook delivery paused");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(LEADER_CHECK) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// Delivers from the recorded cursor on, batch after batch, until leadership or the node goes.
    async fn deliver_while_leading(&self, shutdown: &Shutdown) -> Pause {
        let name = self.config.name.as_str();
        // A new leader may not have applied the last WebhookDelivered entries of the previous
        // one yet: reading the cursor before a read index would deliver more again than needed
        // (and, behind the trimmed history, report events as lost that were delivered).
        while let Err(e) = self.meta.read_barrier().await {
            tracing::warn!(subscription = name, error = %e, "cannot catch up before reading the delivered cursor");
            if let Some(pause) = self.pause(STORE_RETRY, shutdown).await {
                return pause;
            }
            if !self.meta.is_leader() {
                return Pause::NotLeader;
            }
        }
        let mut cursor = loop {
            match self.meta.webhook_delivered(name) {
                Ok(cursor) => break cursor,
                Err(e) => {
                    tracing::warn!(subscription = name, error = %e, "cannot read the delivered cursor");
                    if let Some(pause) = self.pause(STORE_RETRY, shutdown).await {
                        return pause;
                    }
                }
            }
        };
        let mut applied = self.meta.applied_signal();
        loop {
            if !self.meta.is_leader() {
                return Pause::NotLeader;
            }
            // Marked seen before the read: an entry applied during it wakes the wait below.
            applied.borrow_and_update();
            let events = match self.meta.events_after(cursor, self.config.max_batch) {
                Ok(events) => events,
                Err(EventsError::Gone { after, trimmed_through, oldest }) => {
                    // Never stall behind a hole: say loudly what was lost and go on after it.
                    tracing::error!(
                        subscription = name,
                        %after,
                        %trimmed_through,
                        oldest = ?oldest.map(|c| c.to_string()),
                        "webhook fell behind the retained event history: events were lost for it"
                    );
                    cursor = Some(trimmed_through);
                    continue;
                }
                Err(EventsError::Store(e)) => {
                    tracing::warn!(subscription = name, error = %e, "cannot read events");
                    if let Some(pause) = self.pause(STORE_RETRY, shutdown).await {
                        return pause;
                    }
                    continue;
                }
            };
            let Some(last) = events.last().map(|e| e.cursor) else {
                tokio::select! {
                    changed = applied.changed() => if changed.is_err() { return Pause::Shutdown },
                    () = tokio::time::sleep(LEADER_CHECK) => {}
                    () = shutdown.wait() => return Pause::Shutdown,
                }
                continue;
            };
            if let Err(pause) = self.post_until_delivered(&events, shutdown).await {
                return pause;
            }
            cursor = Some(last);
            self.record(last).await;
        }
    }

    /// Records the delivered cursor through Raft. A failure is only logged: the next delivery
    /// records a later one, and until then a new leader would merely deliver some events again.
    async fn record(&self, cursor: Cursor) {
        let command = Command::WebhookDelivered { subscription: self.config.name.clone(), cursor };
        if let Err(e) = self.meta.propose(command).await {
            tracing::warn!(subscription = %self.config.name, %cursor, error = %e,
                "cannot record webhook progress; a new leader may deliver these events again");
        }
    }

    /// POSTs one batch until the receiver takes it, backing off exponentially between attempts.
    async fn post_until_delivered(&self, events: &[Event], shutdown: &Shutdown) -> Result<(), Pause> {
        let name = self.config.name.as_str();
        let delivery = Delivery { subscription: name, events: events.iter().map(EventJson::new).collect() };
        let body = match serde_json::to_vec(&delivery) {
            Ok(body) => body,
            Err(e) => {
                // Cannot happen for these plain types; refuse to skip events if it ever does.
                tracing::error!(subscription = name, error = %e, "cannot encode a webhook body");
                return Err(Pause::Shutdown);
            }
        };
        let (first, last) = (events.first().map(|e| e.cursor), events.last().map(|e| e.cursor));
        let mut delay = Duration::from_millis(self.config.retry_min_ms);
        let max_delay = Duration::from_millis(self.config.retry_max_ms);
        // Ends when the receiver takes the batch, when this node stops leading, or at shutdown.
        for attempt in 1u64.. {
            if !self.meta.is_leader() {
                return Err(Pause::NotLeader);
            }
            match self.post(&body).await {
                Ok(()) => {
                    tracing::debug!(subscription = name, events = events.len(), ?last, attempt, "webhook delivered");
                    return Ok(());
                }
                Err(reason) => tracing::warn!(
                    subscription = name,
                    first = ?first.map(|c| c.to_string()),
                    last = ?last.map(|c| c.to_string()),
                    attempt,
                    retry_in = ?delay,
                    %reason,
                    "webhook delivery failed"
                ),
            }
            if let Some(pause) = self.pause(delay, shutdown).await {
                return Err(pause);
            }
            delay = (delay * 2).min(max_delay);
        }
        Err(Pause::Shutdown)
    }

    /// One signed POST; `Err` says why it did not count as delivered.
    async fn post(&self, body: &[u8]) -> Result<(), String> {
        let timestamp = meridian_raft::signing::unix_now();
        let response = self
            .client
            .post(&self.config.url)
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, format!("sha256={}", sign(&self.config.secret, timestamp, body)))
            .header(SUBSCRIPTION_HEADER, &self.config.name)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_redirection() {
            let to = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
            return Err(format!("receiver redirected ({status}) to {to}; fix the configured url"));
        }
        if status.is_success() { Ok(()) } else { Err(format!("receiver answered {status}")) }
    }

    /// Waits `delay`; `Some` if delivery must stop instead.
    async fn pause(&self, delay: Duration, shutdown: &Shutdown) -> Option<Pause> {
        tokio::select! {
            () = tokio::time::sleep(delay) => None,
            () = shutdown.wait() => Some(Pause::Shutdown),
        }
    }
}

/// Hex HMAC-SHA256 of `TIMESTAMP.BODY` keyed with the subscription secret.
fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    hex::encode(meridian_raft::signing::hmac_sha256(secret.as_bytes(), &[timestamp.as_bytes(), b".", body]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature covers the timestamp and the body: changing either changes it.
    #[test]
    fn signature_binds_time_and_body() {
        let base = sign("0123456789abcdef", 1_700_000_000, b"{}");
        assert_eq!(base.len(), 64);
        assert_ne!(base, sign("0123456789abcdef", 1_700_000_001, b"{}"));
        assert_ne!(base, sign("0123456789abcdef", 1_700_000_000, b"{ }"));
        assert_ne!(base, sign("0123456789abcdeF", 1_700_000_000, b"{}"));
    }
}
