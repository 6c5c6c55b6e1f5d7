//! `meridian cluster status` against nodes whose status route needs credentials
//! (`[api] status_access = "token"`, the default on public addresses): the CLI sends the
//! config's dev key, so every node shows its row (it showed DOWN before), with its protocol,
//! formats and release, and the cluster's format.

use std::ffi::OsStr;
use std::time::Duration;

use crate::harness::cluster::{ClusterOptions, TestCluster, run_cli};
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_reads_token_protected_nodes_and_shows_versions_and_formats() {
    let options =
        ClusterOptions { extra_config: "[api]\nstatus_access = \"token\"\n".into(), ..ClusterOptions::default() };
    let cluster = TestCluster::start_with(options).await;
    let _logs: Vec<_> = cluster.nodes.iter().map(|n| n.log_on_panic()).collect();
    // The route really is closed to a caller without credentials.
    let anonymous = http_client()
        .get(format!("{}/api/v1/cluster", cluster.node(0).web_url()))
        .send()
        .await
        .expect("status request");
    assert_eq!(anonymous.status().as_u16(), 401);

    let args = [
        OsStr::new("cluster"),
        OsStr::new("status"),
        OsStr::new("--config"),
        cluster.node(0).config_path().as_os_str(),
    ];
    // A fresh cluster of this release raises its format within seconds; wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // The format number this release raises to (whatever it is) is read off the table.
    let format_of = |table: &str| -> Option<u64> {
        let rest = table.split("cluster format: ").nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let (table, format) = loop {
        let (ok, table) = run_cli(&args, Duration::from_secs(30)).await;
        if let Some(format) = format_of(&table).filter(|f| ok && *f >= 1) {
            break (table, format);
        }
        assert!(std::time::Instant::now() < deadline, "format not raised within 30 s:\n{table}");
        tokio::time::sleep(POLL).await;
    };
    assert!(!table.contains("DOWN") && !table.contains("NO ACCESS"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("Leader") || l.contains("Follower")).collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in rows {
        // proto 1, reads/writes the raised format, the release with its commit.
        let formats = format!("{format}/{format}");
        assert!(row.contains(" 1 ") && row.contains(&formats) && row.contains(env!("CARGO_PKG_VERSION")), "{row}");
    }
}
