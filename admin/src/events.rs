//! `GET /api/v1/events`: the event bus for outside consumers.
//!
//! Events come from the local state machine's retained history, which is the same on every
//! node, so any node serves any consumer and a cursor obtained from one node resumes on another
//! (after a reconnect or a leader change) with no gap and no duplicate.
//!
//! - Server-Sent Events by default: each event is `id: CURSOR` + `data: JSON`, so a browser's
//!   `EventSource` resumes by itself (`Last-Event-ID`); comments keep idle connections alive.
//! - `Accept: application/json`: one page, `{"events": [...], "next": CURSOR}`, with `limit` and
//!   an optional long poll (`wait_secs`) when nothing is new.
//!
//! `after=CURSOR` (or the `Last-Event-ID` header, which wins, as a reconnecting `EventSource`
//! repeats the original URL) starts right behind that event; without either, the stream starts at
//! the oldest retained event. A cursor older than the retained history is answered 410 Gone with
//! the oldest cursor still available, never with a silent gap.
//!
//! The JSON shape of an event ([`EventJson`]) is also what webhooks deliver.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use meridian_raft::{Cursor, Event, EventsError, MetaStore};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::WebState;
use crate::api_auth::ApiCaller;
use crate::error::ApiError;

/// Events per page when the caller does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most events per page (JSON) and per read of the store (SSE).
const MAX_LIMIT: usize = 1000;
/// Longest long poll of a JSON request.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Interval of SSE keep-alive comments: well under the idle timeouts of common proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The header a reconnecting SSE client sends with the last `id:` it received.
const LAST_EVENT_ID: &str = "last-event-id";

/// The query string of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Start behind this cursor (`INDEX` or `INDEX.SUB`).
    after: Option<String>,
    /// Most events in a JSON page (1..=1000, default 100).
    limit: Option<usize>,
    /// JSON only: when nothing is new, wait up to this many seconds (at most 30) for an event.
    wait_secs: Option<u64>,
}

/// One event as consumers see it (SSE `data:`, JSON pages, webhook bodies).
#[derive(Debug, Clone, Serialize)]
pub struct EventJson {
    /// Resume token: pass it back as `after` (or `Last-Event-ID`).
    pub cursor: String,
    /// Log index of the entry that produced the event.
    pub index: u64,
    /// The kind, e.g. `ObjectCreated`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When it happened, Unix milliseconds (the proposing node's clock).
    pub time_ms: i64,
    /// Who caused it (`key:ACCESS_KEY_ID`, `service:NAME`, `user:ID`), when known.
    pub actor: Option<String>,
    /// The kind's fields (bucket, key, size, etag, region...).
    pub data: serde_json::Value,
    /// The IP address of the client whose request caused it, when recorded (S3 writes).
    pub client: Option<String>,
}

impl EventJson {
    /// The consumer's view of a retained event.
    pub fn new(event: &Event) -> Self {
        // The kind serializes as `{"Name": {fields}}`; consumers get the name in `type` and the
        // fields in `data`, which keeps every future kind working without code here.
        let data = match serde_json::to_value(&event.kind) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().next().map(|(_, v)| v),
            _ => None,
        };
        Self {
            cursor: event.cursor.to_string(),
            index: event.cursor.index,
            kind: event.kind.name(),
            time_ms: event.at,
            actor: event.actor.as_ref().map(ToString::to_string),
            data: data.unwrap_or(serde_json::Value::Null),
            client: event.client.clone(),
        }
    }
}

/// A JSON page.
#[derive(Serialize)]
struct Page {
    /// The events, in order.
    events: Vec<EventJson>,
    /// Where the next request starts (`after=`): behind the last event, or, on an empty page,
    /// behind everything this node had applied.
    next: String,
}

/// The body of a 410: the `ApiError` shape plus where the retained history resumes.
#[derive(Serialize)]
pub(crate) struct GoneBody {
    /// Always `gone`.
    error: &'static str,
    /// What happened, for a person.
    message: String,
    /// The oldest event still retained (`null` if none is).
    oldest: Option<String>,
    /// `after=` value that reads from the oldest retained event on.
    resume_after: String,
}

/// `GET /api/v1/events`.
pub(crate) async fn events(
    State(state): State<WebState>,
    caller: ApiCaller,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    // axum's own rejection is plain text; API errors are JSON.
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let last_event_id = headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok()).filter(|v| !v.trim().is_empty());
    let after = match last_event_id.or(query.after.as_deref()) {
        Some(text) => Some(text.trim().parse::<Cursor>().map_err(|e| ApiError::bad_request(e.to_string()))?),
        None => None,
    };
    let wants_json = wants_json(&headers);
    tracing::debug!(actor = %caller.actor(), after = ?after.map(|c| c.to_string()), json = wants_json, "event consumer");
    if wants_json {
        let limit = crate::error::page_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let wait = Duration::from_secs(query.wait_secs.unwrap_or(0)).min(MAX_WAIT);
        return json_page(&state, after, limit, wait).await;
    }
    // The first read happens before the stream starts, so a purged cursor is a real 410.
    let first = read(&state.meta, after, MAX_LIMIT)?;
    let feed = Feed {
        meta: state.meta.clone(),
        after,
        applied: state.meta.applied_signal(),
        buffer: first.into(),
        stop: state.stop.clone(),
        done: false,
    };
    let stream = futures::stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response())
}

/// Why a request for events fails: the cursor is behind the retained history (410), or any
/// other API error.
pub(crate) enum Failure {
    /// 410 Gone, with where the history resumes.
    Gone(GoneBody),
    /// Everything else.
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Self::Gone(body) => (StatusCode::GONE, Json(body)).into_response(),
            Self::Api(error) => error.into_response(),
        }
    }
}

/// One read of the retained history.
fn read(meta: &MetaStore, after: Option<Cursor>, limit: usize) -> Result<Vec<Event>, Failure> {
    meta.events_after(after, limit).map_err(|e| match e {
        EventsError::Gone { after, trimmed_through, oldest } => {
            tracing::info!(%after, %trimmed_through, "event consumer behind the retained history");
            Failure::Gone(GoneBody {
                error: "gone",
                message: format!(
                    "events after {after} are no longer retained; the history resumes after {trimmed_through}"
                ),
                oldest: oldest.map(|c| c.to_string()),
                resume_after: trimmed_through.to_string(),
            })
        }
        EventsError::Store(e) => Failure::Api(ApiError::internal("reading the event history", &e)),
    })
}

/// A JSON page, after a long poll of at most `wait` when nothing is new.
async fn json_page(state: &WebState, after: Option<Cursor>, limit: usize, wait: Duration) -> Result<Response, Failure> {
    let mut applied = state.meta.applied_signal();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let applied_before = *applied.borrow_and_update();
        let events = read(&state.meta, after, limit)?;
        let waited_enough = tokio::time::Instant::now() >= deadline;
        if !events.is_empty() || waited_enough {
            // Every event up to `applied_before` was visible to the read, so an empty page
            // may move the cursor up to it without skipping anything.
            let caught_up = Cursor::after_entry(applied_before);
            let next = match (events.last(), after) {
                (Some(last), _) => last.cursor,
                (None, Some(after)) => after.max(caught_up),
                (None, None) => caught_up,
            };
            let page = Page { events: events.iter().map(EventJson::new).collect(), next: next.to_string() };
            return Ok(Json(page).into_response());
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() {
                return Err(ApiError::unavailable("the metadata store is shutting down").into());
            },
            () = tokio::time::sleep_until(deadline) => {}
            () = stopped(state.stop.clone()) => return Err(ApiError::unavailable("the node is shutting down").into()),
        }
    }
}

/// Resolves when the node stops (never without a stop signal).
async fn stopped(stop: Option<watch::Receiver<bool>>) {
    match stop {
        Some(mut stop) => {
            // An error means the sender is gone, which also means: stop.
            let _ = stop.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

/// The state of one SSE stream.
struct Feed {
    /// Where the events come from.
    meta: MetaStore,
    /// The last event sent (or the starting cursor).
    after: Option<Cursor>,
    /// Wakes the stream when entries are applied.
    applied: watch::Receiver<u64>,
    /// Events read but not sent yet.
    buffer: VecDeque<Event>,
    /// The node's stop signal: ends the stream so the listener can drain.
    stop: Option<watch::Receiver<bool>>,
    /// Set after a final error event: the stream ends.
    done: bool,
}

impl Feed {
    /// The next SSE event, waiting for one as long as it takes; `None` ends the stream.
    async fn next(mut self) -> Option<(Result<SseEvent, Infallible>, Self)> {
        // Bounded by what the store has: every turn either sends, fails, or waits for a change.
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.buffer.pop_front() {
                self.after = Some(event.cursor);
                let sse = match serde_json::to_string(&EventJson::new(&event)) {
                    Ok(json) => SseEvent::default().id(event.cursor.to_string()).data(json),
                    Err(e) => {
                        tracing::error!(error = %e, cursor = %event.cursor, "cannot encode an event");
                        self.done = true;
                        SseEvent::default().event("error").data("cannot encode an event")
                    }
                };
                return Some((Ok(sse), self));
            }
            // Marked seen before the read: an entry applied during it wakes the wait below.
            self.applied.borrow_and_update();
            match read(&self.meta, self.after, MAX_LIMIT) {
                Ok(events) if !events.is_empty() => self.buffer.extend(events),
                Ok(_) => {
                    tokio::select! {
                        changed = self.applied.changed() => if changed.is_err() { return None },
                        () = stopped(self.stop.clone()) => return None,
                    }
                }
                Err(failure) => {
                    // The stream is already 200: say why it ends, in a named event.
                    self.done = true;
                    let (name, text) = match failure {
                        Failure::Gone(_) => ("gone", "the consumer fell behind the retained history; reconnect"),
                        Failure::Api(_) => ("error", "reading the event history failed; reconnect"),
                    };
                    return Some((Ok(SseEvent::default().event(name).data(text)), self));
                }
            }
        }
    }
}

/// Whether the client asked for JSON: `Accept` lists `application/json` ahead of
/// `text/event-stream` (or without it). The order decides, not quality values: clients
/// of these endpoints send one type, and a browser's `*/*` gets the endpoint's default (the
/// event stream, the redirect). One rule for every endpoint that answers either way.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let media = range.split(';').next().unwrap_or_default().trim();
            if media.eq_ignore_ascii_case("application/json") {
                return true;
            }
            if media.eq_ignore_ascii_case("text/event-stream") {
                return false;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first of JSON and the event stream named in `Accept` wins, in any header line.
    #[test]
    fn wants_json_takes_the_first_of_json_and_event_stream() {
        let with = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(ACCEPT, v.parse().expect("header"));
            }
            wants_json(&headers)
        };
        assert!(with(&["application/json"]));
        assert!(with(&["application/json; charset=utf-8"]));
        assert!(with(&["text/html, Application/JSON;q=0.9"]));
        assert!(with(&["application/json, text/event-stream"]));
        assert!(!with(&["text/event-stream, application/json"]));
        assert!(!with(&["text/event-stream", "application/json"]));
        assert!(!with(&["*/*"]));
        assert!(!with(&[]));
        assert!(!with(&["application/jsonl"]));
    }
}
