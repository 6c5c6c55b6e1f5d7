//! Making sled's writes durable for real.
//!
//! On Linux, sled 0.34's `flush` ends in `sync_file_range`, which starts and waits for page
//! writeback but neither commits the file's metadata (its size grows as the log grows) nor
//! asks the device to flush its write cache. That is not what we promise for an acknowledged
//! write. So every flush is followed by `fdatasync` on our own handle of sled's data file:
//! the data is already written back, and the sync adds the metadata and the cache flush.

use std::path::Path;
use std::sync::Arc;

/// A sled database and a handle of its data file for real syncs.
#[derive(Clone)]
pub(crate) struct DurableDb {
    db: sled::Db,
    file: Arc<std::fs::File>,
}

impl DurableDb {
    /// Opens the database in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, crate::StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let file = std::fs::OpenOptions::new().read(true).open(dir.join("db"))?;
        Ok(Self { db, file: Arc::new(file) })
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
        let (db, file) = (self.db.clone(), self.file.clone());
        tokio::task::spawn_blocking(move || {
            db.flush().map_err(std::io::Error::other)?;
            file.sync_data()
        })
        .await
        .map_err(std::io::Error::other)?
    }
}
