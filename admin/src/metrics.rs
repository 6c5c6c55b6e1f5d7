//! Prometheus metrics: counted with atomics where things happen (the node's S3 listener, the
//! routing API), written out as the Prometheus text format by `GET /metrics` on the web
//! listener, together with figures read at scrape time (Raft, the replication queue, peers).
//!
//! Hand-written rather than a metrics crate: a fixed, small set of series, no allocation on the
//! request path, and no extra dependency to build on a two-core machine.
//!
//! `/metrics` needs no credentials, as Prometheus scrapers expect; it tells operation counts and
//! cluster health, never keys, names of objects or addresses of clients.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use meridian_geo::{Health, Operation, Outcome};
use meridian_raft::model::WorkItem;

use crate::WebState;

/// What an S3 request does, told apart by method and path shape only (cheap, and the same for
/// every client). Virtual-host style requests look like path-style ones one level up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    /// `GET /`.
    ListBuckets,
    /// `GET /bucket`.
    ListObjects,
    /// Any other bucket-level request (create, delete, head, location...).
    Bucket,
    /// `GET /bucket/key`.
    GetObject,
    /// `HEAD /bucket/key`.
    HeadObject,
    /// `PUT /bucket/key` (also copies).
    PutObject,
    /// `DELETE /bucket/key`.
    DeleteObject,
    /// Anything with `uploads` or `uploadId` in the query.
    Multipart,
    /// The rest.
    Other,
}

impl S3Op {
    /// Every operation, in label order.
    const ALL: [S3Op; 9] = [
        Self::ListBuckets,
        Self::ListObjects,
        Self::Bucket,
        Self::GetObject,
        Self::HeadObject,
        Self::PutObject,
        Self::DeleteObject,
        Self::Multipart,
        Self::Other,
    ];

    /// Classifies a request.
    pub fn classify(method: &axum::http::Method, path: &str, query: Option<&str>) -> Self {
        let multipart = query.is_some_and(|q| {
            q.split('&').any(|p| {
                let name = p.split('=').next().unwrap_or_default();
                name == "uploads" || name == "uploadId"
            })
        });
        if multipart {
            return Self::Multipart;
        }
        let path = path.trim_start_matches('/');
        let has_key = path.split_once('/').is_some_and(|(_, key)| !key.is_empty());
        match (path.is_empty(), has_key, method.as_str()) {
            (true, _, "GET") => Self::ListBuckets,
            (true, _, _) => Self::Other,
            (false, false, "GET") => Self::ListObjects,
            (false, false, _) => Self::Bucket,
            (false, true, "GET") => Self::GetObject,
            (false, true, "HEAD") => Self::HeadObject,
            (false, true, "PUT") => Self::PutObject,
            (false, true, "DELETE") => Self::DeleteObject,
            (false, true, _) => Self::Other,
        }
    }

    /// The `op` label.
    fn label(self) -> &'static str {
        match self {
            Self::ListBuckets => "list_buckets",
            Self::ListObjects => "list_objects",
            Self::Bucket => "bucket",
            Self::GetObject => "get_object",
            Self::HeadObject => "head_object",
            Self::PutObject => "put_object",
            Self::DeleteObject => "delete_object",
            Self::Multipart => "multipart",
            Self::Other => "other",
        }
    }
}

/// Upper bounds of the latency histogram buckets, seconds.
const LATENCY_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Status classes counted: 2xx, 3xx, 4xx, 5xx, and "error" (no response: the handler failed or
/// the client went away first).
const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "error"];

/// Counters of one S3 operation.
#[derive(Debug, Default)]
struct OpCounters {
    /// Requests started and not finished (a download finishes with its last byte).
    in_flight: AtomicI64,
    /// Finished requests by status class.
    requests: [AtomicU64; CLASSES.len()],
    /// Response body bytes sent.
    bytes_out: AtomicU64,
    /// Request body bytes announced by `Content-Length`.
    bytes_in: AtomicU64,
    /// Latency until the response head, per bucket (not cumulative; summed when written).
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of latencies, microseconds.
    latency_sum_us: AtomicU64,
}

/// The S3 listener's counters.
#[derive(Debug, Default)]
pub struct S3Metrics {
    /// Per operation, in [`S3Op::ALL`] order.
    ops: [OpCounters; S3Op::ALL.len()],
}

impl S3Metrics {
    /// Counts a request that starts now; the guard counts how it ends.
    pub fn start(self: &Arc<Self>, op: S3Op, content_length: u64) -> RequestGuard {
        let counters = &self.ops[op as usize];
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        counters.bytes_in.fetch_add(content_length, Ordering::Relaxed);
        RequestGuard { metrics: self.clone(), op, started: Instant::now(), responded: false }
    }

    /// Requests in flight, all operations.
    pub fn in_flight(&self) -> u64 {
        let total: i64 = self.ops.iter().map(|o| o.in_flight.load(Ordering::Relaxed)).sum();
        u64::try_from(total).unwrap_or(0)
    }

    /// Response bytes sent since start, all operations.
    pub fn bytes_out(&self) -> u64 {
        self.ops.iter().map(|o| o.bytes_out.load(Ordering::Relaxed)).sum()
    }
}

/// One S3 request being served. Dropped when its response body is done (or abandoned).
#[derive(Debug)]
pub struct RequestGuard {
    /// Where to count.
    metrics: Arc<S3Metrics>,
    /// Which operation.
    op: S3Op,
    /// When it started, for the latency.
    started: Instant,
    /// Whether a response head was produced.
    responded: bool,
}

impl RequestGuard {
    /// The response head is ready with `status`: records the latency and the status class.
    pub fn responded(&mut self, status: u16) {
        if self.responded {
            return;
        }
        self.responded = true;
        let counters = &self.metrics.ops[self.op as usize];
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        counters.requests[class].fetch_add(1, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let bucket = LATENCY_BUCKETS.iter().position(|b| elapsed.as_secs_f64() <= *b).unwrap_or(LATENCY_BUCKETS.len());
        counters.latency[bucket].fetch_add(1, Ordering::Relaxed);
        counters.latency_sum_us.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// `n` more response body bytes went out.
    pub fn sent(&self, n: u64) {
        self.metrics.ops[self.op as usize].bytes_out.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let counters = &self.metrics.ops[self.op as usize];
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.responded {
            counters.requests[CLASSES.len() - 1].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every operation's outcomes, in label order.
const OUTCOMES: [Outcome; 5] = [
    Outcome::Nearest,
    Outcome::NearestHolder,
    Outcome::NearTierAlternative,
    Outcome::NonHolderFallback,
    Outcome::NoHealthyNode,
];

/// Series counted by a crate the web listener does not depend on (the gateway's pulls):
/// the node hands over a function that writes them in the Prometheus text format.
#[derive(Clone)]
pub struct ExternalSeries(pub Arc<dyn Fn(&mut String) + Send + Sync>);

impl std::fmt::Debug for ExternalSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalSeries")
    }
}

/// All counters of a node that `/metrics` shows.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The S3 listener.
    pub s3: Arc<S3Metrics>,
    /// Routing decisions: `[get, put]` x [`OUTCOMES`].
    routes: [[AtomicU64; OUTCOMES.len()]; 2],
    /// Series other crates count (pulls), written after this crate's own.
    pub external: Vec<ExternalSeries>,
}

impl Metrics {
    /// Counters that also show the series of `external`.
    pub fn with_external(external: Vec<ExternalSeries>) -> Self {
        Self { external, ..Self::default() }
    }

    /// Counts one routing decision.
    pub(crate) fn count_route(&self, op: Operation, outcome: Outcome) {
        let o = OUTCOMES.iter().position(|x| *x == outcome).unwrap_or(0);
        self.routes[usize::from(op == Operation::Put)][o].fetch_add(1, Ordering::Relaxed);
    }
}

/// Appends `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `GET /metrics`: the Prometheus text format (version 0.0.4).
pub(crate) async fn metrics(
    State(state): State<WebState>,
    caller: Result<crate::ApiCaller, crate::ApiError>,
) -> Result<impl IntoResponse, crate::ApiError> {
    crate::may_read_status(&state, caller)?;
    let mut out = String::with_capacity(16 * 1024);
    write_s3(&mut out, &state.metrics.s3);
    write_routes(&mut out, &state.metrics);
    write_raft(&mut out, &state);
    for series in &state.metrics.external {
        (series.0)(&mut out);
    }
    if let Some(routing) = &state.routing {
        write_peers(&mut out, routing);
    }
    if let Some(tls) = &state.tls {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        write_tls(&mut out, &tls.tls_status(), now);
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out))
}

fn write_s3(out: &mut String, s3: &S3Metrics) {
    let each = |out: &mut String, f: &dyn Fn(&mut String, &str, &OpCounters)| {
        for op in S3Op::ALL {
            f(out, op.label(), &s3.ops[op as usize]);
        }
    };
    header(
        out,
        "meridian_s3_requests_in_flight",
        "gauge",
        "S3 requests being served (downloads until their last byte).",
    );
    each(out, &|out, op, c| {
        let _ = writeln!(out, "meridian_s3_requests_in_flight{{op=\"{op}\"}} {}", c.in_flight.load(Ordering::Relaxed));
    });
    header(out, "meridian_s3_requests_total", "counter", "Finished S3 requests by status class.");
    each(out, &|out, op, c| {
        for (class, n) in CLASSES.iter().zip(&c.requests) {
            let _ = writeln!(
                out,
                "meridian_s3_requests_total{{op=\"{op}\",class=\"{class}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    });
    header(out, "meridian_s3_sent_bytes_total", "counter", "S3 response body bytes sent.");
    each(out, &|out, op, c| {
        let _ = writeln!(out, "meridian_s3_sent_bytes_total{{op=\"{op}\"}} {}", c.bytes_out.load(Ordering::Relaxed));
    });
    header(out, "meridian_s3_received_bytes_total", "counter", "S3 request body bytes (by Content-Length).");
    each(out, &|out, op, c| {
        let _ = writeln!(out, "meridian_s3_received_bytes_total{{op=\"{op}\"}} {}", c.bytes_in.load(Ordering::Relaxed));
    });
    header(
        out,
        "meridian_s3_request_duration_seconds",
        "histogram",
        "Time from request to response head, by S3 operation.",
    );
    each(out, &|out, op, c| {
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += c.latency[i].load(Ordering::Relaxed);
            let _ =
                writeln!(out, "meridian_s3_request_duration_seconds_bucket{{op=\"{op}\",le=\"{le}\"}} {cumulative}");
        }
        cumulative += c.latency[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let sum = c.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "meridian_s3_request_duration_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "meridian_s3_request_duration_seconds_sum{{op=\"{op}\"}} {sum}");
        let _ = writeln!(out, "meridian_s3_request_duration_seconds_count{{op=\"{op}\"}} {cumulative}");
    });
}

fn write_routes(out: &mut String, metrics: &Metrics) {
    header(out, "meridian_route_decisions_total", "counter", "Routing decisions of the web API by outcome.");
    for (i, op) in [Operation::Get, Operation::Put].into_iter().enumerate() {
        for (j, outcome) in OUTCOMES.iter().enumerate() {
            let n = metrics.routes[i][j].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "meridian_route_decisions_total{{op=\"{}\",outcome=\"{}\"}} {n}",
                op.label(),
                outcome.label()
            );
        }
    }
}

fn write_raft(out: &mut String, state: &WebState) {
    let status = state.meta.status();
    let gauges = [
        ("meridian_raft_term", "Current Raft term.", status.term),
        ("meridian_raft_last_log_index", "Last index in this node's log.", status.last_log_index),
        ("meridian_raft_applied_index", "Last index applied to this node's state machine.", status.applied_index),
        (
            "meridian_raft_apply_lag_entries",
            "Log entries this node has but has not applied yet.",
            status.last_log_index.saturating_sub(status.applied_index),
        ),
        (
            "meridian_raft_snapshot_index",
            "Last index covered by this node's snapshot.",
            status.snapshot_index.unwrap_or(0),
        ),
        ("meridian_raft_is_leader", "1 on the leader.", u64::from(status.leader == Some(status.node_id))),
        (
            "meridian_format_written",
            "Record format this node writes (the cluster's active format; docs/upgrade.md).",
            status.writes_format.map_or(0, u64::from),
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    // A follower's clock against the leader's (see "Read leases" in docs/architecture.md).
    if let Some(drift) = status.clock_drift {
        header(
            out,
            "meridian_clock_drift_ppm",
            "gauge",
            "Follower: how much faster the leader's clock runs than this node's, ppm (last measurement).",
        );
        if let Some(ppm) = drift.estimate_ppm {
            let _ = writeln!(out, "meridian_clock_drift_ppm {ppm}");
        }
        header(
            out,
            "meridian_clock_drift_bound_ppm",
            "gauge",
            "Clock drift past which a follower stops reading under its lease, ppm.",
        );
        let _ = writeln!(out, "meridian_clock_drift_bound_ppm {}", drift.bound_ppm);
        header(
            out,
            "meridian_clock_drift_exceeded",
            "gauge",
            "1 while this node's clock drift is past the bound (reads ask the leader).",
        );
        let exceeded = u8::from(drift.verdict == meridian_raft::DriftVerdict::Exceeded);
        let _ = writeln!(out, "meridian_clock_drift_exceeded {exceeded}");
        header(
            out,
            "meridian_clock_drift_episodes_total",
            "counter",
            "Times this node's clock drift went past the lease bound.",
        );
        let _ = writeln!(out, "meridian_clock_drift_episodes_total {}", drift.episodes);
    }
    // The leader's clock against its followers' (raft/src/follower_clocks.rs).
    if let Some(clock) = &status.leader_clock {
        header(
            out,
            "meridian_leader_clock_drift_exceeded",
            "gauge",
            "Leader: 1 while its clock rate differs from most followers' past the lease bound (no lease granted or used).",
        );
        let exceeded = u8::from(clock.verdict == meridian_raft::DriftVerdict::Exceeded);
        let _ = writeln!(out, "meridian_leader_clock_drift_exceeded {exceeded}");
        header(
            out,
            "meridian_leader_clock_drift_episodes_total",
            "counter",
            "Times the leader's clock rate went past the lease bound against most followers'.",
        );
        let _ = writeln!(out, "meridian_leader_clock_drift_episodes_total {}", clock.episodes);
        header(
            out,
            "meridian_leader_clock_follower_drift_ppm",
            "gauge",
            "Leader: how much faster each follower's clock runs than the leader's, ppm (last measurement).",
        );
        for follower in &clock.followers {
            if let Some(ppm) = follower.estimate_ppm {
                let _ = writeln!(out, "meridian_leader_clock_follower_drift_ppm{{follower=\"{}\"}} {ppm}", follower.id);
            }
        }
    }
    header(
        out,
        "meridian_internal_protocol_refusals_total",
        "counter",
        "Calls refused since start because the peer speaks an internal protocol this node does not.",
    );
    let _ = writeln!(out, "meridian_internal_protocol_refusals_total {}", status.protocol_refusals);
    // The leader knows how far each member is; a follower leaves this series empty.
    header(out, "meridian_raft_replication_lag_entries", "gauge", "Leader only: log entries a member is behind.");
    for member in &status.members {
        if let Some(matched) = member.matched_index {
            let _ = writeln!(
                out,
                "meridian_raft_replication_lag_entries{{peer=\"{}\",region=\"{}\"}} {}",
                member.id,
                member.region,
                status.last_log_index.saturating_sub(matched)
            );
        }
    }
    header(out, "meridian_replication_queue_length", "gauge", "Blob pulls this node still owes (replication work).");
    match state.meta.work_items() {
        Ok(items) => {
            let pulls = items.iter().filter(|(_, item)| matches!(item, WorkItem::Pull { .. })).count();
            let _ = writeln!(out, "meridian_replication_queue_length {pulls}");
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the work queue"),
    }
}

fn write_peers(out: &mut String, routing: &crate::route::Routing) {
    let now = Instant::now();
    let views: Vec<_> = routing.sites.iter().map(|s| (s, routing.board.view(s.id, now))).collect();
    let states = [
        ("meridian_peer_up", "1 when the node answered its last load poll recently, else 0.", Health::Up),
        ("meridian_peer_down", "1 when the node's last load poll failed (never routed to).", Health::Down),
    ];
    for (name, help, health) in states {
        header(out, name, "gauge", help);
        for (site, view) in &views {
            let value = u8::from(view.health == health);
            let _ = writeln!(out, "{name}{{peer=\"{}\",region=\"{}\"}} {value}", site.id, site.region);
        }
    }
    let loads = [
        ("meridian_peer_requests_in_flight", "S3 requests in flight, as last reported."),
        ("meridian_peer_sent_bytes_per_second", "S3 bytes per second sent (EWMA), as last reported."),
        ("meridian_peer_disk_free_bytes", "Free bytes of the data directory, as last reported."),
    ];
    for (i, (name, help)) in loads.iter().enumerate() {
        header(out, name, "gauge", help);
        for (site, view) in &views {
            if let Some(load) = view.load {
                let value = match i {
                    0 => f64::from(load.in_flight),
                    1 => load.bytes_out_per_sec,
                    _ => load.disk_free_bytes as f64,
                };
                let _ = writeln!(out, "{name}{{peer=\"{}\",region=\"{}\"}} {value}", site.id, site.region);
            }
        }
    }
}

fn write_tls(out: &mut String, tls: &crate::tls_status::TlsStatus, now_unix: i64) {
    header(
        out,
        "meridian_tls_certificate_expiry_seconds",
        "gauge",
        "Seconds until a certificate this node presents expires (negative: expired).",
    );
    for certificate in &tls.certificates {
        let _ = writeln!(
            out,
            "meridian_tls_certificate_expiry_seconds{{certificate=\"{}\"}} {}",
            certificate.certificate,
            crate::tls_status::expires_in_secs(certificate, now_unix)
        );
    }
    header(
        out,
        "meridian_tls_handshake_refusals_total",
        "counter",
        "Connections a listener refused before reading a request (plaintext, no or wrong certificate, ...).",
    );
    for refusal in &tls.refusals {
        let _ = writeln!(
            out,
            "meridian_tls_handshake_refusals_total{{listener=\"{}\",reason=\"{}\"}} {}",
            refusal.listener, refusal.reason, refusal.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_series() {
        use crate::tls_status::{CertificateStatus, RefusalCount, TlsStatus};
        let tls = TlsStatus {
            certificates: vec![CertificateStatus {
                certificate: "internal".into(),
                path: "a.crt".into(),
                not_after_unix: 1_000,
            }],
            refusals: vec![RefusalCount { listener: "internal".into(), reason: "plaintext".into(), count: 3 }],
            recent_refusals: vec![],
        };
        let mut out = String::new();
        write_tls(&mut out, &tls, 400);
        assert!(out.contains("meridian_tls_certificate_expiry_seconds{certificate=\"internal\"} 600"), "{out}");
        assert!(
            out.contains("meridian_tls_handshake_refusals_total{listener=\"internal\",reason=\"plaintext\"} 3"),
            "{out}"
        );
    }

    #[test]
    fn classification() {
        let get = axum::http::Method::GET;
        assert_eq!(S3Op::classify(&get, "/", None), S3Op::ListBuckets);
        assert_eq!(S3Op::classify(&get, "/films", Some("list-type=2")), S3Op::ListObjects);
        assert_eq!(S3Op::classify(&get, "/films/", None), S3Op::ListObjects);
        assert_eq!(S3Op::classify(&axum::http::Method::PUT, "/films", None), S3Op::Bucket);
        assert_eq!(S3Op::classify(&get, "/films/a/b.mp4", None), S3Op::GetObject);
        assert_eq!(S3Op::classify(&axum::http::Method::HEAD, "/films/a", None), S3Op::HeadObject);
        assert_eq!(S3Op::classify(&axum::http::Method::PUT, "/films/a", None), S3Op::PutObject);
        assert_eq!(S3Op::classify(&axum::http::Method::DELETE, "/films/a", None), S3Op::DeleteObject);
        assert_eq!(S3Op::classify(&axum::http::Method::POST, "/films/a", Some("uploads")), S3Op::Multipart);
        assert_eq!(
            S3Op::classify(&axum::http::Method::PUT, "/films/a", Some("partNumber=1&uploadId=x")),
            S3Op::Multipart
        );
    }

    #[test]
    fn guards_count_in_flight_bytes_and_outcomes() {
        let s3 = Arc::new(S3Metrics::default());
        let mut guard = s3.start(S3Op::GetObject, 10);
        assert_eq!(s3.in_flight(), 1);
        guard.responded(200);
        guard.sent(100);
        guard.sent(23);
        assert_eq!((s3.in_flight(), s3.bytes_out()), (1, 123), "a download is in flight until its body is done");
        drop(guard);
        assert_eq!(s3.in_flight(), 0);
        drop(s3.start(S3Op::PutObject, 5));
        let mut out = String::new();
        write_s3(&mut out, &s3);
        assert!(out.contains("meridian_s3_requests_total{op=\"get_object\",class=\"2xx\"} 1"), "{out}");
        assert!(out.contains("meridian_s3_requests_total{op=\"put_object\",class=\"error\"} 1"), "{out}");
        assert!(out.contains("meridian_s3_sent_bytes_total{op=\"get_object\"} 123"), "{out}");
        assert!(out.contains("meridian_s3_received_bytes_total{op=\"put_object\"} 5"), "{out}");
        assert!(out.contains("meridian_s3_request_duration_seconds_count{op=\"get_object\"} 1"), "{out}");
        assert!(out.contains("meridian_s3_request_duration_seconds_bucket{op=\"get_object\",le=\"+Inf\"} 1"), "{out}");
    }
}
