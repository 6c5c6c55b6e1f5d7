//! A TCP relay in the test process that makes a loopback link look like a WAN link: every chunk
//! it reads, in either direction, is written a fixed delay later, in order (as
//! `meridian-relay` does for `scripts/wan-bench`). In front of a node's internal listener (the
//! node advertises the relay's address as `internal` and listens on `internal_bind`), every call
//! to that node pays twice the delay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A relay from one address to a node's real internal listener, adding a one-way delay.
pub struct DelayRelay {
    /// The task accepting connections, stopped on drop.
    accept: tokio::task::JoinHandle<()>,
}

impl DelayRelay {
    /// Starts relaying `listen` to `target` (both loopback), `one_way` late in each direction.
    pub async fn start(listen: SocketAddr, target: SocketAddr, one_way: Duration) -> DelayRelay {
        let listener = TcpListener::bind(listen).await.unwrap_or_else(|e| panic!("bind the relay on {listen}: {e}"));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        delay_line(client_read, server_write, one_way),
                        delay_line(server_read, client_write, one_way)
                    );
                });
            }
        });
        DelayRelay { accept }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.accept.abort();
        // Connections in flight end with the test's runtime.
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; closes `to` when `from`
/// ends.
async fn delay_line(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
