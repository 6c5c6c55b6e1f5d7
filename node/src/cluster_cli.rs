//! `meridian cluster ...`: status of every region, and membership changes.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use meridian_admin::tls_status::TlsStatus;
use meridian_raft::ClusterStatus;
use meridian_raft::network::PeerClient;

use crate::config::{ClusterConfig, Role};
use crate::listeners::internal::{MEMBERSHIP_PATH, MembershipChange};

/// Prints every configured region's view: role, leader, term, log and applied indexes,
/// replication progress (from the leader), last contact with the leader, when its certificates
/// expire and how many connections its listeners refused, its internal protocol, the formats it
/// reads and writes and its release; then the cluster's active format and each node's recent
/// refusals.
pub(crate) async fn status(config_path: &Path) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    // The web listeners of nodes on public addresses answer https only, with certificates of
    // the cluster CA (or of a public CA).
    let http = crate::tls::public_client(&config)?.timeout(Duration::from_secs(3)).build()?;
    let mut views = Vec::new();
    for region in &config.region {
        let url = format!("{}/api/v1/cluster", crate::tls::web_url(&config, region));
        let request = status_credentials(http.get(&url), &config);
        let view = async { request.send().await?.error_for_status()?.json::<serde_json::Value>().await }.await;
        let refused = view.as_ref().err().and_then(reqwest::Error::status).is_some_and(|s| s.as_u16() == 401);
        let view = view.ok();
        let status = view.as_ref().and_then(|v| serde_json::from_value::<ClusterStatus>(v["status"].clone()).ok());
        // Absent on nodes of a release without TLS.
        let tls = view.and_then(|v| serde_json::from_value::<TlsStatus>(v["tls"].clone()).ok());
        views.push((region, status, tls, refused));
    }
    let leader_view = views.iter().find_map(|(_, s, _, _)| s.as_ref().filter(|s| s.leader == Some(s.node_id)));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let now_ms = now.as_millis();
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    println!(
        "{:<12} {:>3} {:<10} {:>6} {:>5} {:>9} {:>9} {:>9} {:>13} {:>7} {:>14} {:>11} {:>7} {:>5} {:>7}  release",
        "region",
        "id",
        "state",
        "leader",
        "term",
        "last_log",
        "applied",
        "matched",
        "last_contact",
        "lease",
        "clock_drift",
        "cert_days",
        "refused",
        "proto",
        "formats"
    );
    for (region, status, tls, unauthorized) in &views {
        let Some(s) = status else {
            let why = if *unauthorized { "NO ACCESS (status_access = token: set MERIDIAN_API_TOKEN)" } else { "DOWN" };
            println!("{:<12} {:>3} {:<10}", region.name, region.id, why);
            continue;
        };
        // A node of release a01dacd says nothing of its versions; another member may have heard.
        let heard = views
            .iter()
            .filter_map(|(_, v, _, _)| v.as_ref())
            .flat_map(|v| v.members.iter().filter(|m| m.id == s.node_id && v.node_id != s.node_id))
            .find(|m| m.protocol.is_some());
        let proto = s.protocol.or(heard.and_then(|m| m.protocol)).map_or_else(|| "-".to_owned(), |p| p.to_string());
        let formats = match (s.reads_format.or(heard.and_then(|m| m.reads_format)), s.writes_format) {
            (Some(reads), Some(writes)) => format!("{reads}/{writes}"),
            (Some(reads), None) => format!("{reads}/-"),
            _ => "-".to_owned(),
        };
        let release = s
            .release
            .clone()
            .or(heard.and_then(|m| m.release.clone()))
            .unwrap_or_else(|| if heard.is_some() { "a01dacd or older".to_owned() } else { "-".to_owned() });
        let matched = leader_view
            .and_then(|l| l.members.iter().find(|m| m.id == region.id))
            .and_then(|m| m.matched_index)
            .map_or_else(|| "-".to_owned(), |i| i.to_string());
        let contact = if s.leader == Some(s.node_id) {
            s.millis_since_quorum_ack.map_or_else(|| "-".into(), |ms| format!("quorum {ms}ms"))
        } else {
            s.last_leader_contact_ms.map_or_else(
                || "never".into(),
                |t| format!("{}ms ago", now_ms.saturating_sub(u128::try_from(t).unwrap_or(0))),
            )
        };
        let lease = s.read_lease_ms.map_or_else(|| "none".to_owned(), |ms| format!("{ms}ms"));
        let drift = match (&s.clock_drift, &s.leader_clock) {
            (Some(drift), _) => drift_column(*drift),
            (None, Some(leader)) => leader_clock_column(leader),
            (None, None) => "-".to_owned(),
        };
        let (cert_days, refused) =
            tls.as_ref().map_or_else(|| ("-".to_owned(), "-".to_owned()), |t| tls_columns(t, now_secs));
        println!(
            "{:<12} {:>3} {:<10} {:>6} {:>5} {:>9} {:>9} {:>9} {:>13} {:>7} {:>14} {:>11} {:>7} {:>5} {:>7}  {}",
            region.name,
            s.node_id,
            s.state,
            s.leader.map_or_else(|| "-".into(), |l| l.to_string()),
            s.term,
            s.last_log_index,
            s.applied_index,
            matched,
            contact,
            lease,
            drift,
            cert_days,
            refused,
            proto,
            formats,
            release
        );
    }
    // The cluster's active format: the highest any node applied (they converge through the log).
    let active = views.iter().filter_map(|(_, s, _, _)| s.as_ref().and_then(|s| s.active_format)).max();
    println!();
    println!(
        "cluster format: {} (formats column: newest format read / format written; the leader raises the \
         format once every member reads the newer one, see docs/upgrade.md)",
        active.map_or_else(|| "0 (release a01dacd's)".to_owned(), |f| f.to_string())
    );
    let refusals: Vec<_> = views
        .iter()
        .filter_map(|(r, _, t, _)| t.as_ref().map(|t| (r, t)))
        .filter(|(_, t)| !t.recent_refusals.is_empty())
        .collect();
    if !refusals.is_empty() {
        println!();
        println!("recent TLS refusals:");
        for (region, tls) in refusals {
            for refusal in &tls.recent_refusals {
                println!(
                    "  {:<12} {} {:<8} {:<22} {}",
                    region.name,
                    rfc3339_ms(refusal.at_unix_ms),
                    refusal.listener,
                    refusal.peer,
                    refusal.reason
                );
            }
        }
    }
    Ok(())
}

/// The clock drift column of a follower: its rate against the leader's in ppm, and `!` past the
/// bound (its lease unused) or `?` before the first measurement.
fn drift_column(drift: meridian_raft::ClockDriftStatus) -> String {
    let mark = match drift.verdict {
        meridian_raft::DriftVerdict::WithinBound => "",
        meridian_raft::DriftVerdict::Exceeded => "!",
        meridian_raft::DriftVerdict::Unmeasured => "?",
    };
    drift.estimate_ppm.map_or_else(|| format!("-{mark}"), |ppm| format!("{ppm:+}ppm{mark}"))
}

/// The clock drift column of the leader: its rate against most followers' (the largest
/// follower estimate, negated: positive means the leader's clock is fast), `!` past the bound
/// against most of them (it grants no lease), `?` before any follower was measured.
fn leader_clock_column(clock: &meridian_raft::LeaderClockStatus) -> String {
    let mark = match clock.verdict {
        meridian_raft::DriftVerdict::WithinBound => "",
        meridian_raft::DriftVerdict::Exceeded => "!",
        meridian_raft::DriftVerdict::Unmeasured => "?",
    };
    let worst = clock.followers.iter().filter_map(|f| f.estimate_ppm).max_by_key(|ppm| ppm.unsigned_abs());
    worst.map_or_else(|| format!("L-{mark}"), |ppm| format!("L{:+}ppm{mark}", -ppm))
}

/// Adds the credentials of the status route, which needs them when a node's `[api]
/// status_access` is `token` (any node on a public address, by default): the service token in
/// `MERIDIAN_API_TOKEN` if set, else the config's dev key as HTTP Basic. An open route ignores them.
fn status_credentials(request: reqwest::RequestBuilder, config: &ClusterConfig) -> reqwest::RequestBuilder {
    if let Some(token) = std::env::var("MERIDIAN_API_TOKEN").ok().filter(|t| !t.is_empty()) {
        return request.bearer_auth(token);
    }
    match &config.dev_key {
        Some(key) => request.basic_auth(&key.access_key_id, Some(&key.secret_access_key)),
        None => request,
    }
}

/// The certificate column (days left of the internal certificate, and of the public one when
/// it is another) and the refusal count of a node.
fn tls_columns(tls: &TlsStatus, now_secs: i64) -> (String, String) {
    let days = |role: &str| {
        tls.certificates
            .iter()
            .find(|c| c.certificate == role)
            .map(|c| (c.not_after_unix - now_secs).div_euclid(86_400))
    };
    let cert_days = match (days("internal"), days("public")) {
        (Some(internal), Some(public)) if internal != public => format!("{internal}/{public}"),
        (Some(internal), _) => internal.to_string(),
        (None, Some(public)) => format!("-/{public}"),
        (None, None) => "-".to_owned(),
    };
    let refused: u64 = tls.refusals.iter().map(|r| r.count).sum();
    (cert_days, refused.to_string())
}

/// Unix milliseconds as RFC 3339 (UTC, seconds).
fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Sends a membership change to whichever node leads (only the leader accepts it).
async fn change(config: &ClusterConfig, region: &str, change: &MembershipChange) -> anyhow::Result<()> {
    let peers: PeerClient = crate::tls::cli_peer_client(config, crate::tls::CliIdentity::Besides(region))?;
    let mut errors = Vec::new();
    for region in &config.region {
        let reply: Result<(), _> =
            peers.call_leader(region.id, &region.internal, MEMBERSHIP_PATH, change, Duration::from_secs(120)).await;
        match reply {
            Ok(()) => return Ok(()),
            Err(e) => errors.push(format!("{}: {e}", region.name)),
        }
    }
    Err(anyhow::anyhow!(errors.join("\n"))).context("no node accepted the membership change")
}

/// Adds the region `name` of the config (its node must be running) to the cluster.
pub(crate) async fn add_region(config_path: &Path, name: &str) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let region = config.region(name).with_context(|| format!("no [[region]] named {name:?}"))?;
    let request = MembershipChange::Add {
        id: region.id,
        node: ClusterConfig::node_of(region),
        voter: region.role == Role::Voter,
    };
    change(&config, name, &request).await?;
    println!("{name} (id {}) joined as {:?}", region.id, region.role);
    Ok(())
}

/// Removes the region `name` from the cluster.
pub(crate) async fn remove_region(config_path: &Path, name: &str) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let region = config.region(name).with_context(|| format!("no [[region]] named {name:?}"))?;
    change(&config, name, &MembershipChange::Remove { id: region.id }).await?;
    println!("{name} (id {}) removed", region.id);
    Ok(())
}
