//! A share link's download: within the link's download budget, a presigned URL on the node geo
//! routing picks, the download counted, then the redirect.

use std::net::SocketAddr;

use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_raft::model::{Share, ShareAudience};
use meridian_raft::{Command, CommandOutcome};

use super::messages::{error_page, page, too_many};
use crate::downloads::download_url;
use crate::identity::now_millis;
use crate::route::{locate, routing};
use crate::{ApiCaller, ApiError, WebState};

/// Checks the link's download budget, resolves the file, picks the node and presigns; then
/// counts the download; then redirects. Nothing is counted for a download that cannot be
/// served. A limited link's download is committed through Raft before the redirect (the limit
/// holds across nodes); an unlimited link's is counted here and committed with the next flush.
pub(super) async fn hand_out(state: &WebState, share: &Share, peer: SocketAddr, headers: &HeaderMap) -> Response {
    let located = match routing(state).and_then(|r| locate(r, peer, headers, None)) {
        Ok(located) => located,
        Err(e) => {
            tracing::warn!(share = %share.id, status = %e.status, error = %e.message, "share link cannot be served");
            return error_page(&e);
        }
    };
    let client = located.address.ip;
    let links = &state.share_links;
    if let Err(refused) = links.uses.reserve(&share.id, client) {
        tracing::warn!(share = %share.id, %client, why = ?refused.why, "share link downloads over the limit");
        let secs = refused.retry_after_secs();
        let message =
            format!("This link was opened too many times in a short while. Wait {secs} seconds and try again.");
        return too_many("Too many downloads", &message, secs);
    }
    let prepared = async {
        let caller = ApiCaller::Service(format!("share:{}", share.id));
        let expiry = links.presign_expiry();
        let (url, site, _) = download_url(state, &caller, &located, &share.bucket, &share.key, expiry).await?;
        Ok::<_, ApiError>((url, site.region.clone()))
    };
    let (url, region) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::warn!(share = %share.id, status = %e.status, error = %e.message, "share link cannot be served");
            return error_page(&e);
        }
    };
    let unlimited = matches!(share.audience, ShareAudience::Public { max_downloads: None, .. });
    if !(unlimited && links.count_later(&state.meta, &share.id, client.to_string())) {
        let command = Command::UseShare { id: share.id.clone(), at: now_millis(), client: client.to_string() };
        match state.meta.propose(command).await {
            Ok(CommandOutcome::Done) => {}
            // Revoked, expired or used up by someone else meanwhile.
            Ok(_) => return page(StatusCode::GONE, "Link used up", "This link can no longer be used."),
            Err(e) => return error_page(&ApiError::propose(&e)),
        }
    }
    tracing::info!(share = %share.id, %client, %region, "share link used");
    (StatusCode::FOUND, [(LOCATION, url.as_str()), (CACHE_CONTROL, "no-store")]).into_response()
}
