//! Admin's access rules, in one place: whether a signed-in person may see or change a file, a
//! bucket, a share or a history event, and whether a public share link may be used now. Every
//! handler and page asks here instead of deciding on its own.
//!
//! Who owns what and which shares grant what is the replicated store's rule
//! ([`meridian_raft::access`]), the same the S3 gateway applies; this module turns its answers
//! into the web's: a person who may not see a file gets the same 404 as for a missing one, so
//! the answer does not tell other users' files apart.

use meridian_raft::access::PersonAccess;
use meridian_raft::model::{Share, ShareState};
use meridian_raft::{Actor, Event, EventKind, MetaStore};

use crate::error::ApiError;
use crate::identity::{SignedInUser, now_millis};
use crate::shares::token_hash;

/// Whether `user` may see and change `bucket/key` (`key` `None`: the bucket itself): admins
/// always; others when they own the bucket or the file ([`meridian_raft::access`]).
pub(crate) fn may_access(
    meta: &MetaStore,
    user: &SignedInUser,
    bucket: &str,
    key: Option<&str>,
) -> Result<bool, ApiError> {
    meta.person_owns(user.person(), bucket, key).map_err(|e| ApiError::internal("reading owners", &e))
}

/// Whether a listing shows `user` a file whose owner is `owner`, in a bucket `user` may access
/// as a whole or not (`whole_bucket`, from [`may_access`] once per bucket): [`may_access`]'s rule
/// with the bucket's half read once, so a listing does not read the bucket's owner per file.
pub(crate) fn lists_file(user: &SignedInUser, whole_bucket: bool, owner: Option<&str>) -> bool {
    whole_bucket || owner == Some(user.id.as_str())
}

/// The one permission check for a person acting on a file ([`meridian_raft::access`]): the
/// owner or an admin, else an active share naming them (for `write`, a write share). Anything
/// else is the same 404 as a missing file, so the answer does not tell other users' files apart.
pub(crate) fn authorize_person(
    meta: &MetaStore,
    user: &SignedInUser,
    bucket: &str,
    key: &str,
    write: bool,
) -> Result<PersonAccess, ApiError> {
    let access = meta.person_access(user.person(), bucket, key, write, now_millis());
    access
        .map_err(|e| ApiError::internal("reading shares", &e))?
        .ok_or_else(|| ApiError::not_found(format!("no file {key:?} in bucket {bucket:?}")))
}

/// What a person who may see a file may do with it, as its detail shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileRights {
    /// May delete and share it (its owner, an admin).
    pub(crate) may_manage: bool,
    /// May upload a new version (its owner, an admin, a `write` share).
    pub(crate) may_replace: bool,
}

/// What `user` may do with `bucket/key`: the same 404 as a missing file unless they own it, are
/// an admin, or have it shared with them ([`authorize_person`]).
pub(crate) fn file_rights(
    meta: &MetaStore,
    user: &SignedInUser,
    bucket: &str,
    key: &str,
) -> Result<FileRights, ApiError> {
    let may_manage = match authorize_person(meta, user, bucket, key, false)? {
        PersonAccess::Owner => true,
        PersonAccess::Shared { .. } => false,
    };
    let may_replace = may_manage || authorize_person(meta, user, bucket, key, true).is_ok();
    Ok(FileRights { may_manage, may_replace })
}

/// Whether `user` may revoke `share`: its creator, or whoever may access its file (the file's
/// owner, an admin).
pub(crate) fn may_revoke(meta: &MetaStore, user: &SignedInUser, share: &Share) -> Result<bool, ApiError> {
    Ok(share.created_by == user.id || may_access(meta, user, &share.bucket, Some(&share.key))?)
}

/// Whether `user` may see `event` in the history: admins all; others what they did, and what
/// happened to the buckets and files they own now since their ownership began (as
/// [`may_access`] decides): a previous owner's past at the same name (a deleted bucket or file
/// re-created by someone else) stays theirs.
pub(crate) fn may_see_event(meta: &MetaStore, user: &SignedInUser, event: &Event) -> Result<bool, ApiError> {
    if user.is_admin() || matches!(&event.actor, Some(Actor::User(id)) if *id == user.id) {
        return Ok(true);
    }
    let read = |e: meridian_raft::StoreError| ApiError::internal("reading owners", &e);
    // Ownership recorded before its start was kept counts from the beginning, as it did.
    let owns_since = |bucket: &str, key: Option<&str>| -> Result<bool, ApiError> {
        let owner = match key {
            Some(key) => meta.object_owner(bucket, key),
            None => meta.bucket_owner(bucket),
        }
        .map_err(read)?;
        if owner.as_deref() != Some(user.id.as_str()) {
            return Ok(false);
        }
        Ok(meta.owned_since(bucket, key).map_err(read)?.is_none_or(|since| event.cursor.index >= since))
    };
    match &event.kind {
        EventKind::BucketCreated { bucket, .. } | EventKind::BucketDeleted { bucket } => owns_since(bucket, None),
        kind => match kind.object() {
            Some((bucket, key)) => Ok(owns_since(bucket, None)? || owns_since(bucket, Some(key))?),
            None => Ok(false),
        },
    }
}

/// Why a public share link cannot be used; the link's pages answer each (`share_page`).
#[derive(Debug)]
pub(crate) enum LinkRefusal {
    /// Unknown or revoked: 404.
    NotFound,
    /// Past its expiry: 410.
    Expired,
    /// Out of downloads: 410.
    Exhausted,
    /// The store could not be read.
    Failed(ApiError),
}

/// Shortest and longest link token taken from a path (tokens are 32 random bytes, base64url,
/// 43 characters; the bounds leave room for other lengths without reading garbage).
const TOKEN_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// Whether `token` has the shape of a link token: base64url, of a sane length. Anything else
/// is a 404 without touching the store.
fn well_formed_token(token: &str) -> bool {
    TOKEN_LEN.contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The share behind a link token, if the link may be used now (active: not revoked, expired
/// or used up).
///
/// Judged after a read barrier: a link created, revoked or used up through another region a
/// moment ago is seen as it is, not as this node last applied it (a lease read, usually no
/// round trip). Cut off from the leader, the link cannot be judged and the visitor is asked to
/// try again rather than told it does not exist.
pub(crate) async fn usable_link(meta: &MetaStore, token: &str) -> Result<Share, LinkRefusal> {
    if !well_formed_token(token) {
        return Err(LinkRefusal::NotFound);
    }
    meta.read_barrier()
        .await
        .map_err(|e| LinkRefusal::Failed(ApiError::unavailable(format!("cannot check the link now: {e}"))))?;
    let share = meta
        .share_by_token(&token_hash(token))
        .map_err(|e| LinkRefusal::Failed(ApiError::internal("reading shares", &e)))?
        .ok_or(LinkRefusal::NotFound)?;
    match share.state(now_millis()) {
        ShareState::Active => Ok(share),
        ShareState::Revoked => Err(LinkRefusal::NotFound),
        ShareState::Expired => Err(LinkRefusal::Expired),
        ShareState::Exhausted => Err(LinkRefusal::Exhausted),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any path segment is judged without panicking; only base64url of a sane length
        /// passes, and every token a link is created with does.
        #[test]
        fn link_tokens_are_parsed_safely(text in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 32)) {
            if well_formed_token(&text) {
                prop_assert!(TOKEN_LEN.contains(&text.len()));
                prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
            let issued = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert!(well_formed_token(&issued), "{issued}");
        }
    }

    #[test]
    fn garbage_tokens_are_refused() {
        for token in ["", "short", "a/b", "../../etc/passwd", "%2e%2e", &"a".repeat(129), "tok\u{0}en-0123456789abcdef"]
        {
            assert!(!well_formed_token(token), "{token:?}");
        }
    }
}
