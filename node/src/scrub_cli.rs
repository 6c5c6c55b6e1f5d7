//! `meridian scrub`: one scrub pass on one region's node, now, and its report. For operators
//! who suspect a disk, and for tests that need a pass at a known moment.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use meridian_raft::network::PeerClient;
use meridian_s3gw::ScrubReport;

use crate::config::ClusterConfig;
use crate::listeners::internal::SCRUB_PATH;

/// Asks the node of `region` for a scrub pass (it starts after any pass in progress), waits at
/// most `timeout` for it, and prints the report, one `field: value` per line.
pub(crate) async fn run(config_path: &Path, region: &str, timeout: Duration) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let node = config.region(region).with_context(|| format!("no [[region]] named {region:?}"))?;
    let peers: PeerClient = crate::tls::cli_peer_client(&config, crate::tls::CliIdentity::Of(region))?;
    let reply: Result<ScrubReport, String> = peers
        .call(node.id, &node.internal, SCRUB_PATH, &(), timeout)
        .await
        .with_context(|| format!("asking {region} ({}) for a scrub pass", node.internal))?;
    let report = reply.map_err(|e| anyhow::anyhow!(e)).with_context(|| format!("the scrub pass on {region} failed"))?;
    let ScrubReport { checked, bytes, missing, unconfirmed, corrupt, unlisted, last_copy, errors } = report;
    println!("region:      {region}");
    println!("checked:     {checked}");
    println!("bytes:       {bytes}");
    println!("missing:     {missing}");
    println!("unconfirmed: {unconfirmed}");
    println!("corrupt:     {corrupt}");
    println!("unlisted:    {unlisted}");
    println!("last_copy:   {last_copy}");
    println!("errors:      {errors}");
    if last_copy > 0 {
        anyhow::bail!(
            "{last_copy} object(s) on {region} have a missing or corrupt copy and no other copy anywhere; \
             see its log (corrupt bytes are kept as blobs/*/*.corrupt)"
        );
    }
    if errors > 0 {
        anyhow::bail!("{errors} blob(s) on {region} could not be checked or repaired; see its log");
    }
    Ok(())
}
