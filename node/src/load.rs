//! What this node measures of its own load: S3 requests in flight and bytes per second sent
//! (counted by the S3 listener through [`MeteredBody`]), smoothed into an exponentially
//! weighted moving average once per load interval, and the free space of the data directory.
//! Peers poll it ([`LoadMeter::current`]) over the internal listener.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use meridian_admin::metrics::{RequestGuard, S3Metrics};
use meridian_geo::NodeLoad;
use meridian_raft::MetaStore;

/// Time constant of the bytes-per-second average: a burst fades to a third within it.
const EWMA_WINDOW: Duration = Duration::from_secs(3);

/// The node's own load, sampled and live.
pub(crate) struct LoadMeter {
    /// The S3 listener's counters.
    s3: Arc<S3Metrics>,
    /// Where the blobs live; its file system's free space is reported.
    data_dir: PathBuf,
    /// For readiness (a leader is known, this node is a member).
    meta: MetaStore,
    /// The smoothed figures, updated by [`LoadMeter::tick`].
    sampled: Mutex<Sampled>,
}

/// The figures that need a previous sample.
struct Sampled {
    /// Bytes per second sent, averaged.
    bytes_per_sec: f64,
    /// The byte counter at the last tick.
    last_total: u64,
    /// When the last tick was.
    last_at: Instant,
    /// Free bytes of the data directory at the last tick.
    disk_free: u64,
}

impl LoadMeter {
    /// A meter over the S3 listener's counters.
    pub(crate) fn new(s3: Arc<S3Metrics>, data_dir: PathBuf, meta: MetaStore) -> Self {
        let sampled = Sampled { bytes_per_sec: 0.0, last_total: s3.bytes_out(), last_at: Instant::now(), disk_free: 0 };
        let meter = Self { s3, data_dir, meta, sampled: Mutex::new(sampled) };
        meter.tick();
        meter
    }

    /// Folds the bytes sent since the last tick into the average and reads the free space.
    pub(crate) fn tick(&self) {
        let disk_free = match fs2::available_space(&self.data_dir) {
            Ok(free) => Some(free),
            Err(e) => {
                tracing::warn!(data_dir = %self.data_dir.display(), error = %e, "cannot read the free disk space");
                None
            }
        };
        let total = self.s3.bytes_out();
        let now = Instant::now();
        let mut s = self.sampled.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(s.last_at).as_secs_f64();
        if elapsed > 0.0 {
            let rate = total.saturating_sub(s.last_total) as f64 / elapsed;
            // Exact for uneven ticks: the weight of the new sample grows with the time it covers.
            let alpha = 1.0 - (-elapsed / EWMA_WINDOW.as_secs_f64()).exp();
            s.bytes_per_sec += alpha * (rate - s.bytes_per_sec);
        }
        s.last_total = total;
        s.last_at = now;
        if let Some(free) = disk_free {
            s.disk_free = free;
        }
    }

    /// The load to report now: requests in flight right now, the averaged rate and free space
    /// of the last tick.
    pub(crate) fn current(&self) -> NodeLoad {
        let (bytes_out_per_sec, disk_free_bytes) = {
            let s = self.sampled.lock().unwrap_or_else(PoisonError::into_inner);
            (s.bytes_per_sec, s.disk_free)
        };
        NodeLoad {
            in_flight: u32::try_from(self.s3.in_flight()).unwrap_or(u32::MAX),
            bytes_out_per_sec,
            disk_free_bytes,
            ready: self.meta.leadership().ready(),
        }
    }
}

/// An S3 response body that counts the bytes it sends and keeps its request "in flight" until
/// it is done or dropped (a client that stops reading keeps it in flight, which is the point:
/// a node busy streaming to slow viewers is busy).
pub(crate) struct MeteredBody<B> {
    /// The real body.
    inner: B,
    /// Counts bytes; its drop ends the request.
    guard: RequestGuard,
}

impl<B> MeteredBody<B> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: B, guard: RequestGuard) -> Self {
        Self { inner, guard }
    }
}

impl<B> http_body::Body for MeteredBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.guard.sent(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
