//! Segmented pulls of large blobs: the blob is cut into segments, fetched as byte ranges over
//! several streams at once (from one holder or several), written at their offsets into a
//! partial file kept across interruptions (see `partial`), and verified against the object's
//! digests before it becomes the blob. An interrupted pull fetches only the segments it lacks.
//!
//! The streams take short runs of segments from one queue in ascending order, so the finished
//! segments stay close to a contiguous prefix, which a task hashes as they land: the object's
//! MD5s are done (nearly) when the last byte lands, not after a second read of the whole file.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::{Buf as _, BytesMut};
use futures::StreamExt as _;
use meridian_raft::NodeId;
use meridian_raft::model::ObjectMeta;

use crate::gateway::Gateway;
use crate::partial::{self, Partial};
use crate::pulls::PullStats;
use crate::replica::{PullError, PullOutcome, Throttle};

/// A holder a segmented pull may fetch from: its id, region (for messages) and internal address.
#[derive(Debug, Clone)]
struct Source {
    /// Node id.
    id: NodeId,
    /// Region name, for messages.
    region: String,
    /// Internal listener address.
    addr: String,
}

/// Rounds of fetching after the first when the bytes fail verification: each one fetches the
/// refused bytes again from a single holder, the next one each time.
const MOST_REFETCH_ROUNDS: usize = 3;

/// Segments one ranged request asks for at most. Streams take runs from a shared queue in
/// ascending order, so what is finished stays close to a contiguous prefix and its MD5s keep
/// up (see `partial`); longer runs would save a round trip per run but leave more to hash at
/// the end. 4 segments of 8 MiB: at most 4 x 32 MiB per stream-count to hash after the last byte.
const RUN_SEGMENTS: usize = 4;

/// A queue of work for the streams of one pull: runs of consecutive segments, ascending.
type RunQueue = Mutex<VecDeque<Vec<u64>>>;

/// Splits `segments` (ascending) into runs of consecutive indexes of at most `most` each, in
/// order: what the streams of a pull take one by one.
fn runs(segments: &[u64], most: usize) -> VecDeque<Vec<u64>> {
    let mut runs: VecDeque<Vec<u64>> = VecDeque::new();
    for &s in segments {
        match runs.back_mut() {
            Some(run) if run.len() < most.max(1) && run.last().is_some_and(|&l| l + 1 == s) => run.push(s),
            _ => runs.push_back(vec![s]),
        }
    }
    runs
}

/// The first run of consecutive indexes of `segments` (ascending, not empty): `first..end`.
fn first_run(segments: &[u64]) -> (u64, u64) {
    let first = segments[0];
    let mut end = first + 1;
    for &s in &segments[1..] {
        if s != end {
            break;
        }
        end += 1;
    }
    (first, end)
}

/// One stream of a pull: takes runs from `queue` until it is empty and fetches each into
/// `partial`, from `sources` starting with `sources[first]` and moving to the next holder when
/// one fails. Counts what it receives in `stats`.
async fn fetch_segments(
    gateway: Gateway,
    object: Arc<ObjectMeta>,
    partial: Arc<Partial>,
    queue: Arc<RunQueue>,
    sources: Arc<Vec<Source>>,
    first: usize,
    throttle: Arc<Throttle>,
) -> Result<(), String> {
    let stats = &gateway.pulls.stats;
    let mut failures: Vec<String> = Vec::new();
    let mut turn = first;
    loop {
        let Some(segments) = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front() else {
            return Ok(());
        };
        fetch_one_run(&gateway, &object, &partial, segments, &sources, (&mut turn, &mut failures), &throttle, stats)
            .await?;
    }
}

/// Fetches one run of `segments` into `partial`, moving to the next holder (`turn`) when one
/// fails; gives up when every holder failed twice in a row (`failures`).
#[allow(clippy::too_many_arguments)] // one stream's whole context; a struct would only rename it
async fn fetch_one_run(
    gateway: &Gateway,
    object: &ObjectMeta,
    partial: &Arc<Partial>,
    mut segments: Vec<u64>,
    sources: &[Source],
    (turn, failures): (&mut usize, &mut Vec<String>),
    throttle: &Throttle,
    stats: &PullStats,
) -> Result<(), String> {
    while !segments.is_empty() {
        if failures.len() >= sources.len() * 2 {
            return Err(failures.join("; "));
        }
        let source = &sources[*turn % sources.len()];
        let (run_start, run_end) = first_run(&segments);
        let range = partial.segment_range(run_start).start..partial.segment_range(run_end - 1).end;
        match fetch_run(gateway, object, partial, source, run_start, range, throttle, stats).await {
            Ok(fetched) => {
                segments.retain(|s| !(run_start..run_start + fetched).contains(s));
                if fetched < run_end - run_start {
                    failures.push(format!("{}: ended early", source.region));
                    *turn += 1;
                } else if fetched > 0 {
                    failures.clear();
                }
            }
            Err((fetched, why)) => {
                segments.retain(|s| !(run_start..run_start + fetched).contains(s));
                tracing::info!(blob = %object.blob, holder = source.id, fetched_segments = fetched, error = %why, "ranged fetch interrupted");
                failures.push(format!("{}: {why}", source.region));
                *turn += 1;
            }
        }
    }
    Ok(())
}

/// Fetches the segments `run_start..` covering `range` from one holder; returns how many
/// whole segments it wrote, with the error that stopped it, if one did.
#[allow(clippy::too_many_arguments)] // one stream's whole context; a struct would only rename it
async fn fetch_run(
    gateway: &Gateway,
    object: &ObjectMeta,
    partial: &Arc<Partial>,
    source: &Source,
    run_start: u64,
    range: std::ops::Range<u64>,
    throttle: &Throttle,
    stats: &PullStats,
) -> Result<u64, (u64, String)> {
    let peers = gateway.meta.peers();
    let (starts_at, stream) = peers
        .fetch_blob_range(source.id, &source.addr, &object.blob, range.clone())
        .await
        .map_err(|e| (0, e.to_string()))?;
    let mut stream = Box::pin(stream);
    // A holder that ignored the range sends the blob from its start: skip to ours.
    let mut skip = range.start - starts_at.min(range.start);
    let mut index = run_start;
    let mut written = 0u64;
    let mut segment = partial.segment_range(index);
    let mut buffer = BytesMut::with_capacity(usize::try_from(segment.end - segment.start).unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| (written, e.to_string()))?;
        stats.fetched(chunk.len() as u64);
        throttle.admit(chunk.len()).await;
        let skipped = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
        chunk.advance(skipped);
        skip -= skipped as u64;
        while !chunk.is_empty() {
            let want = usize::try_from(segment.end - segment.start).unwrap_or(0) - buffer.len();
            let take = want.min(chunk.len());
            buffer.extend_from_slice(&chunk.split_to(take));
            if buffer.len() as u64 == segment.end - segment.start {
                let bytes = std::mem::take(&mut buffer).freeze();
                let p = partial.clone();
                tokio::task::spawn_blocking(move || p.write_segment(index, &bytes))
                    .await
                    .map_err(|e| (written, e.to_string()))?
                    .map_err(|e| (written, format!("local disk: {e}")))?;
                written += 1;
                index += 1;
                if segment.end >= range.end {
                    // The run is complete; more bytes (a whole blob sent) are not needed.
                    return Ok(written);
                }
                segment = partial.segment_range(index);
                buffer.reserve(usize::try_from(segment.end - segment.start).unwrap_or(0));
            }
        }
    }
    Err((written, format!("stream ended at segment {index}, before {}", range.end)))
}

impl Gateway {
    /// Removes the partial copy of `blob`, if any (its object was deleted or overwritten, or
    /// the blob is here whole).
    pub(crate) async fn discard_partial(&self, blob: &str) -> std::io::Result<()> {
        let (dir, id) = (self.blobs.partial_dir(), blob.to_owned());
        let removed =
            tokio::task::spawn_blocking(move || partial::discard(&dir, &id)).await.map_err(std::io::Error::other)??;
        if removed {
            self.pulls.stats.discarded();
            tracing::info!(blob, "removed the partial copy of a pull no longer needed");
        }
        Ok(())
    }

    /// Removes partial copies whose blob no object refers to any more (the orphan sweep).
    pub(crate) async fn sweep_partials(&self) -> Result<usize, crate::HousekeepingError> {
        let dir = self.blobs.partial_dir();
        let blobs = tokio::task::spawn_blocking(move || partial::list(&dir)).await.map_err(std::io::Error::other)??;
        let mut removed = 0;
        for blob in blobs {
            if !self.meta.blob_is_referenced(&blob)? {
                self.discard_partial(&blob).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Pulls `object`'s blob segment by segment over ranged streams, continuing any partial
    /// copy a previous attempt left, verifies it whole and makes it the blob.
    pub(crate) async fn copy_segmented(
        &self,
        (bucket, key): (&str, &str),
        object: &ObjectMeta,
        holders_by_preference: &[NodeId],
        throttle: &Arc<Throttle>,
    ) -> Result<PullOutcome, PullError> {
        let me = self.meta.node_id();
        // A node catching up on the log starts a pull as soon as it applies the object, before
        // it has applied the other holders' reports: learn the holders as of now (one read
        // index, nothing beside a large blob) so that every holder can send its share.
        let current = match self.meta.read_barrier().await {
            Ok(()) => self.meta.version_with_blob(bucket, key, &object.blob).ok().flatten(),
            Err(e) => {
                tracing::debug!(error = %e, "no read barrier; pulling from the holders known here");
                None
            }
        };
        let holders: Vec<NodeId> = current.as_ref().unwrap_or(object).holders.keys().copied().collect();
        let mut order: Vec<NodeId> = holders_by_preference.iter().copied().filter(|h| holders.contains(h)).collect();
        let unlisted: Vec<NodeId> = holders.iter().copied().filter(|h| !order.contains(h)).collect();
        order.extend(unlisted);
        let sources: Vec<Source> = order
            .iter()
            .filter(|h| **h != me)
            .filter_map(|&id| {
                self.meta.member(id).map(|n| Source { id, region: n.region.clone(), addr: n.internal.clone() })
            })
            .collect();
        if sources.is_empty() {
            return Err(PullError::NoHolder("no reachable holder".into()));
        }
        let settings = self.pulls.settings;
        let started = Instant::now();
        let (dir, meta) = (self.blobs.partial_dir(), object.clone());
        let (partial, resumed) =
            tokio::task::spawn_blocking(move || Partial::open(&dir, &meta, settings.segment_bytes))
                .await
                .map_err(std::io::Error::other)??;
        if resumed > 0 {
            self.pulls.stats.resumed(resumed);
            tracing::info!(blob = %object.blob, resumed_bytes = resumed, size = object.size, "continuing a partial pull");
        }
        let (partial, object_arc, sources) = (Arc::new(partial), Arc::new(object.clone()), Arc::new(sources));
        let streams = settings.streams_for(object.size);
        let (stop_hashing, hashing) = hash_as_segments_land(partial.clone());
        let result = self.fetch_and_verify(object, &partial, &object_arc, &sources, streams, throttle).await;
        // The hashing task holds the partial: it must be gone before the partial is finished.
        let _ = stop_hashing.send(());
        let _ = hashing.await;
        let verify_ms = match result {
            Ok(Some(verify_ms)) => verify_ms,
            Ok(None) => {
                let (dir, id) = (self.blobs.partial_dir(), object.blob.clone());
                drop(partial);
                tokio::task::spawn_blocking(move || partial::discard(&dir, &id))
                    .await
                    .map_err(std::io::Error::other)??;
                self.pulls.stats.discarded();
                return Err(PullError::NoHolder("no holder delivered bytes matching the object's digests".into()));
            }
            Err(e) => return Err(e),
        };
        self.blobs.adopt(partial.data_path(), &object.blob).await?;
        if let Ok(partial) = Arc::try_unwrap(partial) {
            partial.finish()?;
        }
        tracing::info!(
            blob = %object.blob,
            bytes = object.size,
            resumed_bytes = resumed,
            streams,
            holders = sources.len(),
            ms = started.elapsed().as_millis(),
            verify_ms,
            "segmented pull copied and verified"
        );
        let from = sources.first().map_or(0, |s| s.id);
        Ok(PullOutcome::Pulled { bytes: object.size, from })
    }

    /// Fetches the segments `partial` lacks over `streams` streams and checks the object's
    /// digests, fetching refused bytes again (up to [`MOST_REFETCH_ROUNDS`] rounds). `Some`
    /// with the milliseconds the last verdict took after the last byte landed, once the
    /// partial holds the verified blob; `None` when no holder delivered matching bytes.
    async fn fetch_and_verify(
        &self,
        object: &ObjectMeta,
        partial: &Arc<Partial>,
        object_arc: &Arc<ObjectMeta>,
        sources: &Arc<Vec<Source>>,
        streams: usize,
        throttle: &Arc<Throttle>,
    ) -> Result<Option<u128>, PullError> {
        for round in 0..=MOST_REFETCH_ROUNDS {
            let todo = partial.todo();
            if !todo.is_empty() {
                // First round: every stream from its own holder in turn. Later rounds (bytes
                // refused): one holder for all, the next one each round, so a holder with a
                // damaged copy is found out and passed over.
                let queue = Arc::new(Mutex::new(runs(&todo, RUN_SEGMENTS)));
                let streams = streams.clamp(1, todo.len());
                let mut tasks = tokio::task::JoinSet::new();
                for i in 0..streams {
                    let first = if round == 0 { i } else { round - 1 };
                    tasks.spawn(fetch_segments(
                        self.clone(),
                        object_arc.clone(),
                        partial.clone(),
                        queue.clone(),
                        sources.clone(),
                        first,
                        throttle.clone(),
                    ));
                }
                let mut failures = Vec::new();
                while let Some(done) = tasks.join_next().await {
                    match done {
                        Ok(Ok(())) => {}
                        Ok(Err(why)) => failures.push(why),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                if !failures.is_empty() {
                    // What arrived stays in the partial copy for the next attempt.
                    return Err(PullError::NoHolder(failures.join("; ")));
                }
            }
            let p = partial.clone();
            let verify_started = Instant::now();
            let verdict = tokio::task::spawn_blocking(move || p.verify()).await.map_err(std::io::Error::other)??;
            match verdict {
                Ok(()) => return Ok(Some(verify_started.elapsed().as_millis())),
                Err(bad) => {
                    tracing::warn!(blob = %object.blob, bad = ?bad, round, "pulled bytes do not match the object's digests; fetching them again");
                    self.pulls.stats.refused(bad.end - bad.start);
                    let p = partial.clone();
                    tokio::task::spawn_blocking(move || p.forget(&bad)).await.map_err(std::io::Error::other)??;
                }
            }
        }
        Ok(None)
    }
}

/// Starts the task that hashes `partial`'s contiguous prefix as segments land; it stops when
/// the sender is used or dropped (after finishing the segment it is hashing).
fn hash_as_segments_land(partial: Arc<Partial>) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = partial.segment_landed() => {}
                _ = &mut stopped => return,
            }
            let p = partial.clone();
            match tokio::task::spawn_blocking(move || p.advance_hash()).await {
                Ok(Ok(_)) => {}
                // The verdict at the end hashes again and reports the error.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "hashing a partial pull as it lands failed; verifying at the end");
                    return;
                }
                Err(_) => return,
            }
        }
    });
    (stop, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_queued_in_short_ascending_runs() {
        let all: Vec<u64> = (0..10).collect();
        assert_eq!(runs(&all, 4), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert_eq!(runs(&[1, 2, 5, 6, 7], 4), vec![vec![1, 2], vec![5, 6, 7]], "a gap starts a run");
        assert_eq!(runs(&[], 4), VecDeque::<Vec<u64>>::new());
        assert_eq!(first_run(&[3, 4, 5, 9, 10]), (3, 6));
        assert_eq!(first_run(&[7]), (7, 8));
    }
}
