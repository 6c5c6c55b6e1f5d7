//! The node's three listeners: S3 (s3s alone at the root), web (admin crate), internal
//! (Raft RPC and calls between nodes). Every accepted socket gets TCP_NODELAY: a response
//! written as headers then body would otherwise wait for the peer's delayed ACK.
//!
//! All three share one accept loop ([`serve`]) that keeps a client from holding the listener:
//! a cap on open connections (further clients wait in the kernel's backlog), a deadline for a
//! request's headers (slowloris; it also closes idle keep-alive connections), and an idle
//! timeout for connections that wait on the client without a byte moving (a request body that
//! stalls, a response the client does not read). The server's own silence (a handler working,
//! a long poll, an event stream between events) is never idle.
//!
//! Each listener has a TLS mode ([`tls::ListenerTls`]): the loop hands every connection to its
//! own task, which sniffs the first byte, shakes hands and (internal listener) checks the
//! client's certificate within the header-read timeout, holding a connection slot meanwhile,
//! so a client that never finishes its handshake costs what one that never sends headers does.

mod cors;
pub(crate) mod internal;
pub(crate) mod opened;
mod post_policy;
mod request_id;
pub(crate) mod s3;
pub(crate) mod store_gate;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

/// Least time between two warnings that a listener is at its connection cap.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Binds a listener, naming the address in the error.
pub(crate) async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = addr.parse().with_context(|| format!("{what} address {addr:?}"))?;
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for the {what} listener"))
}

/// What one listener allows its clients (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Time a client has to send a request's headers.
    pub(crate) header_read_timeout: Duration,
    /// Time a connection may wait on its client with no byte moving.
    pub(crate) idle_timeout: Duration,
    /// Most connections open at once.
    pub(crate) max_connections: usize,
}

impl ConnLimits {
    /// The limits of `[limits]` with this listener's connection cap.
    pub(crate) fn from_config(limits: &crate::config::LimitsSection, max_connections: usize) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
            max_connections,
        }
    }
}

/// What a connection's watchdog knows of it.
struct Activity {
    /// When the connection was accepted; `last_io_ms` counts from here.
    start: Instant,
    /// Milliseconds after `start` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Request bodies whose last read found no data (waiting on the client).
    bodies_waiting: AtomicUsize,
    /// The last write found the socket full (the client does not read).
    write_blocked: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            bodies_waiting: AtomicUsize::new(0),
            write_blocked: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection became idle, if nothing moves from now on.
    fn last_io(&self) -> Instant {
        self.start + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
    }

    /// The connection cannot go on until the client sends or reads: a silence that is theirs.
    /// (Waiting for a request's headers is the header-read timeout's business.)
    fn waiting_on_client(&self) -> bool {
        self.bodies_waiting.load(Ordering::Relaxed) > 0 || self.write_blocked.load(Ordering::Relaxed)
    }

    /// Records the outcome of a write: blocked (the client's window is full) or bytes out.
    fn wrote(&self, polled: &Poll<std::io::Result<usize>>) {
        self.write_blocked.store(polled.is_pending(), Ordering::Relaxed);
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.touch();
        }
    }
}

/// A socket that records when bytes move, for the idle watchdog.
struct Watched {
    /// The socket.
    inner: TcpStream,
    /// Shared with the watchdog.
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        this.activity.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.activity.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that tells the watchdog when the handler waits for the client's bytes.
pub(crate) struct WatchedBody {
    /// hyper's body.
    inner: Incoming,
    /// Shared with the watchdog.
    activity: Arc<Activity>,
    /// Whether this body counts in `bodies_waiting` now.
    waiting: bool,
}

impl WatchedBody {
    fn set_waiting(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.activity.bodies_waiting.fetch_add(1, Ordering::Relaxed);
            } else {
                self.activity.bodies_waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

impl http_body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.set_waiting(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves HTTP/1 connections on `listener` until shutdown, within `limits`, over TLS (and
/// plain HTTP where `tls` allows it), and HTTP/2 ones where the TLS handshake chose it (the
/// internal listener offers it, see [`http2_builder`]); `service_for` makes the service of each
/// connection from its peer's address. In-flight requests then get at most `drain` to finish.
#[allow(clippy::too_many_arguments)] // one call per listener kind; a struct would only rename them
pub(crate) async fn serve<F, S, B>(
    what: &'static str,
    listener: TcpListener,
    limits: ConnLimits,
    tls: tls::ListenerTls,
    shutdown: Shutdown,
    drain: Duration,
    service_for: F,
) where
    F: Fn(SocketAddr) -> S,
    S: hyper::service::Service<http::Request<WatchedBody>, Response = http::Response<B>> + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        listener = what,
        address = %local,
        max_connections = limits.max_connections,
        header_read_timeout_ms = limits.header_read_timeout.as_millis(),
        idle_timeout_ms = limits.idle_timeout.as_millis(),
        plain_http = tls.plaintext,
        client_certificates = tls.peers.is_some(),
        "listening (TLS)"
    );
    let tls = Arc::new(tls);
    let mut http = ConnBuilder::new(TokioExecutor::new()).http1_only();
    http.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let h2 = Arc::new(http2_builder());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Under a flood the cap is hit at every accept: one warning per interval is enough.
    let mut last_warned: Option<Instant> = None;
    loop {
        // A slot first: at the cap, new clients wait in the backlog instead of taking memory.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if last_warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL) {
                    last_warned = Some(Instant::now());
                    tracing::warn!(
                        listener = what,
                        max_connections = limits.max_connections,
                        "connection limit reached; new clients wait to be accepted"
                    );
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = shutdown.wait() => break,
                }
            }
        };
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    // Out of file descriptors and the like: give the system a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new());
        let service = Arc::new(service_for(peer));
        let watched = activity.clone();
        let handler = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            service.call(request.map(|inner| WatchedBody { inner, activity: watched.clone(), waiting: false }))
        });
        let (http, h2, tls, watcher) = (http.clone(), h2.clone(), tls.clone(), graceful.watcher());
        let header_read_timeout = limits.header_read_timeout;
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            // The handshake shares the header-read deadline: a client that stalls in it is a
            // slowloris like one that stalls in its headers.
            let io = match tokio::time::timeout(header_read_timeout, tls.open(socket, activity.clone())).await {
                Ok(Ok(io)) => io,
                Ok(Err(Some(refusal))) => return tls.refused(what, peer, &refusal),
                Ok(Err(None)) => return,
                Err(_) => return tls.refused(what, peer, &meridian_tls::Refusal::Timeout),
            };
            let protocol = io.protocol();
            tls.opened.count(what, protocol);
            tracing::debug!(listener = what, %peer, ?protocol, "connection opened");
            // The protocol TLS negotiated, and no other: only the internal listener offers
            // HTTP/2 (to its peers, see `http2_builder`), and no connection switches by itself.
            let http = if protocol == opened::Protocol::Http2 { &*h2 } else { &http };
            let conn = watcher.watch(http.serve_connection(TokioIo::new(io), handler).into_owned());
            tokio::pin!(conn);
            // Ends with the connection; every turn sleeps until the idle deadline, which each
            // turn moves at least `idle_timeout` ahead of the last one, or closes.
            loop {
                let deadline = activity.last_io() + idle_timeout;
                tokio::select! {
                    result = &mut conn => {
                        if let Err(e) = result {
                            tracing::debug!(listener = what, %peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(deadline.into()) => {
                        if !activity.waiting_on_client() {
                            // Our own silence (or the header timeout's case): count from now.
                            activity.touch();
                        } else if activity.last_io() + idle_timeout <= Instant::now() {
                            tracing::debug!(listener = what, %peer, "closing an idle connection");
                            break;
                        }
                    }
                }
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(listener = what, "listener drained"),
        () = tokio::time::sleep(drain) => tracing::warn!(listener = what, "requests still running after {drain:?}; stopping anyway"),
    }
}

/// Most calls one HTTP/2 connection carries at once (a peer's heartbeats, replication, commit
/// notices, forwarded writes, leases and read indexes: a few dozen at most); more wait for a
/// free one at the caller.
const H2_MAX_STREAMS: u32 = 256;

/// Receive windows of an HTTP/2 connection and of each call on it: a request body of 8 MiB
/// (an AppendEntries is at most 1 MiB, a snapshot chunk a few) crosses in one round trip
/// without waiting for window updates, which on a 200 ms link would cost a round trip each.
const H2_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// See [`H2_STREAM_WINDOW`]: room for two such bodies at once.
const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// How often the server PINGs an HTTP/2 client, and how long it waits for the answer before it
/// closes the connection: the HTTP/1.1 header-read timeout closes idle connections, which an
/// HTTP/2 connection never is, so a peer gone without closing would hold a slot for good.
const H2_PING_EVERY: Duration = Duration::from_secs(10);
/// See [`H2_PING_EVERY`].
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest header block an HTTP/2 client may send (a node's calls carry a few hundred bytes).
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;

/// The connection builder for HTTP/2, which a connection gets only when its client chose it by
/// ALPN: the internal listener's peers, whose calls then share one connection per peer instead
/// of opening a second HTTP/1.1 connection (and paying a TLS handshake) whenever two overlap.
fn http2_builder() -> ConnBuilder<TokioExecutor> {
    let mut h2 = ConnBuilder::new(TokioExecutor::new()).http2_only();
    h2.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    h2
}

/// How long in-flight web and internal requests may take to finish once the node is stopping.
const AXUM_DRAIN: Duration = Duration::from_secs(20);

/// Serves an axum router until shutdown, within `limits`; handlers may extract the peer's
/// address as `ConnectInfo<SocketAddr>`.
pub(crate) async fn serve_axum(
    what: &'static str,
    listener: TcpListener,
    limits: ConnLimits,
    tls: tls::ListenerTls,
    router: axum::Router,
    shutdown: Shutdown,
) {
    use hyper::service::Service as _;
    serve(what, listener, limits, tls, shutdown, AXUM_DRAIN, move |peer| {
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        hyper::service::service_fn(move |mut request: http::Request<WatchedBody>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            service.call(request)
        })
    })
    .await;
}
