//! "My files" and a file's own page, on top of the API's functions: the listing ([`list`]), a
//! file's page ([`detail`]) and the forms that change something ([`actions`]). This module
//! holds what they share: the notices shown after a change, and the check that a file exists
//! and may be seen.

pub(super) mod actions;
pub(super) mod detail;
pub(super) mod list;

use serde::Deserialize;

use super::{PageError, PageUser};
use crate::WebState;
use crate::access::may_access;
use crate::error::ApiError;

/// The sentence of a notice code (codes, not text, travel in the URL: nobody can make the
/// page say something else by sending a link).
pub(in crate::pages) fn notice_text(code: &str, name: &str) -> Option<String> {
    match code {
        "uploaded" => Some(format!("Uploaded {name}.")),
        "deleted" => Some(format!("Deleted {name}.")),
        "bucket" => Some(format!("Created bucket {name}. Upload files into it below.")),
        "shared" => Some(format!("Shared with {name}.")),
        "revoked" => Some("Share revoked: it stopped working at once.".to_owned()),
        "restored" => Some(format!("Restored version {name}: it is the current version now.")),
        _ => None,
    }
}

/// Most shares a page lists (a file's page, "Shared with me"); the API pages through the rest.
pub(crate) const SHARES_ON_A_PAGE: usize = 500;

/// Query of a file's page (and of "Shared with me").
#[derive(Deserialize)]
pub(crate) struct FileParams {
    /// What was just done (see [`notice_text`]).
    #[serde(default)]
    pub(in crate::pages) notice: String,
    /// To whom.
    #[serde(default)]
    pub(in crate::pages) name: String,
}

/// 404 unless `user` may change `bucket/key` and it exists (the API's rule and answer).
fn visible_object(
    state: &WebState,
    page: &PageUser,
    bucket: &str,
    key: &str,
) -> Result<meridian_raft::model::ObjectMeta, PageError> {
    let missing = || {
        PageError::Api(ApiError::not_found(format!("There is no file {key:?} in bucket {bucket:?} that you can see.")))
    };
    if !may_access(&state.meta, &page.user, bucket, Some(key))? {
        return Err(missing());
    }
    state.meta.object(bucket, key).map_err(|e| ApiError::internal("reading the file", &e))?.ok_or_else(missing)
}
