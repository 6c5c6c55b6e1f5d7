//! `GET /api/v1/history`: what happened to files, for the people of the panel.
//!
//! The history is not a store of its own: it is the event bus's retained history (see
//! docs/events.md), read with the filters a person needs (action, user, file, date range) and cut
//! to what the caller may see. An admin sees everything; any other user sees what they did
//! themselves and what happened to the files they own (see docs/admin.md for ownership).
//!
//! Pages are walked with the same cursors as `/api/v1/events`. A filter can match few of many
//! events, so one request looks at a bounded number of events ([`SCAN_BUDGET`]): a page may come
//! back short, with a `next` cursor to go on from, and only `next: null` means the end.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use meridian_raft::{Cursor, Event, EventKind, EventsError, MetaStore};
use serde::{Deserialize, Serialize};

use crate::WebState;
use crate::access::may_see_event;
use crate::error::ApiError;
use crate::events::EventJson;
use crate::identity::SignedInUser;

/// Entries per page when the caller does not say.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// Most entries per page.
const MAX_LIMIT: usize = 500;
/// Events read from the store at a time while filtering.
const READ_CHUNK: usize = 1000;
/// Most events one request looks at: bounds the work of a filter that matches little.
const SCAN_BUDGET: usize = 20_000;

/// The query string of `GET /api/v1/history`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    /// Only this action (see [`action_of`]), e.g. `update`.
    pub(crate) action: Option<String>,
    /// Only what this actor did: `user:ID`, `key:ID`, `service:NAME`, or a bare id/name.
    pub(crate) user: Option<String>,
    /// Only this file, `BUCKET/KEY`; or a whole bucket, `BUCKET`.
    pub(crate) file: Option<String>,
    /// Only entries at or after this time (Unix ms).
    pub(crate) from_ms: Option<i64>,
    /// Only entries before this time (Unix ms).
    pub(crate) to_ms: Option<i64>,
    /// Start behind this cursor (the `next` of the previous page).
    pub(crate) after: Option<String>,
    /// Most entries in the page (1..=500, default 50).
    pub(crate) limit: Option<usize>,
}

/// The history's name for what an event did: what the filter `action=` takes.
pub(crate) fn action_of(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::ObjectCreated { .. } => "create",
        EventKind::ObjectUpdated { .. } => "update",
        EventKind::ObjectDeleted { .. } => "delete",
        EventKind::ObjectReplicated { .. } => "replicate",
        EventKind::BucketCreated { .. } => "bucket_create",
        EventKind::BucketDeleted { .. } => "bucket_delete",
        EventKind::ShareCreated { .. } => "share_create",
        EventKind::ShareUsed { .. } => "share_use",
        EventKind::ShareRevoked { .. } => "share_revoke",
        EventKind::ObjectReplicaLost { .. } => "replica_lost",
        EventKind::ObjectVersionCreated { .. } => "version_create",
        EventKind::ObjectVersionDeleted { .. } => "version_delete",
        EventKind::ObjectVersionTagged { .. } => "version_tag",
    }
}

/// Every action the filter accepts (so a typo is a 400, not an always-empty answer).
pub(crate) const ACTIONS: &[&str] = &[
    "create",
    "update",
    "delete",
    "replicate",
    "bucket_create",
    "bucket_delete",
    "share_create",
    "share_use",
    "share_revoke",
    "replica_lost",
    "version_create",
    "version_delete",
    "version_tag",
];

/// One history entry: the event as the bus shows it, plus the history's action.
#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    /// `create`, `update`, `delete`, ... (see [`action_of`]).
    pub(crate) action: &'static str,
    /// The event itself: cursor, time, actor, type and details (`data`).
    #[serde(flatten)]
    pub(crate) event: EventJson,
}

/// A page of history.
#[derive(Debug, Serialize)]
pub(crate) struct Page {
    /// Matching entries, oldest first.
    pub(crate) entries: Vec<Entry>,
    /// Pass as `after` to go on; `null` once every retained event up to now was looked at.
    pub(crate) next: Option<String>,
}

/// The checked filters of a request.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    /// See [`HistoryQuery::action`].
    action: Option<String>,
    /// See [`HistoryQuery::user`].
    actor: Option<String>,
    /// The bucket of [`HistoryQuery::file`].
    bucket: Option<String>,
    /// The key of [`HistoryQuery::file`], when it names one file.
    key: Option<String>,
    /// See [`HistoryQuery::from_ms`].
    from_ms: Option<i64>,
    /// See [`HistoryQuery::to_ms`].
    to_ms: Option<i64>,
}

impl Filter {
    /// Everything that happened to one file.
    pub(crate) fn file(bucket: &str, key: &str) -> Self {
        Self { bucket: Some(bucket.to_owned()), key: Some(key.to_owned()), ..Self::default() }
    }

    fn parse(query: &HistoryQuery) -> Result<Self, ApiError> {
        if let Some(action) = &query.action
            && !ACTIONS.contains(&action.as_str())
        {
            return Err(ApiError::bad_request(format!("action must be one of {}", ACTIONS.join(", "))));
        }
        let (bucket, key) = match query.file.as_deref() {
            None => (None, None),
            Some("") => return Err(ApiError::bad_request("file must be BUCKET or BUCKET/KEY")),
            Some(file) => match file.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    (Some(bucket.to_owned()), Some(key.to_owned()))
                }
                Some(_) => return Err(ApiError::bad_request("file must be BUCKET or BUCKET/KEY")),
                None => (Some(file.to_owned()), None),
            },
        };
        if let (Some(from), Some(to)) = (query.from_ms, query.to_ms)
            && from > to
        {
            return Err(ApiError::bad_request("from_ms is after to_ms"));
        }
        Ok(Self {
            action: query.action.clone(),
            actor: query.user.clone().filter(|u| !u.is_empty()),
            bucket,
            key,
            from_ms: query.from_ms,
            to_ms: query.to_ms,
        })
    }

    fn matches(&self, event: &Event) -> bool {
        if self.action.as_deref().is_some_and(|a| a != action_of(&event.kind)) {
            return false;
        }
        if self.from_ms.is_some_and(|from| event.at < from) || self.to_ms.is_some_and(|to| event.at >= to) {
            return false;
        }
        if let Some(wanted) = &self.actor {
            let Some(actor) = &event.actor else { return false };
            let full = actor.to_string();
            let bare = full.split_once(':').map_or(full.as_str(), |(_, id)| id);
            if wanted != &full && wanted != bare {
                return false;
            }
        }
        if let Some(bucket) = &self.bucket {
            let (event_bucket, event_key) = match &event.kind {
                EventKind::BucketCreated { bucket, .. } | EventKind::BucketDeleted { bucket } => {
                    (bucket.as_str(), None)
                }
                kind => match kind.object() {
                    Some((b, k)) => (b, Some(k)),
                    None => return false,
                },
            };
            if event_bucket != bucket || self.key.as_deref().is_some_and(|key| Some(key) != event_key) {
                return false;
            }
        }
        true
    }
}

/// `GET /api/v1/history`.
pub(crate) async fn history(
    State(state): State<WebState>,
    user: SignedInUser,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    read_history(&state, &user, &query).map(Json)
}

/// One page of the history as `user` may see it (the API, the history page and a file's page).
pub(crate) fn read_history(state: &WebState, user: &SignedInUser, query: &HistoryQuery) -> Result<Page, ApiError> {
    let limit = crate::error::page_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = match query.after.as_deref() {
        Some(text) => Some(text.parse::<Cursor>().map_err(|e| ApiError::bad_request(e.to_string()))?),
        None => None,
    };
    let filter = Filter::parse(query)?;
    let page = read_page(&state.meta, user, &filter, after, limit)?;
    tracing::debug!(user = %user.actor(), entries = page.entries.len(), "history page");
    Ok(page)
}

/// Up to `limit` entries behind `after` that match `filter` and that `user` may see, looking
/// at no more than [`SCAN_BUDGET`] events (see the module's doc): what `GET /api/v1/history`
/// answers, and what the file detail and the panel's pages show.
pub(crate) fn read_page(
    meta: &MetaStore,
    user: &SignedInUser,
    filter: &Filter,
    mut after: Option<Cursor>,
    limit: usize,
) -> Result<Page, ApiError> {
    let mut entries = Vec::new();
    let mut scanned = 0usize;
    let next = loop {
        let chunk = match meta.events_after(after, READ_CHUNK) {
            Ok(chunk) => chunk,
            Err(EventsError::Gone { .. }) => {
                return Err(ApiError {
                    status: StatusCode::GONE,
                    code: "gone",
                    message: "this part of the history is no longer retained: start again without after".into(),
                });
            }
            Err(EventsError::Store(e)) => return Err(ApiError::internal("reading the history", &e)),
        };
        let end_of_history = chunk.len() < READ_CHUNK;
        let mut page_full = false;
        for event in &chunk {
            scanned += 1;
            after = Some(event.cursor);
            if filter.matches(event) && may_see_event(meta, user, event)? {
                entries.push(Entry { action: action_of(&event.kind), event: EventJson::new(event) });
                if entries.len() >= limit {
                    page_full = true;
                    break;
                }
            }
        }
        if page_full || (scanned >= SCAN_BUDGET && !end_of_history) {
            break after.map(|c| c.to_string());
        }
        if end_of_history {
            break None;
        }
    };
    tracing::trace!(user = %user.actor(), entries = entries.len(), scanned, "history read");
    Ok(Page { entries, next })
}
