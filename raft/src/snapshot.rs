//! Snapshots of the state machine as files: written from a consistent view (`snapshot_view`)
//! beside `apply`, streamed to followers by openraft in chunks, installed atomically.
//!
//! File format: the magic line, then records `u32 key length, key, u32 value length, value`
//! (big endian lengths) for every record except this node's own work items. The snapshot's
//! metadata sits beside it in `current.meta`, written after the data file is durable, so a
//! crash never leaves metadata pointing at a partial file.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership};

use crate::codec::{decode, encode};
use crate::error::StoreError;
use crate::node_id::{NodeId, RegionNode};
use crate::snapshot_view::OpenedView;
use crate::tables::{self, Tables};
use crate::types::TypeConfig;

const MAGIC: &[u8] = b"MERIDIAN-SNAPSHOT-1\n";
const DATA: &str = "current.snap";
const META: &str = "current.meta";

/// Bytes a dump buffers before writing; bounded, so a dump's memory does not grow with the
/// state.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Bytes a dump writes between two syncs of its file: the page cache then never holds the whole
/// file dirty for one final sync, which would queue behind (and hold up) the Raft log's own
/// syncs on the same disk.
const SYNC_EVERY_BYTES: u64 = 64 << 20;

/// The snapshot directory of one node.
#[derive(Clone)]
pub(crate) struct SnapshotFiles {
    /// Where the files live.
    pub(crate) dir: PathBuf,
    /// Held by a dump from its view's opening to its end: an install (which rewrites every
    /// record without saving pre-images) waits for it, and there is one dump at a time.
    pub(crate) dumping: Arc<tokio::sync::Mutex<()>>,
    /// Held while the data and metadata files are replaced or read as a pair: a dump publishes
    /// from its own thread, beside readers of the current snapshot.
    publishing: Arc<tokio::sync::Mutex<()>>,
}

/// A dump whose view is open, to be written by [`SnapshotFiles::dump`].
pub(crate) struct PendingDump {
    /// The snapshot's metadata: the applied log id and membership when the view opened.
    meta: SnapshotMeta<NodeId, RegionNode>,
    /// The view the dump reads through; closing it ends the pre-image bookkeeping.
    view: OpenedView,
    /// The records.
    tables: Tables,
}

/// A snapshot file being written: the magic line, then length-prefixed records.
struct RecordWriter {
    /// The file, behind a bounded buffer.
    out: BufWriter<std::fs::File>,
    /// Records written.
    records: u64,
    /// Bytes written (magic included).
    bytes: u64,
    /// `bytes` at the last intermediate sync.
    synced: u64,
}

impl RecordWriter {
    fn create(path: &Path) -> Result<Self, StoreError> {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, std::fs::File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(Self { out, records: 0, bytes: MAGIC.len() as u64, synced: 0 })
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        for part in [key, value] {
            let len = u32::try_from(part.len()).map_err(|_| StoreError::Codec("record over 4 GiB".into()))?;
            self.out.write_all(&len.to_be_bytes())?;
            self.out.write_all(part)?;
            self.bytes += 4 + part.len() as u64;
        }
        self.records += 1;
        if self.bytes - self.synced >= SYNC_EVERY_BYTES {
            self.out.flush()?;
            self.out.get_ref().sync_data()?;
            self.synced = self.bytes;
        }
        Ok(())
    }

    /// Makes the file durable; returns the records and bytes written.
    fn finish(self) -> Result<(u64, u64), StoreError> {
        let file = self.out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok((self.records, self.bytes))
    }
}

/// Renames `from` onto `to` and makes the rename durable.
fn publish(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    if let Some(parent) = to.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl SnapshotFiles {
    /// The snapshot files of a node, in `dir`.
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir, dumping: Arc::default(), publishing: Arc::default() }
    }

    /// The current snapshot's data file (it may not exist yet).
    pub(crate) fn data_path(&self) -> PathBuf {
        self.dir.join(DATA)
    }

    /// Opens a consistent view of the state for a dump: the applied log id and membership as
    /// they are now, and the pre-image bookkeeping that lets the dump run beside `apply`. Call
    /// it where no batch is being applied (openraft's `get_snapshot_builder`, on the state
    /// machine worker); [`SnapshotFiles::dump`] then writes the file from it on any thread.
    pub(crate) fn open_view(&self, tables: &Tables) -> Result<PendingDump, StoreError> {
        let applied = tables.applied()?;
        let membership: StoredMembership<NodeId, RegionNode> = tables.membership()?;
        let snapshot_id = format!(
            "{}-{}",
            applied.map_or(0, |l| l.index),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
        );
        let meta = SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id };
        let view = tables.view.open()?;
        // Tests and the scale benchmark tell a build in progress by this line and the
        // "snapshot written" one of the same snapshot id.
        tracing::info!(snapshot = %meta.snapshot_id, "snapshot view opened");
        Ok(PendingDump { meta, view, tables: tables.clone() })
    }

    /// Writes every replicated record as it was when `pending`'s view opened to a new snapshot
    /// file and makes it current. Blocking (file I/O for the whole state); applies go on
    /// meanwhile.
    pub(crate) fn dump(&self, pending: PendingDump) -> Result<SnapshotMeta<NodeId, RegionNode>, StoreError> {
        let PendingDump { meta, view, tables } = pending;
        let started = std::time::Instant::now();
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("building.snap");
        let mut out = RecordWriter::create(&tmp)?;
        for item in &tables.tree {
            let (key, read) = item?;
            if key.starts_with(tables::WORK) {
                continue;
            }
            if let Some(value) = view.resolve(&key, read)? {
                out.record(&key, &value)?;
            }
        }
        let (deleted_since, stats) = view.finish();
        for (key, value) in &deleted_since {
            out.record(key, value)?;
        }
        let (records, bytes) = out.finish()?;
        {
            let _publishing = self.publishing.blocking_lock();
            publish(&tmp, &self.dir.join(DATA))?;
            self.write_meta(&meta)?;
        }
        // Duration and size are what the scale benchmark (scripts/scale-bench) reads back.
        let millis = started.elapsed().as_millis();
        tracing::info!(
            snapshot = %meta.snapshot_id,
            records,
            bytes,
            millis,
            pre_images = stats.saved,
            pre_image_peak_bytes = stats.peak_bytes,
            "snapshot written"
        );
        Ok(meta)
    }

    fn write_meta(&self, meta: &SnapshotMeta<NodeId, RegionNode>) -> Result<(), StoreError> {
        let tmp = self.dir.join("building.meta");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&encode(meta)?)?;
        file.sync_all()?;
        publish(&tmp, &self.dir.join(META))?;
        Ok(())
    }

    /// The current snapshot, opened for reading, if one was ever made or received.
    pub(crate) async fn current(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        // A dump publishes beside the worker that calls this: the pair read here must be one
        // snapshot's.
        let _publishing = self.publishing.lock().await;
        let meta = match tokio::fs::read(self.dir.join(META)).await {
            Ok(bytes) => decode(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let file = tokio::fs::File::open(self.dir.join(DATA)).await?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }

    /// A fresh file to receive a snapshot from the leader into.
    pub(crate) async fn incoming(&self) -> Result<(PathBuf, tokio::fs::File), StoreError> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let path = self.dir.join("incoming.snap");
        let file = tokio::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).await?;
        Ok((path, file))
    }

    /// Replaces the state machine's replicated records with those of a received snapshot, in
    /// one atomic batch, and keeps the file as the current snapshot.
    pub(crate) fn install(
        &self,
        path: &Path,
        meta: &SnapshotMeta<NodeId, RegionNode>,
        tables: &Tables,
        node: NodeId,
    ) -> Result<(), StoreError> {
        std::fs::File::open(path)?.sync_all()?;
        let mut input = BufReader::new(std::fs::File::open(path)?);
        let mut magic = vec![0u8; MAGIC.len()];
        input.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(StoreError::Codec("not a Meridian snapshot".into()));
        }
        let mut batch = sled::Batch::default();
        for item in &tables.tree {
            let (key, _) = item?;
            if !key.starts_with(tables::WORK) {
                batch.remove(key);
            }
        }
        while let Some(key) = read_part(&mut input)? {
            let value = read_part(&mut input)?.ok_or_else(|| StoreError::Codec("truncated snapshot".into()))?;
            batch.insert(key, value);
        }
        // The snapshot's own applied index and membership win over whatever the records said.
        match meta.last_log_id {
            Some(applied) => batch.insert(tables::APPLIED, encode(&applied)?),
            None => batch.remove(tables::APPLIED),
        }
        batch.insert(tables::MEMBERSHIP, encode(&meta.last_membership)?);
        tables.tree.apply_batch(batch)?;
        owe_pulls_after_install(tables, node, meta.last_log_id.map_or(0, |l| l.index))?;
        publish(path, &self.dir.join(DATA))?;
        self.write_meta(meta)?;
        tracing::info!(snapshot = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }
}

/// After a snapshot replaced the records, this node owes a pull of every blob it does not
/// hold (the log entries that would have said so are gone).
fn owe_pulls_after_install(tables: &Tables, node: NodeId, index: u64) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut seq = 0u32;
    for item in tables.tree.scan_prefix(tables::OBJECT) {
        let (key, value) = item?;
        let meta: crate::model::ObjectMeta = decode(&value)?;
        if meta.inline.is_some() || meta.holders.contains_key(&node) {
            continue;
        }
        let name = String::from_utf8_lossy(&key[tables::OBJECT.len()..]).into_owned();
        let Some((bucket, object_key)) = name.split_once('/') else { continue };
        let item =
            crate::model::WorkItem::Pull { bucket: bucket.to_owned(), key: object_key.to_owned(), blob: meta.blob };
        let mut work_key = tables::WORK.to_vec();
        work_key.extend_from_slice(&index.to_be_bytes());
        work_key.extend_from_slice(&seq.to_be_bytes());
        seq += 1;
        batch.insert(work_key, encode(&item)?);
    }
    // Kept versions of versioned buckets are objects for replication too.
    for item in tables.tree.scan_prefix(tables::VERSION) {
        let (key, value) = item?;
        let version: crate::model::ObjectVersion = decode(&value)?;
        let Some(meta) = version.meta else { continue };
        if meta.inline.is_some() || meta.holders.contains_key(&node) {
            continue;
        }
        let rest = &key[tables::VERSION.len()..];
        let Some(slash) = rest.iter().position(|b| *b == b'/') else { continue };
        let Some((object_key, _sort)) = tables::split_version_key(&rest[slash + 1..]) else { continue };
        let bucket = String::from_utf8_lossy(&rest[..slash]).into_owned();
        let item = crate::model::WorkItem::Pull { bucket, key: object_key, blob: meta.blob };
        let mut work_key = tables::WORK.to_vec();
        work_key.extend_from_slice(&index.to_be_bytes());
        work_key.extend_from_slice(&seq.to_be_bytes());
        seq += 1;
        batch.insert(work_key, encode(&item)?);
    }
    tables.tree.apply_batch(batch)?;
    Ok(())
}

/// Largest part (one record's key or value) a snapshot may hold. Records are small (an inline
/// object is at most 16 KiB of bytes plus its metadata); the bound keeps a damaged or hostile
/// snapshot from making the node allocate what its length prefix claims.
const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;

/// Reads one length-prefixed part, or `None` at a clean end of file.
pub(crate) fn read_part(input: &mut impl Read) -> Result<Option<Vec<u8>>, StoreError> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u64::from(u32::from_be_bytes(len));
    if len > MAX_PART_BYTES {
        return Err(StoreError::Codec(format!("snapshot part of {len} bytes is over the {MAX_PART_BYTES} limit")));
    }
    // Grows with what is really there, so a truncated file never costs its claimed length.
    let mut part = Vec::new();
    input.take(len).read_to_end(&mut part)?;
    if part.len() as u64 != len {
        return Err(StoreError::Codec("truncated snapshot".into()));
    }
    Ok(Some(part))
}

/// Writes a snapshot from the view opened by `get_snapshot_builder` and hands it to openraft.
/// openraft runs `build_snapshot` in a task of its own, off the apply path
/// (`openraft::core::sm::worker`); the dump itself runs on a blocking thread.
pub(crate) struct SnapshotBuilder {
    /// The opened view, or why it could not be opened; taken by the build.
    pub(crate) pending: Option<Result<PendingDump, StoreError>>,
    /// Where the snapshot goes.
    pub(crate) files: SnapshotFiles,
    /// Held until the build ends: one dump at a time, and no install during one.
    pub(crate) _dumping: tokio::sync::OwnedMutexGuard<()>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let to_storage_error = |e: StoreError| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Snapshot(None),
                openraft::ErrorVerb::Write,
                std::io::Error::other(e.to_string()),
            )
        };
        let pending = self.pending.take().unwrap_or_else(|| Err(StoreError::Codec("snapshot built twice".into())));
        let pending = pending.map_err(to_storage_error)?;
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || files.dump(pending))
            .await
            .map_err(|e| to_storage_error(StoreError::Codec(format!("snapshot dump: {e}"))))?
            .map_err(to_storage_error)?;
        self.files
            .current()
            .await
            .map_err(to_storage_error)?
            .ok_or_else(|| to_storage_error(StoreError::Codec("snapshot vanished after it was written".into())))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;
    use crate::snapshot_view::StateBatch;

    /// Records the dump will hold at the start; enough that the iteration takes a while.
    const RECORDS: u32 = 30_000;

    fn key(i: u32) -> Vec<u8> {
        tables::record_key(tables::OBJECT, &["b", &format!("k{i:06}")])
    }

    /// A small deterministic generator, so a failure reproduces.
    fn next(state: &mut u64) -> u32 {
        *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        u32::try_from(*state >> 40).unwrap_or(0)
    }

    /// One batch of the writer: overwrites, deletes and creations of keys anywhere in the
    /// range (ahead of and behind the dump's cursor), and a work item, which is never dumped.
    fn random_batch(state: &mut u64, round: u64) -> StateBatch {
        let mut batch = StateBatch::default();
        for _ in 0..8 {
            let i = next(state) % (RECORDS * 2);
            match next(state) % 3 {
                0 => batch.insert(key(i), format!("rewritten {round}").into_bytes()),
                1 => batch.remove(key(i)),
                _ => batch.insert(key(i), vec![b'n'; 300]),
            }
        }
        let mut work = tables::WORK.to_vec();
        work.extend_from_slice(&round.to_be_bytes());
        batch.insert(work, b"work".to_vec());
        batch.insert(tables::APPLIED.to_vec(), round.to_be_bytes().to_vec());
        batch
    }

    fn replicated_records(tables: &Tables) -> BTreeMap<Vec<u8>, Vec<u8>> {
        tables
            .tree
            .iter()
            .map(|item| item.expect("read"))
            .filter(|(k, _)| !k.starts_with(tables::WORK))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    fn read_snapshot(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut input = BufReader::new(std::fs::File::open(path).expect("open"));
        let mut magic = vec![0u8; MAGIC.len()];
        input.read_exact(&mut magic).expect("magic");
        assert_eq!(magic, MAGIC);
        let mut records = BTreeMap::new();
        while let Some(key) = read_part(&mut input).expect("key") {
            let value = read_part(&mut input).expect("value").expect("a value after each key");
            assert!(records.insert(key, value).is_none(), "a key written twice");
        }
        records
    }

    /// A dump while another thread keeps changing, creating and deleting records holds exactly
    /// the records as they were when the view opened: none of the later values, every record
    /// deleted since, none created since. Without the pre-images, the writes between the
    /// view's opening and the dump alone would show up in the file.
    #[test]
    fn a_dump_beside_concurrent_writes_holds_the_state_at_the_view() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path().join("db")).temporary(true).open().expect("sled");
        let tables = Tables::new(db.open_tree("state").expect("tree"));
        for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(1000) {
            let mut batch = StateBatch::default();
            for &i in chunk {
                // Every other key, so the writer also creates keys between existing ones.
                batch.insert(key(i * 2), vec![b'o'; 1024]);
            }
            tables.apply_batch(batch).expect("fill");
        }
        let files = SnapshotFiles::new(dir.path().join("snapshots"));
        let pending = files.open_view(&tables).expect("open the view");
        let expected = replicated_records(&tables);

        let mut state = 42u64;
        // Changes after the view opened and before the dump starts: deterministic, ahead of
        // the cursor by construction.
        for round in 0..200 {
            tables.apply_batch(random_batch(&mut state, round)).expect("write");
        }
        let done = Arc::new(AtomicBool::new(false));
        let during = Arc::new(AtomicU64::new(0));
        let writer = std::thread::spawn({
            let (tables, done, during) = (tables.clone(), done.clone(), during.clone());
            move || {
                let mut round = 1_000;
                // Bounded: stops with the dump, or after far more rounds than a dump takes.
                while !done.load(Ordering::Acquire) && round < 2_000_000 {
                    tables.apply_batch(random_batch(&mut state, round)).expect("write");
                    during.fetch_add(1, Ordering::Relaxed);
                    round += 1;
                }
            }
        });
        let meta = files.dump(pending).expect("dump");
        done.store(true, Ordering::Release);
        writer.join().expect("writer");

        assert_ne!(replicated_records(&tables), expected, "the writes must have changed the state");
        let dumped = read_snapshot(&files.data_path());
        assert_eq!(dumped.len(), expected.len(), "records in the file");
        assert!(dumped == expected, "the file differs from the state at the view");
        assert_eq!(meta.last_log_id, None, "the applied index when the view opened");
        // Nothing is kept once the dump is over: writes no longer save pre-images.
        let mut batch = StateBatch::default();
        batch.insert(key(1), b"after".to_vec());
        tables.apply_batch(batch).expect("write");
        assert!(tables.view.open().is_ok(), "the view closed with the dump");
        eprintln!("writer batches during the dump: {}", during.load(Ordering::Relaxed));
    }
}
