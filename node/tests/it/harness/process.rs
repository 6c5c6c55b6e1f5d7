//! Processes the harness starts besides nodes (the stand-in Auth service, the WebDriver) share
//! this: a watchdog that kills them when the test process exits without running destructors,
//! and free loopback ports to give them.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running process plus its watchdog.
///
/// The watchdog is `sh` reading a pipe from this test process: when the test binary exits without
/// running destructors (shared nodes live in statics), the pipe closes and the watchdog kills the
/// node, so no server outlives `cargo test`.
pub struct Running {
    pub child: Child,
    watchdog: Child,
    _watchdog_stdin: ChildStdin,
}

impl Running {
    /// Puts `child` under a watchdog that kills it when this test process goes away without
    /// dropping it (statics), then removes `root` unless MERIDIAN_TEST_KEEP is set.
    pub fn watch(child: Child, root: &Path) -> Running {
        let cleanup =
            if std::env::var_os("MERIDIAN_TEST_KEEP").is_some() { "" } else { r#"; sleep 1; rm -rf -- "$2""# };
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(r#"while read -r _line; do :; done; kill -9 "$1" 2>/dev/null{cleanup}"#))
            .arg("meridian-watchdog")
            .arg(child.id().to_string())
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the watchdog shell");
        let stdin = watchdog.stdin.take().expect("watchdog stdin");
        Running { child, watchdog, _watchdog_stdin: stdin }
    }

    /// Kills the watchdog first (so it can never fire at a recycled pid), then the node.
    pub fn kill9(mut self) -> std::process::ExitStatus {
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = self.child.kill();
        self.child.wait().expect("wait for the killed node process")
    }
}

/// `N` distinct loopback addresses whose ports were free a moment ago.
pub fn free_loopback_ports<const N: usize>() -> [SocketAddr; N] {
    // Hold every listener until all are chosen so the N ports are distinct.
    let listeners: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().expect("local_addr")).collect();
    drop(listeners);
    addrs.try_into().expect("N addresses")
}
