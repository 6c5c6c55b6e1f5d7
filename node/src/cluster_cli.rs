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
/// expire and how many connections its listeners refused; then each node's recent refusals.
pub(crate) async fn status(config_path: &Path) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    // The web listeners of nodes on public addresses answer https only, with certificates of
    // the cluster CA (or of a public CA).
    let http = crate::tls::public_client(&config)?.timeout(Duration::from_secs(3)).build()?;
    let mut views = Vec::new();
    for region in &config.region {
        let url = format!("{}/api/v1/cluster", crate::tls::web_url(&config, region));
        let view = async { http.get(&url).send().await?.error_for_status()?.json::<serde_json::Value>().await }.await;
        let view = view.ok();
        let status = view.as_ref().and_then(|v| serde_json::from_value::<ClusterStatus>(v["status"].clone()).ok());
        // Absent on nodes of a release without TLS.
        let tls = view.and_then(|v| serde_json::from_value::<TlsStatus>(v["tls"].clone()).ok());
        views.push((region, status, tls));
    }
    let leader_view = views.iter().find_map(|(_, s, _)| s.as_ref().filter(|s| s.leader == Some(s.node_id)));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let now_ms = now.as_millis();
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    println!(
        "{:<12} {:>3} {:<10} {:>6} {:>5} {:>9} {:>9} {:>9} {:>13} {:>7} {:>14} {:>11} {:>7}",
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
        "refused"
    );
    for (region, status, tls) in &views {
        let Some(s) = status else {
            println!("{:<12} {:>3} {:<10}", region.name, region.id, "DOWN");
            continue;
        };
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
        let drift = s.clock_drift.map_or_else(|| "-".to_owned(), drift_column);
        let (cert_days, refused) =
            tls.as_ref().map_or_else(|| ("-".to_owned(), "-".to_owned()), |t| tls_columns(t, now_secs));
        println!(
            "{:<12} {:>3} {:<10} {:>6} {:>5} {:>9} {:>9} {:>9} {:>13} {:>7} {:>14} {:>11} {:>7}",
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
            refused
        );
    }
    let refusals: Vec<_> = views
        .iter()
        .filter_map(|(r, _, t)| t.as_ref().map(|t| (r, t)))
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
