//! Pulling replicas: copying an object's blob from a node that holds it, verifying every byte
//! against the object's recorded digests, and reporting the new holder through Raft.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use meridian_raft::model::ObjectMeta;
use meridian_raft::network::CallError;
use meridian_raft::{Command, NodeId};
use s3s::crypto::{Checksum as _, Md5};
use tokio::sync::Mutex;

use crate::blob::BlobStore;
use crate::gateway::{Gateway, now_millis};
use crate::pulls::PullStats;

/// Why a pull failed (it will be retried, from the next holder).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The metadata store failed or the report could not be committed.
    #[error("metadata: {0}")]
    Meta(String),
    /// The local disk failed.
    #[error("disk: {0}")]
    Io(#[from] std::io::Error),
    /// No holder could deliver verified bytes.
    #[error("no holder delivered the blob: {0}")]
    NoHolder(String),
}

/// What a pull achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum PullOutcome {
    /// The blob was copied, verified and reported.
    Pulled {
        /// Bytes copied.
        bytes: u64,
        /// The node it came from.
        from: NodeId,
    },
    /// The blob was already here (e.g. a crash after the copy, before the report); reported.
    AlreadyHeld,
    /// The object was deleted or overwritten, or this node is already listed: nothing to do.
    Moot,
}

/// Limits the bandwidth of all pulls of a node together.
pub struct Throttle {
    /// Bytes per second; 0 means unlimited.
    rate: u64,
    /// When the link is free again.
    next_free: Mutex<Instant>,
}

impl Throttle {
    /// A throttle of `rate` bytes per second (0: unlimited).
    pub fn new(rate: u64) -> Self {
        Self { rate, next_free: Mutex::new(Instant::now()) }
    }

    /// Waits until `bytes` more may pass.
    pub(crate) async fn admit(&self, bytes: usize) {
        if self.rate == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let wait_until = {
            let mut next_free = self.next_free.lock().await;
            let start = (*next_free).max(Instant::now());
            *next_free = start + cost;
            start
        };
        tokio::time::sleep_until(wait_until.into()).await;
    }
}

/// Checks a stream of bytes against the object's parts (or its single MD5), as it arrives.
/// Pulls check what a holder sends with it; the scrub checks what is on the local disk.
pub(crate) struct Verifier {
    /// (size, hex md5) of each part, in order.
    parts: Vec<(u64, String)>,
    /// The part being hashed.
    index: usize,
    /// Bytes of that part still to come.
    remaining: u64,
    /// MD5 of that part so far.
    md5: Md5,
    /// Bytes fed so far, all parts together.
    total: u64,
}

impl Verifier {
    /// A verifier of `object`'s bytes.
    pub(crate) fn new(object: &ObjectMeta) -> Self {
        let parts: Vec<(u64, String)> = if object.parts.is_empty() {
            vec![(object.size, object.etag.clone())]
        } else {
            object.parts.iter().map(|p| (p.size, p.etag.clone())).collect()
        };
        let remaining = parts.first().map_or(0, |p| p.0);
        let mut verifier = Self { parts, index: 0, remaining, md5: Md5::new(), total: 0 };
        verifier.close_empty_parts_ok();
        verifier
    }

    /// Finishes parts of size zero (their MD5 is that of nothing).
    fn close_empty_parts_ok(&mut self) -> bool {
        while self.index < self.parts.len() && self.remaining == 0 {
            let digest = std::mem::replace(&mut self.md5, Md5::new()).finalize();
            if hex::encode(digest) != self.parts[self.index].1 {
                return false;
            }
            self.index += 1;
            self.remaining = self.parts.get(self.index).map_or(0, |p| p.0);
        }
        true
    }

    /// Feeds bytes; false as soon as they cannot be right.
    pub(crate) fn update(&mut self, mut bytes: &[u8]) -> bool {
        self.total += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.index >= self.parts.len() {
                return false;
            }
            let take = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(bytes.len());
            self.md5.update(&bytes[..take]);
            self.remaining -= take as u64;
            bytes = &bytes[take..];
            if self.remaining == 0 && !self.close_empty_parts_ok() {
                return false;
            }
        }
        true
    }

    /// The bytes of the part being checked: after `update` said false, the part that did not
    /// match (the whole blob for an object of one part).
    pub(crate) fn failing_range(&self) -> std::ops::Range<u64> {
        let start: u64 = self.parts.iter().take(self.index).map(|p| p.0).sum();
        let len = self.parts.get(self.index).map_or(0, |p| p.0);
        start..start + len
    }

    /// Every part arrived whole and matched.
    fn complete(&self) -> bool {
        self.index == self.parts.len()
    }

    /// Bytes fed so far.
    pub(crate) fn bytes_seen(&self) -> u64 {
        self.total
    }

    /// Every part arrived and matched, and the bytes add up to the object's size.
    pub(crate) fn verified(&self, size: u64) -> bool {
        self.complete() && self.total == size
    }
}

/// Chunks of a pull queued, at most, between the network and each of its two blocking stages.
const PIPELINE_DEPTH: usize = 16;

/// Streams one holder's bytes into the temp file at `path`, checking them as they arrive.
///
/// The network (this task), the MD5s and the disk writes (one blocking thread each) run at
/// once, each chunk handed to both threads without a copy: a pull costs the slowest of the
/// three instead of their sum, and hashing never holds up the async runtime serving clients.
/// `Ok(Err(why))` when the holder's bytes are wrong or cut short (try another holder); `Err`
/// when the local disk failed.
async fn receive<S>(
    mut stream: S,
    object: &ObjectMeta,
    path: &std::path::Path,
    throttle: &Throttle,
    stats: &PullStats,
) -> std::io::Result<Result<(), String>>
where
    S: futures::Stream<Item = Result<Bytes, CallError>> + Unpin,
{
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
    let (disk_tx, mut disk_rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
    let mut verifier = Verifier::new(object);
    let hasher = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = hash_rx.blocking_recv() {
            if !verifier.update(&chunk) {
                return (verifier, false);
            }
        }
        (verifier, true)
    });
    let path = path.to_path_buf();
    let disk = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        // A second handle on the temp file: the blob writer's own handle fsyncs the inode later.
        let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
        while let Some(chunk) = disk_rx.blocking_recv() {
            std::io::Write::write_all(&mut file, &chunk)?;
        }
        Ok(())
    });
    let mut cut = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                cut = Some(e.to_string());
                break;
            }
        };
        stats.fetched(chunk.len() as u64);
        throttle.admit(chunk.len()).await;
        // A stage that closed its end stopped early (bad bytes, disk error): it says why below.
        if hash_tx.send(chunk.clone()).await.is_err() || disk_tx.send(chunk).await.is_err() {
            break;
        }
    }
    drop((hash_tx, disk_tx));
    let (verifier, matched) = hasher.await.map_err(std::io::Error::other)?;
    disk.await.map_err(std::io::Error::other)??;
    Ok(match cut {
        Some(e) => Err(e),
        None if !matched => Err("bytes do not match the object's digests".into()),
        None if !verifier.verified(object.size) => {
            Err(format!("got {} of {} bytes", verifier.bytes_seen(), object.size))
        }
        None => Ok(()),
    })
}

impl Gateway {
    /// Copies `blob` of `bucket/key` to this node from the first of `holders_by_preference`
    /// that delivers it intact and durable, without reporting it: the caller reports it with
    /// [`Gateway::report_replica`] (unless the outcome is [`PullOutcome::Moot`]). Split from
    /// the report so that a pull's slot is free again while its report waits for the commit:
    /// over a long link the report is two round trips from a follower, longer than the copy of
    /// a small object, and reports proposed together share one log entry.
    pub async fn copy_replica(
        &self,
        bucket: &str,
        key: &str,
        blob: &str,
        holders_by_preference: &[NodeId],
        throttle: &Arc<Throttle>,
    ) -> Result<PullOutcome, PullError> {
        let me = self.meta.node_id();
        // Any version, current or kept: a version made non-current while this node was still
        // to pull it is pulled all the same (every version is an object for replication).
        let object = self.meta.version_with_blob(bucket, key, blob).map_err(|e| PullError::Meta(e.to_string()))?;
        let Some(object) = object.filter(|o| o.inline.is_none()) else {
            // Deleted or overwritten: a partial copy of it must not stay behind.
            self.discard_partial(blob).await?;
            return Ok(PullOutcome::Moot);
        };
        if object.holders.contains_key(&me) {
            self.discard_partial(blob).await?;
            return Ok(PullOutcome::Moot);
        }
        let started = Instant::now();
        let outcome = if self.blobs.open(blob).await?.is_some() {
            self.discard_partial(blob).await?;
            PullOutcome::AlreadyHeld
        } else if self.pulls.settings.resumable(object.size) {
            self.copy_segmented((bucket, key), &object, holders_by_preference, throttle).await?
        } else {
            self.copy_from_holders(&object, holders_by_preference, throttle).await?
        };
        self.pulls.stats.copied(started.elapsed());
        self.pulls.wanted.forget(blob);
        Ok(outcome)
    }

    /// Reports through Raft that this node holds `blob` of `bucket/key` (`ReplicaAdded`),
    /// once the blob is here whole and verified. Reports proposed at once share a log entry
    /// (the proposal batcher), so many in flight cost about one commit, not one each.
    pub async fn report_replica(&self, bucket: &str, key: &str, blob: &str) -> Result<(), PullError> {
        let report = Command::ReplicaAdded {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            blob: blob.to_owned(),
            node: self.meta.node_id(),
            at: now_millis(),
        };
        let started = Instant::now();
        self.meta.propose(report).await.map_err(|e| PullError::Meta(e.to_string()))?;
        self.pulls.stats.reported(started.elapsed());
        Ok(())
    }

    async fn copy_from_holders(
        &self,
        object: &ObjectMeta,
        holders_by_preference: &[NodeId],
        throttle: &Arc<Throttle>,
    ) -> Result<PullOutcome, PullError> {
        let me = self.meta.node_id();
        let mut failures = Vec::new();
        for &holder in holders_by_preference.iter().filter(|h| **h != me && object.holders.contains_key(h)) {
            let Some(node) = self.meta.member(holder) else { continue };
            let stream = match self.meta.peers().fetch_blob(holder, &node.internal, &object.blob, None).await {
                Ok(stream) => Box::pin(stream),
                Err(e) => {
                    failures.push(format!("{}: {e}", node.region));
                    continue;
                }
            };
            let started = Instant::now();
            let writer = self.blobs.create().await?;
            if let Err(why) = receive(stream, object, writer.path(), throttle, &self.pulls.stats).await? {
                failures.push(format!("{}: {why}", node.region));
                // Dropping the writer removes the partial copy.
                continue;
            }
            let received = started.elapsed();
            self.blobs.commit(writer, &object.blob).await?;
            tracing::debug!(
                blob = %object.blob,
                bytes = object.size,
                receive_ms = received.as_millis(),
                sync_ms = (started.elapsed() - received).as_millis(),
                "pull copied"
            );
            return Ok(PullOutcome::Pulled { bytes: object.size, from: holder });
        }
        Err(PullError::NoHolder(if failures.is_empty() { "no reachable holder".into() } else { failures.join("; ") }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_raft::model::PartSummary;

    fn md5_hex(bytes: &[u8]) -> String {
        hex::encode(Md5::checksum(bytes))
    }

    fn object(size: u64, etag: String, parts: Vec<PartSummary>) -> ObjectMeta {
        ObjectMeta {
            blob: "ab".into(),
            inline: None,
            size,
            etag,
            last_modified: 0,
            headers: Default::default(),
            tags: Vec::new(),
            checksums: Default::default(),
            parts,
            holders: Default::default(),
        }
    }

    #[test]
    fn single_part_bytes_verify_and_corruption_does_not() {
        let data = b"hello world".to_vec();
        let meta = object(data.len() as u64, md5_hex(&data), Vec::new());
        let mut ok = Verifier::new(&meta);
        assert!(ok.update(&data[..4]) && ok.update(&data[4..]) && ok.complete());
        let mut bad = Verifier::new(&meta);
        assert!(!bad.update(b"hello World"));
        let mut short = Verifier::new(&meta);
        assert!(short.update(b"hello") && !short.complete());
    }

    #[test]
    fn multipart_objects_verify_part_by_part() {
        let (a, b) = (vec![1u8; 7], vec![2u8; 5]);
        let parts = vec![
            PartSummary { number: 1, size: 7, etag: md5_hex(&a) },
            PartSummary { number: 2, size: 5, etag: md5_hex(&b) },
        ];
        let meta = object(12, "x-2".into(), parts);
        let all = [a.clone(), b.clone()].concat();
        let mut ok = Verifier::new(&meta);
        assert!(ok.update(&all[..3]) && ok.update(&all[3..10]) && ok.update(&all[10..]) && ok.complete());
        let mut swapped = Verifier::new(&meta);
        assert!(!swapped.update(&[b, a].concat()));
    }

    /// Runs `receive` over `chunks` into a fresh temp file; returns its verdict and the file.
    async fn receive_chunks(meta: &ObjectMeta, chunks: Vec<Result<Bytes, CallError>>) -> (Result<(), String>, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tmp-blob");
        std::fs::File::create(&path).expect("create the temp file");
        let verdict = receive(futures::stream::iter(chunks), meta, &path, &Throttle::new(0), &PullStats::default())
            .await
            .expect("local disk");
        (verdict, std::fs::read(&path).expect("read back"))
    }

    /// The pipelined receive writes exactly the bytes it verified, and refuses wrong, short and
    /// long streams and a stream cut by the network.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receive_writes_verified_bytes_and_refuses_bad_streams() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let meta = object(data.len() as u64, md5_hex(&data), Vec::new());
        let chunks = |bytes: &[u8]| -> Vec<Result<Bytes, CallError>> {
            bytes.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect()
        };
        let (verdict, written) = receive_chunks(&meta, chunks(&data)).await;
        assert_eq!(verdict, Ok(()));
        assert!(written == data, "the file must hold exactly the verified bytes");

        let mut flipped = data.clone();
        flipped[2_500_000] ^= 1;
        assert!(receive_chunks(&meta, chunks(&flipped)).await.0.is_err(), "a flipped byte must be refused");
        assert!(receive_chunks(&meta, chunks(&data[..data.len() - 1])).await.0.is_err(), "short");
        let long = [data.as_slice(), b"x"].concat();
        assert!(receive_chunks(&meta, chunks(&long)).await.0.is_err(), "long");
        let mut cut = chunks(&data[..1_000_000]);
        cut.push(Err(CallError::Failed("connection reset".into())));
        let (verdict, _) = receive_chunks(&meta, cut).await;
        assert!(verdict.is_err_and(|e| e.contains("connection reset")), "a cut stream says why");
    }

    #[test]
    fn empty_objects_verify() {
        let meta = object(0, md5_hex(b""), Vec::new());
        assert!(Verifier::new(&meta).complete());
    }
}
