//! `meridian doctor --config FILE [--region NAME]`: checks a host before (or while) its node runs
//! and prints what to fix, one line per check.
//!
//! Each check is a small function returning [`Finding`]s; a group of checks has its own module
//! (`setup`: the config, the region and its secrets; `ports`; `storage`: the data directory;
//! `certs`; `peers`: reachability and mutual TLS; `clock`). The runner here calls them in an
//! order where later checks can use what earlier ones loaded (the node's identity, the CA), and
//! the exit status says whether anything FAILed.

mod certs;
mod clock;
mod peers;
mod ports;
mod probe;
mod setup;
mod storage;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use meridian_tls::{Identity, TrustAnchors};

use crate::config::{ClusterConfig, RegionConfig};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Nothing to do.
    Ok,
    /// The node can run, but something deserves a look (or will soon fail).
    Warn,
    /// The node cannot run as configured here, or runs unsafely: `doctor` exits 1.
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so the report's `{:<4}` lines the checks up.
        f.pad(match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        })
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// How bad it is.
    pub(crate) level: Level,
    /// The check's name (`ports.web`, `certificate.name`, `peer.virginia`, ...): stable, so
    /// scripts and tests can look for it.
    pub(crate) check: String,
    /// What was found.
    pub(crate) detail: String,
    /// What to do about it (WARN and FAIL).
    pub(crate) fix: Option<String>,
}

impl Finding {
    /// A check that passed.
    pub(crate) fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { level: Level::Ok, check: check.into(), detail: detail.into(), fix: None }
    }

    /// A check that found something to look at.
    pub(crate) fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { level: Level::Warn, check: check.into(), detail: detail.into(), fix: Some(fix.into()) }
    }

    /// A check that failed.
    pub(crate) fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { level: Level::Fail, check: check.into(), detail: detail.into(), fix: Some(fix.into()) }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4}  {:<24} {}", self.level, self.check, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " -- fix: {fix}")?;
        }
        Ok(())
    }
}

/// What the checks of one run share: the config, the region this host runs, and what the
/// certificate checks loaded for the peer checks.
pub(crate) struct Host<'a> {
    /// The config file's path, as given (error messages name it).
    pub(crate) path: &'a Path,
    /// The loaded config.
    pub(crate) config: &'a ClusterConfig,
    /// The region whose node runs (or will run) on this host.
    pub(crate) region: &'a RegionConfig,
    /// The node's certificate and key, when they load.
    pub(crate) identity: Option<Arc<Identity>>,
    /// The cluster CA, when it loads.
    pub(crate) anchors: Option<TrustAnchors>,
}

impl Host<'_> {
    /// The client side of TLS to this cluster's nodes: trusts the cluster CA alone and presents
    /// the node's certificate (what peers require); `None` when either did not load.
    pub(crate) fn client_tls(&self) -> Option<Arc<tokio_rustls::rustls::ClientConfig>> {
        let (identity, anchors) = (self.identity.as_ref()?, self.anchors.as_ref()?);
        meridian_tls::internal_client_config(Arc::clone(identity), anchors).ok().map(Arc::new)
    }
}

/// Runs every check and prints one line each, then a summary. `Err` (exit status 1) when a
/// check FAILed, so scripts can gate a start on it.
pub(crate) async fn run(config_path: &Path, region: Option<&str>) -> anyhow::Result<()> {
    let findings = check_all(config_path, region).await;
    for finding in &findings {
        println!("{finding}");
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (ok, warn, fail) = (count(Level::Ok), count(Level::Warn), count(Level::Fail));
    println!("doctor: {ok} OK, {warn} WARN, {fail} FAIL");
    if fail > 0 {
        anyhow::bail!("doctor: {fail} check(s) failed (see the FAIL lines above)");
    }
    Ok(())
}

/// Every check, in order. Stops after the config or the region when they fail: the other
/// checks need both.
async fn check_all(config_path: &Path, region: Option<&str>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let config = match setup::config(config_path) {
        Ok((config, finding)) => {
            findings.push(finding);
            config
        }
        Err(finding) => return vec![finding],
    };
    let region = match setup::region(&config, region) {
        Ok((region, finding)) => {
            findings.push(finding);
            region
        }
        Err(finding) => {
            findings.push(finding);
            return findings;
        }
    };
    let mut host = Host { path: config_path, config: &config, region, identity: None, anchors: None };
    findings.push(setup::secrets(&host));
    // Certificates first: the port and peer checks dial with what they load.
    findings.extend(certs::check(&mut host).await);
    findings.extend(ports::check(&host).await);
    findings.extend(storage::check(&host));
    findings.extend(peers::check(&host).await);
    findings
}

/// The regions whose listeners bind addresses of this host, by name; `is_local` says whether an
/// IP is one (an unspecified address, 0.0.0.0 or ::, binds on any host). A region counts when
/// every listener it binds is local: a host runs one node, so that is the one, and a config
/// whose regions all bind loopback (a laptop cluster) matches them all and needs `--region`.
pub(crate) fn regions_on_this_host(regions: &[RegionConfig], is_local: impl Fn(IpAddr) -> bool) -> Vec<&RegionConfig> {
    regions
        .iter()
        .filter(|region| {
            let binds = [&region.s3, &region.web, ClusterConfig::internal_bind(region)];
            binds.iter().all(|addr| {
                addr.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_unspecified() || is_local(a.ip()))
            })
        })
        .collect()
}

/// Whether `ip` is an address of this host: binding a UDP socket to it succeeds only then
/// (every 127/8 address is, on Linux).
pub(crate) fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::load_str;

    /// Three regions: `a` on loopback, `b` on 10.0.0.2 and `c` on 10.0.0.3 with its internal
    /// listener named by host (binding 0.0.0.0).
    fn three_regions() -> ClusterConfig {
        let text = crate::config::testing::VALID.to_owned()
            + r#"
[[region]]
id = 2
name = "b"
latitude = 1.0
longitude = 2.0
s3 = "10.0.0.2:1"
web = "10.0.0.2:2"
internal = "10.0.0.2:3"
data_dir = "data/b"
role = "voter"
[[region]]
id = 3
name = "c"
latitude = 1.0
longitude = 2.0
s3 = "10.0.0.3:1"
web = "10.0.0.3:2"
internal = "c.example.net:3"
internal_bind = "0.0.0.0:3"
data_dir = "data/c"
role = "voter"
"#;
        load_str(&text).expect("valid")
    }

    fn names(regions: &[&RegionConfig]) -> Vec<String> {
        regions.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn the_region_is_the_one_whose_listeners_are_local() {
        let config = three_regions();
        let only = |local: &'static [&'static str]| {
            move |ip: IpAddr| local.iter().any(|l| l.parse::<IpAddr>().is_ok_and(|l| l == ip))
        };
        assert_eq!(names(&regions_on_this_host(&config.region, only(&["10.0.0.2"]))), ["b"]);
        assert_eq!(names(&regions_on_this_host(&config.region, only(&["10.0.0.3"]))), ["c"], "0.0.0.0 binds anywhere");
        assert_eq!(names(&regions_on_this_host(&config.region, only(&["127.0.0.1"]))), ["a"]);
        assert!(regions_on_this_host(&config.region, only(&["192.0.2.1"])).is_empty());
        let all = names(&regions_on_this_host(&config.region, only(&["127.0.0.1", "10.0.0.2", "10.0.0.3"])));
        assert_eq!(all, ["a", "b", "c"], "ambiguous: --region decides");
    }

    #[test]
    fn loopback_is_local_and_a_documentation_address_is_not() {
        assert!(is_local_address("127.0.0.1".parse().expect("ip")));
        assert!(is_local_address("127.0.0.7".parse().expect("ip")), "all of 127/8 on Linux");
        assert!(!is_local_address("192.0.2.1".parse().expect("ip")));
    }

    #[test]
    fn a_finding_is_one_line_with_its_fix() {
        let line = Finding::fail("ports.web", "127.0.0.1:2 is in use", "stop it").to_string();
        assert!(line.starts_with("FAIL  ports.web"), "{line}");
        assert!(line.ends_with("127.0.0.1:2 is in use -- fix: stop it"), "{line}");
        assert!(!Finding::ok("config", "loads").to_string().contains("fix"));
    }
}
