//! A TCP relay in the test process, in front of one node's internal listener (the node advertises
//! the relay's address as `internal` and listens on `internal_bind`), that can lose the answer to
//! a request the node did receive: once armed, a connection that carries a request of at least a
//! given size has everything the node sends back on it swallowed, until [`CuttingRelay::cut`]
//! closes it. That is what a caller sees when the node dies or the link breaks right after it
//! acted on the request and before its answer arrived, made deterministic: the request is known
//! to have arrived, and the test chooses what happens before the caller learns of the failure.
//!
//! TLS passes through untouched (the relay sees only ciphertext, hence the size rule).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the relay's connections share with the test.
struct Shared {
    /// Requests (client-to-node reads) at least this large doom their connection; 0: not armed.
    doom_at: AtomicUsize,
    /// Connections that have carried at least this many bytes from their client in all are
    /// doomed too; 0: not armed (see [`CuttingRelay::arm_total`]).
    doom_total: AtomicUsize,
    /// Connections doomed so far.
    doomed: AtomicUsize,
    /// Bytes of answers swallowed so far.
    swallowed: AtomicU64,
    /// Bumped by [`CuttingRelay::cut`]: doomed connections close when it changes.
    cut: watch::Sender<u64>,
}

/// A relay from `listen` to a node's real internal listener (see the module doc).
pub struct CuttingRelay {
    /// What the connections share with the test (arming, counts, the cut).
    shared: Arc<Shared>,
    /// The task accepting connections, stopped on drop.
    accept: tokio::task::JoinHandle<()>,
}

impl CuttingRelay {
    /// Starts relaying `listen` to `target` (both loopback), passing everything until armed.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> CuttingRelay {
        let listener = TcpListener::bind(listen).await.unwrap_or_else(|e| panic!("bind the relay on {listen}: {e}"));
        let shared = Arc::new(Shared {
            doom_at: AtomicUsize::new(0),
            doom_total: AtomicUsize::new(0),
            doomed: AtomicUsize::new(0),
            swallowed: AtomicU64::new(0),
            cut: watch::channel(0).0,
        });
        let accept = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay_one(client, target, shared.clone()));
                }
            })
        };
        CuttingRelay { shared, accept }
    }

    /// From now on, a connection that carries a read of at least `bytes` from its client gets
    /// every answer swallowed.
    pub fn arm(&self, bytes: usize) {
        self.shared.doom_at.store(bytes, Ordering::SeqCst);
    }

    /// From now on, a connection that has carried at least `bytes` from its client in all (since
    /// it opened) gets every answer swallowed: the mark for a large request whose single reads
    /// look like smaller ones (a snapshot chunk of megabytes after AppendEntries of kilobytes).
    pub fn arm_total(&self, bytes: usize) {
        self.shared.doom_total.store(bytes, Ordering::SeqCst);
    }

    /// Connections doomed so far, and answer bytes swallowed on them.
    pub fn doomed(&self) -> (usize, u64) {
        (self.shared.doomed.load(Ordering::SeqCst), self.shared.swallowed.load(Ordering::SeqCst))
    }

    /// Disarms the relay and closes every doomed connection: their clients see the connection
    /// end without an answer.
    pub fn cut(&self) {
        self.shared.doom_at.store(0, Ordering::SeqCst);
        self.shared.doom_total.store(0, Ordering::SeqCst);
        self.shared.cut.send_modify(|generation| *generation += 1);
    }
}

impl Drop for CuttingRelay {
    fn drop(&mut self) {
        self.accept.abort();
        // Connections in flight end with the test's runtime.
    }
}

/// Relays one connection until either side closes, or it is doomed and cut.
async fn relay_one(client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let doomed = Arc::new(AtomicBool::new(false));
    let mut cut = shared.cut.subscribe();
    let upstream = {
        let (shared, doomed) = (shared.clone(), doomed.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut carried = 0usize;
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                carried += n;
                let doom_at = shared.doom_at.load(Ordering::SeqCst);
                let doom_total = shared.doom_total.load(Ordering::SeqCst);
                let large = (doom_at > 0 && n >= doom_at) || (doom_total > 0 && carried >= doom_total);
                if large && !doomed.swap(true, Ordering::SeqCst) {
                    shared.doomed.fetch_add(1, Ordering::SeqCst);
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let downstream = {
        let (shared, doomed) = (shared.clone(), doomed.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if doomed.load(Ordering::SeqCst) {
                    shared.swallowed.fetch_add(n as u64, Ordering::SeqCst);
                    continue;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let cut_if_doomed = async move {
        loop {
            if cut.changed().await.is_err() {
                // The relay is gone: relay on until a side closes.
                std::future::pending::<()>().await;
            }
            if doomed.load(Ordering::SeqCst) {
                return;
            }
        }
    };
    // Whichever ends first ends the connection: dropping both sockets closes them.
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        () = cut_if_doomed => {}
    }
}
