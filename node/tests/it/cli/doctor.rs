//! `meridian doctor`: a healthy host passes (exit 0, OK lines), a certificate of the wrong region
//! or none fails naming the certificate check, a listener address another socket holds fails
//! naming the address, a running node's own addresses are reported as that node's, and beside a
//! running three-region cluster the peers answer mutual TLS and the clocks agree.

use std::fs;
use std::path::{Path, PathBuf};

use crate::harness;

use harness::TestNode;
use harness::cli::{DoctorRun, doctor};
use harness::cluster::TestCluster;
use harness::cluster::{ClusterOptions, RegionAddrs, cluster_config, three_region_addrs};

/// A three-region test config in `dir` (certificates from the harness's CA): its path and each
/// region's addresses.
fn write_config(dir: &Path, edit: impl FnOnce(String) -> String) -> (PathBuf, Vec<RegionAddrs>) {
    let regions = three_region_addrs(dir);
    let path = dir.join("cluster.toml");
    fs::write(&path, edit(cluster_config(&ClusterOptions::default(), &regions))).expect("write config");
    (path, regions)
}

/// Frankfurt's `[[region]]` with `lines` added (region fields).
fn frankfurt_with(text: String, lines: &str) -> String {
    let edited = text.replacen("name = \"frankfurt\"\n", &format!("name = \"frankfurt\"\n{lines}\n"), 1);
    assert_ne!(edited, text, "frankfurt's region is in the config");
    edited
}

fn assert_exit(run: &DoctorRun, code: i32) {
    assert_eq!(run.code, Some(code), "doctor exited {:?}:\n{}\n{}", run.code, run.stdout, run.stderr);
}

#[test]
fn a_healthy_host_passes_with_ok_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, regions) = write_config(dir.path(), |text| text);
    let run = doctor(&config, &["--region", "frankfurt"]);
    assert_exit(&run, 0);
    for check in [
        "config",
        "region",
        "certificate.ca",
        "certificate",
        "certificate.name",
        "certificate.hosts",
        "certificate.expiry",
        "certificate.chain",
        "ports.s3",
        "ports.web",
        "ports.internal",
        "data_dir",
    ] {
        assert_eq!(run.level(check), "OK", "{check}:\n{}", run.stdout);
    }
    assert!(run.line("ports.web").contains(&regions[0].web.to_string()), "{}", run.stdout);
    // The harness keeps its CA key beside the certificates, as a laptop cluster does.
    assert_eq!(run.level("certificate.ca_key"), "WARN");
    // The other regions are not running: not a failure before the first start.
    assert_eq!(run.level("peer.virginia"), "WARN");
    assert!(run.line("peer.singapore").contains("refused"), "{}", run.stdout);
    assert!(run.stdout.contains("0 FAIL"), "{}", run.stdout);
}

#[test]
fn a_certificate_of_another_region_or_none_fails_the_certificate_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_dir = harness::tls::cluster_pki(harness::cluster::CLUSTER_NAME, &["virginia"]);
    let virginia = format!(
        "tls_cert = '{}'\ntls_key = '{}'",
        ca_dir.join("virginia.crt").display(),
        ca_dir.join("virginia.key").display()
    );
    let (config, _) = write_config(dir.path(), |text| frankfurt_with(text, &virginia));
    let run = doctor(&config, &["--region", "frankfurt"]);
    assert_exit(&run, 1);
    let line = run.line("certificate.name");
    assert!(line.starts_with("FAIL") && line.contains("virginia") && line.contains("frankfurt"), "{line}");
    // The wrong certificate still chains to the CA: only its name is at fault.
    assert_eq!(run.level("certificate.chain"), "OK", "{}", run.stdout);

    let missing = dir.path().join("absent.crt");
    let absent = format!("tls_cert = '{}'\ntls_key = '{}'", missing.display(), dir.path().join("absent.key").display());
    let (config, _) = write_config(dir.path(), |text| frankfurt_with(text, &absent));
    let run = doctor(&config, &["--region", "frankfurt"]);
    assert_exit(&run, 1);
    let line = run.line("certificate");
    assert!(line.starts_with("FAIL") && line.contains("absent.crt"), "{line}");
    assert!(line.contains("meridian cert issue --region frankfurt"), "says how to fix it: {line}");
}

#[test]
fn an_address_held_by_another_socket_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, regions) = write_config(dir.path(), |text| text);
    let held = std::net::TcpListener::bind(regions[0].s3).expect("hold frankfurt's S3 address");
    let run = doctor(&config, &["--region", "frankfurt"]);
    drop(held);
    assert_exit(&run, 1);
    let line = run.line("ports.s3");
    assert!(line.starts_with("FAIL") && line.contains(&regions[0].s3.to_string()), "{line}");
    assert!(line.contains("another process"), "{line}");
    assert_eq!(run.level("ports.web"), "OK", "{}", run.stdout);
}

#[test]
fn a_config_that_does_not_load_fails_with_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = write_config(dir.path(), |text| text.replace("heartbeat_ms = 100", "heartbeat_ms = 0"));
    let run = doctor(&config, &[]);
    assert_exit(&run, 1);
    let line = run.line("config");
    assert!(line.starts_with("FAIL") && line.contains("raft.election_timeout_min_ms"), "{line}");

    let (config, _) = write_config(dir.path(), |text| text);
    let run = doctor(&config, &[]);
    assert_exit(&run, 1);
    assert!(run.line("region").contains("pass --region"), "every test region binds loopback: {}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_nodes_addresses_are_reported_as_its_own() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let config = node.config_path().to_owned();
    let run = tokio::task::spawn_blocking(move || doctor(&config, &[])).await.expect("doctor");
    assert_exit(&run, 0);
    assert_eq!(run.level("region"), "OK", "one region, on this host: found without --region");
    for check in ["ports.s3", "ports.web", "ports.internal"] {
        let line = run.line(check);
        assert!(line.starts_with("WARN") && line.contains("running meridian node (region frankfurt"), "{line}");
    }
    assert_eq!(run.level("data_dir"), "OK", "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_running_cluster_peers_answer_mutual_tls_and_clocks_agree() {
    let cluster = TestCluster::start().await;
    let config = cluster.node(0).config_path().to_owned();
    let run = tokio::task::spawn_blocking(move || doctor(&config, &["--region", "frankfurt"])).await.expect("doctor");
    assert_exit(&run, 0);
    for peer in ["virginia", "singapore"] {
        let line = run.line(&format!("peer.{peer}"));
        assert!(line.starts_with("OK") && line.contains("mutual TLS handshake succeeded"), "{line}");
        // Same host, same clock: well under the test cluster's lease margin (400 ms / 10 + 5).
        let line = run.line(&format!("clock.{peer}"));
        assert!(line.starts_with("OK") && line.contains(&format!("{peer} is ")), "{line}");
    }
    assert!(run.line("ports.internal").contains("running meridian node (region frankfurt"), "{}", run.stdout);
}
