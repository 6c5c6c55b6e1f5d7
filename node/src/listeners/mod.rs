//! The node's three listeners: S3 (s3s alone at the root), web (admin crate), internal
//! (Raft RPC and calls between nodes). Every accepted socket gets TCP_NODELAY: a response
//! written as headers then body would otherwise wait for the peer's delayed ACK.

mod cors;
pub(crate) mod internal;
pub(crate) mod s3;

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

/// Binds a listener, naming the address in the error.
pub(crate) async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = addr.parse().with_context(|| format!("{what} address {addr:?}"))?;
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what} listener"))
}

/// Serves an axum router until shutdown, with TCP_NODELAY on every connection.
pub(crate) async fn serve_axum(
    what: &'static str,
    listener: TcpListener,
    router: axum::Router,
    shutdown: crate::shutdown::Shutdown,
) {
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(listener = what, address = %local, "listening");
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await;
    if let Err(e) = served {
        tracing::error!(listener = what, error = %e, "listener failed");
    }
}
