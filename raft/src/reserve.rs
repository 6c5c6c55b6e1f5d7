//! Space kept in reserve for the metadata store, so that a data dir that fills up does not
//! kill it.
//!
//! sled treats a failed write (ENOSPC included) as fatal: it records a global error and fails
//! every later operation until the process reopens the database, and openraft stops the node's
//! Raft on the first failed log append. A node whose disk filled up therefore stopped for good,
//! even after space came back. So the node keeps a reserve file (ballast) of
//! [`RESERVE_BYTES`] in its data dir. When free space falls below [`LOW_WATER_BYTES`] (checked
//! every [`CHECK_EVERY`] and before every log append and flush), the reserve file is deleted,
//! which gives sled room for the log entries the leader keeps sending, and the node is *low on
//! space*: the gateway refuses new writes (S3 `InsufficientStorage`, 507) while reads and
//! deletes go on. Once free space is back above [`RESTORE_BYTES`], the reserve file is made
//! again and writes are taken again; no restart.
//!
//! The reserve only buys time: a node that keeps receiving log entries while its disk stays full
//! eventually uses it up (or a filler takes the last bytes between two checks), and then sled
//! fails. That failure is not for good: the node then refuses every request and, once free space
//! is back above [`RESTORE_BYTES`], reopens its store by running its own binary again
//! (`MetaStore::storage_failure`, `node/src/store_recovery.rs`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Size of the reserve file.
pub(crate) const RESERVE_BYTES: u64 = 16 * 1024 * 1024;
/// Below this much free space the reserve is released and writes are refused.
pub(crate) const LOW_WATER_BYTES: u64 = 4 * 1024 * 1024;
/// Above this much free space the reserve is made again and writes are taken again (room for
/// the reserve and as much again, so that the node does not flap).
pub(crate) const RESTORE_BYTES: u64 = 2 * RESERVE_BYTES + LOW_WATER_BYTES;
/// How often a background task looks at the free space.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(50);
/// The reserve file, in the data dir (beside `meta/`, on the same file system as sled).
const RESERVE_FILE: &str = "space-reserve";

/// What to do after looking at the free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing changes.
    Stay,
    /// Free space ran low: delete the reserve file, refuse writes.
    Release,
    /// Space is back: make the reserve file, take writes.
    Restore,
}

/// The decision of one check, from the free space and whether the node is low now.
fn decide(available: u64, low: bool) -> Step {
    match (low, available) {
        (false, a) if a < LOW_WATER_BYTES => Step::Release,
        (true, a) if a >= RESTORE_BYTES => Step::Restore,
        _ => Step::Stay,
    }
}

/// The reserve of one data dir. Cheap to share.
#[derive(Debug)]
pub(crate) struct DiskReserve {
    /// The reserve file.
    path: PathBuf,
    /// The data dir, whose free space is measured.
    dir: PathBuf,
    /// Whether free space is low (the reserve released, writes refused).
    low: AtomicBool,
    /// Serialises checks, so that two never release or restore at once.
    checking: Mutex<()>,
}

impl DiskReserve {
    /// The reserve of `dir`; makes the reserve file if there is room for it, else starts low.
    pub(crate) fn open(dir: &Path) -> io::Result<Arc<DiskReserve>> {
        let reserve = Arc::new(DiskReserve {
            path: dir.join(RESERVE_FILE),
            dir: dir.to_owned(),
            low: AtomicBool::new(false),
            checking: Mutex::new(()),
        });
        let has_file = std::fs::metadata(&reserve.path).is_ok_and(|m| m.len() == RESERVE_BYTES);
        if !has_file {
            let available = fs2::available_space(dir)?;
            if available >= RESTORE_BYTES {
                reserve.make_file()?;
            } else {
                reserve.low.store(true, Ordering::Release);
                tracing::warn!(dir = %dir.display(), available, "data dir nearly full at start: writes refused until space returns");
            }
        }
        reserve.check();
        Ok(reserve)
    }

    /// Whether the node is low on space: new writes must be refused.
    pub(crate) fn is_low(&self) -> bool {
        self.low.load(Ordering::Acquire)
    }

    /// The free space of the data dir now.
    pub(crate) fn available(&self) -> io::Result<u64> {
        fs2::available_space(&self.dir)
    }

    /// Looks at the free space now; releases or restores the reserve when it crossed a mark.
    /// Returns whether the node is low on space.
    pub(crate) fn check(&self) -> bool {
        let Ok(_guard) = self.checking.lock() else {
            return self.is_low();
        };
        let available = match fs2::available_space(&self.dir) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot measure the free space of the data dir");
                return self.is_low();
            }
        };
        match decide(available, self.is_low()) {
            Step::Stay => {}
            Step::Release => {
                // Refuse first, then free the room: no new write squeezes in between.
                self.low.store(true, Ordering::Release);
                let released = std::fs::remove_file(&self.path).is_ok();
                tracing::warn!(
                    dir = %self.dir.display(),
                    available,
                    released_bytes = if released { RESERVE_BYTES } else { 0 },
                    "data dir nearly full: space reserve released, writes refused until space returns"
                );
            }
            Step::Restore => match self.make_file() {
                Ok(()) => {
                    self.low.store(false, Ordering::Release);
                    tracing::info!(dir = %self.dir.display(), available, "space is back: reserve restored, writes taken again");
                }
                Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "cannot restore the space reserve"),
            },
        }
        self.is_low()
    }

    /// Makes the reserve file with its blocks allocated (not a sparse file: it must hold space).
    fn make_file(&self) -> io::Result<()> {
        let file = std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(&self.path)?;
        let made = fs2::FileExt::allocate(&file, RESERVE_BYTES).and_then(|()| file.sync_all());
        if made.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        made
    }

    /// Checks the free space every [`CHECK_EVERY`] until the reserve is dropped elsewhere.
    pub(crate) async fn watch(reserve: std::sync::Weak<DiskReserve>) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(reserve) = reserve.upgrade() else { return };
            reserve.check();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_released_below_the_low_mark_and_restored_well_above_it() {
        assert_eq!(decide(RESTORE_BYTES * 10, false), Step::Stay);
        assert_eq!(decide(LOW_WATER_BYTES, false), Step::Stay);
        assert_eq!(decide(LOW_WATER_BYTES - 1, false), Step::Release);
        assert_eq!(decide(0, false), Step::Release);
        // Low: stays low until there is room for the reserve and a margin (no flapping).
        assert_eq!(decide(0, true), Step::Stay);
        assert_eq!(decide(RESERVE_BYTES + LOW_WATER_BYTES, true), Step::Stay);
        assert_eq!(decide(RESTORE_BYTES, true), Step::Restore);
    }

    #[test]
    fn a_reserve_file_is_made_and_holds_its_space() {
        let dir = std::env::temp_dir().join(format!("meridian-reserve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let reserve = DiskReserve::open(&dir).expect("open");
        if !reserve.is_low() {
            let meta = std::fs::metadata(dir.join(RESERVE_FILE)).expect("reserve file");
            assert_eq!(meta.len(), RESERVE_BYTES);
        }
        drop(reserve);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
