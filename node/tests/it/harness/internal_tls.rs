//! Clients of the internal listener as a node dials it: mutual TLS with a certificate of the
//! test cluster's CA (see [`super::tls`]). For the tests that forge requests to it (the HMAC
//! attacks need a TLS connection to get that far) and those that check whom TLS refuses.

use std::net::SocketAddr;
use std::sync::Arc;

use meridian_tls::{Identity, TrustAnchors};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The rustls config of the node of `region` in `cluster` (certificates made by the harness).
pub fn node_tls(cluster: &str, region: &str) -> rustls::ClientConfig {
    let dir = super::tls::cluster_pki(cluster, &[region]);
    let identity = Identity::load(&dir.join(format!("{region}.crt")), &dir.join(format!("{region}.key")))
        .expect("test node certificate");
    let anchors = TrustAnchors::load(&dir.join("ca.crt")).expect("test CA");
    meridian_tls::internal_client_config(identity, &anchors).expect("client config")
}

/// An HTTP client presenting the certificate of `region` of `cluster`: `https://` URLs of the
/// internal listeners work with it as a peer's calls do.
pub fn internal_http(cluster: &str, region: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(node_tls(cluster, region))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("internal client")
}

/// A TLS connection to the internal listener at `addr` as the node of `region` of `cluster`,
/// for requests written by hand.
pub async fn internal_connect(addr: SocketAddr, cluster: &str, region: &str) -> TlsStream<TcpStream> {
    connect_with(addr, node_tls(cluster, region)).await.expect("TLS connection to the internal listener")
}

/// A TLS connection to `addr` with `config` (server name: its IP address).
pub async fn connect_with(addr: SocketAddr, config: rustls::ClientConfig) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = TcpStream::connect(addr).await?;
    let server = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(server, socket).await
}
