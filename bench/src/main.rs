//! `meridian-bench`: measures one S3 endpoint on loopback, bounded in count and time, and prints
//! one JSON line and one human line per workload. Two suites:
//!
//! - `throughput` (default): small-object PUT and GET at a fixed concurrency, large-object PUT
//!   and GET. `scripts/bench` runs it against Meridian (one node, or the leader and a follower
//!   of a three-node cluster) and SeaweedFS and tabulates the medians.
//! - `latency`: one request at a time, PUT, GET, HEAD, ListObjectsV2 and DELETE of small
//!   objects, reporting mean, p50 and p99. `scripts/wan-bench` runs it against a follower of a
//!   cluster whose nodes are a WAN round trip apart.

mod client;
mod cpu;
mod stats;
mod workload;

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;

use crate::workload::{Op, Outcome, Payload, PayloadSigning, Spec, Target};

/// Command line of the bench.
#[derive(Debug, Parser)]
#[command(version, about = "S3 benchmark for one endpoint on loopback (throughput or per-request latency).")]
struct Args {
    /// Which workloads: `throughput` (small and large PUT then GET) or `latency` (small PUT,
    /// GET, HEAD, LIST, DELETE; use it with --concurrency 1).
    #[arg(long, value_enum, default_value_t = Suite::Throughput)]
    suite: Suite,
    /// Latency suite: objects under the prefix that ListObjectsV2 lists.
    #[arg(long, default_value_t = 10)]
    list_objects: usize,
    /// S3 endpoint; must be a loopback address, e.g. http://127.0.0.1:9001.
    #[arg(long)]
    endpoint: String,
    /// PEM file of the CA an https:// endpoint is trusted by (Meridian's cluster CA).
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// Access key id.
    #[arg(long)]
    access_key: String,
    /// Secret access key.
    #[arg(long)]
    secret_key: String,
    /// Signing region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket to write to; created if missing.
    #[arg(long, default_value = "meridian-bench")]
    bucket: String,
    /// Name of the system under test, copied into every output line.
    #[arg(long, default_value = "s3")]
    label: String,
    /// Key prefix for this run's objects (default: bench-UNIXTIME-PID).
    #[arg(long)]
    prefix: Option<String>,
    /// Number of small objects written (then read back).
    #[arg(long, default_value_t = 2000)]
    small_count: usize,
    /// Size of a small object in bytes.
    #[arg(long, default_value_t = 4096)]
    small_size: usize,
    /// Small-object operations in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Number of large objects written (then read back); 0 skips the large workloads.
    #[arg(long, default_value_t = 4)]
    large_count: usize,
    /// Size of a large object in MiB (one PutObject with the whole body in memory).
    #[arg(long, default_value_t = 64)]
    large_size_mib: usize,
    /// Large-object operations in flight at once.
    #[arg(long, default_value_t = 1)]
    large_concurrency: usize,
    /// Time bound of each workload in seconds: no operation starts after it.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Bound on one operation in seconds; a slower one counts as an error.
    #[arg(long, default_value_t = 60)]
    op_timeout_seconds: u64,
    /// PutObject payload signing: `unsigned` (UNSIGNED-PAYLOAD) or `signed` (SHA-256 of the body).
    #[arg(long, value_enum, default_value_t = PayloadSigning::Unsigned)]
    payload_signing: PayloadSigning,
    /// Print one JSON object per workload on stdout (human lines then go to stderr).
    #[arg(long)]
    json: bool,
    /// Pids of the server processes (comma-separated, Linux): each workload then reports the
    /// CPU time they used per operation.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
}

/// The sets of workloads `meridian-bench` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Suite {
    /// Small and large PUT then GET, at fixed concurrencies.
    Throughput,
    /// Small PUT, GET, HEAD, LIST and DELETE: the per-request latencies.
    Latency,
}

/// Largest object size accepted, so a typo cannot ask for more memory than the machine has.
const MAX_OBJECT_BYTES: usize = 1 << 30;
/// Largest operation count accepted per workload.
const MAX_COUNT: usize = 1_000_000;

/// Parses the command line, runs the workloads and prints their results.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run(args).await
}

/// Checks the arguments, then runs the chosen suite.
async fn run(args: Args) -> anyhow::Result<()> {
    let large_size = args
        .large_size_mib
        .checked_mul(1 << 20)
        .filter(|&n| n <= MAX_OBJECT_BYTES)
        .context("--large-size-mib is too large (at most 1024)")?;
    if args.small_size == 0 || args.small_size > MAX_OBJECT_BYTES {
        bail!("--small-size must be between 1 and {MAX_OBJECT_BYTES}");
    }
    if args.small_count > MAX_COUNT || args.large_count > MAX_COUNT {
        bail!("counts are limited to {MAX_COUNT}");
    }
    if args.max_seconds == 0 || args.op_timeout_seconds == 0 {
        bail!("--max-seconds and --op-timeout-seconds must be positive");
    }
    let endpoint = client::Endpoint {
        url: args.endpoint.clone(),
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
        region: args.region.clone(),
        op_timeout: Duration::from_secs(args.op_timeout_seconds),
        ca_pem: match &args.ca_file {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?),
            None => None,
        },
    };
    let s3 = client::build(&endpoint)?;
    client::ensure_bucket(&s3, &args.bucket).await?;

    // Large enough for one large object, and for small objects at many distinct offsets.
    let small_room = args.small_size.saturating_mul(64).min(MAX_OBJECT_BYTES);
    let large = args.suite == Suite::Throughput && args.large_count > 0;
    let payload_len = if large { large_size.max(small_room) } else { small_room };
    let payload = Payload::new(payload_len);
    let target = Target {
        client: s3,
        bucket: args.bucket.clone(),
        prefix: args.prefix.clone().unwrap_or_else(default_prefix),
        signing: args.payload_signing,
        payload,
    };
    let max_time = Duration::from_secs(args.max_seconds);
    let out = Output { json: args.json, label: &args.label, server_pids: &args.server_pids };
    match args.suite {
        Suite::Throughput => throughput(&args, &target, large_size, max_time, &out).await,
        Suite::Latency => latency(&args, &target, max_time, &out).await,
    }
}

/// The throughput suite, in order: small PUT, small GET, large PUT, large GET.
async fn throughput(
    args: &Args,
    target: &Target,
    large_size: usize,
    max_time: Duration,
    out: &Output<'_>,
) -> anyhow::Result<()> {
    let mut failed = false;

    let small = (args.small_size, args.small_count, args.concurrency);
    let large = (large_size, args.large_count, args.large_concurrency);
    for (class, (size, count, concurrency)) in [("small", small), ("large", large)] {
        if count == 0 {
            continue;
        }
        let put = Spec::new(Op::Put, class, size, count, concurrency, max_time);
        let written = out.measure(workload::run(target, class, put, (0..count).collect())).await;
        out.print(&written)?;
        failed |= written.succeeded.is_empty();
        if written.succeeded.is_empty() {
            continue;
        }
        let get = Spec::new(Op::Get, class, size, written.succeeded.len(), concurrency, max_time);
        let mut indices = written.succeeded.clone();
        indices.sort_unstable();
        let read = out.measure(workload::run(target, class, get, indices)).await;
        out.print(&read)?;
        failed |= read.succeeded.is_empty();
    }
    if failed {
        bail!("a workload had no successful operation");
    }
    Ok(())
}

/// The latency suite on small objects, in order: PUT of `small_count` new objects, GET and
/// HEAD of each, `small_count` listings of a prefix holding `list_objects` keys (written first,
/// not measured), then DELETE of each. Any failed operation fails the run: a latency figure
/// over a partial sample would mislead.
async fn latency(args: &Args, target: &Target, max_time: Duration, out: &Output<'_>) -> anyhow::Result<()> {
    let (size, count, concurrency) = (args.small_size, args.small_count, args.concurrency);
    if args.list_objects == 0 || args.list_objects > 1000 {
        bail!("--list-objects must be between 1 and 1000 (one ListObjectsV2 page)");
    }
    let all = || (0..count).collect::<Vec<_>>();
    let fixture = Spec::new(Op::Put, "list", size, args.list_objects, concurrency, max_time);
    let listed = workload::run(target, "list", fixture, (0..args.list_objects).collect()).await;
    if listed.errors > 0 || listed.succeeded.len() != args.list_objects {
        bail!("writing the objects to list failed: {:?}", listed.first_error);
    }
    let steps = [
        (Op::Put, "small"),
        (Op::Get, "small"),
        (Op::Head, "small"),
        (Op::List { objects: args.list_objects }, "list"),
        (Op::Delete, "small"),
    ];
    let mut errors = 0;
    for (op, class) in steps {
        let spec = Spec::new(op, "small", size, count, concurrency, max_time);
        let outcome = out.measure(workload::run(target, class, spec, all())).await;
        out.print(&outcome)?;
        errors += outcome.errors;
    }
    if errors > 0 {
        bail!("{errors} operation(s) failed");
    }
    Ok(())
}

/// A key prefix unique to this process: `bench-<unix seconds>-<pid>`.
fn default_prefix() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    format!("bench-{secs}-{}", std::process::id())
}

/// Where and how results are printed.
struct Output<'a> {
    /// JSON lines on stdout, human lines on stderr.
    json: bool,
    /// System name copied into every line.
    label: &'a str,
    /// Server processes whose CPU time each workload reports (none: not measured).
    server_pids: &'a [u32],
}

impl Output<'_> {
    /// Runs a workload, recording the CPU time the server processes used meanwhile.
    async fn measure(&self, workload: impl std::future::Future<Output = Outcome>) -> Outcome {
        if self.server_pids.is_empty() {
            return workload.await;
        }
        let before = cpu::seconds_each(self.server_pids);
        let mut outcome = workload.await;
        match (before, cpu::seconds_each(self.server_pids)) {
            (Ok(before), Ok(after)) => outcome.server_cpu = Some(cpu::CpuUsed::between(&before, &after)),
            (Err(e), _) | (_, Err(e)) => eprintln!("  server CPU not measured: {e:#}"),
        }
        outcome
    }

    /// Prints the JSON line (if asked) and the human line of one workload.
    fn print(&self, outcome: &Outcome) -> anyhow::Result<()> {
        let human = human_line(self.label, outcome);
        if self.json {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", json_line(self.label, outcome))?;
            stdout.flush()?;
            eprintln!("{human}");
        } else {
            println!("{human}");
        }
        if let Some(error) = &outcome.first_error {
            eprintln!("  first error ({} in all): {error}", outcome.errors);
        }
        Ok(())
    }
}

/// The machine-readable line of one workload: a flat JSON object.
fn json_line(label: &str, o: &Outcome) -> String {
    let (mean, p50, p99, max) = match o.latency() {
        Some(l) => (stats::millis(l.mean), stats::millis(l.p50), stats::millis(l.p99), stats::millis(l.max)),
        None => (0.0, 0.0, 0.0, 0.0),
    };
    format!(
        concat!(
            "{{\"system\":{},\"workload\":{},\"object_size\":{},\"concurrency\":{},",
            "\"ops\":{},\"errors\":{},\"timed_out\":{},\"seconds\":{:.6},\"ops_per_sec\":{:.3},",
            "\"mb_per_sec\":{:.3},\"mean_ms\":{:.3},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},",
            "\"server_cpu_ms_per_op\":{},\"busiest_server_cpu_ms_per_op\":{}}}"
        ),
        json_string(label),
        json_string(&o.spec.name),
        o.spec.size,
        o.spec.concurrency,
        o.succeeded.len(),
        o.errors,
        o.timed_out,
        o.wall.as_secs_f64(),
        o.ops_per_sec(),
        o.mb_per_sec(),
        mean,
        p50,
        p99,
        max,
        o.server_cpu_ms_per_op().map_or_else(|| "null".to_owned(), |ms| format!("{ms:.4}")),
        o.busiest_server_cpu_ms_per_op().map_or_else(|| "null".to_owned(), |ms| format!("{ms:.4}")),
    )
}

/// The human-readable line of one workload.
fn human_line(label: &str, o: &Outcome) -> String {
    let size = if o.spec.size.is_multiple_of(1 << 20) {
        format!("{} MiB", o.spec.size >> 20)
    } else if o.spec.size.is_multiple_of(1024) {
        format!("{} KiB", o.spec.size >> 10)
    } else {
        format!("{} B", o.spec.size)
    };
    let verb = o.spec.op.verb();
    let latency = o.latency().map_or_else(
        || "no latency".to_owned(),
        |l| {
            format!(
                "mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms",
                stats::millis(l.mean),
                stats::millis(l.p50),
                stats::millis(l.p99)
            )
        },
    );
    let cpu = o.server_cpu_ms_per_op().map_or_else(String::new, |ms| format!("  server CPU {ms:.3} ms/op"));
    format!(
        "{label:<18} {verb:<6} {size:>7} x{:<6} c{:<3} {:>10.1} ops/s {:>9.1} MB/s  {latency}{cpu}  errors {}{}",
        o.succeeded.len(),
        o.spec.concurrency,
        o.ops_per_sec(),
        o.mb_per_sec(),
        o.errors,
        if o.timed_out { "  (stopped by --max-seconds)" } else { "" },
    )
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("seaweed"), "\"seaweed\"");
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn json_line_has_every_field() {
        let spec = Spec::new(Op::Put, "small", 4096, 2, 16, Duration::from_secs(1));
        let outcome = Outcome {
            spec,
            succeeded: vec![0, 1],
            latencies: vec![Duration::from_millis(2), Duration::from_millis(4)],
            bytes: 8192,
            errors: 0,
            first_error: None,
            wall: Duration::from_millis(500),
            timed_out: false,
            server_cpu: Some(cpu::CpuUsed { total: 0.01, busiest: 0.004 }),
        };
        let line = json_line("meridian", &outcome);
        for field in [
            "\"system\":\"meridian\"",
            "\"workload\":\"put_small\"",
            "\"object_size\":4096",
            "\"ops\":2",
            "\"ops_per_sec\":4.000",
            "\"mean_ms\":3.000",
            "\"p50_ms\":2.000",
            "\"p99_ms\":4.000",
            "\"server_cpu_ms_per_op\":5.0000",
            "\"busiest_server_cpu_ms_per_op\":2.0000",
        ] {
            assert!(line.contains(field), "{field} missing in {line}");
        }
    }
}
