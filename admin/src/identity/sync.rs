//! The user sync: the leader reads the Auth service's whole user list every interval and
//! commits the differences to the replicated user list. Only the leader does it, so nodes do
//! not race each other with contradicting snapshots of the list; when leadership moves, the
//! new leader syncs at once.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_raft::Command;
use meridian_raft::model::{User, UserProfile};

use super::{Identity, now_millis};
use crate::WebState;

/// Profiles per log entry, so a large directory does not make one huge entry.
const CHUNK: usize = 500;
/// Pages per sync at most: a cursor that never ends is a bug upstream, not a reason to loop.
const MAX_PAGES: usize = 10_000;
/// How often a node checks whether it leads and a sync is due.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What one sync changed.
#[derive(Debug, Default, PartialEq, Eq)]
struct SyncReport {
    /// Users in the upstream list.
    upstream: usize,
    /// Users new to the panel.
    added: usize,
    /// Users whose profile changed, or who came back after a deletion.
    changed: usize,
    /// Users no longer upstream, now marked deleted.
    deleted: usize,
}

/// Why a sync stopped; nothing is marked deleted then.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    /// A page could not be fetched.
    #[error("listing users: {0}")]
    Upstream(#[from] super::upstream::UpstreamError),
    /// The list never ended.
    #[error("the user list did not end within {MAX_PAGES} pages")]
    Endless,
    /// The replicated store could not be read.
    #[error("{0}")]
    Store(#[from] meridian_raft::StoreError),
    /// A change could not be committed (no leader, or this node's store failed).
    #[error("{0}")]
    Commit(#[from] meridian_raft::ProposeError),
}

/// Runs the sync on this node whenever it leads, until `stop` completes. Returns at once when
/// `[auth]` is not configured.
pub async fn run_user_sync(state: WebState, stop: impl Future<Output = ()>) {
    let Some(identity) = state.identity.clone() else { return };
    tokio::pin!(stop);
    let mut last_sync: Option<Instant> = None;
    let mut ticker = tokio::time::interval(CHECK_EVERY.min(identity.sync_interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stop => return,
        }
        if !state.meta.is_leader() {
            last_sync = None;
            continue;
        }
        if last_sync.is_some_and(|at| at.elapsed() < identity.sync_interval) {
            continue;
        }
        last_sync = Some(Instant::now());
        let started = Instant::now();
        match sync_once(&state, &identity).await {
            Ok(report) if report.added + report.changed + report.deleted > 0 => tracing::info!(
                upstream = report.upstream,
                added = report.added,
                changed = report.changed,
                deleted = report.deleted,
                ms = started.elapsed().as_millis(),
                "user sync committed changes"
            ),
            Ok(report) => tracing::debug!(upstream = report.upstream, "user sync: no change"),
            Err(error) => tracing::warn!(%error, "user sync failed; nothing marked deleted, retrying next interval"),
        }
    }
}

/// One sync: read every page, then commit what differs.
async fn sync_once(state: &WebState, identity: &Arc<Identity>) -> Result<SyncReport, SyncError> {
    // The panel's view is taken BEFORE the upstream list: a user who signs in for the first
    // time while the pages are read is then not in `known`, so cannot be taken for deleted.
    let known: BTreeMap<String, User> = state.meta.users()?.into_iter().map(|u| (u.profile.id.clone(), u)).collect();
    let upstream = fetch_all(identity).await?;
    let (upserts, deletions, report) = diff(&known, upstream);
    let at = now_millis();
    for chunk in upserts.chunks(CHUNK) {
        let command = Command::UpsertUsers { users: chunk.to_vec(), at, sign_in: false };
        state.meta.propose(command).await?;
    }
    for chunk in deletions.chunks(CHUNK) {
        let command = Command::MarkUsersDeleted { ids: chunk.to_vec(), at };
        state.meta.propose(command).await?;
    }
    Ok(report)
}

/// Every user of the Auth service, following the cursor to the end.
async fn fetch_all(identity: &Identity) -> Result<Vec<UserProfile>, SyncError> {
    let mut users = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen_cursors = HashSet::new();
    for _ in 0..MAX_PAGES {
        let page = identity.upstream.users_page(cursor.as_deref(), identity.users_page_size).await?;
        users.extend(page.users.into_iter().map(UserProfile::from));
        match page.next_cursor {
            // A cursor seen before would loop for ever.
            Some(next) if seen_cursors.insert(next.clone()) => cursor = Some(next),
            Some(_) => return Err(SyncError::Endless),
            None => return Ok(users),
        }
    }
    Err(SyncError::Endless)
}

/// The upserts and deletions that bring `known` to `upstream`.
fn diff(known: &BTreeMap<String, User>, upstream: Vec<UserProfile>) -> (Vec<UserProfile>, Vec<String>, SyncReport) {
    let mut report = SyncReport { upstream: upstream.len(), ..SyncReport::default() };
    let present: HashSet<String> = upstream.iter().map(|p| p.id.clone()).collect();
    let mut upserts = Vec::new();
    for profile in upstream {
        match known.get(&profile.id) {
            None => report.added += 1,
            Some(user) if user.profile != profile || user.deleted.is_some() => report.changed += 1,
            Some(_) => continue,
        }
        upserts.push(profile);
    }
    let deletions: Vec<String> = known
        .values()
        .filter(|u| u.deleted.is_none() && !present.contains(&u.profile.id))
        .map(|u| u.profile.id.clone())
        .collect();
    report.deleted = deletions.len();
    (upserts, deletions, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: &str, name: &str) -> UserProfile {
        UserProfile { id: id.into(), login: id.into(), name: name.into(), email: String::new(), roles: Vec::new() }
    }

    fn user(id: &str, name: &str, deleted: Option<i64>) -> (String, User) {
        let user = User { profile: profile(id, name), first_seen: 1, updated: 1, last_sign_in: None, deleted };
        (id.to_owned(), user)
    }

    #[test]
    fn diff_adds_changes_restores_and_deletes() {
        let known: BTreeMap<String, User> = [
            user("same", "S", None),
            user("renamed", "Old", None),
            user("gone", "G", None),
            user("back", "B", Some(5)),
            user("long-gone", "L", Some(5)),
        ]
        .into();
        let upstream = vec![profile("same", "S"), profile("renamed", "New"), profile("back", "B"), profile("new", "N")];
        let (upserts, deletions, report) = diff(&known, upstream);
        let ids: Vec<&str> = upserts.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["renamed", "back", "new"]);
        assert_eq!(deletions, ["gone"]);
        assert_eq!(report, SyncReport { upstream: 4, added: 1, changed: 2, deleted: 1 });
    }
}
