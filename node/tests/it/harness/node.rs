//! One `meridian node` process on loopback with a one-region configuration in a temporary
//! directory: start, stop, freeze, restart, its files and its log.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::process::{Running, free_loopback_ports};
use super::support::{POLL, all_files, http_client};

/// Access key of the cluster's dev key (`[dev_key]` of the generated config).
pub const ACCESS_KEY: &str = "MERIDIANTEST00000001";
/// Secret of the dev key.
pub const SECRET_KEY: &str = "meridian-test-secret-access-key-00000001";
/// The name of the only region; also the SigV4 signing region.
pub const REGION: &str = "frankfurt";

/// How long a node may take to answer `/healthz` after being spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One `meridian node` process with its own temporary directory, ports and data dir.
pub struct TestNode {
    /// Root of everything this node owns (config, data, logs, working directory). Deleted on drop.
    pub(super) root: tempfile::TempDir,
    /// Directory holding the config file; relative paths in the config resolve against it.
    pub(super) node_dir: PathBuf,
    /// The config file the process is started with.
    pub(super) config_path: PathBuf,
    /// The node's `data_dir`.
    pub(super) data_dir: PathBuf,
    /// Where the process's stdout and stderr go.
    pub(super) log_path: PathBuf,
    /// The process's working directory (an empty dir deep inside `root`).
    pub(super) cwd: PathBuf,
    /// The S3 listener.
    pub s3_addr: SocketAddr,
    /// The web listener (JSON API, pages, `/healthz`).
    pub web_addr: SocketAddr,
    /// The internal listener (Raft and the other node-to-node routes).
    pub internal_addr: SocketAddr,
    /// The `--region` this process is started with (a `[[region]]` name of its config).
    pub(super) region: String,
    /// The process while it runs.
    pub(super) proc: Mutex<Option<Running>>,
    /// How the process is started besides its config (taken at each spawn, so a restart keeps it).
    pub(super) launch: Mutex<Launch>,
}

/// How the harness starts a node's process beyond its config: extra environment (the clock
/// nemesis: libfaketime, see `harness::faketime`) and a command to run it under (the network
/// nemesis: `ip netns exec NS`, see `harness::netns`). The default is the bare binary.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Environment variables added to the process's.
    pub env: Vec<(String, String)>,
    /// A command and its arguments that get the `meridian` command line appended; it must
    /// `exec` it, so the pid the harness signals and kills is the node's.
    pub wrapper: Vec<String>,
}

/// Settings of a test node that tests may change.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `[storage] multipart_max_age_secs`.
    pub multipart_max_age_secs: u64,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions { multipart_max_age_secs: 86_400 }
    }
}

impl TestNode {
    /// Writes a one-region config with fresh loopback ports, starts the node and waits until
    /// `/healthz` answers 200 (panics with the log tail otherwise).
    pub async fn start() -> TestNode {
        Self::start_with(NodeOptions::default()).await
    }

    /// [`TestNode::start`] with non-default settings.
    pub async fn start_with(options: NodeOptions) -> TestNode {
        Self::start_with_extra(options, "").await
    }

    /// [`TestNode::start_with`], with `extra` appended to the generated config (whole TOML
    /// tables, e.g. an `[auth]` section).
    pub async fn start_with_extra(options: NodeOptions, extra: &str) -> TestNode {
        let root = tempfile::Builder::new().prefix("meridian-test-").tempdir().expect("create temp dir");
        // A deep layout, so that a key such as `../../etc/passwd`, were it ever used as a path
        // relative to the data dir or the working dir, would still land inside `root` where the
        // tests look for it.
        let node_dir = root.path().join("l1/l2/l3/l4/node");
        let cwd = node_dir.join("cwd/w1/w2");
        fs::create_dir_all(&cwd).expect("create node dirs");
        let data_dir = node_dir.join("data");
        let config_path = node_dir.join("meridian.toml");
        let log_path = node_dir.join("node.log");
        let [s3_addr, web_addr, internal_addr] = free_loopback_ports::<3>();
        let NodeOptions { multipart_max_age_secs } = options;
        let tls_section = super::tls::tls_section("meridian-test", &[REGION]);

        let config = format!(
            r#"# Written by node/tests/it/harness/node.rs
[cluster]
name = "meridian-test"
secret = "test-cluster-secret-0123456789abcdef0123456789"
default_region = "{REGION}"

[dev_key]
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET_KEY}"

[raft]
heartbeat_ms = 100
election_timeout_min_ms = 300
election_timeout_max_ms = 600
snapshot_every = 20000

[storage]
multipart_max_age_secs = {multipart_max_age_secs}

{tls_section}

[[region]]
id = 1
name = "{REGION}"
latitude = 50.1109
longitude = 8.6821
s3 = "{s3_addr}"
web = "{web_addr}"
internal = "{internal_addr}"
data_dir = "data"
role = "voter"
{extra}"#
        );
        fs::write(&config_path, config).expect("write config");

        let node = TestNode {
            root,
            node_dir,
            config_path,
            data_dir,
            log_path,
            cwd,
            s3_addr,
            web_addr,
            internal_addr,
            region: REGION.to_owned(),
            proc: Mutex::new(None),
            launch: Mutex::new(Launch::default()),
        };
        node.spawn();
        node.wait_healthy().await;
        node
    }

    /// Starts the process (it must not be running) under a watchdog, its output appended to the log.
    pub(super) fn spawn(&self) {
        let mut guard = self.proc.lock().expect("proc lock");
        assert!(guard.is_none(), "spawn: the node is already running");
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open node log");
        let mut log_marker = log.try_clone().expect("clone log handle");
        let _ = writeln!(log_marker, "===== test harness: spawning meridian at {:?} =====", SystemTime::now());
        let launch = self.launch.lock().expect("launch lock").clone();
        let mut command = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(env!("CARGO_BIN_EXE_meridian"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_meridian")),
        };
        let child = command
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("node")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--region")
            .arg(&self.region)
            .current_dir(&self.cwd)
            .env("RUST_LOG", std::env::var("MERIDIAN_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn the meridian binary");
        *guard = Some(Running::watch(child, self.root.path()));
    }

    /// How the process is started from its next spawn or restart on (see [`Launch`]).
    pub fn set_launch(&self, launch: Launch) {
        *self.launch.lock().expect("launch lock") = launch;
    }

    /// Polls `GET /healthz` until 200, at most [`START_TIMEOUT`]; fails fast if the process exits.
    pub async fn wait_healthy(&self) {
        let http = http_client();
        let url = format!("http://{}/healthz", self.web_addr);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last: String;
        loop {
            if let Some(status) = self.exited() {
                panic!("meridian exited with {status} before becoming healthy\n{}", self.log_report());
            }
            match http.get(&url).send().await {
                Ok(resp) if resp.status().as_u16() == 200 => return,
                Ok(resp) => last = format!("status {}", resp.status()),
                Err(e) => last = format!("error {e}"),
            }
            if Instant::now() > deadline {
                panic!("meridian not healthy within {START_TIMEOUT:?} (last /healthz: {last})\n{}", self.log_report());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `Some(status)` if the process has exited on its own.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut guard = self.proc.lock().expect("proc lock");
        let running = guard.as_mut()?;
        running.child.try_wait().expect("try_wait")
    }

    /// Pid of the running node process.
    pub fn pid(&self) -> u32 {
        self.proc.lock().expect("proc lock").as_ref().expect("node is not running").child.id()
    }

    /// Freezes the process with SIGSTOP (connections to it hang, unanswered; its clocks run on)
    /// until the returned guard is dropped, which sends SIGCONT, also when the test panics.
    pub fn freeze(&self) -> Frozen {
        let pid = self.pid();
        let status = Command::new("kill").args(["-STOP", &pid.to_string()]).status().expect("run kill -STOP");
        assert!(status.success(), "kill -STOP {pid} failed");
        Frozen { pid }
    }

    /// SIGKILL, no warning. Returns once the process is reaped.
    pub fn kill9(&self) {
        let running = self.proc.lock().expect("proc lock").take().expect("kill9: node is not running");
        running.kill9();
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit; returns its exit status, or
    /// `None` if it did not exit in time (the process is then killed).
    pub async fn terminate(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.pid();
        let status = Command::new("sh").arg("-c").arg(format!("kill -TERM {pid}")).status().expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                let running = self.proc.lock().expect("proc lock").take().expect("running");
                // Already exited: this only reaps the watchdog.
                running.kill9();
                return Some(st);
            }
            if Instant::now() > deadline {
                if let Some(running) = self.proc.lock().expect("proc lock").take() {
                    running.kill9();
                }
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sets the environment of the next start (replacing what was set).
    pub fn set_env(&self, vars: &[(&str, &str)]) {
        self.launch.lock().expect("launch lock").env =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    }

    /// Starts the process (it must not be running) without waiting for it to become healthy: a
    /// node that is not expected to.
    pub fn start_unwaited(&self) {
        self.spawn();
    }

    /// Starts the process again on the same config, ports and data dir, and waits until healthy.
    /// Kills it first (SIGKILL) if it is still running.
    pub async fn restart(&self) {
        let running = self.proc.lock().expect("proc lock").take();
        if let Some(running) = running {
            running.kill9();
        }
        self.spawn();
        self.wait_healthy().await;
    }

    /// Waits (bounded) until this node writes the newest record format it reads (its
    /// `/api/v1/cluster` status says `active_format == reads_format`): commands new in this
    /// release are refused until then. The single-node form of `TestCluster::wait_format_raised`.
    pub async fn wait_format_raised(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/api/v1/cluster", self.web_url());
        let http = http_client();
        loop {
            let status = match http.get(&url).timeout(Duration::from_secs(2)).send().await {
                Ok(resp) => resp.json::<serde_json::Value>().await.map(|v| v["status"].clone()).ok(),
                Err(_) => None,
            };
            let formats = status.as_ref().map(|s| (s["active_format"].as_u64(), s["reads_format"].as_u64()));
            if matches!(formats, Some((Some(active), Some(reads))) if active == reads) {
                return;
            }
            assert!(Instant::now() < deadline, "the node's format was not raised within 30 s: {formats:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// The node's Prometheus text (`GET /metrics` on its web listener, open by default).
    pub async fn metrics_text(&self) -> String {
        let url = format!("{}/metrics", self.web_url());
        let response = http_client().get(url).send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.expect("metrics text")
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn s3_url(&self) -> String {
        format!("http://{}", self.s3_addr)
    }

    /// The web endpoint, `http://127.0.0.1:PORT`.
    pub fn web_url(&self) -> String {
        format!("http://{}", self.web_addr)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Root of the node's temporary directory (contains the data dir, config, log, cwd).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The config file the node was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server's documented temp-file directory.
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }

    /// Files (recursively) under `<data_dir>/tmp`; empty if the directory does not exist.
    pub fn tmp_files(&self) -> Vec<PathBuf> {
        all_files(&self.tmp_dir())
    }

    /// Waits (bounded) until `<data_dir>/tmp` is empty or absent; panics with the leftovers.
    pub async fn assert_tmp_empty_within(&self, timeout: Duration, context: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            let files = self.tmp_files();
            if files.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{context}: {} still holds {} file(s) after {timeout:?}: {files:?}\n{}",
                    self.tmp_dir().display(),
                    files.len(),
                    self.log_report()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last lines of the node's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(f) = File::open(&self.log_path) else {
            return format!("(no log at {})", self.log_path.display());
        };
        let mut tail = VecDeque::with_capacity(lines);
        for line in BufReader::new(f).lines() {
            let line = line.unwrap_or_else(|e| format!("(unreadable line: {e})"));
            if tail.len() == lines {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail.into_iter().collect::<Vec<_>>().join("\n")
    }

    /// A header plus the last 80 log lines.
    pub fn log_report(&self) -> String {
        format!("----- last lines of {} -----\n{}\n----- end of log -----", self.log_path.display(), self.log_tail(80))
    }

    /// Returns a guard that prints the log tail if the test panics while it is alive.
    /// Use it in every test: `let _log = node.log_on_panic();`
    pub fn log_on_panic(&self) -> LogOnPanic<'_> {
        LogOnPanic(self)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed; node dir {}\n{}", self.node_dir.display(), self.log_report());
        }
        if let Ok(mut guard) = self.proc.lock()
            && let Some(running) = guard.take()
        {
            running.kill9();
        }
        if std::env::var_os("MERIDIAN_TEST_KEEP").is_some() {
            // Leave the directory for inspection.
            let root = std::mem::replace(
                &mut self.root,
                tempfile::Builder::new().prefix("meridian-test-empty-").tempdir().expect("tempdir"),
            );
            eprintln!("MERIDIAN_TEST_KEEP: kept {}", root.keep().display());
        }
    }
}

/// Prints the node's log tail when dropped during a panic.
pub struct LogOnPanic<'a>(&'a TestNode);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed\n{}", self.0.log_report());
        }
    }
}

/// One node shared by every test of the run that asks for it (the S3 tests, which each work in
/// buckets of their own, and nothing that changes node-wide settings). Tests run on separate
/// runtimes, so build a fresh [`Client`](aws_sdk_s3::Client) in each test; the process is killed
/// by its watchdog when the test program exits.
pub async fn shared_node() -> &'static TestNode {
    static NODE: tokio::sync::OnceCell<TestNode> = tokio::sync::OnceCell::const_new();
    NODE.get_or_init(TestNode::start).await
}

/// A node process frozen by [`TestNode::freeze`]; dropping it thaws the process (SIGCONT).
pub struct Frozen {
    /// The frozen process.
    pid: u32,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid.to_string()]).status();
    }
}
