//! The region's listener addresses are free: bound and dropped at once. An address already in
//! use by this region's own running node is fine to report as such (doctor also runs beside a
//! live node); in use by anything else, the node could not start.

use std::net::SocketAddr;

use super::probe::HttpConnection;
use super::{Finding, Host};
use crate::config::ClusterConfig;

/// One finding per listener: `ports.s3`, `ports.web`, `ports.internal`.
pub(super) async fn check(host: &Host<'_>) -> Vec<Finding> {
    let region = host.region;
    let listeners =
        [("s3", region.s3.as_str()), ("web", region.web.as_str()), ("internal", ClusterConfig::internal_bind(region))];
    // Asked at most once, and only when an address is taken.
    let mut running: Option<Option<String>> = None;
    let mut findings = Vec::new();
    for (name, addr) in listeners {
        let check = format!("ports.{name}");
        let Ok(socket) = addr.parse::<SocketAddr>() else {
            findings.push(Finding::fail(check, format!("{addr} is not ip:port"), "correct the address in the config"));
            continue;
        };
        let finding = match std::net::TcpListener::bind(socket) {
            Ok(listener) => {
                drop(listener);
                Finding::ok(check, format!("{addr} is free"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if running.is_none() {
                    running = Some(running_node(host).await);
                }
                match running.as_ref().and_then(Option::as_ref) {
                    Some(node) => Finding::warn(
                        check,
                        format!("{addr} is in use by a running meridian node ({node})"),
                        "nothing, if that node is this host's; stop it before starting another",
                    ),
                    None => Finding::fail(
                        check,
                        format!("{addr} is in use by another process"),
                        format!(
                            "stop what holds {addr} (`ss -ltnp 'sport = :{}'` names it) or move the listener",
                            socket.port()
                        ),
                    ),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Finding::fail(
                check,
                format!("{addr}: {} is not an address of this host", socket.ip()),
                "bind an address of this host (or 0.0.0.0), or run doctor on the region's own host",
            ),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Finding::fail(
                check,
                format!("{addr}: not allowed to bind it ({e})"),
                "use a port above 1023, or give the service CAP_NET_BIND_SERVICE",
            ),
            Err(e) => Finding::fail(check, format!("cannot bind {addr}: {e}"), "see the error"),
        };
        findings.push(finding);
    }
    findings
}

/// Which node answers `/healthz` on this region's web address, if one does: "region NAME".
/// HTTPS (trusting the cluster CA) where the web listener answers only that, else plain HTTP;
/// plain HTTP is tried after a failed HTTPS too, for a node of a release without TLS.
async fn running_node(host: &Host<'_>) -> Option<String> {
    let web = &host.region.web;
    let plain = web.parse::<SocketAddr>().is_ok_and(|a| host.config.tls().plain_http_allowed(a.ip().to_canonical()));
    let schemes: &[bool] = if plain { &[true] } else { &[false, true] };
    for &plain in schemes {
        let Ok(mut connection) = HttpConnection::open(web, plain, host.client_tls()).await else { continue };
        let Ok(answer) = connection.get("/healthz").await else { continue };
        let region = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|body| body.get("region").and_then(|r| r.as_str()).map(str::to_owned));
        if let Some(region) = region {
            return Some(format!("region {region}, /healthz answered {}", answer.status));
        }
    }
    None
}
