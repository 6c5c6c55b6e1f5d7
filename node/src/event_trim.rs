//! Keeps the retained event history within `[events] retain` / `retain_max_age_secs`: the leader
//! proposes [`Command::TrimEvents`] for what the retention lets go of, and every node trims when
//! it applies that entry. Only the leader's settings count, so every node holds the same history
//! (and answers the same cursors) even while nodes are configured differently.

use std::time::Duration;

use meridian_raft::{Command, EventRetention, MetaStore};

use crate::shutdown::Shutdown;

/// How often the leader looks for events to trim. The history may exceed the retention by what
/// is written meanwhile; the trim entries stay at most one a period.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Proposes trims while this node leads, until shutdown.
pub(crate) async fn run(meta: MetaStore, retention: EventRetention, shutdown: Shutdown) {
    let mut wait = TRIM_EVERY;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.wait() => return,
        }
        wait = TRIM_EVERY;
        if !meta.is_leader() {
            continue;
        }
        let target = match meta.event_trim_target(retention) {
            Ok(Some(target)) => target,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event history to trim it");
                continue;
            }
        };
        let through = target.through;
        match meta.propose(Command::TrimEvents { through }).await {
            Ok(_) => {
                tracing::debug!(%through, "trimmed the event history");
                // A big backlog (the retention was lowered) goes a bounded chunk per entry:
                // carry on at once until it is done.
                if target.more {
                    wait = Duration::ZERO;
                }
            }
            Err(e) => tracing::warn!(%through, error = %e, "cannot propose an event history trim"),
        }
    }
}
