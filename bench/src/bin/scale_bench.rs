//! `scale_bench`: fills one S3 endpoint on loopback with many objects and measures how the
//! server holds up as it grows (issue #16, "Scale"). `scripts/scale-bench` runs it.
//!
//! - `fill`: PUTs `count` objects of `size` bytes under `prefix` at a fixed concurrency and
//!   prints one JSON progress line every `--progress-seconds` (objects done, the window's rate,
//!   the server's VmRSS and VmHWM from `/proc`), then a summary with the rate of the first 1%
//!   (an all but empty node), the first 10% and the last 10% of the fill.
//! - `list`: lists every key under `prefix` with ListObjectsV2 in pages of 1000 and reports keys
//!   per second over the time spent inside the calls (the server's side, not the client's
//!   bookkeeping between pages).
//!
//! Every operation and the whole run are bounded in time; only loopback is contacted.

// Shared with the main bench binary; this one uses part of each.
#[allow(dead_code)]
#[path = "../client.rs"]
mod client;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::{Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(version, about = "Fills a Meridian node with many objects and lists them (the scale benchmark).")]
struct Args {
    /// S3 endpoint, e.g. https://127.0.0.1:9001.
    #[arg(long)]
    s3: String,
    /// PEM file of the CA an https:// endpoint is trusted by (Meridian's cluster CA).
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// Access key id.
    #[arg(long)]
    access_key: String,
    /// Secret access key.
    #[arg(long)]
    secret_key: String,
    /// Bucket; created if missing.
    #[arg(long, default_value = "scale-bench")]
    bucket: String,
    /// Bound on one S3 operation, seconds.
    #[arg(long, default_value_t = 60)]
    op_timeout_seconds: u64,
    /// What to do.
    #[command(subcommand)]
    command: Mode,
}

/// The measurements.
#[derive(Debug, Subcommand)]
enum Mode {
    /// PUTs `count` objects of `size` bytes, reporting progress, rates and the server's memory.
    Fill {
        /// How many objects.
        #[arg(long)]
        count: usize,
        /// Bytes per object.
        #[arg(long)]
        size: usize,
        /// Key prefix; keys are PREFIX/NNNNNNNNNN.
        #[arg(long, default_value = "o")]
        prefix: String,
        /// PUTs in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Pid of the server whose VmRSS and VmHWM are sampled (Linux).
        #[arg(long)]
        server_pid: Option<u32>,
        /// Seconds between progress lines.
        #[arg(long, default_value_t = 5)]
        progress_seconds: u64,
        /// The fill stops starting PUTs after this many seconds (reported as incomplete).
        #[arg(long, default_value_t = 3600)]
        max_seconds: u64,
    },
    /// Lists every key under `prefix` in pages of `page` keys and times the calls.
    List {
        /// Key prefix given to `fill`.
        #[arg(long, default_value = "o")]
        prefix: String,
        /// Keys per page (ListObjectsV2 max-keys).
        #[arg(long, default_value_t = 1000)]
        page: i32,
        /// Keys the listing must find (0: do not check).
        #[arg(long, default_value_t = 0)]
        expect: usize,
        /// The listing stops after this many seconds (reported as incomplete).
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
}

/// Largest object accepted, so a typo cannot exhaust memory.
const MAX_SIZE: usize = 64 << 20;
/// Largest object count accepted.
const MAX_COUNT: usize = 10_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let endpoint = client::Endpoint {
        url: args.s3.clone(),
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
        region: "us-east-1".into(),
        op_timeout: Duration::from_secs(args.op_timeout_seconds),
        ca_pem: match &args.ca_file {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?),
            None => None,
        },
    };
    let s3 = client::build(&endpoint)?;
    client::ensure_bucket(&s3, &args.bucket).await?;
    match &args.command {
        Mode::Fill { count, size, prefix, concurrency, server_pid, progress_seconds, max_seconds } => {
            if *count == 0 || *count > MAX_COUNT || *size == 0 || *size > MAX_SIZE {
                bail!("--count must be in 1..={MAX_COUNT} and --size in 1..={MAX_SIZE}");
            }
            let plan = FillPlan {
                count: *count,
                size: *size,
                prefix: prefix.clone(),
                concurrency: (*concurrency).clamp(1, 1024),
                server_pid: *server_pid,
                progress: Duration::from_secs((*progress_seconds).max(1)),
                deadline: Duration::from_secs(*max_seconds),
            };
            fill(&s3, &args.bucket, plan).await
        }
        Mode::List { prefix, page, expect, max_seconds } => {
            list(&s3, &args.bucket, prefix, (*page).clamp(1, 1000), *expect, Duration::from_secs(*max_seconds)).await
        }
    }
}

/// What `fill` does.
struct FillPlan {
    /// Objects to PUT.
    count: usize,
    /// Bytes per object.
    size: usize,
    /// Key prefix.
    prefix: String,
    /// PUTs in flight.
    concurrency: usize,
    /// The server whose memory is sampled.
    server_pid: Option<u32>,
    /// Interval of the progress lines.
    progress: Duration,
    /// No PUT starts after this.
    deadline: Duration,
}

/// VmRSS and VmHWM of `pid` in KiB, from `/proc/PID/status` (zeros when unreadable).
fn memory_kib(pid: Option<u32>) -> (u64, u64) {
    let Some(pid) = pid else { return (0, 0) };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return (0, 0) };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The body of object `index`: 8 bytes of its index, then filler, so every body differs.
fn body(filler: &Bytes, index: usize, size: usize) -> Bytes {
    if size < 8 {
        return filler.slice(..size);
    }
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&(index as u64).to_be_bytes());
    bytes.extend_from_slice(&filler[..size - 8]);
    Bytes::from(bytes)
}

/// Rate of the objects completed between two progress samples.
fn window_rate(from: (Duration, usize), to: (Duration, usize)) -> f64 {
    let seconds = to.0.saturating_sub(from.0).as_secs_f64();
    if seconds > 0.0 { (to.1.saturating_sub(from.1)) as f64 / seconds } else { 0.0 }
}

/// PUT rate between the moments the fill passed `from` and `to` objects (linear between samples).
fn rate_between(samples: &[(Duration, usize)], from: usize, to: usize) -> f64 {
    let at = |n: usize| -> Option<Duration> {
        let i = samples.iter().position(|&(_, done)| done >= n)?;
        if i == 0 {
            return Some(samples[0].0);
        }
        let ((t0, n0), (t1, n1)) = (samples[i - 1], samples[i]);
        let part = if n1 > n0 { (n - n0) as f64 / (n1 - n0) as f64 } else { 1.0 };
        Some(t0 + (t1 - t0).mul_f64(part))
    };
    match (at(from), at(to)) {
        (Some(a), Some(b)) if b > a => (to - from) as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    }
}

async fn fill(s3: &aws_sdk_s3::Client, bucket: &str, plan: FillPlan) -> anyhow::Result<()> {
    let filler = Bytes::from(vec![b'm'; plan.size]);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    // The slowest acknowledged PUT since the last progress line, in microseconds: a snapshot
    // build that stalls writes shows here (BENCHMARKS.md, "Scale").
    let window_slowest = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency {
        let (s3, bucket, prefix, filler) = (s3.clone(), bucket.to_owned(), plan.prefix.clone(), filler.clone());
        let (next, done, errors, window_slowest) = (next.clone(), done.clone(), errors.clone(), window_slowest.clone());
        let (count, size, deadline) = (plan.count, plan.size, plan.deadline);
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || started.elapsed() > deadline {
                    return;
                }
                let key = format!("{prefix}/{i:010}");
                let put = s3.put_object().bucket(&bucket).key(&key).body(ByteStream::from(body(&filler, i, size)));
                let sent = Instant::now();
                match put.send().await {
                    Ok(_) => {
                        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                        window_slowest.fetch_max(micros, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("PUT {key}: {}", DisplayErrorContext(&e));
                        }
                    }
                }
            }
        });
    }
    let mut samples = vec![(Duration::ZERO, 0usize)];
    let mut ticker = tokio::time::interval(plan.progress);
    ticker.tick().await;
    let mut peak_rss = 0u64;
    let mut slowest_micros = 0u64;
    loop {
        let tick = tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(_) => false,
            },
            _ = ticker.tick() => true,
        };
        if !tick {
            continue;
        }
        let sample = (started.elapsed(), done.load(Ordering::Relaxed));
        let (rss, hwm) = memory_kib(plan.server_pid);
        peak_rss = peak_rss.max(rss);
        let rate = window_rate(*samples.last().unwrap_or(&(Duration::ZERO, 0)), sample);
        samples.push(sample);
        let window_slowest_ms = window_slowest.swap(0, Ordering::Relaxed) / 1000;
        slowest_micros = slowest_micros.max(window_slowest_ms * 1000);
        println!(
            "{{\"progress\":{},\"of\":{},\"seconds\":{:.1},\"window_put_per_s\":{rate:.0},\"window_slowest_put_ms\":{window_slowest_ms},\"rss_kib\":{rss},\"hwm_kib\":{hwm},\"errors\":{}}}",
            sample.1,
            plan.count,
            sample.0.as_secs_f64(),
            errors.load(Ordering::Relaxed)
        );
    }
    let total = (started.elapsed(), done.load(Ordering::Relaxed));
    samples.push(total);
    let (rss, hwm) = memory_kib(plan.server_pid);
    let slowest_put_ms = slowest_micros.max(window_slowest.load(Ordering::Relaxed)) / 1000;
    let n = total.1;
    let (one, tenth) = ((n / 100).max(1), (n / 10).max(1));
    println!(
        "{{\"fill\":{n},\"of\":{},\"size\":{},\"seconds\":{:.1},\"put_per_s\":{:.0},\"first_1pct_put_per_s\":{:.0},\"first_10pct_put_per_s\":{:.0},\"last_10pct_put_per_s\":{:.0},\"errors\":{},\"slowest_put_ms\":{slowest_put_ms},\"rss_kib\":{rss},\"hwm_kib\":{hwm},\"peak_sampled_rss_kib\":{}}}",
        plan.count,
        plan.size,
        total.0.as_secs_f64(),
        n as f64 / total.0.as_secs_f64().max(1e-9),
        rate_between(&samples, 0, one),
        rate_between(&samples, 0, tenth),
        rate_between(&samples, n - tenth, n),
        errors.load(Ordering::Relaxed),
        peak_rss.max(rss),
    );
    if n < plan.count {
        bail!("the fill stored {n} of {} objects", plan.count);
    }
    Ok(())
}

async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    page: i32,
    expect: usize,
    deadline: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut keys, mut pages, mut in_calls, mut slowest) = (0usize, 0usize, Duration::ZERO, Duration::ZERO);
    let mut token: Option<String> = None;
    let mut last_key = String::new();
    loop {
        if started.elapsed() > deadline {
            bail!("listing stopped after {keys} keys: over {} s", deadline.as_secs());
        }
        let call = Instant::now();
        let answer = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(format!("{prefix}/"))
            .max_keys(page)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListObjectsV2: {}", DisplayErrorContext(&e)))?;
        let took = call.elapsed();
        in_calls += took;
        slowest = slowest.max(took);
        pages += 1;
        for object in answer.contents() {
            let key = object.key().unwrap_or_default();
            if key <= last_key.as_str() {
                bail!("listing out of order: {key:?} after {last_key:?}");
            }
            last_key = key.to_owned();
            keys += 1;
        }
        if pages % 100 == 0 {
            eprintln!("listed {keys} keys in {pages} pages");
        }
        token = answer.next_continuation_token().map(str::to_owned);
        if !answer.is_truncated().unwrap_or(false) || token.is_none() {
            break;
        }
    }
    if expect > 0 && keys != expect {
        bail!("listed {keys} keys, expected {expect}");
    }
    println!(
        "{{\"listed\":{keys},\"pages\":{pages},\"seconds_in_calls\":{:.3},\"keys_per_s\":{:.0},\"mean_page_ms\":{:.2},\"slowest_page_ms\":{:.2},\"wall_seconds\":{:.3}}}",
        in_calls.as_secs_f64(),
        keys as f64 / in_calls.as_secs_f64().max(1e-9),
        in_calls.as_secs_f64() * 1000.0 / pages.max(1) as f64,
        slowest.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_fill_marks_interpolate() {
        let s = |secs: u64, n: usize| (Duration::from_secs(secs), n);
        let samples = [s(0, 0), s(10, 1000), s(20, 1500)];
        assert!((rate_between(&samples, 0, 1000) - 100.0).abs() < 1e-6);
        assert!((rate_between(&samples, 1000, 1500) - 50.0).abs() < 1e-6);
        assert!((rate_between(&samples, 500, 1250) - 750.0 / 10.0).abs() < 1e-6);
        assert_eq!(rate_between(&samples, 0, 5000), 0.0, "a mark never reached has no rate");
    }

    #[test]
    fn bodies_differ_and_have_their_size() {
        let filler = Bytes::from(vec![b'm'; 1024]);
        assert_eq!(body(&filler, 1, 1024).len(), 1024);
        assert_ne!(body(&filler, 1, 1024), body(&filler, 2, 1024));
        assert_eq!(body(&filler, 1, 3).len(), 3);
    }
}
