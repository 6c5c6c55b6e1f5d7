//! Making sled's writes durable for real.
//!
//! On Linux, sled 0.34's `flush` ends in `sync_file_range`, which starts and waits for page
//! writeback but neither commits the file's metadata (its size grows as the log grows) nor
//! asks the device to flush its write cache. That is not what we promise for an acknowledged
//! write. So every flush is followed by `fdatasync` on our own handle of sled's data file:
//! the data is already written back, and the sync adds the metadata and the cache flush.
//!
//! sled's own background flush is off: sled writes to disk only through [`DurableDb::flush`]
//! (and when one of its IO buffers fills), which checks the space reserve first, so a data dir
//! filling up between two checks meets sled far less often. When it does anyway (sled then
//! fails every later write until it is reopened), the failure is recorded here and the node
//! stops serving and reopens its store once space returns (`MetaStore::storage_failure`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::reserve::DiskReserve;

/// A sled database and a handle of its data file for real syncs.
#[derive(Clone)]
pub(crate) struct DurableDb {
    db: sled::Db,
    file: Arc<std::fs::File>,
    /// The data dir's space reserve: checked before every flush, so that sled never meets a
    /// full disk while the reserve could still make room (see `reserve`).
    reserve: Arc<DiskReserve>,
    /// The first error a flush met: sled keeps failing after one (a global error until the
    /// database is reopened), so the node must stop serving from it and reopen it.
    failure: Arc<OnceLock<String>>,
}

impl DurableDb {
    /// Opens the database in `dir` with a page cache of `cache_bytes` (the node's memory bound).
    /// The space reserve lives in `dir`'s parent (the node's data dir).
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> Result<Self, crate::StoreError> {
        let reserve = DiskReserve::open(dir.parent().unwrap_or(dir))?;
        let db = Self::config(dir, cache_bytes).open()?;
        let file = std::fs::OpenOptions::new().read(true).open(dir.join("db"))?;
        Ok(Self { db, file: Arc::new(file), reserve, failure: Arc::new(OnceLock::new()) })
    }

    /// The data dir's space reserve.
    pub(crate) fn reserve(&self) -> &Arc<DiskReserve> {
        &self.reserve
    }

    /// How every node opens its database, in one place so tests check what nodes run with.
    fn config(dir: &Path, cache_bytes: u64) -> sled::Config {
        sled::Config::new().path(dir).cache_capacity(cache_bytes).flush_every_ms(None)
    }

    /// The first storage error a flush met, if any: from then on the database must not be
    /// trusted to take writes until it is reopened.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// The database.
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Returns once everything written to the database so far is on stable storage.
    ///
    /// Both steps run on one blocking thread: sled's `flush_async` would hand the flush to sled's
    /// own thread pool, whose every job wakes all of its idle threads (seven), and the sync would
    /// then need a second hand-off.
    pub(crate) async fn flush(&self) -> std::io::Result<()> {
        let (db, file, reserve) = (self.db.clone(), self.file.clone(), self.reserve.clone());
        let result = tokio::task::spawn_blocking(move || {
            reserve.check();
            db.flush().map_err(std::io::Error::other)?;
            file.sync_data()
        })
        .await
        .map_err(std::io::Error::other)
        .flatten();
        if let Err(e) = &result
            && self.failure.set(e.to_string()).is_ok()
        {
            tracing::error!(error = %e, "the metadata store cannot write to its data dir; it stops serving until it is reopened");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::DurableDb;

    #[test]
    fn the_configured_cache_is_what_sled_opens_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = DurableDb::config(&dir.path().join("meta"), 24 << 20);
        assert_eq!(config.cache_capacity, 24 << 20, "sled's own default (1 GiB) must not apply");
        assert_eq!(config.flush_every_ms, None, "sled must write only through DurableDb::flush");
        let db = DurableDb::open(&dir.path().join("meta"), 24 << 20).expect("open");
        db.db().insert(b"k", b"v".as_slice()).expect("insert");
    }
}
