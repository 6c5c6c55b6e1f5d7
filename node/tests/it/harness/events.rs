//! Helpers of the event bus tests: the event JSON as consumers read it, cursors, JSON pages and a
//! small Server-Sent Events reader over reqwest.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Deserialize;

use super::{ACCESS_KEY, SECRET_KEY, TestNode, http_client};

/// One event as `GET /api/v1/events` and webhooks deliver it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventOut {
    pub cursor: String,
    pub index: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub time_ms: i64,
    pub actor: Option<String>,
    pub data: serde_json::Value,
}

impl EventOut {
    /// The cursor as an ordered pair.
    pub fn position(&self) -> (u64, u32) {
        position(&self.cursor)
    }

    /// `data.key`, or "" for events without a key.
    pub fn key(&self) -> &str {
        self.data.get("key").and_then(serde_json::Value::as_str).unwrap_or_default()
    }

    /// `data.bucket`.
    pub fn bucket(&self) -> &str {
        self.data.get("bucket").and_then(serde_json::Value::as_str).unwrap_or_default()
    }
}

/// `INDEX.SUB` (or `INDEX`, which sorts after every event of the entry) as an ordered pair.
pub fn position(cursor: &str) -> (u64, u32) {
    match cursor.split_once('.') {
        Some((index, sub)) => (
            index.parse().unwrap_or_else(|_| panic!("bad cursor {cursor:?}")),
            sub.parse().unwrap_or_else(|_| panic!("bad cursor {cursor:?}")),
        ),
        None => (cursor.parse().unwrap_or_else(|_| panic!("bad cursor {cursor:?}")), u32::MAX),
    }
}

/// Panics unless the cursors strictly increase (no duplicate, no reordering).
#[track_caller]
pub fn assert_strictly_ordered(events: &[EventOut], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position() < pair[1].position(),
            "{what}: {} is followed by {} (duplicate or out of order)",
            pair[0].cursor,
            pair[1].cursor
        );
    }
}

/// A JSON page.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub events: Vec<EventOut>,
    pub next: String,
}

/// `GET /api/v1/events` as JSON with the dev key; returns the status and the body text.
pub async fn get_json(node: &TestNode, query: &str) -> (u16, String) {
    let url = format!("{}/api/v1/events?{query}", node.web_url());
    let response = http_client()
        .get(&url)
        .basic_auth(ACCESS_KEY, Some(SECRET_KEY))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_else(|e| panic!("body of GET {url}: {e}")))
}

/// One JSON page, which must be a 200.
pub async fn page(node: &TestNode, query: &str) -> Page {
    let (status, body) = get_json(node, query).await;
    assert_eq!(status, 200, "GET /api/v1/events?{query}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("page {body}: {e}"))
}

/// Every retained event of a node behind `after` (from the oldest when `None`) that it has
/// applied, walking JSON pages of `limit`.
pub async fn history(node: &TestNode, after: Option<&str>, limit: usize) -> Vec<EventOut> {
    let mut all: Vec<EventOut> = Vec::new();
    let mut query = match after {
        Some(after) => format!("after={after}&limit={limit}"),
        None => format!("limit={limit}"),
    };
    for _ in 0..100_000 {
        let page = page(node, &query).await;
        assert!(page.events.len() <= limit, "a page holds {} events, over the limit {limit}", page.events.len());
        if page.events.is_empty() {
            return all;
        }
        assert_eq!(page.next, page.events.last().map(|e| e.cursor.clone()).unwrap_or_default(), "next of a page");
        all.extend(page.events);
        query = format!("after={}&limit={limit}", page.next);
    }
    panic!("more than 100000 pages of events");
}

/// Waits (bounded) until `node`'s history behind `after` satisfies `done`; returns it.
pub async fn wait_history(
    node: &TestNode,
    after: Option<&str>,
    timeout: Duration,
    mut done: impl FnMut(&[EventOut]) -> bool,
) -> Vec<EventOut> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = history(node, after, 500).await;
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the event history did not reach the expected state within {timeout:?}: {events:#?}"
        );
        tokio::time::sleep(super::POLL).await;
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// An open SSE stream.
pub struct SseStream {
    /// The response body as it arrives.
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    /// Bytes received but not yet parsed into a whole message.
    buffer: Vec<u8>,
}

impl SseStream {
    /// Opens `GET /api/v1/events` as SSE with the dev key, `after=` and/or `Last-Event-ID` when
    /// given; panics unless the answer is a 200 event stream.
    pub async fn open(node: &TestNode, after: Option<&str>, last_event_id: Option<&str>) -> SseStream {
        let mut url = format!("{}/api/v1/events", node.web_url());
        if let Some(after) = after {
            url = format!("{url}?after={after}");
        }
        // No overall timeout: the stream lives as long as the test reads it.
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("build reqwest client");
        let mut request = client.get(&url).basic_auth(ACCESS_KEY, Some(SECRET_KEY));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if status != 200 {
            panic!("GET {url}: status {status}: {}", response.text().await.unwrap_or_default());
        }
        assert!(content_type.starts_with("text/event-stream"), "GET {url}: content-type {content_type:?}");
        SseStream { body: response.bytes_stream().boxed(), buffer: Vec::new() }
    }

    /// The next message with data (comments and keep-alives skipped), `Ok(None)` when the
    /// server ended the stream, `Err` when the connection broke or nothing came within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<SseMessage>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).map_err(|e| format!("SSE block is not UTF-8: {e}"))?;
                let mut message = SseMessage::default();
                let mut has_data = false;
                for line in text.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "" => {} // a comment (keep-alive)
                        "id" => message.id = Some(value.to_owned()),
                        "event" => message.event = Some(value.to_owned()),
                        "data" => {
                            if has_data {
                                message.data.push('\n');
                            }
                            message.data.push_str(value);
                            has_data = true;
                        }
                        _ => {}
                    }
                }
                if has_data {
                    return Ok(Some(message));
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(format!("no SSE event within {timeout:?}")),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(format!("SSE connection broke: {e}")),
                Ok(Some(Ok(bytes))) => self.buffer.extend_from_slice(&bytes),
            }
        }
    }

    /// The next event of the bus (a message with an `id:`); panics on anything else.
    pub async fn next_event(&mut self, timeout: Duration) -> EventOut {
        let message = match self.next(timeout).await {
            Ok(Some(message)) => message,
            Ok(None) => panic!("the SSE stream ended"),
            Err(e) => panic!("{e}"),
        };
        assert!(message.event.is_none(), "expected an event of the bus, got {message:?}");
        let event: EventOut =
            serde_json::from_str(&message.data).unwrap_or_else(|e| panic!("SSE data {:?}: {e}", message.data));
        assert_eq!(message.id.as_deref(), Some(event.cursor.as_str()), "the SSE id is the cursor");
        event
    }
}
