//! TLS on a listener: the first byte of a connection says TLS or plain HTTP; the listener's
//! mode says which it serves; the internal listener then checks whose certificate it got.
//!
//! The TLS stream wraps the [`Watched`] socket, not the other way round: the idle watchdog sees
//! the bytes that actually move (a handshake, a record the client does not read), so its
//! decisions stay the same as without TLS.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use meridian_tls::{Refusal, TlsAcceptor, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::opened::{ConnectionsOpened, Protocol};
use super::{Activity, Watched};
use crate::tls::Refusals;

/// Who the internal listener admits after the handshake: a certificate naming this cluster and
/// one of its regions, those of cluster.toml or of the Raft membership. The membership counts
/// because a region added at run time (`meridian cluster add-region`) is in the configs of the
/// nodes started after it only: the running nodes know it from the log, and must take its calls
/// (a new learner fetches blobs and forwards writes like any member).
#[derive(Clone)]
pub(crate) struct PeerCheck {
    /// `[cluster] name`.
    pub(crate) cluster: String,
    /// The regions of cluster.toml.
    pub(crate) regions: Vec<String>,
    /// The metadata store, once open (the listener is built first): its membership.
    pub(crate) members: Arc<std::sync::OnceLock<meridian_raft::MetaStore>>,
}

impl PeerCheck {
    /// Admits the client of a completed handshake, or says why not.
    fn admit(&self, stream: &TlsStream<Watched>) -> Result<(), Refusal> {
        match meridian_tls::admit_peer(stream.get_ref().1, &self.cluster, &self.regions) {
            Ok(_) => Ok(()),
            Err(Refusal::UnknownRegion(name))
                if self
                    .members
                    .get()
                    .is_some_and(|meta| meta.status().members.iter().any(|member| member.region == name.region)) =>
            {
                Ok(())
            }
            Err(refusal) => Err(refusal),
        }
    }
}

/// A listener's TLS mode.
pub(crate) struct ListenerTls {
    /// The TLS server configuration (its certificate reloads in place).
    pub(crate) acceptor: TlsAcceptor,
    /// Whether plain HTTP is served too (told apart by the first byte).
    pub(crate) plaintext: bool,
    /// For the internal listener: the cluster and regions a client certificate must name.
    pub(crate) peers: Option<PeerCheck>,
    /// Where refusals are recorded.
    pub(crate) refusals: Arc<Refusals>,
    /// Where served connections are counted (`/metrics`).
    pub(crate) opened: Arc<ConnectionsOpened>,
}

/// What the first byte of a connection decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// A TLS handshake: go on with TLS.
    Tls,
    /// Plain HTTP, and this listener serves it.
    Plain,
    /// Plain HTTP where only TLS is served.
    Refuse,
}

/// The decision for a connection whose first byte is `first` on a listener that serves plain
/// HTTP or not.
pub(crate) fn sniff(first: u8, plaintext_allowed: bool) -> Sniffed {
    if first == meridian_tls::HANDSHAKE_RECORD {
        Sniffed::Tls
    } else if plaintext_allowed {
        Sniffed::Plain
    } else {
        Sniffed::Refuse
    }
}

/// A served connection: plain, or TLS over the same watched socket.
pub(super) enum Conn {
    /// Plain HTTP.
    Plain(Watched),
    /// HTTPS (boxed: a TLS stream is large, a plain one small).
    Tls(Box<TlsStream<Watched>>),
}

impl ListenerTls {
    /// Opens a connection: sniffs, shakes hands, admits. `Ok` is the stream to serve; `Err(None)`
    /// a client that closed before sending a byte (a TCP health check: not a refusal);
    /// `Err(Some(_))` a refusal. The caller bounds the time this takes.
    pub(super) async fn open(&self, socket: TcpStream, activity: Arc<Activity>) -> Result<Conn, Option<Refusal>> {
        let mut first = [0u8; 1];
        match socket.peek(&mut first).await {
            Ok(1..) => {}
            Ok(0) | Err(_) => return Err(None),
        }
        let watched = Watched { inner: socket, activity };
        match sniff(first[0], self.plaintext) {
            Sniffed::Plain => Ok(Conn::Plain(watched)),
            Sniffed::Refuse => Err(Some(Refusal::Plaintext)),
            Sniffed::Tls => {
                let stream = self.acceptor.accept(watched).await.map_err(|e| Some(Refusal::of_handshake_error(&e)))?;
                if let Some(check) = &self.peers {
                    check.admit(&stream).map_err(Some)?;
                }
                Ok(Conn::Tls(Box::new(stream)))
            }
        }
    }

    /// Records a refusal.
    pub(super) fn refused(&self, listener: &'static str, peer: SocketAddr, refusal: &Refusal) {
        self.refusals.record(listener, peer, refusal);
    }
}

impl Conn {
    /// The HTTP version the client chose by ALPN (none, or a plain connection: HTTP/1.1).
    pub(super) fn protocol(&self) -> Protocol {
        match self {
            Self::Tls(io) if io.get_ref().1.alpn_protocol() == Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write(cx, data),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(io) => io.is_write_vectored(),
            Self::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_flush(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_and_the_mode_decide() {
        // A TLS handshake is served everywhere.
        assert_eq!(sniff(0x16, false), Sniffed::Tls);
        assert_eq!(sniff(0x16, true), Sniffed::Tls);
        // Plain HTTP ("GET", "PUT", ...) only where the bind address allows it: a listener on a
        // public address ("HTTPS only") refuses it.
        for method in [b'G', b'P', b'H', b'D', b'O'] {
            assert_eq!(sniff(method, true), Sniffed::Plain);
            assert_eq!(sniff(method, false), Sniffed::Refuse);
        }
    }
}
