//! `meridian cert`: the cluster's CA and its nodes' certificates, from the paths and names of
//! `cluster.toml`, so what is issued is exactly what the nodes will look for.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use meridian_tls::pki::{self, NodeCertRequest};
use meridian_tls::{CertSummary, NodeName};

use crate::config::{ClusterConfig, RegionConfig};

/// `meridian cert init`: makes the CA at `[tls] ca_cert` / `ca_key`. Refuses to replace one;
/// with `if_missing`, an existing CA is kept and named (what `scripts/cluster-up` runs each time).
pub(crate) fn init(config_path: &Path, days: u32, if_missing: bool) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let tls = config.tls();
    let (cert, key) = (config.resolve(&tls.ca_cert), config.resolve(&tls.ca_key()));
    if if_missing && cert.exists() {
        let summary = CertSummary::read(&cert)?;
        println!("cluster CA of {:?}: {} (exists)", config.cluster.name, cert.display());
        println!("  expires in {} days", (summary.expires_in_secs() + 43_200) / 86_400);
        return Ok(());
    }
    let summary = pki::init_ca(&config.cluster.name, &cert, &key, days)
        .with_context(|| format!("cannot make the CA of cluster {:?}", config.cluster.name))?;
    println!("cluster CA of {:?}: {}", config.cluster.name, cert.display());
    println!("  key: {} (only `meridian cert issue` needs it: keep it off the nodes)", key.display());
    println!("  expires in {} days", (summary.expires_in_secs() + 43_200) / 86_400);
    Ok(())
}

/// `meridian cert issue --region NAME`: a certificate for the region's node, naming it and every
/// host its listeners and URLs are reached by (plus `extra_hosts`), written where the config
/// says (replacing an older one: a running node picks it up by itself). With `if_missing`, a
/// certificate that exists, names this region of this cluster and is not within the expiry
/// warning window is kept.
pub(crate) fn issue(
    config_path: &Path,
    region_name: &str,
    extra_hosts: &[String],
    days: u32,
    if_missing: bool,
) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let region = config
        .region(region_name)
        .with_context(|| format!("no [[region]] named {region_name:?} in {}", config_path.display()))?;
    let tls = config.tls();
    let files = tls.region_files(region);
    let (cert, key) = (config.resolve(&files.cert), config.resolve(&files.key));
    let name = NodeName::new(&config.cluster.name, region_name);
    if if_missing
        && key.exists()
        && let Ok(summary) = CertSummary::read(&cert)
        && summary.name.as_ref() == Some(&name)
        && summary.expires_in_secs() > i64::from(tls.expiry_warning_days) * 86_400
    {
        println!(
            "{}: {name} (exists, expires in {} days)",
            cert.display(),
            (summary.expires_in_secs() + 43_200) / 86_400
        );
        return Ok(());
    }
    let mut hosts = region_hosts(region);
    for host in extra_hosts {
        if !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    let request = NodeCertRequest { name, hosts, validity_days: days };
    let summary = pki::issue(&config.resolve(&tls.ca_cert), &config.resolve(&tls.ca_key()), &request, &cert, &key)
        .with_context(|| format!("cannot issue the certificate of region {region_name:?}"))?;
    print_summary(&summary);
    println!("  key: {}", key.display());
    Ok(())
}

/// `meridian cert show`: what each region's certificate (and the CA) says, and when it expires.
pub(crate) fn show(config_path: &Path) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let tls = config.tls();
    let mut paths: Vec<PathBuf> = vec![config.resolve(&tls.ca_cert)];
    for region in &config.region {
        let files = tls.region_files(region);
        paths.push(config.resolve(&files.cert));
        if files.public_cert != files.cert {
            paths.push(config.resolve(&files.public_cert));
        }
    }
    for path in paths {
        match CertSummary::read(&path) {
            Ok(summary) => print_summary(&summary),
            Err(e) => println!("{e}"),
        }
    }
    Ok(())
}

fn print_summary(summary: &CertSummary) {
    let days = (summary.expires_in_secs() + 43_200) / 86_400;
    let name = summary.name.as_ref().map_or_else(|| "CA or foreign certificate".to_owned(), ToString::to_string);
    println!("{}: {name}", summary.path.display());
    if !summary.hosts.is_empty() {
        println!("  hosts: {}", summary.hosts.join(", "));
    }
    if summary.expires_in_secs() < 0 {
        println!("  EXPIRED {} days ago", -days);
    } else {
        println!("  expires in {days} days");
    }
}

/// The hosts a region is reached by: its listeners' addresses (unless they bind every address)
/// and the hosts of its public URL. `meridian doctor` checks a certificate covers them.
pub(crate) fn region_hosts(region: &RegionConfig) -> Vec<String> {
    let addrs = [Some(&region.s3), Some(&region.web), Some(&region.internal), region.internal_bind.as_ref()];
    let urls = region.s3_url.iter().filter_map(|url| url.split_once("://").map(|(_, rest)| rest));
    hosts_of(addrs.into_iter().flatten().map(String::as_str).chain(urls))
}

/// The host parts of `ip:port`, `host:port` or bare hosts, once each, in order; unspecified
/// addresses (0.0.0.0, ::) are left out, as no client dials them.
pub(crate) fn hosts_of<'a>(addrs: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut hosts = Vec::new();
    for addr in addrs {
        let host = match addr.parse::<SocketAddr>() {
            Ok(socket) if socket.ip().is_unspecified() => continue,
            Ok(socket) => socket.ip().to_string(),
            // host:port or a bare host (a URL without a port)
            Err(_) => addr.rsplit_once(':').map_or(addr, |(host, _)| host).trim_matches(['[', ']']).to_owned(),
        };
        if !host.is_empty() && !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_reached_by_its_listeners_hosts_and_its_urls() {
        let text = crate::config::testing::VALID.replace(
            "internal = \"127.0.0.1:3\"",
            "internal = \"fra.example.net:3\"\ninternal_bind = \"0.0.0.0:3\"\ns3_url = \"https://s3.fra.example.net\"",
        );
        let config = crate::config::testing::load_str(&text).expect("load");
        assert_eq!(region_hosts(&config.region[0]), ["127.0.0.1", "fra.example.net", "s3.fra.example.net"]);
    }
}
