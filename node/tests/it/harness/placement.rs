//! The web listener's placement API as tests see it: `GET /api/v1/objects/{bucket}/{key}/placement`
//! with the dev key as HTTP Basic, its JSON answer, and bounded waits on it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{ACCESS_KEY, POLL, SECRET_KEY, TestNode, uri_encode};

/// The JSON answer of the placement API.
#[derive(Debug, Clone, Deserialize)]
pub struct Placement {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
    pub last_modified_ms: i64,
    pub inline: bool,
    pub blob: Option<String>,
    pub holders: Vec<Holder>,
    pub pending: Vec<Member>,
    pub replicated: bool,
}

/// One holder of an object's bytes.
#[derive(Debug, Clone, Deserialize)]
pub struct Holder {
    pub node_id: u64,
    pub region: Option<String>,
    pub since_ms: i64,
}

/// A member still waiting for an object's bytes.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    pub node_id: u64,
    pub region: String,
}

impl Placement {
    /// Node ids of the holders, ascending.
    pub fn holder_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.holders.iter().map(|h| h.node_id).collect();
        ids.sort_unstable();
        ids
    }

    /// When node `id` got the bytes, if it holds them.
    pub fn since(&self, id: u64) -> Option<i64> {
        self.holders.iter().find(|h| h.node_id == id).map(|h| h.since_ms)
    }

    /// The blob file of this object under `data_dir` (`blobs/<2 hex>/<blob>`).
    pub fn blob_path(&self, data_dir: &Path) -> PathBuf {
        let blob = self.blob.as_deref().unwrap_or_else(|| panic!("{}/{} has no blob (inline)", self.bucket, self.key));
        data_dir.join("blobs").join(&blob[..2]).join(blob)
    }
}

/// The placement URL of `bucket/key` on `node`, the key percent-encoded with its slashes kept.
pub fn placement_url(node: &TestNode, bucket: &str, key: &str) -> String {
    format!("{}/api/v1/objects/{bucket}/{}/placement", node.web_url(), uri_encode(key, true))
}

/// Asks `node` for the placement of `bucket/key` with the dev key; `Err((status, body))` on a
/// non-200 answer. Panics when the node does not answer at all.
pub async fn placement(
    http: &reqwest::Client,
    node: &TestNode,
    bucket: &str,
    key: &str,
) -> Result<Placement, (u16, String)> {
    let url = placement_url(node, bucket, key);
    let resp = http
        .get(&url)
        .basic_auth(ACCESS_KEY, Some(SECRET_KEY))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"));
    if status != 200 {
        return Err((status, body));
    }
    Ok(serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: bad JSON {body:?}: {e}")))
}

/// Polls the placement of `bucket/key` on `node` until `done` holds, at most `timeout`; panics
/// with the last answer (and `context`) otherwise.
pub async fn wait_placement(
    http: &reqwest::Client,
    node: &TestNode,
    bucket: &str,
    key: &str,
    timeout: Duration,
    context: &str,
    done: impl Fn(&Placement) -> bool,
) -> Placement {
    let deadline = Instant::now() + timeout;
    loop {
        let last = placement(http, node, bucket, key).await;
        if let Ok(p) = &last
            && done(p)
        {
            return p.clone();
        }
        if Instant::now() > deadline {
            panic!("{context}: placement of {bucket}/{key} not as expected within {timeout:?}; last answer {last:#?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
