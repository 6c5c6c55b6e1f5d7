//! The node's stop signal: SIGTERM or Ctrl-C, seen by every listener and worker.

use tokio::sync::watch;

/// A cloneable handle that resolves once the node is asked to stop.
#[derive(Clone)]
pub(crate) struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Starts listening for SIGTERM and SIGINT.
    pub(crate) fn on_signals() -> std::io::Result<Self> {
        let (tx, rx) = watch::channel(false);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
            }
            let _ = tx.send(true);
        });
        Ok(Self { rx })
    }

    /// The underlying signal (`true` once the node should stop), for crates that cannot see
    /// this type.
    pub(crate) fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// Resolves when the node should stop.
    pub(crate) async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means the sender is gone, which also means: stop.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
