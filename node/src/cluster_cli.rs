//! `meridian cluster ...`: status of every region, and membership changes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use meridian_raft::ClusterStatus;
use meridian_raft::network::PeerClient;

use crate::config::{ClusterConfig, Role};
use crate::listeners::internal::{MEMBERSHIP_PATH, MembershipChange};

/// Prints every configured region's view: role, leader, term, log and applied indexes,
/// replication progress (from the leader) and last contact with the leader.
pub(crate) async fn status(config_path: &Path) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
    let mut views = Vec::new();
    for region in &config.region {
        let url = format!("http://{}/api/v1/cluster", region.web);
        let view = async { http.get(&url).send().await?.error_for_status()?.json::<serde_json::Value>().await }.await;
        let status = view.ok().and_then(|v| serde_json::from_value::<ClusterStatus>(v["status"].clone()).ok());
        views.push((region, status));
    }
    let leader_view = views.iter().find_map(|(_, s)| s.as_ref().filter(|s| s.leader == Some(s.node_id)));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    println!(
        "{:<12} {:>3} {:<10} {:>6} {:>5} {:>9} {:>9} {:>9} {:>13} {:>7}",
        "region", "id", "state", "leader", "term", "last_log", "applied", "matched", "last_contact", "lease"
    );
    for (region, status) in &views {
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
        println!(
            "{:<12} {:>3} {:<10} {:>6} {:>5} {:>9} {:>9} {:>9} {:>13} {:>7}",
            region.name,
            s.node_id,
            s.state,
            s.leader.map_or_else(|| "-".into(), |l| l.to_string()),
            s.term,
            s.last_log_index,
            s.applied_index,
            matched,
            contact,
            lease
        );
    }
    Ok(())
}

/// Sends a membership change to whichever node leads (only the leader accepts it).
async fn change(config: &ClusterConfig, change: &MembershipChange) -> anyhow::Result<()> {
    let peers = PeerClient::new(Arc::new(crate::listeners::internal::signer(config)));
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
    change(&config, &request).await?;
    println!("{name} (id {}) joined as {:?}", region.id, region.role);
    Ok(())
}

/// Removes the region `name` from the cluster.
pub(crate) async fn remove_region(config_path: &Path, name: &str) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let region = config.region(name).with_context(|| format!("no [[region]] named {name:?}"))?;
    change(&config, &MembershipChange::Remove { id: region.id }).await?;
    println!("{name} (id {}) removed", region.id);
    Ok(())
}
