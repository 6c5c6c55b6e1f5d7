//! Real TLS handshakes over loopback between the configs this crate builds: who gets in to the
//! internal listener, and what a reload changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meridian_tls::pki::{self, NodeCertRequest};
use meridian_tls::{Identity, NodeName, TlsAcceptor, TrustAnchors};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A CA and a node certificate for `region` under `dir`.
fn cluster(dir: &Path, cluster: &str, regions: &[&str]) {
    pki::init_ca(cluster, &dir.join("ca.crt"), &dir.join("ca.key"), 30).expect("ca");
    for region in regions {
        issue(dir, cluster, region, 30);
    }
}

fn issue(dir: &Path, cluster: &str, region: &str, days: u32) {
    let request = NodeCertRequest {
        name: NodeName::new(cluster, region),
        hosts: vec!["127.0.0.1".into(), "localhost".into()],
        validity_days: days,
    };
    pki::issue(
        &dir.join("ca.crt"),
        &dir.join("ca.key"),
        &request,
        &dir.join(format!("{region}.crt")),
        &dir.join(format!("{region}.key")),
    )
    .expect("issue");
}

fn identity(dir: &Path, region: &str) -> Arc<Identity> {
    Identity::load(&dir.join(format!("{region}.crt")), &dir.join(format!("{region}.key"))).expect("identity")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meridian-tls-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Serves one connection: completes the handshake, answers with the client's node name.
async fn serve_once(listener: TcpListener, acceptor: TlsAcceptor) -> Result<NodeName, String> {
    let (socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let mut tls = acceptor.accept(socket).await.map_err(|e| format!("handshake: {e}"))?;
    let name = meridian_tls::peer_name(tls.get_ref().1)?;
    tls.write_all(name.region.as_bytes()).await.map_err(|e| e.to_string())?;
    tls.shutdown().await.map_err(|e| e.to_string())?;
    Ok(name)
}

/// Connects with `config` and reads the server's answer.
async fn call(addr: std::net::SocketAddr, config: rustls::ClientConfig) -> Result<String, String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let socket = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut tls = connector.connect(server, socket).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.map_err(|e| e.to_string())?;
    Ok(answer)
}

async fn internal_listener(dir: &Path, region: &str) -> (std::net::SocketAddr, TlsAcceptor) {
    let anchors = TrustAnchors::load(&dir.join("ca.crt")).expect("anchors");
    let config = meridian_tls::internal_server_config(identity(dir, region), &anchors).expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    (addr, TlsAcceptor::from(config))
}

#[tokio::test]
async fn a_peer_of_the_cluster_gets_in_and_is_named() {
    let dir = temp("peer");
    cluster(&dir, "c1", &["frankfurt", "virginia"]);
    let (addr, acceptor) = internal_listener(&dir, "frankfurt").await;
    let listener = TcpListener::bind(addr).await.expect("bind");
    let server = tokio::spawn(serve_once(listener, acceptor));
    let anchors = TrustAnchors::load(&dir.join("ca.crt")).expect("anchors");
    let client = meridian_tls::internal_client_config(identity(&dir, "virginia"), &anchors).expect("client");
    assert_eq!(call(addr, client).await.as_deref(), Ok("virginia"));
    assert_eq!(server.await.expect("join"), Ok(NodeName::new("c1", "virginia")));
}

#[tokio::test]
async fn a_client_without_a_certificate_or_of_another_ca_is_refused_at_the_handshake() {
    let dir = temp("refused");
    cluster(&dir, "c1", &["frankfurt"]);
    let other = temp("refused-other");
    cluster(&other, "c1", &["virginia"]);
    let anchors = TrustAnchors::load(&dir.join("ca.crt")).expect("anchors");

    // No client certificate: trusts the server, presents nothing.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("ca.crt")).expect("pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let bare = rustls::ClientConfig::builder_with_provider(meridian_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // A certificate of the same region name, issued by another CA.
    let forged = meridian_tls::internal_client_config(identity(&other, "virginia"), &anchors).expect("client");
    for (what, client) in [("no certificate", bare), ("another CA", forged)] {
        let (addr, acceptor) = internal_listener(&dir, "frankfurt").await;
        let listener = TcpListener::bind(addr).await.expect("bind");
        let server = tokio::spawn(serve_once(listener, acceptor));
        let answer = call(addr, client).await;
        assert!(answer.is_err() || answer.as_deref() == Ok(""), "{what}: {answer:?}");
        let served = server.await.expect("join");
        // Refused by the handshake itself, not later for lack of a name.
        assert!(served.as_ref().is_err_and(|e| e.starts_with("handshake: ")), "{what}: {served:?}");
    }
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_a_reload_and_a_broken_one_is_not() {
    let dir = temp("reload");
    cluster(&dir, "c1", &["frankfurt"]);
    let node = identity(&dir, "frankfurt");
    let before = node.summary();
    assert_eq!(node.reload(false).expect("unchanged"), None, "nothing changed yet");

    issue(&dir, "c1", "frankfurt", 5);
    let after = node.reload(false).expect("reload").expect("a new certificate");
    assert!(after.not_after_unix < before.not_after_unix, "{after:?} {before:?}");
    assert_eq!(node.summary(), after);

    // A key that does not match its certificate (a half-done renewal) keeps the old pair in use.
    std::fs::copy(dir.join("ca.key"), dir.join("frankfurt.key")).expect("copy");
    assert!(node.reload(true).is_err());
    assert_eq!(node.summary(), after);
}

#[tokio::test]
async fn a_certificate_of_the_cluster_ca_naming_another_cluster_or_region_is_not_admitted() {
    let dir = temp("admit");
    cluster(&dir, "c1", &["frankfurt", "virginia"]);
    // The same CA issued certificates for a node of another cluster and an unknown region.
    issue(&dir, "c2", "staging", 30);
    issue(&dir, "c1", "mars", 30);
    let anchors = TrustAnchors::load(&dir.join("ca.crt")).expect("anchors");
    for (client, expected) in [
        ("virginia", Ok(NodeName::new("c1", "virginia"))),
        ("staging", Err(meridian_tls::Refusal::OtherCluster(NodeName::new("c2", "staging")))),
        ("mars", Err(meridian_tls::Refusal::UnknownRegion(NodeName::new("c1", "mars")))),
    ] {
        let (addr, acceptor) = internal_listener(&dir, "frankfurt").await;
        let listener = TcpListener::bind(addr).await.expect("bind");
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let tls = acceptor.accept(socket).await.expect("handshake");
            meridian_tls::admit_peer(tls.get_ref().1, "c1", &["frankfurt", "virginia"])
        });
        let config = meridian_tls::internal_client_config(identity(&dir, client), &anchors).expect("client");
        let _ = call(addr, config).await;
        assert_eq!(server.await.expect("join"), expected, "{client}");
    }
}
