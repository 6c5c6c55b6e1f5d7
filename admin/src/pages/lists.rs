//! The history page (filters, pages; admins see everyone's) and "Shared with me".

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::format::{self, download_href, file_href};
use super::{Chrome, PageError, PageUser, render};
use crate::WebState;
use crate::error::ApiError;
use crate::history::{ACTIONS, Entry, HistoryQuery, read_history};
use crate::shares::{Listing, list_shares};

/// Entries per page of the history page.
const PAGE_SIZE: usize = 50;

/// A user id as a person reads it: the name and login from the user list, else the id.
pub(crate) fn user_label(state: &WebState, id: &str) -> String {
    match state.meta.user(id).ok().flatten() {
        Some(user) if !user.profile.name.is_empty() => format!("{} ({})", user.profile.name, user.profile.login),
        Some(user) => user.profile.login,
        None => id.to_owned(),
    }
}

/// An event's actor as a person reads it.
fn actor_label(state: &WebState, actor: Option<&str>) -> String {
    match actor.and_then(|a| a.split_once(':')) {
        None => "Meridian".to_owned(),
        Some(("user", id)) => user_label(state, id),
        Some(("key", id)) => format!("S3 key {id}"),
        Some(("service", name)) => format!("service {name}"),
        Some(_) => actor.unwrap_or_default().to_owned(),
    }
}

/// One row of a history table.
pub(crate) struct HistoryRow {
    /// The event's time, written for a person.
    pub(super) time: String,
    /// What (`create`, `share_use`...), shown as words.
    pub(super) action: String,
    /// The action's code, for the badge's colour.
    pub(super) code: &'static str,
    /// Who did it, as the panel names them (login, or the key or service).
    pub(super) actor: String,
    /// The bucket, if any.
    pub(super) bucket: Option<String>,
    /// The file's key, if any.
    pub(super) key: Option<String>,
    /// Its page, for a file.
    pub(super) href: Option<String>,
    /// The rest: size, region, client address, share...
    pub(super) details: String,
}

/// The event fields worth a column of their own, or not worth showing.
const SHOWN_ELSEWHERE: [&str; 3] = ["bucket", "key", "etag"];

/// Event fields holding a time (Unix ms), shown as one.
const TIME_FIELDS: [&str; 3] = ["expires", "at", "time"];

/// Rows of a history table from the API's entries.
pub(crate) fn history_rows(state: &WebState, entries: Vec<Entry>) -> Vec<HistoryRow> {
    entries
        .into_iter()
        .map(|entry| {
            let data = &entry.event.data;
            let bucket = data.get("bucket").and_then(|v| v.as_str());
            let key = data.get("key").and_then(|v| v.as_str());
            let details = data
                .as_object()
                .map(|fields| {
                    fields
                        .iter()
                        .filter(|(name, _)| !SHOWN_ELSEWHERE.contains(&name.as_str()))
                        .filter_map(|(name, value)| {
                            let text = match value {
                                serde_json::Value::Number(n) if name == "size" => format::size(n.as_u64()?),
                                serde_json::Value::Number(n)
                                    if TIME_FIELDS.contains(&name.as_str()) || name.ends_with("_ms") =>
                                {
                                    format::time(n.as_i64()?)
                                }
                                serde_json::Value::String(s) => s.clone(),
                                serde_json::Value::Number(n) => n.to_string(),
                                serde_json::Value::Bool(b) => b.to_string(),
                                _ => return None,
                            };
                            Some(format!("{}: {text}", name.replace('_', " ")))
                        })
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default();
            HistoryRow {
                time: format::time(entry.event.time_ms),
                action: entry.action.replace('_', " "),
                code: entry.action,
                actor: actor_label(state, entry.event.actor.as_deref()),
                bucket: bucket.map(str::to_owned),
                key: key.map(str::to_owned),
                href: bucket.zip(key).map(|(b, k)| file_href(b, k)),
                details,
            }
        })
        .collect()
}

/// A choice of a filter's drop-down.
pub(crate) struct Choice {
    /// The value sent.
    value: String,
    /// What the person reads.
    label: String,
    /// Whether it is the current filter.
    selected: bool,
}

/// The history page.
#[derive(Template)]
#[template(path = "history.html")]
pub(crate) struct HistoryPage {
    /// The layout.
    chrome: Chrome,
    /// Whether the viewer sees everyone's history.
    admin: bool,
    /// The action filter's choices.
    actions: Vec<Choice>,
    /// The user filter's choices.
    users: Vec<Choice>,
    /// The file filter as typed.
    file: String,
    /// The date range as typed (`YYYY-MM-DD`).
    from: String,
    /// End of the range (inclusive day).
    to: String,
    /// The entries.
    rows: Vec<HistoryRow>,
    /// The next page.
    next: Option<String>,
    /// The first page, when on a later one.
    first: Option<String>,
}

/// Query of the history page: the filters as the form sends them.
#[derive(Deserialize)]
pub(crate) struct HistoryParams {
    /// Action, empty for any.
    #[serde(default)]
    action: String,
    /// User id, empty for anyone.
    #[serde(default)]
    user: String,
    /// `BUCKET` or `BUCKET/KEY`, empty for all.
    #[serde(default)]
    file: String,
    /// First day, `YYYY-MM-DD`.
    #[serde(default)]
    from: String,
    /// Last day, `YYYY-MM-DD`.
    #[serde(default)]
    to: String,
    /// Cursor of the page.
    #[serde(default)]
    after: String,
}

/// A date field as Unix ms, or a 400 naming the field.
fn date(field: &str, text: &str) -> Result<Option<i64>, ApiError> {
    if text.is_empty() {
        return Ok(None);
    }
    format::date_ms(text).map(Some).ok_or_else(|| ApiError::bad_request(format!("{field} must be a date (YYYY-MM-DD)")))
}

/// `GET /history`.
pub(crate) async fn history(
    State(state): State<WebState>,
    page: PageUser,
    Query(params): Query<HistoryParams>,
) -> Result<Response, PageError> {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let query = HistoryQuery {
        action: Some(params.action.clone()).filter(|a| !a.is_empty()),
        user: Some(params.user.clone()).filter(|u| !u.is_empty()),
        file: Some(params.file.trim().to_owned()).filter(|f| !f.is_empty()),
        from_ms: date("from", &params.from)?,
        // The form's "to" day is included: the API's bound is exclusive.
        to_ms: date("to", &params.to)?.map(|ms| ms + DAY_MS),
        after: Some(params.after.clone()).filter(|a| !a.is_empty()),
        limit: Some(PAGE_SIZE),
    };
    let history = read_history(&state, &page.user, &query)?;
    let filters = [
        ("action", params.action.as_str()),
        ("user", params.user.as_str()),
        ("file", params.file.as_str()),
        ("from", params.from.as_str()),
        ("to", params.to.as_str()),
    ];
    let link = |after: &str| {
        let mut pairs = filters.to_vec();
        pairs.push(("after", after));
        format!("/history?{}", format::query(&pairs))
    };
    let mut actions =
        vec![Choice { value: String::new(), label: "any action".to_owned(), selected: params.action.is_empty() }];
    actions.extend(ACTIONS.iter().map(|a| Choice {
        value: (*a).to_owned(),
        label: a.replace('_', " "),
        selected: params.action == *a,
    }));
    let mut users = vec![Choice { value: String::new(), label: "anyone".to_owned(), selected: params.user.is_empty() }];
    let known = state.meta.users().map_err(|e| ApiError::internal("reading the user list", &e))?;
    // As `/api/v1/users`: users deleted upstream are listed to admins only.
    let admin = page.user.is_admin();
    users.extend(known.into_iter().filter(|u| admin || u.deleted.is_none()).map(|u| Choice {
        selected: params.user == u.profile.id,
        label: if u.profile.name.is_empty() {
            u.profile.login
        } else {
            format!("{} ({})", u.profile.name, u.profile.login)
        },
        value: u.profile.id,
    }));
    let view = HistoryPage {
        chrome: page.chrome("History", "history"),
        admin: page.user.is_admin(),
        actions,
        users,
        rows: history_rows(&state, history.entries),
        next: history.next.as_deref().map(link),
        first: (!params.after.is_empty()).then(|| link("")),
        file: params.file,
        from: params.from,
        to: params.to,
    };
    Ok(render(StatusCode::OK, &view))
}

/// One file shared with the viewer.
pub(crate) struct SharedRow {
    /// The shared file's bucket, for its link.
    bucket: String,
    /// The shared file's key, for its link.
    key: String,
    /// Who shared it.
    from: String,
    /// Whether the viewer may upload a new version.
    write: bool,
    /// When the share ends.
    expires: String,
    /// Download link.
    download: String,
}

/// "Shared with me".
#[derive(Template)]
#[template(path = "shared.html")]
pub(crate) struct SharedPage {
    /// The layout.
    chrome: Chrome,
    /// What was just done (a new version uploaded).
    notice: Option<String>,
    /// The active shares naming the viewer.
    rows: Vec<SharedRow>,
}

/// `GET /shared`.
pub(crate) async fn shared_with_me(
    State(state): State<WebState>,
    page: PageUser,
    Query(params): Query<super::files::FileParams>,
) -> Result<Response, PageError> {
    let rows = list_shares(&state, &page.user, Listing::WithMe, None, super::files::SHARES_ON_A_PAGE)?
        .shares
        .into_iter()
        .map(|s| SharedRow {
            from: user_label(&state, &s.created_by),
            write: s.permission.as_deref() == Some("write"),
            expires: s.expires_ms.map_or_else(|| "never".to_owned(), format::time),
            download: download_href(&s.bucket, &s.key),
            bucket: s.bucket,
            key: s.key,
        })
        .collect();
    let notice = super::files::notice_text(&params.notice, &params.name);
    Ok(render(StatusCode::OK, &SharedPage { chrome: page.chrome("Shared with me", "shared"), notice, rows }))
}
