//! The network nemesis: three hosts made of network namespaces, one per node, joined by a bridge,
//! with links cut and healed by nft rules inside the hosts.
//!
//! Layout of one [`NetHosts`] (made per test; names carry the test process's pid and a counter,
//! so parallel tests and other people's runs never share one):
//!
//! ```text
//!   root namespace (the test, its S3 clients)          10.S.T.254 on veth mrdt<id>
//!        | veth
//!   mrdt<id>-br: bridge br0 -- veth -- mrdt<id>-h0   10.S.T.1 (eth0)   node 0
//!                           -- veth -- mrdt<id>-h1   10.S.T.2          node 1
//!                           -- veth -- mrdt<id>-h2   10.S.T.3          node 2
//! ```
//!
//! Each host has an nft table `meridian_nemesis` whose rules drop packets between hosts: the
//! root namespace is never cut, so the test always reaches every node. Nodes are started inside
//! their host through [`NetHosts::launch`] (`ip netns exec`), with certificates naming their
//! address ([`NetHosts::tls_section`]). Dropping the value deletes the namespaces (and with them
//! the veths and rules), also when the test panics; a run that was killed leaves namespaces
//! whose pid is gone, which the next run deletes.
//!
//! Needs root and `ip netns` and `nft`: [`NetHosts::create`] says so loudly and returns `None`
//! otherwise.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use meridian_tls::NodeName;
use meridian_tls::pki::{self, NodeCertRequest};

use super::Launch;
use super::cluster::CLUSTER_NAME;

/// Prefix of every namespace this harness makes.
const PREFIX: &str = "mrdt";
/// Name of the nft table of the cuts inside each host.
const TABLE: &str = "meridian_nemesis";
/// Per-process counter of the networks made, part of their names.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Three hosts on one bridge, reachable from the test; see the module docs.
pub struct NetHosts {
    /// `<pid><counter>` in hex: part of every name.
    id: String,
    /// The namespace holding the bridge.
    bridge_ns: String,
    /// The hosts' namespaces, node `i` in `hosts[i]`.
    hosts: [String; 3],
    /// The hosts' addresses.
    ips: [Ipv4Addr; 3],
    /// The /24 they share, as `10.S.T.0/24`.
    subnet: String,
    /// The certificates naming the hosts' addresses (a CA of its own per network).
    pki: tempfile::TempDir,
}

/// Runs a command with a bounded time (`timeout 20`); its output on failure.
fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new("timeout").arg("20").args(args).output().map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs a command that must succeed.
fn must(args: &[&str]) {
    if let Err(e) = run(args) {
        panic!("netns: {e}");
    }
}

/// Prints a message that cannot be missed (the test then returns: skipped, not passed).
fn skip_loudly(test: &str, why: &str) {
    let bar = "!".repeat(80);
    eprintln!("\n{bar}\n!!! SKIPPED {test}: {why}.\n!!! The network partition nemesis did NOT run.\n{bar}\n");
}

impl NetHosts {
    /// Makes a fresh network of three hosts, or says loudly why it cannot (not root, no `ip
    /// netns`, no `nft`) and returns `None`.
    pub fn create(test: &str) -> Option<NetHosts> {
        let euid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        if !euid.is_ok_and(|uid| uid == "0") {
            skip_loudly(test, "needs root (network namespaces); CI runs it under sudo");
            return None;
        }
        if run(&["ip", "netns", "list"]).is_err() {
            skip_loudly(test, "`ip netns` does not work here");
            return None;
        }
        if run(&["nft", "--version"]).is_err() {
            skip_loudly(test, "`nft` is missing (scripts/install-test-tools installs nftables)");
            return None;
        }
        delete_stale();
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:x}", (u64::from(pid) << 8) | u64::from(n & 0xff));
        let (s, t) = free_subnet(pid, n);
        let ips = [1, 2, 3].map(|h| Ipv4Addr::new(10, s, t, h));
        let net = NetHosts {
            bridge_ns: format!("{PREFIX}{id}-br"),
            hosts: [0, 1, 2].map(|i| format!("{PREFIX}{id}-h{i}")),
            id,
            ips,
            subnet: format!("10.{s}.{t}.0/24"),
            pki: tempfile::Builder::new().prefix("meridian-netns-pki-").tempdir().expect("pki dir"),
        };
        net.build(Ipv4Addr::new(10, s, t, 254));
        net.issue_certificates();
        Some(net)
    }

    /// The namespaces, bridge, veths, addresses and (empty) nft tables.
    fn build(&self, root_ip: Ipv4Addr) {
        let br = self.bridge_ns.as_str();
        must(&["ip", "netns", "add", br]);
        must(&["ip", "-n", br, "link", "set", "lo", "up"]);
        must(&["ip", "-n", br, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", br, "link", "set", "br0", "up"]);
        for (i, (host, ip)) in self.hosts.iter().zip(self.ips).enumerate() {
            let port = format!("p{i}");
            must(&["ip", "netns", "add", host]);
            must(&["ip", "-n", host, "link", "set", "lo", "up"]);
            must(&["ip", "-n", br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", host]);
            must(&["ip", "-n", br, "link", "set", &port, "master", "br0", "up"]);
            must(&["ip", "-n", host, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            must(&["ip", "-n", host, "link", "set", "eth0", "up"]);
            let table = format!(
                "table inet {TABLE} {{\n chain input {{ type filter hook input priority 0; }}\n \
                 chain output {{ type filter hook output priority 0; }}\n}}\n"
            );
            self.nft(i, &table);
        }
        let root_veth = format!("{PREFIX}{}", self.id);
        must(&["ip", "link", "add", &root_veth, "type", "veth", "peer", "name", "uplink", "netns", br]);
        must(&["ip", "-n", br, "link", "set", "uplink", "master", "br0", "up"]);
        must(&["ip", "addr", "add", &format!("{root_ip}/24"), "dev", &root_veth]);
        must(&["ip", "link", "set", &root_veth, "up"]);
    }

    /// A CA of its own and a certificate per region naming its host's address.
    fn issue_certificates(&self) {
        let dir = self.pki.path();
        pki::init_ca(CLUSTER_NAME, &dir.join("ca.crt"), &dir.join("ca.key"), 30).expect("netns CA");
        for (i, ip) in self.ips.iter().enumerate() {
            let region = super::cluster::REGIONS[i].0;
            let request = NodeCertRequest {
                name: NodeName::new(CLUSTER_NAME, region),
                hosts: vec![ip.to_string(), "127.0.0.1".into(), "localhost".into()],
                validity_days: 30,
            };
            let (cert, key) = (dir.join(format!("{region}.crt")), dir.join(format!("{region}.key")));
            pki::issue(&dir.join("ca.crt"), &dir.join("ca.key"), &request, &cert, &key).expect("netns certificate");
        }
    }

    /// Loads nft commands into host `i`'s namespace.
    fn nft(&self, i: usize, script: &str) {
        let path: PathBuf = self.pki.path().join(format!("nft-{i}.conf"));
        std::fs::write(&path, script).expect("write nft script");
        must(&["ip", "netns", "exec", &self.hosts[i], "nft", "-f", &path.display().to_string()]);
    }

    /// Where node `i` listens: S3, web, internal, on its host's address.
    pub fn addrs(&self, i: usize) -> [SocketAddr; 3] {
        [9000, 8000, 7000].map(|port| SocketAddr::from((self.ips[i], port)))
    }

    /// The three nodes' addresses, for `TestCluster::start_on`.
    pub fn all_addrs(&self) -> [[SocketAddr; 3]; 3] {
        [0, 1, 2].map(|i| self.addrs(i))
    }

    /// How to start node `i` inside its host.
    pub fn launch(&self, i: usize) -> Launch {
        Launch { env: Vec::new(), wrapper: vec!["ip".into(), "netns".into(), "exec".into(), self.hosts[i].clone()] }
    }

    /// The launches of the three nodes.
    pub fn launches(&self) -> [Launch; 3] {
        [0, 1, 2].map(|i| self.launch(i))
    }

    /// The `[tls]` table of the nodes' config: this network's CA, and plain HTTP allowed on
    /// its subnet (the test's S3 clients talk plain HTTP, as on loopback).
    pub fn tls_section(&self) -> String {
        format!(
            "[tls]\nca_cert = '{}'\nplain_http_networks = [\"{}\"]\n",
            self.pki.path().join("ca.crt").display(),
            self.subnet
        )
    }

    /// Drops every packet between hosts `a` and `b`, both ways.
    pub fn cut(&self, a: usize, b: usize) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Drops every packet from host `from` to host `to` (the other way still flows). TCP needs
    /// both ways, so no connection between the two completes, whoever dials: what one-way loss
    /// does to a real link.
    pub fn cut_one_way(&self, from: usize, to: usize) {
        let (src, dst) = (self.ips[from], self.ips[to]);
        self.nft(from, &format!("add rule inet {TABLE} output ip daddr {dst} drop\n"));
        self.nft(to, &format!("add rule inet {TABLE} input ip saddr {src} drop\n"));
    }

    /// Refuses new connections from host `from` to host `to`: `to` still dials `from`, and
    /// connections it opened carry data both ways. An asymmetric link (a firewall rule gone wrong).
    pub fn block_dial(&self, from: usize, to: usize) {
        let src = self.ips[from];
        self.nft(to, &format!("add rule inet {TABLE} input ip saddr {src} ct state new drop\n"));
    }

    /// Cuts host `a` from both others (the test still reaches it).
    pub fn isolate(&self, a: usize) {
        for b in (0..3).filter(|&b| b != a) {
            self.cut(a, b);
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        for i in 0..3 {
            self.nft(i, &format!("flush chain inet {TABLE} input\nflush chain inet {TABLE} output\n"));
        }
    }
}

impl Drop for NetHosts {
    fn drop(&mut self) {
        // The nodes are stopped first (the cluster is dropped before the network); a namespace
        // with a process left in it would live on unnamed until that process ends.
        for ns in self.hosts.iter().chain([&self.bridge_ns]) {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("netns cleanup: {e}");
            }
        }
    }
}

/// A /24 under 10/8 for a network of `pid`'s `n`th call that no address of the root namespace
/// is in (other runs' networks, the hosts scripts' 10.77.0.0/24).
fn free_subnet(pid: u32, n: u32) -> (u8, u8) {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show"]).output().expect("ip addr show");
    let taken = String::from_utf8_lossy(&out.stdout).into_owned();
    for attempt in 0..256u32 {
        let s = 100 + ((pid + attempt) % 100) as u8;
        let t = ((n + attempt * 7) % 256) as u8;
        if !taken.contains(&format!(" 10.{s}.{t}.")) {
            return (s, t);
        }
    }
    panic!("netns: no free 10.x.y.0/24 for a test network");
}

/// Deletes namespaces of this harness left by test processes that are gone (killed before
/// their Drop ran) and that hold no process.
fn delete_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some((id, _)) = rest.split_once('-') else { continue };
        let Ok(id) = u64::from_str_radix(id, 16) else { continue };
        let pid = id >> 8;
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        let empty = Command::new("ip").args(["netns", "pids", name]).output().is_ok_and(|o| o.stdout.is_empty());
        if !alive && empty {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// A [`super::cluster::TestCluster`] whose three nodes run in the hosts of a [`NetHosts`].
/// Fields drop in order: the nodes stop before their namespaces go.
pub struct NetCluster {
    /// The nodes; node `i` in host `i`.
    pub cluster: super::cluster::TestCluster,
    /// The network, for cuts and heals.
    pub net: NetHosts,
}

impl NetCluster {
    /// Starts a cluster of `options` inside a fresh [`NetHosts`], or returns `None` (said
    /// loudly) where there can be none. The status routes are open to the test (it is not on
    /// loopback).
    pub async fn start(test: &str, mut options: super::cluster::ClusterOptions) -> Option<NetCluster> {
        let net = NetHosts::create(test)?;
        options.extra_config.push_str("\n[api]\nstatus_access = \"open\"\n");
        let cluster =
            super::cluster::TestCluster::start_on(options, net.all_addrs(), net.launches(), Some(net.tls_section()))
                .await;
        Some(NetCluster { cluster, net })
    }
}
