//! The Raft log in sled, with group commit.
//!
//! `append` writes entries into sled's memory and hands openraft's "flushed" callback to one
//! flusher task. The flusher takes every callback queued so far, runs ONE durable flush (see
//! `durable`: sled flush plus fdatasync), and then
//! completes them all: concurrent proposals share a disk sync instead of paying one each, and no
//! entry is reported durable before it is. The vote is flushed before `save_vote` returns.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, Vote};
use tokio::sync::mpsc;

use crate::codec::{decode, encode};
use crate::durable::DurableDb;
use crate::error::StoreError;
use crate::lease::Leases;
use crate::node_id::NodeId;
use crate::snapshot_policy::LogGrowth;
use crate::types::TypeConfig;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// The log store handed to openraft (and cloned as its log reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    db: DurableDb,
    /// Entries by big-endian index, so iteration order is log order.
    entries: sled::Tree,
    /// Vote, committed id and purge point.
    meta: sled::Tree,
    /// Callbacks waiting for the next flush.
    flusher: mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
    /// Index of the last entry in the log, shared with the store: a reader holding a lease
    /// applies up to it before reading (docs/architecture.md, "Read leases").
    appended: Arc<AtomicU64>,
    /// Bytes appended, for the snapshot policy (`snapshot_policy`), which builds a snapshot
    /// once the log has grown by a fraction of the state.
    growth: LogGrowth,
    /// The visibility gate: the commit index saved for a restart is capped at what it let be
    /// visible (see `save_committed`).
    leases: Arc<Leases>,
}

fn log_error(verb: openraft::ErrorVerb, e: impl ToString) -> StorageError<NodeId> {
    StorageError::from_io_error(openraft::ErrorSubject::Logs, verb, std::io::Error::other(e.to_string()))
}

fn read_error(e: impl ToString) -> StorageError<NodeId> {
    log_error(openraft::ErrorVerb::Read, e)
}

fn write_error(e: impl ToString) -> StorageError<NodeId> {
    log_error(openraft::ErrorVerb::Write, e)
}

impl LogStore {
    /// The commit index saved by the last `save_committed` in `db` (never above what was visible
    /// then): what openraft re-applies on start, before the visibility gate runs.
    pub(crate) fn saved_committed(db: &DurableDb) -> Result<Option<LogId<NodeId>>, StoreError> {
        match db.db().open_tree("raft_meta")?.get(COMMITTED)? {
            Some(bytes) => Ok(decode::<Option<LogId<NodeId>>>(&bytes)
                .map_err(|e| StoreError::Codec(format!("saved commit index: {e}")))?),
            None => Ok(None),
        }
    }

    /// Opens the log trees of `db` and starts the flusher task; `leases` is the node's visibility
    /// gate.
    pub(crate) fn open(db: &DurableDb, leases: Arc<Leases>) -> Result<Self, StoreError> {
        let (flusher, queue) = mpsc::unbounded_channel();
        tokio::spawn(flush_loop(db.clone(), queue));
        let (entries, meta) = (db.db().open_tree("raft_log")?, db.db().open_tree("raft_meta")?);
        let last =
            entries.last()?.and_then(|(key, _)| <[u8; 8]>::try_from(key.as_ref()).ok()).map_or(0, u64::from_be_bytes);
        Ok(Self {
            db: db.clone(),
            entries,
            meta,
            flusher,
            appended: Arc::new(AtomicU64::new(last)),
            growth: LogGrowth::default(),
            leases,
        })
    }

    /// The bytes appended to the log since the process started, kept current by `append`.
    pub(crate) fn growth(&self) -> LogGrowth {
        self.growth.clone()
    }

    /// The index of the last entry in the log, kept current by `append` and `truncate`.
    pub(crate) fn appended(&self) -> Arc<AtomicU64> {
        self.appended.clone()
    }

    /// The index of the first entry still in the log.
    #[allow(clippy::result_large_err)]
    fn first_index(&self) -> Result<Option<u64>, StorageError<NodeId>> {
        self.entries.first().map_err(read_error)?.map(|(key, _)| key_index(&key)).transpose()
    }

    /// The index of the last entry in the log.
    #[allow(clippy::result_large_err)]
    fn last_index(&self) -> Result<Option<u64>, StorageError<NodeId>> {
        self.entries.last().map_err(read_error)?.map(|(key, _)| key_index(&key)).transpose()
    }

    // StorageError is openraft's type and its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn get_meta<T: crate::codec::Record>(&self, key: &[u8]) -> Result<Option<T>, StorageError<NodeId>> {
        match self.meta.get(key).map_err(read_error)? {
            Some(bytes) => decode(&bytes).map(Some).map_err(read_error),
            None => Ok(None),
        }
    }

    #[allow(clippy::result_large_err)]
    fn put_meta<T: crate::codec::Record>(&self, key: &[u8], value: &T) -> Result<(), StorageError<NodeId>> {
        self.meta.insert(key, encode(value).map_err(write_error)?).map_err(write_error)?;
        Ok(())
    }
}

/// Adds the removal of every entry from `first` to `last` (inclusive) to `batch`. The keys are
/// the indexes themselves, so purge and truncate name them instead of iterating over the range:
/// a sled iterator reads every value too, and a purge behind a snapshot of millions of objects
/// would read hundreds of megabytes of entries (inline bodies included) only to drop them, and
/// leave the process's memory that much larger (BENCHMARKS.md, "Scale").
fn remove_keys(batch: &mut sled::Batch, first: u64, last: u64) {
    for index in first..=last {
        batch.remove(&index.to_be_bytes());
    }
}

/// The index a log entry is stored under, from its key.
#[allow(clippy::result_large_err)]
fn key_index(key: &[u8]) -> Result<u64, StorageError<NodeId>> {
    <[u8; 8]>::try_from(key).map(u64::from_be_bytes).map_err(|_| read_error("malformed log key"))
}

/// Completes queued append callbacks after one shared flush.
async fn flush_loop(db: DurableDb, mut queue: mpsc::UnboundedReceiver<LogFlushed<TypeConfig>>) {
    while let Some(first) = queue.recv().await {
        let mut waiting = vec![first];
        while let Ok(next) = queue.try_recv() {
            waiting.push(next);
        }
        let result = db.flush().await;
        for callback in waiting {
            let result = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(result);
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            std::ops::Bound::Included(i) => *i,
            std::ops::Bound::Excluded(i) => i + 1,
            std::ops::Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        for item in self.entries.range(start.to_be_bytes()..) {
            let (key, value) = item.map_err(read_error)?;
            let index = u64::from_be_bytes(key.as_ref().try_into().map_err(read_error)?);
            if !range.contains(&index) {
                break;
            }
            entries.push(decode(&value).map_err(read_error)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(LAST_PURGED)?;
        let last = match self.entries.last().map_err(read_error)? {
            Some((_, value)) => Some(decode::<Entry<TypeConfig>>(&value).map_err(read_error)?.log_id),
            None => last_purged,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.put_meta(VOTE, vote)?;
        self.db.flush().await.map_err(write_error)?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // Not flushed on purpose: the committed id is a hint that saves re-applying on restart.
        // Capped at the visible index: openraft re-applies up to it on start, before the gate
        // runs, so a leader's commit index saved ahead of visibility would, after a restart
        // within its term, show entries a follower still reading under a lease of the previous
        // process does not have (anomaly 7 of docs/faults.md). A follower's commit index is the
        // leader's, capped already, and raised into the gate before Raft saves it.
        let visible = self.leases.visible();
        self.put_meta(COMMITTED, &committed.min(visible))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.get_meta(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Before sled writes anything: a full disk releases the reserve first.
        self.db.reserve().check();
        let mut batch = sled::Batch::default();
        let (mut last, mut bytes) = (None, 0u64);
        for entry in entries {
            let encoded = encode(&entry).map_err(write_error)?;
            bytes += encoded.len() as u64;
            batch.insert(&entry.log_id.index.to_be_bytes(), encoded);
            last = Some(entry.log_id.index);
        }
        self.entries.apply_batch(batch).map_err(write_error)?;
        self.growth.add(bytes);
        if let Some(last) = last {
            self.appended.store(last, Ordering::Release);
        }
        self.flusher.send(callback).map_err(|_| write_error("log flusher stopped"))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut batch = sled::Batch::default();
        if let Some(last) = self.last_index()? {
            remove_keys(&mut batch, log_id.index, last);
        }
        self.entries.apply_batch(batch).map_err(write_error)?;
        self.appended.store(log_id.index.saturating_sub(1), Ordering::Release);
        self.db.flush().await.map_err(write_error)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.put_meta(LAST_PURGED, &log_id)?;
        let mut batch = sled::Batch::default();
        if let Some(first) = self.first_index()? {
            remove_keys(&mut batch, first, log_id.index);
        }
        self.entries.apply_batch(batch).map_err(write_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use std::sync::Arc;
    use std::time::Duration;

    use super::LogStore;
    use crate::codec::encode;
    use crate::durable::DurableDb;

    fn log_id(index: u64) -> LogId<crate::NodeId> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.entries.iter().keys().map(|k| super::key_index(&k.expect("key")).expect("index")).collect()
    }

    #[tokio::test]
    async fn purge_and_truncate_remove_exactly_their_ranges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = DurableDb::open(dir.path(), 8 << 20).expect("open");
        let leases = Arc::new(crate::lease::Leases::new(Duration::ZERO, Duration::ZERO, None));
        let mut store = LogStore::open(&db, leases).expect("log store");
        for index in 3..=20u64 {
            let entry: Entry<crate::TypeConfig> = Entry { log_id: log_id(index), payload: EntryPayload::Blank };
            store.entries.insert(index.to_be_bytes(), encode(&entry).expect("encode")).expect("insert");
        }
        store.purge(log_id(7)).await.expect("purge");
        assert_eq!(indexes(&store), (8..=20).collect::<Vec<_>>());
        store.truncate(log_id(15)).await.expect("truncate");
        assert_eq!(indexes(&store), (8..=14).collect::<Vec<_>>());
        store.truncate(log_id(30)).await.expect("a truncate past the end is a no-op");
        assert_eq!(indexes(&store), (8..=14).collect::<Vec<_>>());
        let state = store.get_log_state().await.expect("state");
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(7)), Some(log_id(14))));
    }

    #[tokio::test]
    async fn the_saved_commit_index_never_runs_ahead_of_what_was_visible() {
        // A leader's commit index runs ahead of the visible index while a lease holder lags;
        // openraft re-applies up to the saved one on start, before the gate, so a restarted
        // leader would show what the holder still reading under its lease has not got.
        let dir = tempfile::tempdir().expect("tempdir");
        let db = DurableDb::open(dir.path(), 8 << 20).expect("open");
        let leases = Arc::new(crate::lease::Leases::new(
            Duration::from_millis(400),
            Duration::from_millis(400),
            Some(log_id(5)),
        ));
        let mut store = LogStore::open(&db, leases.clone()).expect("log store");
        store.save_committed(Some(log_id(9))).await.expect("save");
        assert_eq!(LogStore::saved_committed(&db).expect("read"), Some(log_id(5)), "capped at the visible index");
        assert_eq!(store.read_committed().await.expect("read"), Some(log_id(5)));
        leases.raise(Some(log_id(12)));
        store.save_committed(Some(log_id(11))).await.expect("save");
        assert_eq!(LogStore::saved_committed(&db).expect("read"), Some(log_id(11)), "visible: saved as it is");
    }
}
