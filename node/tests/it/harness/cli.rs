//! The `meridian` command line as the tests run it: `meridian key ...` against a test node's
//! config, and `meridian node` run by hand until it exits (for the tests of what it refuses to
//! start with).

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::POLL;

/// How long [`run_node_until_exit`] waits for a node to exit: a node refusing its config exits
/// well within it, a good one keeps running.
pub const EXIT_BOUND: Duration = Duration::from_secs(20);

/// Runs `meridian key ARGS --config CONFIG` to the end: (success, stdout, stderr).
pub fn key_cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("key")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run meridian key");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// `meridian key create`: (access key id, secret).
pub fn create_key(config: &Path, name: &str, owner: Option<&str>) -> (String, String) {
    let mut args = vec!["create", "--name", name];
    if let Some(owner) = owner {
        args.extend(["--owner", owner]);
    }
    let (ok, stdout, stderr) = key_cli(config, &args);
    assert!(ok, "key create failed: {stderr}\n{stdout}");
    let field = |label: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label:?} line in {stdout:?}"))
    };
    (field("access key id:"), field("secret access key:"))
}

/// Numbers the stderr files of [`run_node_until_exit`], so runs sharing a `cwd` keep theirs.
static NEXT_STDERR: AtomicUsize = AtomicUsize::new(0);

/// Runs `meridian node --config CONFIG --region REGION` in `cwd` until it exits (bounded): its
/// status and stderr; `None` if it was still running after [`EXIT_BOUND`] (it is then killed).
pub fn run_node_until_exit(config: &Path, cwd: &Path, region: &str) -> (Option<ExitStatus>, String) {
    let stderr_path = cwd.join(format!("stderr-{}.txt", NEXT_STDERR.fetch_add(1, Ordering::Relaxed)));
    let stderr = fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["node", "--config"])
        .arg(config)
        .args(["--region", region])
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn meridian");
    let deadline = Instant::now() + EXIT_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    (status, fs::read_to_string(&stderr_path).unwrap_or_default())
}

/// What `meridian doctor` printed and how it exited.
pub struct DoctorRun {
    /// The exit status's code.
    pub code: Option<i32>,
    /// The report: one line per check, then a summary.
    pub stdout: String,
    /// Logs and the closing error.
    pub stderr: String,
}

impl DoctorRun {
    /// The report line of `check` (its second column); panics with the report if there is none.
    pub fn line(&self, check: &str) -> &str {
        self.stdout
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(check))
            .unwrap_or_else(|| panic!("no {check:?} line in the report:\n{}", self.stdout))
    }

    /// The level (`OK`, `WARN`, `FAIL`) of `check`.
    pub fn level(&self, check: &str) -> &str {
        self.line(check).split_whitespace().next().unwrap_or_default()
    }
}

/// Runs `meridian doctor --config CONFIG ARGS` to the end (it bounds its own network waits).
pub fn doctor(config: &Path, args: &[&str]) -> DoctorRun {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("doctor")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run meridian doctor");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    DoctorRun { code: output.status.code(), stdout: text(&output.stdout), stderr: text(&output.stderr) }
}
