//! Crash-only recovery of a metadata store that met a storage error (#19, anomaly 1 of
//! docs/faults.md).
//!
//! sled fails every write after its first failed one (ENOSPC included) until the database is
//! reopened, and openraft stops Raft for good on a failed log append. A node in that state no
//! longer takes the leader's entries, so whatever it would answer may be stale. So once
//! [`MetaStore::storage_failure`] reports a failure, the S3 listener refuses every request
//! (`listeners::s3`), the store refuses its reads, and this task waits until the data dir has
//! room again, then runs the node's own binary again in this process (`exec` of
//! `/proc/self/exe` with the same arguments and environment).
//!
//! Why a re-exec rather than swapping a new sled database and Raft into the running process: the
//! store is shared by every listener, worker and background task of the node, each holding its
//! own handle, and openraft's tasks, the flusher and the lease state would all have to be torn
//! down and rebuilt consistently. A fresh process opens the store exactly as a restart does, the
//! path every test of a kill -9 already covers; acknowledged writes are fsynced before they are
//! acknowledged, so nothing is lost. The process keeps its id (so a supervisor sees no exit), and
//! every socket and file is close-on-exec, so the listeners are bound again by the new image.

use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

use meridian_raft::MetaStore;

use crate::shutdown::Shutdown;

/// How often the store is looked at for a failure, and the free space while waiting.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How often the wait for space says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for space: after it the node reopens its store anyway. The new process starts
/// low on space (writes refused, see `reserve`) and, if the disk is still too full for sled to
/// open, exits with an error a supervisor sees, rather than the node waiting unseen for ever.
const LONGEST_WAIT: Duration = Duration::from_secs(30 * 60);

/// Watches the store until the node stops; on a storage failure waits for space, then re-executes
/// the node. Returns only on shutdown (or if the re-exec itself failed, after exiting).
pub(crate) async fn run(meta: MetaStore, shutdown: Shutdown) {
    let failure = loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        if let Some(failure) = meta.storage_failure() {
            break failure;
        }
    };
    tracing::error!(
        error = %failure,
        "metadata store failed: refusing every request; it is reopened once the data dir has room again"
    );
    let started = Instant::now();
    let mut last_progress = started;
    loop {
        match meta.space_to_reopen() {
            Ok((available, needed)) if available >= needed => {
                tracing::info!(
                    available,
                    needed,
                    waited_ms = started.elapsed().as_millis(),
                    "space is back: reopening the store"
                );
                break;
            }
            Ok((available, needed)) if last_progress.elapsed() >= PROGRESS_EVERY => {
                last_progress = Instant::now();
                tracing::warn!(
                    available,
                    needed,
                    waited_s = started.elapsed().as_secs(),
                    "waiting for free space in the data dir before reopening the store"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot measure the free space of the data dir"),
        }
        if started.elapsed() >= LONGEST_WAIT {
            tracing::error!(
                waited_s = started.elapsed().as_secs(),
                "no room came back in time: reopening the store anyway"
            );
            break;
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
    reexec();
}

/// Replaces this process with a new run of the same binary, arguments and environment. Only
/// returns by exiting, when the exec failed: a supervisor restarts the node then.
fn reexec() {
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "meridian".into());
    let error = std::process::Command::new("/proc/self/exe").arg0(arg0).args(args).exec();
    tracing::error!(%error, "cannot run the node again to reopen its store; exiting");
    std::process::exit(75);
}
