//! The clock nemesis: a node whose clocks run skewed or at another rate, through libfaketime
//! (Debian's `faketime` package; `scripts/install-test-tools` installs it). libfaketime is
//! preloaded into the node process and fakes `clock_gettime` for every clock, CLOCK_MONOTONIC
//! included (what Rust's `Instant` and tokio's timers read), unless told otherwise.
//!
//! Use: [`ClockSkew::launch`] for a node started skewed (`TestCluster::start_launched`), or
//! [`ClockSkew::apply`] / [`heal`] to restart one node of a running cluster with or without it.
//! libfaketime fixes the rate when the process starts, so a change of rate is a restart.

use std::path::PathBuf;

use super::Launch;
use super::TestNode;

/// Where Debian and others put the preload library, in the order tried (after
/// `MERIDIAN_LIBFAKETIME`, which names it outright).
const CANDIDATES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The libfaketime preload library, if installed.
pub fn libfaketime() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MERIDIAN_LIBFAKETIME") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Prints a message that cannot be missed and returns `None` when libfaketime is missing (the
/// test then returns early: skipped loudly, never silently passed as if it had run).
pub fn require_libfaketime(test: &str) -> Option<PathBuf> {
    let found = libfaketime();
    if found.is_none() {
        let bar = "!".repeat(80);
        eprintln!(
            "\n{bar}\n!!! SKIPPED {test}: libfaketime is not installed (Debian package `faketime`;\n\
             !!! scripts/install-test-tools installs it). The clock nemesis did NOT run.\n{bar}\n"
        );
    }
    found
}

/// A clock for one node, in libfaketime's `FAKETIME` syntax: an offset of the wall clock in
/// seconds (`"-0.4"`, `"+0.3"`) and/or a rate (`"x0.7"`: 0.7 s of the node's time per real second,
/// for the monotonic clock too).
#[derive(Debug, Clone)]
pub struct ClockSkew {
    /// The `FAKETIME` value.
    pub spec: String,
}

impl ClockSkew {
    /// A clock offset by `seconds` (the wall clock; the monotonic clock by the same constant,
    /// which nothing can notice), running at the real rate.
    pub fn offset(seconds: f64) -> Self {
        Self { spec: format!("{seconds:+}") }
    }

    /// A clock running at `rate` times the real rate (offset zero at the start).
    pub fn rate(rate: f64) -> Self {
        Self { spec: format!("+0 x{rate}") }
    }

    /// How to start a node with this clock, preloading `library`.
    pub fn launch(&self, library: &std::path::Path) -> Launch {
        Launch {
            env: vec![("LD_PRELOAD".into(), library.display().to_string()), ("FAKETIME".into(), self.spec.clone())],
            wrapper: Vec::new(),
        }
    }

    /// Restarts `node` (kill -9) with this clock and waits until it is healthy again.
    pub async fn apply(&self, node: &TestNode, library: &std::path::Path) {
        node.set_launch(self.launch(library));
        node.restart().await;
    }
}

/// Restarts `node` (kill -9) with the real clock and waits until it is healthy again.
pub async fn heal(node: &TestNode) {
    node.set_launch(Launch::default());
    node.restart().await;
}
