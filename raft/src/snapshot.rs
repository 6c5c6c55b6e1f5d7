//! Snapshots of the state machine as files: written from a consistent view, streamed to
//! followers by openraft in chunks, installed atomically.
//!
//! File format: the magic line, then records `u32 key length, key, u32 value length, value`
//! (big endian lengths) for every record except this node's own work items. The snapshot's
//! metadata sits beside it in `current.meta`, written after the data file is durable, so a
//! crash never leaves metadata pointing at a partial file.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use openraft::{RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership};

use crate::codec::{decode, encode};
use crate::error::StoreError;
use crate::node_id::{NodeId, RegionNode};
use crate::tables::{self, Tables};
use crate::types::TypeConfig;

const MAGIC: &[u8] = b"MERIDIAN-SNAPSHOT-1\n";
const DATA: &str = "current.snap";
const META: &str = "current.meta";

/// The snapshot directory of one node.
#[derive(Clone)]
pub(crate) struct SnapshotFiles {
    pub(crate) dir: PathBuf,
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
    /// The current snapshot's data file (it may not exist yet).
    pub(crate) fn data_path(&self) -> PathBuf {
        self.dir.join(DATA)
    }

    /// Writes every replicated record to a new snapshot file and makes it current.
    pub(crate) fn dump(&self, tables: &Tables) -> Result<SnapshotMeta<NodeId, RegionNode>, StoreError> {
        let applied = tables.applied()?;
        let membership: StoredMembership<NodeId, RegionNode> = tables.membership()?;
        let snapshot_id = format!(
            "{}-{}",
            applied.map_or(0, |l| l.index),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
        );
        let meta = SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id };

        let started = std::time::Instant::now();
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("building.snap");
        let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(MAGIC)?;
        let mut records = 0u64;
        for item in &tables.tree {
            let (key, value) = item?;
            if key.starts_with(tables::WORK) {
                continue;
            }
            for part in [&key[..], &value[..]] {
                let len = u32::try_from(part.len()).map_err(|_| StoreError::Codec("record over 4 GiB".into()))?;
                out.write_all(&len.to_be_bytes())?;
                out.write_all(part)?;
            }
            records += 1;
        }
        let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        publish(&tmp, &self.dir.join(DATA))?;
        self.write_meta(&meta)?;
        // Duration and size are what the scale benchmark (scripts/scale-bench) reads back.
        let millis = started.elapsed().as_millis();
        tracing::info!(snapshot = %meta.snapshot_id, records, bytes, millis, "snapshot written");
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

/// Hands a snapshot dumped by [`SnapshotFiles::dump`] to openraft.
pub(crate) struct SnapshotBuilder {
    pub(crate) dumped: Option<Result<SnapshotMeta<NodeId, RegionNode>, StoreError>>,
    pub(crate) files: SnapshotFiles,
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
        let dumped = self.dumped.take().unwrap_or_else(|| Err(StoreError::Codec("snapshot built twice".into())));
        dumped.map_err(to_storage_error)?;
        self.files
            .current()
            .await
            .map_err(to_storage_error)?
            .ok_or_else(|| to_storage_error(StoreError::Codec("snapshot vanished after it was written".into())))
    }
}
