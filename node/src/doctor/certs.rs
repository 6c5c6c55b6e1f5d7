//! The certificates: the cluster CA, the region's node certificate (loads with its key, chains
//! to the CA, names this region, covers the hosts clients dial, not expiring), the optional
//! public certificate, and the CA key (which does not belong on a node).

use std::net::IpAddr;
use std::sync::Arc;

use meridian_tls::{CertSummary, Identity, NodeName, TrustAnchors};

use super::probe::{self, STEP};
use super::{Finding, Host};
use crate::cert_cli::{hosts_of, region_hosts};

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Every certificate check; keeps the identity and the CA in `host` for the peer checks.
pub(super) async fn check(host: &mut Host<'_>) -> Vec<Finding> {
    let config = host.config;
    let tls = config.tls();
    let region = host.region;
    let warning_days = tls.expiry_warning_days;
    let issue =
        format!("run `meridian cert issue --region {}` where the CA key is, and copy the files here", region.name);
    let mut findings = Vec::new();

    let ca_path = config.resolve(&tls.ca_cert);
    match TrustAnchors::load(&ca_path).and_then(|anchors| Ok((anchors, CertSummary::read(&ca_path)?))) {
        Ok((anchors, summary)) => {
            host.anchors = Some(anchors);
            findings.push(expiry(
                "certificate.ca",
                &summary,
                warning_days,
                "make a new CA and re-issue every certificate",
            ));
        }
        Err(e) => findings.push(Finding::fail(
            "certificate.ca",
            format!("the cluster CA does not load: {e}"),
            "copy the cluster's ca.crt to [tls] ca_cert (`meridian cert init` makes one for a new cluster)",
        )),
    }
    let ca_key = config.resolve(&tls.ca_key());
    findings.push(if ca_key.exists() {
        Finding::warn(
            "certificate.ca_key",
            format!("the CA's private key is on this host ({})", ca_key.display()),
            "keep it off the nodes: whoever reads it can issue certificates every node trusts",
        )
    } else {
        Finding::ok("certificate.ca_key", "the CA's private key is not on this host")
    });

    let files = tls.region_files(region);
    let (cert, key) = (config.resolve(&files.cert), config.resolve(&files.key));
    match Identity::load(&cert, &key) {
        Err(e) => {
            findings.push(Finding::fail("certificate", format!("the node certificate does not load: {e}"), &issue));
        }
        Ok(identity) => {
            let summary = identity.summary();
            findings.push(Finding::ok("certificate", format!("{} and its key load as a pair", cert.display())));
            findings.push(name(&summary, &NodeName::new(&config.cluster.name, &region.name), &issue));
            findings.push(hosts("certificate.hosts", &summary, &region_hosts(region), &issue));
            findings.push(expiry("certificate.expiry", &summary, warning_days, &issue));
            findings.push(match &host.anchors {
                Some(anchors) => chain(Arc::clone(&identity), anchors, &summary, &issue).await,
                None => Finding::fail(
                    "certificate.chain",
                    "not checked: the cluster CA does not load",
                    "see certificate.ca",
                ),
            });
            host.identity = Some(identity);
        }
    }

    if files.public_cert != files.cert {
        let (cert, key) = (config.resolve(&files.public_cert), config.resolve(&files.public_key));
        let renew = "renew the public certificate (with the names clients use) and its key";
        match Identity::load(&cert, &key) {
            Err(e) => findings.push(Finding::fail("public_certificate", format!("does not load: {e}"), renew)),
            Ok(identity) => {
                let summary = identity.summary();
                findings
                    .push(Finding::ok("public_certificate", format!("{} and its key load as a pair", cert.display())));
                let urls = region.s3_url.iter().filter_map(|url| url.split_once("://").map(|(_, rest)| rest));
                let wanted = hosts_of([region.s3.as_str(), region.web.as_str()].into_iter().chain(urls));
                findings.push(hosts("public_certificate.hosts", &summary, &wanted, renew));
                findings.push(expiry("public_certificate.expiry", &summary, warning_days, renew));
            }
        }
    }
    findings
}

/// The certificate names this region of this cluster: what peers check after the handshake.
fn name(summary: &CertSummary, wanted: &NodeName, issue: &str) -> Finding {
    match &summary.name {
        Some(name) if name == wanted => Finding::ok("certificate.name", name.uri()),
        Some(name) => Finding::fail(
            "certificate.name",
            format!("{} names {} ({}), not {wanted}", summary.path.display(), name, name.uri()),
            format!("peers would refuse it: {issue}"),
        ),
        None => Finding::fail(
            "certificate.name",
            format!("{} names no Meridian node (no {} URI)", summary.path.display(), wanted.uri()),
            format!("peers would refuse it: {issue}"),
        ),
    }
}

/// The certificate covers every host in `wanted`.
fn hosts(check: &str, summary: &CertSummary, wanted: &[String], fix: &str) -> Finding {
    let missing = uncovered(wanted, &summary.hosts);
    if missing.is_empty() {
        Finding::ok(check, format!("covers {}", wanted.join(", ")))
    } else {
        Finding::fail(
            check,
            format!("does not cover {} (it names: {})", missing.join(", "), summary.hosts.join(", ")),
            format!("clients verifying the host name would refuse it: {fix}"),
        )
    }
}

/// FAIL once expired, WARN within the warning window.
fn expiry(check: &str, summary: &CertSummary, warning_days: u32, fix: &str) -> Finding {
    let left = summary.expires_in_secs();
    let days = (left + DAY / 2) / DAY;
    if left <= 0 {
        Finding::fail(check, format!("{} expired {} day(s) ago", summary.path.display(), -days), fix)
    } else if left < i64::from(warning_days) * DAY {
        Finding::warn(check, format!("{} expires in {days} day(s)", summary.path.display()), fix)
    } else {
        Finding::ok(check, format!("expires in {days} days"))
    }
}

/// The certificate chains to the cluster CA, checked the way peers will: a mutual-TLS handshake,
/// in memory, between a server presenting the node's identity (the internal listener's config)
/// and a client presenting it too and trusting only the CA (the peer client's config).
async fn chain(identity: Arc<Identity>, anchors: &TrustAnchors, summary: &CertSummary, issue: &str) -> Finding {
    const CHECK: &str = "certificate.chain";
    // Dial a name the certificate holds, so only the chain (and validity) can fail here; which
    // names it should hold is `certificate.hosts`' business.
    let Some(server_name) = summary.hosts.first() else {
        return Finding::fail(CHECK, "not checked: the certificate names no host", issue);
    };
    let configs = meridian_tls::internal_server_config(Arc::clone(&identity), anchors)
        .and_then(|server| Ok((server, meridian_tls::internal_client_config(identity, anchors)?)));
    let (server, client) = match configs {
        Ok(configs) => configs,
        Err(e) => return Finding::fail(CHECK, format!("no TLS config can be built: {e}"), issue),
    };
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let accept = tokio::time::timeout(STEP, meridian_tls::TlsAcceptor::from(server).accept(server_end));
    let connect = probe::handshake(client_end, Arc::new(client), server_name);
    let (accepted, connected) = tokio::join!(accept, connect);
    match (connected, accepted) {
        (Ok(_), Ok(Ok(_))) => {
            Finding::ok(CHECK, "chains to the cluster CA (mutual-TLS handshake with itself succeeded)")
        }
        (Err(why), _) => Finding::fail(CHECK, why.replace("its certificate", "the node certificate"), issue),
        (Ok(_), Ok(Err(e))) => {
            Finding::fail(CHECK, format!("as a client certificate: {}", probe::tls_failure(&e)), issue)
        }
        (Ok(_), Err(_)) => Finding::fail(CHECK, "the handshake did not finish", issue),
    }
}

/// The hosts of `wanted` that no entry of `names` covers: an IP by an equal IP SAN, a DNS name
/// by an equal (case-insensitive) DNS SAN or a wildcard `*.rest` for one leftmost label.
pub(super) fn uncovered(wanted: &[String], names: &[String]) -> Vec<String> {
    let covers = |name: &str, host: &str| match (name.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        (Ok(name), Ok(host)) => name.to_canonical() == host.to_canonical(),
        (Err(_), Err(_)) => {
            let (name, host) = (name.to_ascii_lowercase(), host.to_ascii_lowercase());
            name == host
                || name.strip_prefix("*.").is_some_and(|rest| {
                    host.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest)
                })
        }
        _ => false,
    };
    wanted.iter().filter(|host| !names.iter().any(|name| covers(name, host))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hosts_are_covered_by_equal_names_ips_and_one_label_wildcards() {
        let names = strings(&["127.0.0.1", "fra.example.net", "*.s3.example.net", "::1"]);
        let wanted = strings(&["127.0.0.1", "FRA.example.net", "b.s3.example.net", "0:0:0:0:0:0:0:1"]);
        assert!(uncovered(&wanted, &names).is_empty());
        let wanted = strings(&["127.0.0.2", "virginia.example.net", "a.b.s3.example.net", "s3.example.net"]);
        assert_eq!(uncovered(&wanted, &names), wanted, "no wildcard spans two labels or none");
        assert_eq!(uncovered(&strings(&["127.0.0.1"]), &strings(&["localhost"])), ["127.0.0.1"]);
    }

    #[test]
    fn expiry_fails_once_expired_and_warns_within_the_window() {
        let summary = |days: i64| CertSummary {
            path: "n.crt".into(),
            name: None,
            hosts: vec![],
            not_after_unix: time::OffsetDateTime::now_utc().unix_timestamp() + days * DAY + 60,
        };
        assert_eq!(expiry("c", &summary(-2), 14, "renew").level, super::super::Level::Fail);
        assert_eq!(expiry("c", &summary(3), 14, "renew").level, super::super::Level::Warn);
        assert_eq!(expiry("c", &summary(30), 14, "renew").level, super::super::Level::Ok);
    }
}
