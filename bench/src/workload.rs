//! The workloads: PUT then GET of small objects and of large objects (the throughput suite), and
//! HEAD, ListObjectsV2 and DELETE for the latency suite; each run at a fixed concurrency and
//! bounded in count and time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::task::JoinSet;

use crate::stats::{self, LatencySummary};

/// Which operation a workload issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// PutObject with the whole body in memory.
    Put,
    /// GetObject, reading (and checking) the whole body.
    Get,
    /// HeadObject, checking the size.
    Head,
    /// DeleteObject.
    Delete,
    /// ListObjectsV2 of the size class's key prefix, checking the number of keys.
    List {
        /// How many keys the listing must return (one page).
        objects: usize,
    },
}

impl Op {
    /// Lower-case name used in workload names.
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Head => "head",
            Op::Delete => "delete",
            Op::List { .. } => "list",
        }
    }

    /// Upper-case name for the human output.
    pub fn verb(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
            Op::Head => "HEAD",
            Op::Delete => "DELETE",
            Op::List { .. } => "LIST",
        }
    }
}

/// Whether PutObject signs the payload (SHA-256 of the body) or sends `UNSIGNED-PAYLOAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadSigning {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`: neither side hashes the body for SigV4.
    Unsigned,
    /// The SDK hashes the body and the server checks the hash.
    Signed,
}

/// One workload to run: `count` operations of `op` on objects of `size` bytes.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name in the output, e.g. `put_small`.
    pub name: String,
    /// Operation issued.
    pub op: Op,
    /// Object size in bytes.
    pub size: usize,
    /// Number of operations to issue (fewer if the deadline passes first).
    pub count: usize,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// No operation is started after this much time from the workload's start.
    pub max_time: Duration,
}

impl Spec {
    /// A spec named `{op}_{class}`, e.g. `put_small`.
    pub fn new(op: Op, class: &str, size: usize, count: usize, concurrency: usize, max_time: Duration) -> Self {
        Self { name: format!("{}_{class}", op.name()), op, size, count, concurrency: concurrency.max(1), max_time }
    }
}

/// What one workload measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The workload that ran.
    pub spec: Spec,
    /// Indices (object numbers) of the operations that succeeded, in completion order.
    pub succeeded: Vec<usize>,
    /// Latency of each successful operation.
    pub latencies: Vec<Duration>,
    /// Body bytes moved by the successful operations.
    pub bytes: u64,
    /// Number of failed operations.
    pub errors: usize,
    /// The first failure, for the human output.
    pub first_error: Option<String>,
    /// Time from the first operation's start to the last one's end.
    pub wall: Duration,
    /// Whether the deadline stopped the workload before `count` operations.
    pub timed_out: bool,
    /// CPU the server processes used during the workload, when their pids were given.
    pub server_cpu: Option<crate::cpu::CpuUsed>,
}

impl Outcome {
    /// Successful operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        stats::per_second(self.succeeded.len() as u64, self.wall)
    }

    /// Body megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        stats::megabytes_per_second(self.bytes, self.wall)
    }

    /// Server CPU milliseconds per successful operation, all processes together, when measured.
    pub fn server_cpu_ms_per_op(&self) -> Option<f64> {
        self.per_op(self.server_cpu?.total)
    }

    /// Server CPU milliseconds per successful operation of the busiest process, when measured.
    pub fn busiest_server_cpu_ms_per_op(&self) -> Option<f64> {
        self.per_op(self.server_cpu?.busiest)
    }

    /// `seconds` in milliseconds per successful operation (none without operations).
    fn per_op(&self, seconds: f64) -> Option<f64> {
        let ops = self.succeeded.len();
        (ops > 0).then(|| seconds * 1000.0 / ops as f64)
    }

    /// Latency percentiles of the successful operations.
    pub fn latency(&self) -> Option<LatencySummary> {
        LatencySummary::from_samples(&self.latencies)
    }
}

/// The bodies written by the bench: one pseudo-random buffer (incompressible, so no store
/// gains from compression or deduplication) from which every object body is a zero-copy slice.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The pseudo-random bytes.
    data: Bytes,
}

impl Payload {
    /// A buffer of `len` pseudo-random bytes (xorshift64*, fixed seed), at least 1 byte.
    pub fn new(len: usize) -> Self {
        let len = len.max(1);
        let mut data = Vec::with_capacity(len + 8);
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        while data.len() < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            data.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        data.truncate(len);
        Self { data: Bytes::from(data) }
    }

    /// The body of object number `index` of `size` bytes: a slice starting at an
    /// index-dependent offset, so neighbouring small objects differ.
    pub fn body(&self, index: usize, size: usize) -> anyhow::Result<Bytes> {
        let total = self.data.len();
        if size > total {
            bail!("object size {size} exceeds the payload buffer ({total} bytes)");
        }
        let span = total - size + 1;
        let offset = index.wrapping_mul(4099) % span;
        Ok(self.data.slice(offset..offset + size))
    }
}

/// Where and how the objects of one run are stored.
#[derive(Debug, Clone)]
pub struct Target {
    /// The client (cheap to clone).
    pub client: Client,
    /// Bucket holding every object.
    pub bucket: String,
    /// Key prefix unique to this run, so rounds never overwrite each other.
    pub prefix: String,
    /// Payload signing mode for PutObject.
    pub signing: PayloadSigning,
    /// Source of the object bodies.
    pub payload: Payload,
}

impl Target {
    /// Key of object number `index` of the size class `class`.
    pub fn key(&self, class: &str, index: usize) -> String {
        format!("{}/{class}/{index:07}", self.prefix)
    }

    /// Writes object `index` with the body `body`; returns the bytes sent.
    async fn put(&self, key: String, body: Bytes) -> anyhow::Result<u64> {
        let len = body.len() as u64;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(len as i64)
            .body(ByteStream::from(body));
        let sent = match self.signing {
            PayloadSigning::Unsigned => request.customize().disable_payload_signing().send().await,
            PayloadSigning::Signed => request.send().await,
        };
        sent.map_err(|e| anyhow::anyhow!("PutObject: {}", DisplayErrorContext(&e)))?;
        Ok(len)
    }

    /// Reads object `key` to the end and checks it equals `expected`; returns the bytes read.
    async fn get(&self, key: String, expected: Bytes) -> anyhow::Result<u64> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetObject: {}", DisplayErrorContext(&e)))?;
        let mut body = output.body;
        let mut read = 0usize;
        while let Some(chunk) = body.try_next().await.context("GetObject body")? {
            let end = read + chunk.len();
            if expected.get(read..end) != Some(&chunk[..]) {
                bail!("GetObject body differs from what was written (at byte {read})");
            }
            read = end;
        }
        if read != expected.len() {
            bail!("GetObject returned {read} bytes, expected {}", expected.len());
        }
        Ok(read as u64)
    }

    /// HEADs object `key` and checks its size is `expected`; moves no body bytes.
    async fn head(&self, key: String, expected: usize) -> anyhow::Result<u64> {
        let output = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("HeadObject: {}", DisplayErrorContext(&e)))?;
        if output.content_length() != Some(expected as i64) {
            bail!("HeadObject: size {:?}, expected {expected}", output.content_length());
        }
        Ok(0)
    }

    /// Deletes object `key`.
    async fn delete(&self, key: String) -> anyhow::Result<u64> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DeleteObject: {}", DisplayErrorContext(&e)))?;
        Ok(0)
    }

    /// Lists the keys of size class `class` (one ListObjectsV2 page) and checks there are
    /// `expected` of them; moves no body bytes.
    async fn list(&self, class: &str, expected: usize) -> anyhow::Result<u64> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}/{class}/", self.prefix))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListObjectsV2: {}", DisplayErrorContext(&e)))?;
        let found = output.contents().len();
        if found != expected {
            bail!("ListObjectsV2: {found} keys, expected {expected}");
        }
        Ok(0)
    }
}

/// Runs `spec` against `target` on the objects `indices` of size class `class`
/// (PUT: write them; GET: read them back and compare; HEAD: check their size; DELETE: delete
/// them; LIST: list the class's prefix once per index).
pub async fn run(target: &Target, class: &str, spec: Spec, indices: Vec<usize>) -> Outcome {
    let size = spec.size;
    let op = spec.op;
    let shared = Arc::new(target.clone());
    let class = Arc::<str>::from(class);
    let work = move |index: usize| {
        let target = Arc::clone(&shared);
        let class = Arc::clone(&class);
        async move {
            let key = target.key(&class, index);
            match op {
                Op::Put => target.put(key, target.payload.body(index, size)?).await,
                Op::Get => target.get(key, target.payload.body(index, size)?).await,
                Op::Head => target.head(key, size).await,
                Op::Delete => target.delete(key).await,
                Op::List { objects } => target.list(&class, objects).await,
            }
        }
    };
    run_bounded(spec, indices, work).await
}

/// One worker's tally.
#[derive(Debug, Default)]
struct WorkerTally {
    /// (index, latency) of each success.
    done: Vec<(usize, Duration)>,
    /// Bytes moved.
    bytes: u64,
    /// How many requests failed, for the error count of the result.
    errors: usize,
    /// First failure message.
    first_error: Option<String>,
}

/// Runs `work` once for each entry of `indices` with `spec.concurrency` workers, starting no
/// operation after `spec.max_time`; every operation's latency is measured by the worker.
async fn run_bounded<F, Fut>(spec: Spec, indices: Vec<usize>, work: F) -> Outcome
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let indices: Arc<[usize]> = indices.into_iter().take(spec.count).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + spec.max_time;
    let mut workers = JoinSet::new();
    for _ in 0..spec.concurrency.min(indices.len().max(1)) {
        let indices = Arc::clone(&indices);
        let next = Arc::clone(&next);
        let work = work.clone();
        workers.spawn(async move {
            let mut tally = WorkerTally::default();
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                let Some(&index) = indices.get(slot) else {
                    break;
                };
                if Instant::now() >= deadline {
                    break;
                }
                let began = Instant::now();
                match work(index).await {
                    Ok(bytes) => {
                        tally.done.push((index, began.elapsed()));
                        tally.bytes += bytes;
                    }
                    Err(e) => {
                        tally.errors += 1;
                        if tally.first_error.is_none() {
                            tally.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            tally
        });
    }
    let mut outcome = Outcome {
        spec,
        succeeded: Vec::new(),
        latencies: Vec::new(),
        bytes: 0,
        errors: 0,
        first_error: None,
        wall: Duration::ZERO,
        timed_out: false,
        server_cpu: None,
    };
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(tally) => {
                for (index, latency) in tally.done {
                    outcome.succeeded.push(index);
                    outcome.latencies.push(latency);
                }
                outcome.bytes += tally.bytes;
                outcome.errors += tally.errors;
                if outcome.first_error.is_none() {
                    outcome.first_error = tally.first_error;
                }
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert_with(|| format!("worker task failed: {e}"));
            }
        }
    }
    outcome.wall = start.elapsed();
    outcome.timed_out = outcome.succeeded.len() + outcome.errors < indices.len();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_slices_differ_and_fit() -> anyhow::Result<()> {
        let p = Payload::new(64 * 1024);
        let a = p.body(0, 4096)?;
        let b = p.body(1, 4096)?;
        assert_eq!(a.len(), 4096);
        assert_ne!(a, b);
        assert_eq!(p.body(5, 64 * 1024)?.len(), 64 * 1024);
        assert!(p.body(0, 64 * 1024 + 1).is_err());
        Ok(())
    }

    #[tokio::test]
    async fn bounded_runner_counts_successes_and_errors() {
        let spec = Spec::new(Op::Put, "small", 1, 10, 3, Duration::from_secs(10));
        let outcome = run_bounded(spec, (0..20).collect(), |i: usize| async move {
            if i.is_multiple_of(5) { Err(anyhow::anyhow!("boom {i}")) } else { Ok(2) }
        })
        .await;
        // Only the first `count` = 10 indices run: 0 and 5 fail.
        assert_eq!(outcome.errors, 2);
        assert_eq!(outcome.succeeded.len(), 8);
        assert_eq!(outcome.bytes, 16);
        assert!(!outcome.timed_out);
        assert!(outcome.first_error.is_some_and(|e| e.starts_with("boom")));
    }

    #[tokio::test]
    async fn bounded_runner_stops_at_deadline() {
        let spec = Spec::new(Op::Get, "small", 1, 1000, 2, Duration::from_millis(50));
        let outcome = run_bounded(spec, (0..1000).collect(), |_i: usize| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(1)
        })
        .await;
        assert!(outcome.timed_out);
        assert!(outcome.succeeded.len() < 20, "{}", outcome.succeeded.len());
    }
}
