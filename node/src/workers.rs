//! Background workers of a node: the work queue that applying the log fills, the periodic
//! sweeps (orphaned blobs, abandoned multipart uploads) and the periodic scrub.

use std::sync::Arc;
use std::time::Duration;

use meridian_s3gw::{Gateway, Scrubber};

use crate::shutdown::Shutdown;

/// Even without a wake-up, the work queue is looked at this often (e.g. after a failure).
const WORK_RETRY: Duration = Duration::from_secs(10);
/// How often the sweeps run at most apart.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// The first sweep waits this long after start, so the node has caught up with the log.
const FIRST_SWEEP: Duration = Duration::from_secs(5);

/// Performs the work items this node owes whenever applying the log records new ones.
pub(crate) async fn work_queue(gateway: Gateway, shutdown: Shutdown) {
    let mut signal = gateway.meta().work_signal();
    loop {
        match gateway.perform_pending_work().await {
            Ok(0) => {}
            Ok(done) => tracing::debug!(done, "work items performed"),
            Err(e) => tracing::warn!(error = %e, "work items failed; will retry"),
        }
        tokio::select! {
            changed = signal.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(WORK_RETRY) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// Removes orphaned blobs and aborts abandoned uploads, periodically.
pub(crate) async fn sweeps(gateway: Gateway, multipart_max_age: Duration, shutdown: Shutdown) {
    // Often enough that an upload never outlives its age by more than half of it.
    let every = SWEEP_EVERY.min(multipart_max_age / 2).max(Duration::from_secs(1));
    let mut wait = FIRST_SWEEP.min(every);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.wait() => return,
        }
        wait = every;
        if let Err(e) = gateway.sweep_orphan_blobs().await {
            tracing::warn!(error = %e, "orphan sweep failed");
        }
        if let Err(e) = gateway.abort_stale_uploads(multipart_max_age).await {
            tracing::warn!(error = %e, "stale upload sweep failed");
        }
    }
}

/// Runs a scrub pass `interval` after the previous one ended (so passes never overlap, however
/// long one takes); does nothing when `interval` is zero. The first pass also waits a full
/// interval: a node just started is busy catching up, and its pulls verify what they write.
pub(crate) async fn scrubs(scrubber: Arc<Scrubber>, interval: Duration, shutdown: Shutdown) {
    if interval.is_zero() {
        tracing::info!("periodic scrub is off (storage.scrub_interval_secs = 0)");
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.wait() => return,
        }
        tokio::select! {
            result = scrubber.run_pass() => if let Err(e) = result {
                tracing::warn!(error = %e, "scrub pass failed; next one in {interval:?}");
            },
            // A pass may take hours; stopping in the middle of one loses nothing.
            () = shutdown.wait() => return,
        }
    }
}
