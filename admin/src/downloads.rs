//! Download redirects: `GET /api/v1/files/{bucket}/{key}` answers with a presigned URL on the
//! node geo routing picks for the client ([`download_url`], which share links use too).
//!
//! Answers `302 Found` to a short-lived presigned GET URL on the chosen node, or, for
//! `Accept: application/json`, the same URL with the choice and its explanation. The caller
//! must be authenticated ([`ApiCaller`]): the cinema's services call it, with `?ip=` naming the
//! viewer when they ask on the viewer's behalf, and hand the viewer the presigned URL, which
//! needs no credentials and expires within minutes (`[geo] presign_expiry_secs`). Viewers never
//! get a key.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_geo::{Decision, Operation};
use meridian_raft::{Actor, Command, CommandOutcome};
use serde::{Deserialize, Serialize};

use crate::access::authorize_person;
use crate::files_api::Requester;
use crate::identity::now_millis;
use crate::presign::Presign;
use crate::route::{ChosenNode, Located, chosen, decide, locate, object, routing, signing_key};
use crate::{ApiCaller, ApiError, WebState};
use meridian_raft::access::PersonAccess;

/// Query of `GET /api/v1/files/...`.
#[derive(Debug, Deserialize)]
pub(crate) struct FileQuery {
    /// The viewer's address, when the caller asks on its behalf.
    ip: Option<String>,
    /// Present (`?detail`, `?detail=true`): the file's detail ([`crate::files_api::file_detail`])
    /// instead of a download link; signed-in users only.
    detail: Option<String>,
}

/// The JSON answer.
#[derive(Debug, Serialize)]
pub(crate) struct FileLink {
    /// The presigned GET URL.
    url: String,
    /// Seconds it stays valid.
    expires_in_secs: u64,
    /// The node it points to.
    node: ChosenNode,
    /// Where the client was placed.
    client: Located,
    /// Why that node.
    decision: Decision,
}

/// `GET /api/v1/files/{bucket}/{*key}`: for a service or key holder ([`ApiCaller`]), or for a
/// signed-in user who may see the file ([`authorize_person`]; others get the same 404 as a
/// missing file). Through a share, the URL lives `[shares] presign_secs`, not `[geo]`'s.
pub(crate) async fn file(
    State(state): State<WebState>,
    requester: Requester,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((bucket, key)): Path<(String, String)>,
    query: Result<Query<FileQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match query.detail.as_deref() {
        None | Some("false") => {}
        Some("" | "true") => {
            let Requester::Person(user) = requester else {
                return Err(ApiError::forbidden("the file detail is for signed-in users; services use placement"));
            };
            let detail = crate::files_api::file_detail(&state, &user, &bucket, &key).await?;
            return Ok(([(CACHE_CONTROL, "no-store")], Json(detail)).into_response());
        }
        Some(_) => return Err(ApiError::bad_request("detail takes no value, or true or false")),
    }
    let routing = routing(&state)?;
    // `ip=` is for services asking on a viewer's behalf; a signed-in user is where they are.
    let given = ip_of_viewer(&requester, query.ip.as_deref());
    // `used`: the share a user downloads through, and who they are, for the history.
    let (caller, expiry, used) = match requester {
        Requester::Machine(caller) => (caller, routing.presign.expiry, None),
        Requester::Person(user) => {
            let access = authorize_person(&state.meta, &user, &bucket, &key, false)?;
            // Users have no S3 key: their links are signed with the system key, on their behalf.
            let caller = ApiCaller::Service(user.actor());
            match access {
                PersonAccess::Owner => (caller, routing.presign.expiry, None),
                // A URL handed out through a share outlives a revocation by at most its short life.
                PersonAccess::Shared { share } => (caller, state.share_links.presign_expiry(), Some((share, user))),
            }
        }
    };
    let client = locate(routing, peer, &headers, given.as_deref())?;
    let (url, site, decision) = download_url(&state, &caller, &client, &bucket, &key, expiry).await?;
    if let Some((share, user)) = used {
        // Only once the link can be served: the history's `share_use`, by this user, from here.
        let command = Command::UseShare { id: share, at: now_millis(), client: client.address.ip.to_string() };
        let command = command.attributed(Some(Actor::User(user.id.clone())), now_millis());
        match state.meta.propose(command).await.map_err(|e| ApiError::propose(&e))? {
            CommandOutcome::Done => {}
            // Revoked or expired meanwhile.
            _ => return Err(ApiError::not_found(format!("no file {key:?} in bucket {bucket:?}"))),
        }
    }
    let expires_in_secs = expiry.as_secs();
    tracing::info!(caller = %caller.actor(), %bucket, %key, region = %site.region, "download link");
    if crate::events::wants_json(&headers) {
        let link = FileLink { url, expires_in_secs, node: ChosenNode::from(site), client, decision };
        return Ok(([(CACHE_CONTROL, "no-store")], Json(link)).into_response());
    }
    Ok((StatusCode::FOUND, [(LOCATION, url.as_str()), (CACHE_CONTROL, "no-store")]).into_response())
}

/// The `ip=` (or `client_ip`) a caller named, when it may name one: machines (services and key
/// holders) ask on a viewer's behalf; a signed-in person's is ignored, so their own address
/// (the peer, or what a trusted proxy forwarded) is what routing and the history see.
pub(crate) fn ip_of_viewer(requester: &Requester, given: Option<&str>) -> Option<String> {
    match requester {
        Requester::Machine(_) => given.map(str::to_owned),
        Requester::Person(user) => {
            if given.is_some() {
                tracing::debug!(user = %user.id, "ip= of a signed-in user ignored");
            }
            None
        }
    }
}

/// A presigned GET URL valid for `expiry`, for `bucket/key` on the node geo routing picks for
/// `client`, signed with the caller's key or the system key; with the node and why it was picked.
/// Fails (404, 503) before anything is counted or handed out when the file or a node is missing.
pub(crate) async fn download_url<'a>(
    state: &'a WebState,
    caller: &ApiCaller,
    client: &Located,
    bucket: &str,
    key: &str,
    expiry: Duration,
) -> Result<(String, &'a crate::route::Site, Decision), ApiError> {
    let routing = routing(state)?;
    let meta = object(state, bucket, key).await?;
    let decision = decide(state, routing, Operation::Get, &client.position, Some(&meta));
    let site = chosen(routing, &decision)?;
    let (access_key, secret_key) = signing_key(state, routing, caller)?;
    // A browser that opens the link saves the file instead of rendering it: an uploaded HTML
    // page must not run on the S3 listener's origin.
    let query = [("response-content-disposition", attachment(key))];
    let url = Presign {
        method: "GET",
        endpoint: &site.s3_endpoint,
        region: &site.region,
        access_key: &access_key,
        secret_key: &secret_key,
        bucket,
        key,
        query: &query,
        headers: &[],
        expires_secs: expiry.as_secs(),
        now: SystemTime::now(),
    }
    .url()
    .map_err(|e| ApiError::internal("presigning the download", &e))?;
    Ok((url, site, decision))
}

/// `attachment; filename*=UTF-8''NAME` (RFC 6266) for the last segment of `key`.
fn attachment(key: &str) -> String {
    /// RFC 5987 `attr-char`: what may stand unencoded in `filename*`.
    const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let name = key.rsplit('/').find(|segment| !segment.is_empty()).unwrap_or("download");
    format!("attachment; filename*=UTF-8''{}", percent_encoding::utf8_percent_encode(name, ATTR_CHAR))
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn attachment_names_the_last_segment_encoded() {
        assert_eq!(attachment("films/trailer.mp4"), "attachment; filename*=UTF-8''trailer.mp4");
        assert_eq!(attachment("a/b c\"\r\n.html"), "attachment; filename*=UTF-8''b%20c%22%0D%0A.html");
        assert_eq!(attachment("dir/"), "attachment; filename*=UTF-8''dir");
        assert_eq!(attachment("/"), "attachment; filename*=UTF-8''download");
    }
}
