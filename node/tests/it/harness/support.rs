//! Small tools every area uses: the loopback HTTP clients, web API calls, bounded polling,
//! listing files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Poll interval of every bounded wait.
pub const POLL: Duration = Duration::from_millis(50);

/// A plain HTTP client for loopback (no proxy, bounded timeouts).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build reqwest client")
}

/// A browser-like client from `ip` (a loopback address, so tests can be several clients) that
/// does not follow redirects: the tests look at them.
pub fn browser_from(ip: std::net::Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::V4(ip))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A web API call on `node` as the holder of `token` (Bearer), with an optional JSON body:
/// (status, JSON answer, `null` when it is not JSON).
pub async fn web_api(
    node: &super::TestNode,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = http_client().request(method, format!("{}{path}", node.web_url())).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("web API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
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
