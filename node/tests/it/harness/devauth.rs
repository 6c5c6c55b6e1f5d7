//! The stand-in Auth service as a real process (`meridian dev-auth`) for the identity tests,
//! and the `[auth]` sections that point nodes at it.

use std::fs::{self, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::process::{Running, free_loopback_ports};
use super::{POLL, START_TIMEOUT, http_client};

/// HS256 secret of the generated `[auth]`.
pub const AUTH_SECRET: &str = "test-auth-secret-0123456789abcdef0123456789";
/// Issuer of the generated `[auth]`.
pub const ISSUER: &str = "meridian-test-auth";
/// Service token of the generated `[auth]` (user list and the stand-in's `/dev/v1`).
pub const SERVICE_TOKEN: &str = "test-auth-service-token-0123456789";
/// Leeway of the generated `[auth]`, seconds.
pub const LEEWAY_SECS: u64 = 30;

/// A test fixture file (`node/tests/fixtures/NAME`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// How the nodes verify tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// HS256 with [`AUTH_SECRET`].
    Hs256,
    /// RS256 with the stand-in's JWKS.
    Rs256Jwks,
    /// RS256 with `fixtures/devauth-rs256.pub.pem`.
    Rs256Pem,
}

/// A free loopback address for the stand-in.
///
/// The port is written into a node's config before the stand-in binds it, so it must not be
/// taken meanwhile. Ports from `bind(0)` (every test node's) and the local ports of outgoing
/// connections come from Linux's ephemeral range (32768 and up); this picks below it, starting
/// at a point that differs per call, and checks the port is free.
pub fn free_auth_addr() -> SocketAddr {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = std::process::id().wrapping_mul(7_919).wrapping_add(call.wrapping_mul(104_729));
    for step in 0..SPAN {
        let port = u16::try_from(LOW + (seed.wrapping_add(step.wrapping_mul(97))) % SPAN).expect("below 32768");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    free_loopback_ports::<1>()[0]
}

/// The `[auth]` section for a stand-in on `addr`, syncing users every `sync_interval_secs`.
pub fn auth_section(addr: SocketAddr, mode: AuthMode, sync_interval_secs: u64) -> String {
    let key = match mode {
        AuthMode::Hs256 => format!("algorithm = \"HS256\"\nhs256_secret = \"{AUTH_SECRET}\""),
        AuthMode::Rs256Jwks => format!("algorithm = \"RS256\"\njwks_url = \"http://{addr}/auth/v1/jwks\""),
        AuthMode::Rs256Pem => {
            format!("algorithm = \"RS256\"\npublic_key_file = '{}'", fixture("devauth-rs256.pub.pem").display())
        }
    };
    format!(
        r#"
[auth]
login_url = "http://{addr}/auth/v1/login"
refresh_url = "http://{addr}/auth/v1/refresh"
users_url = "http://{addr}/auth/v1/users"
{key}
issuer = "{ISSUER}"
leeway_secs = {LEEWAY_SECS}
service_token = "{SERVICE_TOKEN}"
sync_interval_secs = {sync_interval_secs}
users_page_size = 2
"#
    )
}

/// A running `meridian dev-auth`, killed on drop.
pub struct DevAuth {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log file.
    log_path: PathBuf,
    /// Holds the log; deleted on drop.
    _dir: tempfile::TempDir,
    proc: Mutex<Option<Running>>,
    http: reqwest::Client,
}

impl DevAuth {
    /// Starts the stand-in from the `[auth]` of `config` (listening on its `login_url`),
    /// signing with `fixtures/devauth-rs256.pem` when `rs256` is set, and waits until it answers.
    pub async fn start(config: &Path, rs256: bool) -> DevAuth {
        let dir = tempfile::Builder::new().prefix("meridian-devauth-").tempdir().expect("temp dir");
        let log_path = dir.path().join("devauth.log");
        let log = OpenOptions::new().create(true).append(true).open(&log_path).expect("open log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
        command.arg("dev-auth").arg("--config").arg(config);
        if rs256 {
            command.arg("--rs256-key").arg(fixture("devauth-rs256.pem"));
        }
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn meridian dev-auth");
        let text = fs::read_to_string(config).expect("read config");
        let addr = text
            .lines()
            .find_map(|l| l.strip_prefix("login_url = \"http://"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .expect("config has an [auth] login_url on an ip:port");
        let devauth = DevAuth {
            addr,
            log_path,
            proc: Mutex::new(Some(Running::watch(child, dir.path()))),
            _dir: dir,
            http: http_client(),
        };
        devauth.wait_ready().await;
        devauth
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) =
                self.proc.lock().expect("lock").as_mut().and_then(|r| r.child.try_wait().ok().flatten())
            {
                panic!("meridian dev-auth exited with {status}\n{}", self.log());
            }
            if let Ok(resp) = self.http.get(format!("http://{}/healthz", self.addr)).send().await
                && resp.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "dev-auth not ready within {START_TIMEOUT:?}\n{}", self.log());
            tokio::time::sleep(POLL).await;
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Creates or changes a user upstream (`PUT /dev/v1/users/{id}`).
    pub async fn put_user(&self, id: &str, login: &str, name: &str, password: &str, roles: &[&str]) {
        let body = serde_json::json!({
            "login": login, "name": name, "email": format!("{login}@example.invalid"),
            "password": password, "roles": roles,
        });
        let resp = self
            .http
            .put(format!("http://{}/dev/v1/users/{id}", self.addr))
            .bearer_auth(SERVICE_TOKEN)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("PUT /dev/v1/users");
        assert!(resp.status().is_success(), "PUT user {id}: {}", resp.status());
    }

    /// Signs `login` in through the node at `web_url` (`POST /api/v1/session`, which asks this
    /// stand-in) and returns the access token, for `Authorization: Bearer`.
    pub async fn access_token(&self, web_url: &str, login: &str, password: &str) -> String {
        let resp = self
            .http
            .post(format!("{web_url}/api/v1/session"))
            .json(&serde_json::json!({ "login": login, "password": password }))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("POST /api/v1/session");
        assert!(resp.status().is_success(), "sign-in of {login}: {}", resp.status());
        let body: serde_json::Value = resp.json().await.expect("session JSON");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Deletes a user upstream (`DELETE /dev/v1/users/{id}`).
    pub async fn delete_user(&self, id: &str) {
        let resp = self
            .http
            .delete(format!("http://{}/dev/v1/users/{id}", self.addr))
            .bearer_auth(SERVICE_TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("DELETE /dev/v1/users");
        assert_eq!(resp.status().as_u16(), 204, "DELETE user {id}");
    }
}

impl Drop for DevAuth {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- dev-auth log -----\n{}\n----- end -----", self.log());
        }
        if let Ok(mut guard) = self.proc.lock()
            && let Some(running) = guard.take()
        {
            running.kill9();
        }
    }
}

/// Access tokens of the stand-in's seeded users, signed in through a node.
pub struct SeededTokens {
    /// `admin` (role admin).
    pub admin: String,
    /// `alice` (role user).
    pub alice: String,
    /// `bob` (role user).
    pub bob: String,
}

/// One node whose `[auth]` points at a running stand-in (`extra(addr)` is the node's extra
/// config, given the stand-in's address), and the seeded users signed in through it: the start
/// of every test of the panel's API.
pub async fn node_with_seeded_users(
    extra: impl FnOnce(SocketAddr) -> String,
) -> (super::TestNode, DevAuth, SeededTokens) {
    let node = super::TestNode::start_with_extra(super::NodeOptions::default(), &extra(free_auth_addr())).await;
    let devauth = DevAuth::start(node.config_path(), false).await;
    let web = node.web_url();
    let tokens = SeededTokens {
        admin: devauth.access_token(&web, "admin", "admin-password").await,
        alice: devauth.access_token(&web, "alice", "alice-password").await,
        bob: devauth.access_token(&web, "bob", "bob-password").await,
    };
    (node, devauth, tokens)
}
