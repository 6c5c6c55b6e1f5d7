//! `replication_bench`: measures replication on a running Meridian cluster on loopback, through
//! its S3 API and its placement API (`GET /api/v1/objects/{bucket}/{key}/placement`).
//!
//! - `lag`: PUTs objects one at a time to one node and, for each, times how long after the PUT
//!   was acknowledged the placement API lists every member as a holder.
//! - `fill`: PUTs objects under a prefix and waits until the given nodes hold them all; writes
//!   their blob ids to a file (so a script can copy the same files with `cp`).
//! - `catchup`: waits until one node (restarted by the script after `fill`) holds every object
//!   of the prefix, and reports its pull throughput from the holders' timestamps.
//!
//! `scripts/replication-bench` starts the cluster, runs these in order, measures `cp` of the same
//! bytes between two data dirs, and tabulates. Every wait is bounded; only loopback is contacted.

// Shared with the main bench binary; this one uses part of each.
#[allow(dead_code)]
#[path = "../client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde::Deserialize;

/// Command line.
#[derive(Debug, Parser)]
#[command(version, about = "Replication lag and catch-up throughput of a Meridian cluster on loopback.")]
struct Args {
    /// S3 endpoint of the node that takes the PUTs, e.g. http://127.0.0.1:9001.
    #[arg(long)]
    s3: String,
    /// Web endpoint (placement API) of the node whose view is polled, e.g. http://127.0.0.1:8001.
    #[arg(long)]
    web: String,
    /// Access key id (also the placement API's Basic user).
    #[arg(long)]
    access_key: String,
    /// Secret access key.
    #[arg(long)]
    secret_key: String,
    /// Bucket; created if missing.
    #[arg(long, default_value = "replication-bench")]
    bucket: String,
    /// Bound on one S3 operation, seconds.
    #[arg(long, default_value_t = 120)]
    op_timeout_seconds: u64,
    /// What to measure.
    #[command(subcommand)]
    command: Mode,
}

/// The measurements.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Sequential PUTs; per object, time from the PUT's acknowledgement until every member holds it.
    Lag {
        /// Object size, MiB.
        #[arg(long)]
        size_mib: usize,
        /// How many objects to PUT, one after another.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Placement poll interval, milliseconds (the resolution of the polled lag).
        #[arg(long, default_value_t = 2)]
        poll_ms: u64,
        /// Longest wait for one object to be everywhere, seconds.
        #[arg(long, default_value_t = 120)]
        timeout_seconds: u64,
    },
    /// PUTs `count` objects under `prefix` and waits until the nodes `wait_nodes` hold them all.
    Fill {
        /// Object size, MiB.
        #[arg(long)]
        size_mib: usize,
        /// How many objects to PUT before waiting.
        #[arg(long)]
        count: usize,
        /// Key prefix.
        #[arg(long)]
        prefix: String,
        /// PUTs in flight.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Node ids that must hold every object before `fill` returns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        wait_nodes: Vec<u64>,
        /// File to write the blob ids to, one per line.
        #[arg(long)]
        blob_list: std::path::PathBuf,
        /// Longest wait, seconds.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
    /// Waits until node `node_id` holds every object of `prefix`; reports its pull throughput.
    Catchup {
        /// The node catching up.
        #[arg(long)]
        node_id: u64,
        /// Key prefix given to `fill`.
        #[arg(long)]
        prefix: String,
        /// Objects given to `fill`.
        #[arg(long)]
        count: usize,
        /// Unix ms when the node was started.
        #[arg(long)]
        spawned_ms: i64,
        /// Unix ms when the node first answered ready.
        #[arg(long)]
        ready_ms: i64,
        /// Longest wait, seconds.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
}

/// The part of the placement API's answer used here.
#[derive(Debug, Deserialize)]
struct Placement {
    /// Object size.
    size: u64,
    /// Blob id; none for inline objects.
    blob: Option<String>,
    /// Holders and when each got the bytes.
    holders: Vec<Holder>,
    /// True once every member holds the bytes.
    replicated: bool,
}

/// One holder in a placement answer.
#[derive(Debug, Deserialize)]
struct Holder {
    /// Raft node id.
    node_id: u64,
    /// When it got the bytes, Unix ms.
    since_ms: i64,
}

/// Largest object accepted, so a typo cannot exhaust memory.
const MAX_SIZE_MIB: usize = 1024;
/// Largest object count accepted.
const MAX_COUNT: usize = 100_000;
/// Poll interval of `fill` and `catchup` (many objects per round, so not too eager).
const BULK_POLL: Duration = Duration::from_millis(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    client::ensure_loopback(&args.web)?;
    let endpoint = client::Endpoint {
        url: args.s3.clone(),
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
        region: "us-east-1".into(),
        op_timeout: Duration::from_secs(args.op_timeout_seconds),
        ca_pem: None,
    };
    let s3 = client::build(&endpoint)?;
    client::ensure_bucket(&s3, &args.bucket).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let bench = Bench { s3, http, args: &args };
    match &args.command {
        Mode::Lag { size_mib, count, poll_ms, timeout_seconds } => {
            bench.lag(*size_mib, *count, Duration::from_millis(*poll_ms), Duration::from_secs(*timeout_seconds)).await
        }
        Mode::Fill { size_mib, count, prefix, concurrency, wait_nodes, blob_list, timeout_seconds } => {
            let timeout = Duration::from_secs(*timeout_seconds);
            bench.fill(*size_mib, *count, prefix, *concurrency, wait_nodes, blob_list, timeout).await
        }
        Mode::Catchup { node_id, prefix, count, spawned_ms, ready_ms, timeout_seconds } => {
            let timeout = Duration::from_secs(*timeout_seconds);
            bench.catchup(*node_id, prefix, *count, (*spawned_ms, *ready_ms), timeout).await
        }
    }
}

/// Clients and settings shared by the modes.
struct Bench<'a> {
    /// S3 client of the node taking the PUTs.
    s3: aws_sdk_s3::Client,
    /// Client of the placement API.
    http: reqwest::Client,
    /// The command line.
    args: &'a Args,
}

/// Now, Unix ms.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `size` pseudo-random bytes (xorshift; incompressible enough, and cheap).
fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// The same bytes with the object's index in front, so no two objects are alike.
fn object_body(base: &[u8], index: usize) -> Bytes {
    let mut body = base.to_vec();
    let tag = (index as u64).to_le_bytes();
    let n = tag.len().min(body.len());
    body[..n].copy_from_slice(&tag[..n]);
    Bytes::from(body)
}

/// Checks a size in MiB and returns it in bytes.
fn size_bytes(size_mib: usize) -> anyhow::Result<usize> {
    if size_mib == 0 || size_mib > MAX_SIZE_MIB {
        bail!("--size-mib must be 1..={MAX_SIZE_MIB}");
    }
    Ok(size_mib << 20)
}

/// Percent-encodes a key for a URL path, keeping `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Bench<'_> {
    /// PUTs one object and returns when it was acknowledged (Instant, Unix ms).
    async fn put(&self, key: &str, body: Bytes) -> anyhow::Result<(Instant, i64)> {
        self.s3
            .put_object()
            .bucket(&self.args.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("PUT {key}: {}", DisplayErrorContext(&e)))?;
        Ok((Instant::now(), now_ms()))
    }

    /// The placement of `key` as the polled node sees it.
    async fn placement(&self, key: &str) -> anyhow::Result<Placement> {
        let url = format!("{}/api/v1/objects/{}/{}/placement", self.args.web, self.args.bucket, encode_key(key));
        let resp = self
            .http
            .get(&url)
            .basic_auth(&self.args.access_key, Some(&self.args.secret_key))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", resp.text().await.unwrap_or_default());
        }
        resp.json().await.with_context(|| format!("GET {url}: bad JSON"))
    }

    /// Sequential PUTs; per object, the polled lag and the lag by holder timestamps.
    async fn lag(&self, size_mib: usize, count: usize, poll: Duration, timeout: Duration) -> anyhow::Result<()> {
        let size = size_bytes(size_mib)?;
        if count == 0 || count > MAX_COUNT {
            bail!("--count must be 1..={MAX_COUNT}");
        }
        let base = payload(size, 0x5eed ^ size as u64);
        let run = now_ms();
        let (mut polled, mut stamped) = (Vec::with_capacity(count), Vec::with_capacity(count));
        for i in 0..count {
            let key = format!("lag-{run}/{size_mib}MiB/{i:05}");
            let (acked, acked_ms) = self.put(&key, object_body(&base, i)).await?;
            let deadline = acked + timeout;
            let placement = loop {
                let placement = self.placement(&key).await?;
                if placement.replicated {
                    break placement;
                }
                if Instant::now() > deadline {
                    bail!("{key} not on every member {timeout:?} after its PUT: {placement:?}");
                }
                tokio::time::sleep(poll).await;
            };
            polled.push(acked.elapsed());
            let last_copy = placement.holders.iter().map(|h| h.since_ms).max().unwrap_or(acked_ms);
            stamped.push(Duration::from_millis(u64::try_from(last_copy - acked_ms).unwrap_or(0)));
        }
        let polled = stats::LatencySummary::from_samples(&polled).context("no samples")?;
        let stamped = stats::LatencySummary::from_samples(&stamped).context("no samples")?;
        eprintln!(
            "lag {size_mib} MiB x {count}: placement says replicated after p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
             (poll {poll:?}); last holder's own timestamp p50 {:.1} ms, p99 {:.1} ms",
            stats::millis(polled.p50),
            stats::millis(polled.p99),
            stats::millis(polled.max),
            stats::millis(stamped.p50),
            stats::millis(stamped.p99),
        );
        println!(
            "{{\"mode\":\"lag\",\"size_mib\":{size_mib},\"count\":{count},\"poll_ms\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\
             \"max_ms\":{:.3},\"stamped_p50_ms\":{:.3},\"stamped_p99_ms\":{:.3}}}",
            poll.as_millis(),
            stats::millis(polled.p50),
            stats::millis(polled.p99),
            stats::millis(polled.max),
            stats::millis(stamped.p50),
            stats::millis(stamped.p99),
        );
        Ok(())
    }

    /// PUTs `count` objects (at most `concurrency` at once), waits until `wait_nodes` hold them,
    /// writes the blob ids to `blob_list`.
    #[allow(clippy::too_many_arguments)] // one per command-line option of the mode
    async fn fill(
        &self,
        size_mib: usize,
        count: usize,
        prefix: &str,
        concurrency: usize,
        wait_nodes: &[u64],
        blob_list: &std::path::Path,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let size = size_bytes(size_mib)?;
        if count == 0 || count > MAX_COUNT || concurrency == 0 {
            bail!("--count must be 1..={MAX_COUNT} and --concurrency positive");
        }
        let base = payload(size, 0xf111 ^ size as u64);
        let started = Instant::now();
        let mut next = 0;
        let mut running = tokio::task::JoinSet::new();
        while next < count || !running.is_empty() {
            while next < count && running.len() < concurrency {
                let (s3, bucket, key, body) = (
                    self.s3.clone(),
                    self.args.bucket.clone(),
                    format!("{prefix}/{next:05}"),
                    object_body(&base, next),
                );
                running.spawn(async move {
                    s3.put_object()
                        .bucket(bucket)
                        .key(&key)
                        .body(ByteStream::from(body))
                        .send()
                        .await
                        .map_err(|e| anyhow::anyhow!("PUT {key}: {}", DisplayErrorContext(&e)))
                });
                next += 1;
            }
            if let Some(done) = running.join_next().await {
                done.context("PUT task")??;
            }
        }
        let written = started.elapsed();
        let deadline = Instant::now() + timeout;
        let mut blobs = BTreeMap::new();
        for i in 0..count {
            let key = format!("{prefix}/{i:05}");
            loop {
                let placement = self.placement(&key).await?;
                let held = wait_nodes.iter().all(|n| placement.holders.iter().any(|h| h.node_id == *n));
                if held {
                    blobs.insert(i, placement.blob.context("a large object has a blob")?);
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{key} not held by nodes {wait_nodes:?} within {timeout:?}: {placement:?}");
                }
                tokio::time::sleep(BULK_POLL).await;
            }
        }
        let list: String = blobs.values().map(|b| format!("{b}\n")).collect();
        std::fs::write(blob_list, list).with_context(|| format!("writing {}", blob_list.display()))?;
        let bytes = (size * count) as u64;
        eprintln!(
            "fill: {count} x {size_mib} MiB written in {:.2} s ({:.0} MB/s), held by nodes {wait_nodes:?} after {:.2} s",
            written.as_secs_f64(),
            stats::megabytes_per_second(bytes, written),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Waits until `node_id` holds every object of `prefix`; throughput from its timestamps.
    async fn catchup(
        &self,
        node_id: u64,
        prefix: &str,
        count: usize,
        (spawned_ms, ready_ms): (i64, i64),
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut got: BTreeMap<usize, (i64, u64)> = BTreeMap::new();
        while got.len() < count {
            let missing: Vec<usize> = (0..count).filter(|i| !got.contains_key(i)).collect();
            for i in missing {
                let placement = self.placement(&format!("{prefix}/{i:05}")).await?;
                if let Some(holder) = placement.holders.iter().find(|h| h.node_id == node_id) {
                    got.insert(i, (holder.since_ms, placement.size));
                }
            }
            if got.len() < count {
                if Instant::now() > deadline {
                    bail!("node {node_id} holds {} of {count} objects after {timeout:?}", got.len());
                }
                tokio::time::sleep(BULK_POLL).await;
            }
        }
        let bytes: u64 = got.values().map(|(_, size)| size).sum();
        let last = got.values().map(|(since, _)| *since).max().unwrap_or(ready_ms);
        let first = got.values().map(|(since, _)| *since).min().unwrap_or(ready_ms);
        let window = |from: i64| Duration::from_millis(u64::try_from(last - from).unwrap_or(0).max(1));
        let (from_spawn, from_ready) = (window(spawned_ms), window(ready_ms));
        eprintln!(
            "catch-up of node {node_id}: {count} objects, {:.0} MB; last copy {:.2} s after spawn ({:.0} MB/s), \
             {:.2} s after ready ({:.0} MB/s); first copy {:.2} s after ready",
            bytes as f64 / 1e6,
            from_spawn.as_secs_f64(),
            stats::megabytes_per_second(bytes, from_spawn),
            from_ready.as_secs_f64(),
            stats::megabytes_per_second(bytes, from_ready),
            (first - ready_ms) as f64 / 1000.0,
        );
        println!(
            "{{\"mode\":\"catchup\",\"node_id\":{node_id},\"count\":{count},\"bytes\":{bytes},\
             \"seconds_from_spawn\":{:.3},\"seconds_from_ready\":{:.3},\"mb_per_sec_from_spawn\":{:.3},\
             \"mb_per_sec_from_ready\":{:.3}}}",
            from_spawn.as_secs_f64(),
            from_ready.as_secs_f64(),
            stats::megabytes_per_second(bytes, from_spawn),
            stats::megabytes_per_second(bytes, from_ready),
        );
        Ok(())
    }
}
