//! Shared harness of the integration tests: starts the real `meridian` binary on loopback with a
//! one-region configuration in a temporary directory, and builds `aws-sdk-s3` clients for it.
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

pub mod cluster;
pub mod devauth;
pub mod events;
pub mod pages;
pub mod placement;
pub mod sigv4;
pub mod webdriver;

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

/// Access key of the cluster's dev key (`[dev_key]` of the generated config).
pub const ACCESS_KEY: &str = "MERIDIANTEST00000001";
/// Secret of the dev key.
pub const SECRET_KEY: &str = "meridian-test-secret-access-key-00000001";
/// The name of the only region; also the SigV4 signing region.
pub const REGION: &str = "frankfurt";

/// How long a node may take to answer `/healthz` after being spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval of every bounded wait.
pub const POLL: Duration = Duration::from_millis(50);

/// One `meridian node` process with its own temporary directory, ports and data dir.
pub struct TestNode {
    /// Root of everything this node owns (config, data, logs, working directory). Deleted on drop.
    root: tempfile::TempDir,
    /// Directory holding the config file; relative paths in the config resolve against it.
    node_dir: PathBuf,
    config_path: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// The process's working directory (an empty dir deep inside `root`).
    cwd: PathBuf,
    pub s3_addr: SocketAddr,
    pub web_addr: SocketAddr,
    pub internal_addr: SocketAddr,
    /// The `--region` this process is started with (a `[[region]]` name of its config).
    region: String,
    proc: Mutex<Option<Running>>,
}

/// A running process plus its watchdog.
///
/// The watchdog is `sh` reading a pipe from this test process: when the test binary exits without
/// running destructors (shared nodes live in statics), the pipe closes and the watchdog kills the
/// node, so no server outlives `cargo test`.
struct Running {
    child: Child,
    watchdog: Child,
    _watchdog_stdin: ChildStdin,
}

impl Running {
    /// Puts `child` under a watchdog that kills it when this test process goes away without
    /// dropping it (statics), then removes `root` unless MERIDIAN_TEST_KEEP is set.
    fn watch(child: Child, root: &Path) -> Running {
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
    fn kill9(mut self) -> std::process::ExitStatus {
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = self.child.kill();
        self.child.wait().expect("wait for the killed node process")
    }
}

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

fn free_loopback_ports<const N: usize>() -> [SocketAddr; N] {
    // Hold every listener until all are chosen so the N ports are distinct.
    let listeners: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().expect("local_addr")).collect();
    drop(listeners);
    addrs.try_into().expect("N addresses")
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

        let config = format!(
            r#"# Written by node/tests/common/mod.rs
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
        };
        node.spawn();
        node.wait_healthy().await;
        node
    }

    fn spawn(&self) {
        let mut guard = self.proc.lock().expect("proc lock");
        assert!(guard.is_none(), "spawn: the node is already running");
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open node log");
        let mut log_marker = log.try_clone().expect("clone log handle");
        let _ = writeln!(log_marker, "===== test harness: spawning meridian at {:?} =====", SystemTime::now());
        let child = Command::new(env!("CARGO_BIN_EXE_meridian"))
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
        let mut out = Vec::new();
        walk_files(&self.tmp_dir(), &mut out);
        out
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

    /// A client with `request_checksum_calculation(WhenRequired)`: no checksum unless the
    /// operation requires one (DeleteObjects, PutObjectTagging...) or the test sets one.
    pub fn client(&self) -> Client {
        self.client_with(ACCESS_KEY, SECRET_KEY, RequestChecksumCalculation::WhenRequired)
    }

    /// A client that computes a checksum whenever the operation supports one; with a streaming
    /// (non in-memory) body it sends aws-chunked bodies with a signed CRC32 trailer.
    pub fn client_checksums_when_supported(&self) -> Client {
        self.client_with(ACCESS_KEY, SECRET_KEY, RequestChecksumCalculation::WhenSupported)
    }

    /// A client signing with arbitrary credentials (for the auth tests).
    pub fn client_with_keys(&self, access_key: &str, secret_key: &str) -> Client {
        self.client_with(access_key, secret_key, RequestChecksumCalculation::WhenRequired)
    }

    pub fn client_with(&self, access_key: &str, secret_key: &str, checksums: RequestChecksumCalculation) -> Client {
        let creds = Credentials::new(access_key, secret_key, None, None, "meridian-tests");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.s3_url())
            .credentials_provider(creds)
            .force_path_style(true)
            .request_checksum_calculation(checksums)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // Every server answer is asserted as it comes: no silent retries.
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build();
        Client::from_conf(conf)
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

/// One node shared by all the tests of one test binary (one file). Tests run on separate
/// runtimes, so build a fresh [`Client`] in each test; the process is killed by its watchdog when
/// the test binary exits.
pub async fn shared_node() -> &'static TestNode {
    static NODE: tokio::sync::OnceCell<TestNode> = tokio::sync::OnceCell::const_new();
    NODE.get_or_init(TestNode::start).await
}

/// A plain HTTP client for loopback (no proxy, bounded timeouts).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build reqwest client")
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_files(&path, out),
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

/// Polls `cond` every [`POLL`] until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every file (not directory) under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk_files(dir, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Names and data

/// A bucket name unique in this test run: `<prefix>-<pid>-<counter>-<nanos>`, valid per S3 rules.
pub fn unique_bucket(prefix: &str) -> String {
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").subsec_nanos();
    let mut name = format!("{prefix}-{}-{n}-{nanos:x}", std::process::id());
    name.make_ascii_lowercase();
    name.truncate(63);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// Creates a bucket with a unique name and returns the name.
pub async fn create_bucket(client: &Client, prefix: &str) -> String {
    let bucket = unique_bucket(prefix);
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {}", DisplayErrorContext(&e)));
    bucket
}

/// xorshift64*: deterministic pseudo-random bytes, no `rand` needed.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Never zero; mix the seed so that small seeds differ a lot.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    XorShift::new(seed).fill(&mut v);
    v
}

pub const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Hashes and encodings

pub fn md5_bytes(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut out = [0u8; 16];
    out.copy_from_slice(&Md5::digest(data));
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    hex(&md5_bytes(data))
}

/// The ETag S3 gives a single-part object: the quoted hex MD5.
pub fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// The ETag S3 gives a multipart object: `"<hex md5 of the concatenated binary part md5s>-N"`.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut concat = Vec::with_capacity(parts.len() * 16);
    for p in parts {
        concat.extend_from_slice(&md5_bytes(p));
    }
    format!("\"{}-{}\"", md5_hex(&concat), parts.len())
}

pub fn sha256_bytes(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(data));
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256_bytes(data))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { ALPHABET[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
    out
}

fn crc32_reflected(poly: u32, data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ poly } else { crc >> 1 };
        }
    }
    !crc
}

/// CRC-32 (IEEE), as in `x-amz-checksum-crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_reflected(0xEDB8_8320, data)
}

/// CRC-32C (Castagnoli), as in `x-amz-checksum-crc32c`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32_reflected(0x82F6_3B78, data)
}

/// The `x-amz-checksum-*` header value of a CRC: base64 of the big-endian u32.
pub fn b64_crc(crc: u32) -> String {
    base64(&crc.to_be_bytes())
}

/// Decodes `%XX` escapes and (as boto3's `unquote_plus` does) `+` as a space.
/// Panics on malformed escapes or invalid UTF-8.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = s.get(i + 1..i + 3).unwrap_or_else(|| panic!("truncated %-escape in {s:?}"));
                out.push(u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("bad %-escape %{h} in {s:?}")));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| panic!("url-decoded {s:?} is not UTF-8"))
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and `/` if `keep_slash`),
/// as SigV4 and `x-amz-copy-source` want it.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What the server answered to a failed request.
#[derive(Debug, Clone)]
pub struct ServiceErr {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Extracts status and S3 error code of a service error; panics (with the whole error) if the
/// request failed without an HTTP answer (connection error, timeout, client-side refusal...).
pub fn service_err<E>(err: &SdkError<E, HttpResponse>) -> ServiceErr
where
    E: ProvideErrorMetadata + std::error::Error + Debug + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => ServiceErr {
            status: ctx.raw().status().as_u16(),
            code: ctx.err().code().map(str::to_owned),
            message: ctx.err().message().map(str::to_owned),
        },
        other => panic!("expected an HTTP error answer from the server, got: {}", DisplayErrorContext(other)),
    }
}

/// Asserts that `result` failed with this HTTP status and (if `code` is Some) this S3 error code.
#[track_caller]
pub fn expect_err<T: Debug, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
    code: Option<&str>,
    what: &str,
) -> ServiceErr
where
    E: ProvideErrorMetadata + std::error::Error + Debug + 'static,
{
    match result {
        Ok(v) => panic!("{what}: expected HTTP {status} {code:?}, but the request succeeded: {v:?}"),
        Err(e) => {
            let se = service_err(&e);
            assert_eq!(se.status, status, "{what}: expected HTTP {status} {code:?}, got {se:?}");
            if let Some(code) = code {
                assert_eq!(se.code.as_deref(), Some(code), "{what}: expected error code {code}, got {se:?}");
            }
            se
        }
    }
}

/// Asserts that `result` failed with one of the codes in `codes` (any status in 400..500).
#[track_caller]
pub fn expect_err_code_in<T: Debug, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    codes: &[&str],
    what: &str,
) -> ServiceErr
where
    E: ProvideErrorMetadata + std::error::Error + Debug + 'static,
{
    match result {
        Ok(v) => panic!("{what}: expected one of {codes:?}, but the request succeeded: {v:?}"),
        Err(e) => {
            let se = service_err(&e);
            assert!(
                se.code.as_deref().is_some_and(|c| codes.contains(&c)),
                "{what}: expected an error code in {codes:?}, got {se:?}"
            );
            assert!((400..500).contains(&se.status), "{what}: expected a 4xx status, got {se:?}");
            se
        }
    }
}

/// Unwraps an SDK result with the full error context in the panic message.
#[track_caller]
pub fn ok<T, E>(result: Result<T, SdkError<E, HttpResponse>>, what: &str) -> T
where
    E: std::error::Error + 'static,
{
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {}", DisplayErrorContext(&e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Object helpers

pub async fn put(client: &Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let out = ok(
        client.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await,
        &format!("PutObject {bucket}/{key}"),
    );
    out.e_tag().unwrap_or_default().to_owned()
}

/// Uploads `parts` as one multipart object (every part but the last must be at least 5 MiB).
pub async fn put_multipart(client: &Client, bucket: &str, key: &str, parts: &[&[u8]]) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let upload = ok(client.create_multipart_upload().bucket(bucket).key(key).send().await, "CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id");
    let mut done = Vec::new();
    for (n, bytes) in (1..).zip(parts) {
        let part = client.upload_part().bucket(bucket).key(key).upload_id(id).part_number(n);
        let out = ok(part.body(ByteStream::from(bytes.to_vec())).send().await, &format!("UploadPart {n}"));
        done.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_owned)).build());
    }
    let body = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
    ok(
        client.complete_multipart_upload().bucket(bucket).key(key).upload_id(id).multipart_upload(body).send().await,
        "CompleteMultipartUpload",
    );
}

pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = ok(client.get_object().bucket(bucket).key(key).send().await, &format!("GetObject {bucket}/{key}"));
    out.body.collect().await.unwrap_or_else(|e| panic!("reading the body of {bucket}/{key}: {e}")).into_bytes().to_vec()
}

/// All keys of a bucket (ListObjectsV2 paging, no delimiter), in listing order.
pub async fn list_all_keys(client: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    for _page in 0..10_000 {
        let out = ok(
            client.list_objects_v2().bucket(bucket).set_continuation_token(token.clone()).send().await,
            &format!("ListObjectsV2 {bucket}"),
        );
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        if out.is_truncated() == Some(true) {
            token =
                Some(out.next_continuation_token().expect("IsTruncated=true without NextContinuationToken").to_owned());
        } else {
            return keys;
        }
    }
    panic!("ListObjectsV2 {bucket}: more than 10000 pages");
}

/// Asserts that `a` equals `b` without dumping megabytes on failure.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: bytes differ: got {} bytes (md5 {}), want {} bytes (md5 {}); first difference at {:?}",
            got.len(),
            md5_hex(got),
            want.len(),
            md5_hex(want),
            first_diff
        );
    }
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
