//! Segmented pulls of large blobs: the blob is cut into segments, fetched as byte ranges over
//! several streams at once (from one holder or several), written at their offsets into a
//! partial file kept across interruptions (see `partial`), and verified against the object's
//! digests before it becomes the blob. An interrupted pull fetches only the segments it lacks.

use std::sync::Arc;
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

/// Splits `segments` (ascending) into at most `streams` groups of consecutive positions in
/// the list, as even as possible, so each stream fetches long ranges.
fn share_out(segments: &[u64], streams: usize) -> Vec<Vec<u64>> {
    let streams = streams.clamp(1, segments.len().max(1));
    let per = segments.len().div_ceil(streams);
    segments.chunks(per.max(1)).map(<[u64]>::to_vec).collect()
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

/// Fetches `segments` of `object` into `partial`, from `sources` starting with `sources[first]`
/// and moving to the next holder when one fails. Counts what it receives in `stats`.
async fn fetch_segments(
    gateway: Gateway,
    object: Arc<ObjectMeta>,
    partial: Arc<Partial>,
    mut segments: Vec<u64>,
    sources: Arc<Vec<Source>>,
    first: usize,
    throttle: Arc<Throttle>,
) -> Result<(), String> {
    let stats = &gateway.pulls.stats;
    let mut failures: Vec<String> = Vec::new();
    let mut turn = first;
    while !segments.is_empty() {
        if failures.len() >= sources.len() * 2 {
            return Err(failures.join("; "));
        }
        let source = &sources[turn % sources.len()];
        let (run_start, run_end) = first_run(&segments);
        let range = partial.segment_range(run_start).start..partial.segment_range(run_end - 1).end;
        match fetch_run(&gateway, &object, &partial, source, run_start, range, &throttle, stats).await {
            Ok(fetched) => {
                segments.retain(|s| !(run_start..run_start + fetched).contains(s));
                if fetched < run_end - run_start {
                    failures.push(format!("{}: ended early", source.region));
                    turn += 1;
                } else if fetched > 0 {
                    failures.clear();
                }
            }
            Err((fetched, why)) => {
                segments.retain(|s| !(run_start..run_start + fetched).contains(s));
                tracing::info!(blob = %object.blob, holder = source.id, fetched_segments = fetched, error = %why, "ranged fetch interrupted");
                failures.push(format!("{}: {why}", source.region));
                turn += 1;
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
        for round in 0..=MOST_REFETCH_ROUNDS {
            let todo = partial.todo();
            if !todo.is_empty() {
                // First round: every stream from its own holder in turn. Later rounds (bytes
                // refused): one holder for all, the next one each round, so a holder with a
                // damaged copy is found out and passed over.
                let groups = share_out(&todo, streams);
                let mut tasks = tokio::task::JoinSet::new();
                for (i, group) in groups.into_iter().enumerate() {
                    let first = if round == 0 { i } else { round - 1 };
                    tasks.spawn(fetch_segments(
                        self.clone(),
                        object_arc.clone(),
                        partial.clone(),
                        group,
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
            let (p, meta) = (partial.clone(), object_arc.clone());
            let verdict =
                tokio::task::spawn_blocking(move || p.verify(&meta)).await.map_err(std::io::Error::other)??;
            match verdict {
                Ok(()) => {
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
                        "segmented pull copied and verified"
                    );
                    let from = sources.first().map_or(0, |s| s.id);
                    return Ok(PullOutcome::Pulled { bytes: object.size, from });
                }
                Err(bad) => {
                    tracing::warn!(blob = %object.blob, bad = ?bad, round, "pulled bytes do not match the object's digests; fetching them again");
                    self.pulls.stats.refused(bad.end - bad.start);
                    let p = partial.clone();
                    tokio::task::spawn_blocking(move || p.forget(&bad)).await.map_err(std::io::Error::other)??;
                }
            }
        }
        let (dir, id) = (self.blobs.partial_dir(), object.blob.clone());
        drop(partial);
        tokio::task::spawn_blocking(move || partial::discard(&dir, &id)).await.map_err(std::io::Error::other)??;
        self.pulls.stats.discarded();
        Err(PullError::NoHolder("no holder delivered bytes matching the object's digests".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_shared_out_in_long_runs() {
        let all: Vec<u64> = (0..10).collect();
        assert_eq!(share_out(&all, 3), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert_eq!(share_out(&[4, 5], 8), vec![vec![4], vec![5]]);
        assert_eq!(share_out(&[], 4), Vec::<Vec<u64>>::new());
        assert_eq!(first_run(&[3, 4, 5, 9, 10]), (3, 6));
        assert_eq!(first_run(&[7]), (7, 8));
    }
}
