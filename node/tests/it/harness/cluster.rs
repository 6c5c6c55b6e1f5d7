//! A three-region cluster of real `meridian` processes on loopback, built from [`TestNode`]s:
//! one shared `[[region]]` list, nine free ports, one temporary directory per node (its config
//! copy, data dir, log, working dir). Each node keeps the single-node harness's features: its
//! log tail on panic, `kill9`, `restart`, and a watchdog that kills it when the test binary exits.
//!
//! Raft timing is short (heartbeat 100 ms, election timeout 400-800 ms) so failovers are quick.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::process::free_loopback_ports;
use super::{ACCESS_KEY, POLL, SECRET_KEY, TestNode, all_files, http_client};

/// The cluster secret of the generated config (HMAC key of the internal listener).
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef0123456789";
/// Cluster name of the generated config.
pub const CLUSTER_NAME: &str = "meridian-test-cluster";
/// The regions, in `[[region]]` order: name, latitude, longitude. Node index `i` has id `i + 1`.
pub const REGIONS: [(&str, f64, f64); 3] =
    [("frankfurt", 50.1109, 8.6821), ("virginia", 38.9586, -77.3570), ("singapore", 1.3521, 103.8198)];
/// Regions a test may start at run time (`TestCluster::start_spare_node`), after [`REGIONS`]:
/// node index 3 is the first of them, with id 4.
pub const SPARE_REGIONS: [(&str, f64, f64); 1] = [("sydney", -33.8688, 151.2093)];

/// Name, latitude and longitude of node index `i`: [`REGIONS`], then [`SPARE_REGIONS`].
pub fn region_of(i: usize) -> (&'static str, f64, f64) {
    REGIONS.iter().chain(&SPARE_REGIONS).nth(i).copied().unwrap_or_else(|| panic!("no test region for node index {i}"))
}

/// Settings of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub snapshot_every: u64,
    pub commit_timeout_ms: u64,
    pub max_concurrent_pulls: usize,
    pub bandwidth_mib_per_sec: u64,
    /// `[raft] read_lease_ms` (`Some(0)`: leases off); `None` leaves it out, so the node's
    /// default applies (leases on, as long as the election timeout's lower bound).
    pub read_lease_ms: Option<u64>,
    /// `[raft] read_consistency` ("linearizable", "available", "local"); `None` leaves it out
    /// (the node's default, linearizable).
    pub read_consistency: Option<&'static str>,
    /// Name, latitude, longitude of each node's region (node `i` gets `regions[i]`).
    pub regions: [(&'static str, f64, f64); 3],
    /// More TOML, written before the `[[region]]`s (e.g. `[geo]`, `[events]`, `[[api.service_token]]`).
    pub extra_config: String,
    /// More keys of `[replication]` (e.g. `streams_per_blob = 2`), one per line.
    pub replication_extra: String,
    /// Environment variables every node is first started with (the testing switches of
    /// `meridian_raft::protocol`, e.g. previous-release mode).
    pub env: Vec<(&'static str, &'static str)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            snapshot_every: 20_000,
            commit_timeout_ms: 10_000,
            max_concurrent_pulls: 4,
            bandwidth_mib_per_sec: 0,
            read_lease_ms: None,
            read_consistency: None,
            regions: REGIONS,
            extra_config: String::new(),
            replication_extra: String::new(),
            env: Vec::new(),
        }
    }
}

/// The body of `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub region: String,
    pub node_id: u64,
    pub ready: bool,
    pub leader: Option<u64>,
    pub term: u64,
    pub applied_index: u64,
}

/// Three `meridian node` processes forming one cluster.
pub struct TestCluster {
    /// `nodes[i]` runs region `REGIONS[i]`, Raft id `i + 1`.
    pub nodes: Vec<TestNode>,
    pub options: ClusterOptions,
    http: reqwest::Client,
}

/// Where one region of a generated config listens and keeps its data.
#[derive(Debug, Clone)]
pub struct RegionAddrs {
    pub s3: SocketAddr,
    pub web: SocketAddr,
    pub internal: SocketAddr,
    pub data_dir: PathBuf,
}

/// `n` distinct free loopback ports.
pub fn free_ports<const N: usize>() -> [SocketAddr; N] {
    free_loopback_ports::<N>()
}

/// The addresses of a three-region cluster ([`REGIONS`]) on fresh loopback ports, every data dir
/// under `dir/data/`.
pub fn three_region_addrs(dir: &Path) -> Vec<RegionAddrs> {
    let ports = free_ports::<9>();
    REGIONS
        .iter()
        .enumerate()
        .map(|(i, (name, ..))| RegionAddrs {
            s3: ports[3 * i],
            web: ports[3 * i + 1],
            internal: ports[3 * i + 2],
            data_dir: dir.join("data").join(name),
        })
        .collect()
}

/// The config text of [`three_region_addrs`]: for tests that start `meridian node` by hand (to see
/// it refuse a config).
pub fn three_region_config(options: &ClusterOptions, dir: &Path) -> String {
    cluster_config(options, &three_region_addrs(dir))
}

/// The config text of a cluster of `regions.len()` (at most 4) voters named after [`REGIONS`] and
/// [`SPARE_REGIONS`], region `i` with id `i + 1`; data dirs are written as given (use absolute
/// paths).
pub fn cluster_config(options: &ClusterOptions, regions: &[RegionAddrs]) -> String {
    let ClusterOptions {
        heartbeat_ms,
        election_timeout_min_ms,
        election_timeout_max_ms,
        snapshot_every,
        commit_timeout_ms,
        max_concurrent_pulls,
        bandwidth_mib_per_sec,
        read_lease_ms,
        read_consistency,
        regions: names,
        extra_config,
        replication_extra,
        // The environment is not config: `TestCluster::start_with` sets it on the processes.
        env: _,
    } = options.clone();
    let region_names: Vec<&str> =
        (0..regions.len()).map(|i| names.get(i).copied().unwrap_or_else(|| region_of(i)).0).collect();
    let mut config = format!(
        r#"# Written by node/tests/it/harness/cluster.rs
[cluster]
name = "{CLUSTER_NAME}"
secret = "{CLUSTER_SECRET}"
default_region = "{default_region}"

[dev_key]
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET_KEY}"

[raft]
heartbeat_ms = {heartbeat_ms}
election_timeout_min_ms = {election_timeout_min_ms}
election_timeout_max_ms = {election_timeout_max_ms}
snapshot_every = {snapshot_every}
commit_timeout_ms = {commit_timeout_ms}
{read_lease_line}
{read_consistency_line}

[replication]
max_concurrent_pulls = {max_concurrent_pulls}
bandwidth_mib_per_sec = {bandwidth_mib_per_sec}
{replication_extra}

{extra_config}

{tls_section}
"#,
        default_region = names[0].0,
        tls_section = super::tls::tls_section(CLUSTER_NAME, &region_names),
        read_lease_line = read_lease_ms.map(|ms| format!("read_lease_ms = {ms}")).unwrap_or_default(),
        read_consistency_line =
            read_consistency.map(|mode| format!("read_consistency = \"{mode}\"")).unwrap_or_default(),
    );
    for (i, r) in regions.iter().enumerate() {
        let (name, lat, lon) = names.get(i).copied().unwrap_or_else(|| region_of(i));
        let id = id_of(i);
        write!(
            config,
            r#"
[[region]]
id = {id}
name = "{name}"
latitude = {lat}
longitude = {lon}
s3 = "{}"
web = "{}"
internal = "{}"
data_dir = '{}'
role = "voter"
"#,
            r.s3,
            r.web,
            r.internal,
            r.data_dir.display()
        )
        .expect("format config");
    }
    config
}

/// Node index of a Raft node id.
pub fn index_of(id: u64) -> usize {
    usize::try_from(id).expect("node id fits usize") - 1
}

/// Raft node id of a node index.
pub fn id_of(index: usize) -> u64 {
    index as u64 + 1
}

/// A node of region `name` with its own temporary directory and these S3, web and internal
/// addresses; not started, its config not written yet.
fn unstarted_node(name: &str, [s3_addr, web_addr, internal_addr]: [SocketAddr; 3]) -> TestNode {
    let root = tempfile::Builder::new().prefix("meridian-cluster-").tempdir().expect("create temp dir");
    let node_dir = root.path().join(format!("l1/l2/{name}"));
    let cwd = node_dir.join("cwd");
    fs::create_dir_all(&cwd).expect("create node dirs");
    TestNode {
        data_dir: node_dir.join("data"),
        config_path: node_dir.join("meridian.toml"),
        log_path: node_dir.join("node.log"),
        root,
        node_dir,
        cwd,
        s3_addr,
        web_addr,
        internal_addr,
        region: name.to_owned(),
        proc: Mutex::new(None),
        launch: Mutex::new(super::Launch::default()),
    }
}

/// Where `node` listens and keeps its data, as its `[[region]]` says.
fn region_addrs(node: &TestNode) -> RegionAddrs {
    RegionAddrs { s3: node.s3_addr, web: node.web_addr, internal: node.internal_addr, data_dir: node.data_dir.clone() }
}

/// Runs the `meridian` CLI with `args`, killed if it has not finished within `timeout`; returns
/// whether it succeeded and what it printed (stdout then stderr).
pub async fn run_cli(args: &[&std::ffi::OsStr], timeout: Duration) -> (bool, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, child)
        .await
        .unwrap_or_else(|_| panic!("meridian {args:?} did not finish within {timeout:?}"))
        .expect("run the meridian binary");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

impl TestCluster {
    /// Starts a cluster with [`ClusterOptions::default`] and waits until every node is ready and
    /// all agree on one leader.
    pub async fn start() -> TestCluster {
        Self::start_with(ClusterOptions::default()).await
    }

    /// [`TestCluster::start`] with other settings.
    pub async fn start_with(options: ClusterOptions) -> TestCluster {
        Self::start_launched(options, Default::default()).await
    }

    /// [`TestCluster::start_with`], node `i` started as `launches[i]` says (extra environment,
    /// a wrapper command; see [`super::Launch`]).
    pub async fn start_launched(options: ClusterOptions, launches: [super::Launch; 3]) -> TestCluster {
        let ports = free_loopback_ports::<9>();
        let addrs = [0, 1, 2].map(|i| [ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]]);
        Self::start_on(options, addrs, launches, None).await
    }

    /// Starts three nodes whose S3, web and internal listeners are `addrs[i]`, node `i` started
    /// as `launches[i]` says; `tls_section` replaces the config's `[tls]` table (certificates
    /// naming other addresses than loopback). Waits until every node is ready and all agree on
    /// one leader.
    pub async fn start_on(
        options: ClusterOptions,
        addrs: [[SocketAddr; 3]; 3],
        launches: [super::Launch; 3],
        tls_section: Option<String>,
    ) -> TestCluster {
        let nodes: Vec<TestNode> = (0..REGIONS.len()).map(|i| unstarted_node(options.regions[i].0, addrs[i])).collect();
        let regions: Vec<RegionAddrs> = nodes.iter().map(region_addrs).collect();
        let mut config = cluster_config(&options, &regions);
        if let Some(tls) = tls_section {
            let names: Vec<&str> = options.regions.iter().map(|r| r.0).collect();
            let ours = super::tls::tls_section(CLUSTER_NAME, &names);
            assert!(config.contains(&ours), "the generated config has its [tls] table");
            config = config.replace(&ours, &tls);
        }
        for node in &nodes {
            fs::write(&node.config_path, &config).expect("write config");
        }
        for (node, mut launch) in nodes.iter().zip(launches) {
            launch.env.extend(options.env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
            node.set_launch(launch);
            node.spawn();
        }
        for node in &nodes {
            node.wait_healthy().await;
        }
        let cluster = TestCluster { nodes, options, http: http_client() };
        cluster.wait_for_leader(&[0, 1, 2], Duration::from_secs(30)).await;
        cluster
    }

    /// Starts three nodes of `regions` (name; S3, web, internal address) on a config the test
    /// wrote, each in its own temporary directory: `prepare(i, data_dir)` fills node `i`'s data
    /// dir first (an upgrade fixture), `config(data_dirs)` gives the config text every node
    /// gets. Waits until every node is ready and all agree on one leader.
    pub async fn start_prepared(
        regions: [(&str, [SocketAddr; 3]); 3],
        prepare: impl Fn(usize, &Path),
        config: impl FnOnce(&[PathBuf]) -> String,
    ) -> TestCluster {
        let nodes: Vec<TestNode> = regions.iter().map(|(name, addrs)| unstarted_node(name, *addrs)).collect();
        for (i, node) in nodes.iter().enumerate() {
            prepare(i, &node.data_dir);
        }
        let dirs: Vec<PathBuf> = nodes.iter().map(|n| n.data_dir.clone()).collect();
        let config = config(&dirs);
        for node in &nodes {
            fs::write(&node.config_path, &config).expect("write config");
        }
        for node in &nodes {
            node.spawn();
        }
        for node in &nodes {
            node.wait_healthy().await;
        }
        let cluster = TestCluster { nodes, options: ClusterOptions::default(), http: http_client() };
        cluster.wait_for_leader(&[0, 1, 2], Duration::from_secs(30)).await;
        cluster
    }

    /// Starts three nodes whose internal listeners sit behind relays the test runs: node `i`
    /// advertises `ports[4i+2]` (where its relay listens) as its internal address and binds
    /// `ports[4i+3]` (the relay's target); S3 and web on `ports[4i]` and `ports[4i+1]`. Every call
    /// between the nodes then crosses a relay: delayed, cut or recorded as the test wants.
    pub async fn start_behind_relays(options: &ClusterOptions, ports: &[SocketAddr; 12]) -> TestCluster {
        let regions = [0, 1, 2].map(|i| (REGIONS[i].0, [ports[4 * i], ports[4 * i + 1], ports[4 * i + 2]]));
        Self::start_prepared(
            regions,
            |_, _| {},
            |dirs| {
                let addrs: Vec<RegionAddrs> = (0..3)
                    .map(|i| RegionAddrs {
                        s3: ports[4 * i],
                        web: ports[4 * i + 1],
                        internal: ports[4 * i + 2],
                        data_dir: dirs[i].clone(),
                    })
                    .collect();
                let mut config = cluster_config(options, &addrs);
                for i in 0..3 {
                    let advertised = format!("internal = \"{}\"\n", ports[4 * i + 2]);
                    assert!(config.contains(&advertised), "the generated config names node {i}'s internal address");
                    let bound = format!("{advertised}internal_bind = \"{}\"\n", ports[4 * i + 3]);
                    config = config.replace(&advertised, &bound);
                }
                config
            },
        )
        .await
    }

    /// [`TestCluster::start_with`], with `extra` added to the generated config (whole TOML
    /// tables, e.g. an `[auth]` section).
    pub async fn start_with_extra(mut options: ClusterOptions, extra: &str) -> TestCluster {
        options.extra_config.push_str(extra);
        Self::start_with(options).await
    }

    /// Starts the node of the next [`SPARE_REGIONS`] entry (node index `nodes.len()`) with a
    /// config listing every region so far plus it, as an operator would before
    /// `meridian cluster add-region`. It is not a member yet: this only waits until its web
    /// listener answers (`/healthz` says 503 until it has joined). Returns its index.
    pub async fn start_spare_node(&mut self) -> usize {
        let i = self.nodes.len();
        let node = unstarted_node(region_of(i).0, free_loopback_ports::<3>());
        let mut regions: Vec<RegionAddrs> = self.nodes.iter().map(region_addrs).collect();
        regions.push(region_addrs(&node));
        fs::write(&node.config_path, cluster_config(&self.options, &regions)).expect("write config");
        node.spawn();
        let url = format!("{}/healthz", node.web_url());
        let deadline = Instant::now() + super::START_TIMEOUT;
        loop {
            if let Some(status) = node.exited() {
                panic!("the spare node exited with {status} before listening\n{}", node.log_report());
            }
            if self.http.get(&url).timeout(Duration::from_secs(2)).send().await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the spare node did not listen within the start timeout\n{}",
                node.log_report()
            );
            tokio::time::sleep(POLL).await;
        }
        self.nodes.push(node);
        i
    }

    pub fn node(&self, i: usize) -> &TestNode {
        &self.nodes[i]
    }

    /// `/healthz` of node `i`, whatever its status (the body is the same JSON on 200 and 503).
    pub async fn health(&self, i: usize) -> Result<Health, String> {
        let url = format!("{}/healthz", self.nodes[i].web_url());
        let resp = self.http.get(&url).timeout(Duration::from_secs(2)).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body)
            .map_err(|e| format!("status {status}, body {:?}: {e}", String::from_utf8_lossy(&body)))
    }

    /// `/healthz` of each node of `among`.
    pub async fn healths(&self, among: &[usize]) -> BTreeMap<usize, Result<Health, String>> {
        let mut out = BTreeMap::new();
        for &i in among {
            out.insert(i, self.health(i).await);
        }
        out
    }

    /// If every node of `among` is ready and names the same leader, which is one of `among`
    /// and calls itself leader: that leader's index and its health.
    pub async fn agreed_leader(&self, among: &[usize]) -> Option<(usize, Health)> {
        let healths = self.healths(among).await;
        let mut leader = None;
        for h in healths.values() {
            let h = h.as_ref().ok()?;
            if !h.ready {
                return None;
            }
            let l = h.leader?;
            if leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        let l = index_of(leader?);
        if !among.contains(&l) {
            return None;
        }
        let lh = healths.get(&l)?.as_ref().ok()?.clone();
        (lh.leader == Some(id_of(l))).then_some((l, lh))
    }

    /// Waits (bounded) until [`TestCluster::agreed_leader`] holds; returns the leader's index.
    pub async fn wait_for_leader(&self, among: &[usize], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((l, _)) = self.agreed_leader(among).await {
                return l;
            }
            if Instant::now() > deadline {
                panic!(
                    "nodes {among:?} did not agree on a leader within {timeout:?}: {:#?}\n{}",
                    self.healths(among).await,
                    self.log_report()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (bounded) until every node writes the newest record format it reads: the leader
    /// raises the cluster's format a moment after it has heard every member (see
    /// `docs/upgrade.md`), and commands new in this release are refused until then. A test of
    /// such a command calls this first; needs `status_access = "open"` (the default).
    pub async fn wait_format_raised(&self) {
        for node in &self.nodes {
            node.wait_format_raised().await;
        }
    }

    /// The current leader (all three nodes agreeing), waiting at most 30 s.
    pub async fn leader(&self) -> usize {
        self.wait_for_leader(&[0, 1, 2], Duration::from_secs(30)).await
    }

    /// Leader index and the two followers' indexes, all three nodes agreeing.
    pub async fn roles(&self) -> (usize, [usize; 2]) {
        let leader = self.leader().await;
        let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        (leader, [followers[0], followers[1]])
    }

    /// Waits (bounded) until every node of `among` reports the same `applied_index`, at least
    /// `min_index`; returns it.
    pub async fn wait_applied_equal(&self, among: &[usize], min_index: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let healths = self.healths(among).await;
            let indexes: Vec<u64> = healths.values().filter_map(|h| h.as_ref().ok().map(|h| h.applied_index)).collect();
            if indexes.len() == among.len() && indexes.iter().all(|&x| x == indexes[0] && x >= min_index) {
                return indexes[0];
            }
            if Instant::now() > deadline {
                panic!(
                    "applied_index of nodes {among:?} did not converge (>= {min_index}) within {timeout:?}: {healths:#?}\n{}",
                    self.log_report()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `<data_dir>/blobs` of node `i`.
    pub fn blobs_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].data_dir().join("blobs")
    }

    /// Every committed blob file of node `i` (`<data_dir>/blobs/<2 hex>/<32 hex>`); panics on a
    /// file under `blobs/` that does not follow that layout (but the directory's marker and the
    /// scrub's quarantined `*.corrupt` copies).
    pub fn blob_files(&self, i: usize) -> Vec<PathBuf> {
        let marker = self.blobs_dir(i).join(BLOBS_MARKER);
        let files: Vec<PathBuf> = all_files(&self.blobs_dir(i))
            .into_iter()
            .filter(|f| *f != marker && f.extension().is_none_or(|x| x != "corrupt"))
            .collect();
        for f in &files {
            assert!(is_blob_path(f), "node {i}: unexpected file under blobs/: {}", f.display());
        }
        files
    }

    /// Blob files of node `i` whose content is exactly `data`.
    pub fn blob_files_with(&self, i: usize, data: &[u8]) -> Vec<PathBuf> {
        self.blob_files(i)
            .into_iter()
            .filter(|p| fs::metadata(p).is_ok_and(|m| m.len() == data.len() as u64))
            .filter(|p| fs::read(p).is_ok_and(|b| b == data))
            .collect()
    }

    /// The last log lines of every node, plus its `/healthz`, for failure messages.
    pub fn log_report(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let _ = writeln!(out, "===== node {i} ({}, id {}) =====\n{}", node.region, id_of(i), node.log_report());
        }
        out
    }
}

/// The file a node writes in its `blobs/` when it creates it (the scrub checks it is still there).
pub const BLOBS_MARKER: &str = ".meridian-blobs";

/// Whether `path` looks like `.../blobs/<2 hex>/<32 hex>` with the file name starting with its
/// directory's name.
pub fn is_blob_path(path: &Path) -> bool {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let dir = path.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or_default();
    let top = path.parent().and_then(Path::parent).and_then(Path::file_name).and_then(|n| n.to_str());
    name.len() == 32 && is_hex(name) && dir.len() == 2 && name.starts_with(dir) && top == Some("blobs")
}

/// One cluster shared by every test of the run that asks for it (tests that do not kill,
/// freeze or reconfigure nodes). Tests run on separate runtimes, so build fresh clients in each;
/// the processes are killed by their watchdogs when the test program exits.
pub async fn shared_cluster() -> &'static TestCluster {
    static CLUSTER: tokio::sync::OnceCell<TestCluster> = tokio::sync::OnceCell::const_new();
    CLUSTER.get_or_init(TestCluster::start).await
}
