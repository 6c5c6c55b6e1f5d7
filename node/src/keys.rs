//! `meridian key create | list | disable | enable | delete`: the S3 key pairs of the replicated
//! key store, managed through a running node (the internal listener's keys path, signed with
//! the cluster secret), and the node's side of those requests.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use meridian_raft::model::{AccessKey, AccessKeyInfo, KeyOwner, UnixMillis};
use meridian_raft::network::PeerClient;
use meridian_raft::{Command, CommandOutcome, MetaStore, Rejection};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;
use crate::listeners::internal::KEYS_PATH;

/// Id prefix of the system keys derived from the cluster secret (see
/// `meridian_admin::presign::system_key`).
const SYSTEM_KEY_PREFIX: &str = "MSYS";

/// What the CLI asks a node for on the keys path (bincode).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum KeyRequest {
    /// Commit a new key pair with its owner.
    Create {
        /// The key pair.
        key: AccessKey,
        /// Who it belongs to.
        owner: KeyOwner,
    },
    /// Every key, without secrets, as of a read index (no key created or removed elsewhere
    /// before the request is missed).
    List,
    /// Disable (`true`) or enable again (`false`) a key.
    SetDisabled {
        /// The access key id.
        id: String,
        /// Whether it is to be disabled.
        disabled: bool,
    },
    /// Delete a key.
    Delete {
        /// The access key id.
        id: String,
    },
}

/// A node's answer to a [`KeyRequest`] that succeeded.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum KeyReply {
    /// Committed (and applied on the answering node).
    Done,
    /// The keys, for [`KeyRequest::List`].
    Keys(Vec<AccessKeyInfo>),
}

/// Why a key request failed, as the CLI reports it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// No key has that id.
    #[error("no access key {0:?}")]
    NoSuchKey(String),
    /// The new key's id is taken.
    #[error("access key id {0:?} is already taken")]
    Taken(String),
    /// The store could not commit or read.
    #[error("the key store failed: {0}")]
    Store(String),
}

/// Now, in Unix milliseconds (0 if the clock is before 1970).
fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Proposes a key command and turns its outcome into a reply.
async fn commit(meta: &MetaStore, id: &str, command: Command) -> Result<KeyReply, KeyError> {
    match meta.propose(command).await {
        Ok(CommandOutcome::Rejected(Rejection::NoSuchKey)) => Err(KeyError::NoSuchKey(id.to_owned())),
        Ok(CommandOutcome::Rejected(Rejection::PreconditionFailed)) => Err(KeyError::Taken(id.to_owned())),
        Ok(CommandOutcome::Rejected(other)) => Err(KeyError::Store(other.to_string())),
        Ok(_) => Ok(KeyReply::Done),
        Err(e) => Err(KeyError::Store(e.to_string())),
    }
}

/// The node's side of a [`KeyRequest`] (the internal listener's keys path).
pub(crate) async fn serve(meta: &MetaStore, request: KeyRequest) -> Result<KeyReply, String> {
    let result = match request {
        KeyRequest::Create { key, owner } => {
            let id = key.id.clone();
            let result = commit(meta, &id, Command::CreateAccessKey { key, owner: owner.clone() }).await;
            if result.is_ok() {
                tracing::info!(access_key = %id, %owner, "access key created");
            }
            result
        }
        KeyRequest::List => match meta.read_barrier().await {
            Ok(()) => meta.access_keys().map(KeyReply::Keys).map_err(|e| KeyError::Store(e.to_string())),
            Err(e) => Err(KeyError::Store(e.to_string())),
        },
        KeyRequest::SetDisabled { id, disabled } => {
            let at = disabled.then(now_millis);
            let result = commit(meta, &id, Command::SetAccessKeyDisabled { id: id.clone(), disabled: at }).await;
            if result.is_ok() {
                tracing::info!(access_key = %id, disabled, "access key state changed");
            }
            result
        }
        KeyRequest::Delete { id } => {
            let result = commit(meta, &id, Command::DeleteAccessKey { id: id.clone() }).await;
            if result.is_ok() {
                tracing::info!(access_key = %id, "access key deleted");
            }
            result
        }
    };
    result.map_err(|e| e.to_string())
}

/// Deletes every system key but `current`: the keys derived from earlier cluster secrets, so
/// rotating the secret retires the old system key (whoever had the old secret could otherwise
/// still sign any S3 request with it).
pub(crate) async fn retire_old_system_keys(meta: &MetaStore, current: &str) -> Result<(), KeyError> {
    let keys = meta.access_keys().map_err(|e| KeyError::Store(e.to_string()))?;
    for key in keys.into_iter().filter(|k| k.id.starts_with(SYSTEM_KEY_PREFIX) && k.id != current) {
        match commit(meta, &key.id, Command::DeleteAccessKey { id: key.id.clone() }).await {
            // Another node retired it meanwhile.
            Ok(_) | Err(KeyError::NoSuchKey(_)) => {
                tracing::info!(access_key = %key.id, "retired the system key of an earlier cluster secret");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Random characters from an alphabet, `len` of them.
fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let i = usize::try_from(rng.next_u32()).unwrap_or(0) % alphabet.len();
            char::from(alphabet[i])
        })
        .collect()
}

/// Sends a request to the first node that answers and returns its reply.
async fn ask(config_path: &Path, request: &KeyRequest) -> anyhow::Result<KeyReply> {
    let config = ClusterConfig::load(config_path)?;
    let peers: PeerClient = crate::tls::cli_peer_client(&config, crate::tls::CliIdentity::FirstReadable)?;
    let mut last_error = None;
    for region in &config.region {
        let reply: Result<Result<KeyReply, String>, _> =
            peers.call(region.id, &region.internal, KEYS_PATH, request, Duration::from_secs(15)).await;
        match reply {
            Ok(Ok(reply)) => return Ok(reply),
            // The cluster answered and refused: asking another node would say the same.
            Ok(Err(e)) => return Err(anyhow::anyhow!("{}: {e}", region.name)),
            Err(e) => last_error = Some(format!("{}: {e}", region.name)),
        }
    }
    Err(anyhow::anyhow!(last_error.unwrap_or_default())).context("no node answered (is the cluster running?)")
}

/// Creates a key pair owned by `owner` (default: the service named `name`), has the cluster
/// commit it, and prints it.
pub(crate) async fn create(config_path: &Path, name: &str, owner: Option<KeyOwner>) -> anyhow::Result<()> {
    let key = AccessKey {
        id: format!("MK{}", random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 18)),
        secret: random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+", 40),
        name: name.to_owned(),
        created: now_millis(),
    };
    let owner = owner.unwrap_or_else(|| KeyOwner::Service(name.to_owned()));
    ask(config_path, &KeyRequest::Create { key: key.clone(), owner: owner.clone() })
        .await
        .context("the cluster did not commit the new key")?;
    println!("name:              {}", key.name);
    println!("owner:             {owner}");
    println!("access key id:     {}", key.id);
    println!("secret access key: {}", key.secret);
    Ok(())
}

/// Unix milliseconds as RFC 3339 (UTC); the raw number when out of range.
fn rfc3339(ms: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// The table `key list` prints: one line per key, secrets never shown.
fn key_table(keys: &[AccessKeyInfo]) -> String {
    let mut out = format!("{:<22} {:<10} {:<24} {:<32} {}\n", "ACCESS KEY ID", "STATE", "CREATED", "OWNER", "NAME");
    for key in keys {
        let state = if key.disabled.is_some() { "disabled" } else { "enabled" };
        let owner = if key.owner_recorded { key.owner.to_string() } else { format!("{} (legacy)", key.owner) };
        out.push_str(&format!("{:<22} {state:<10} {:<24} {owner:<32} {}\n", key.id, rfc3339(key.created), key.name));
    }
    out
}

/// Prints every key of the cluster.
pub(crate) async fn list(config_path: &Path) -> anyhow::Result<()> {
    match ask(config_path, &KeyRequest::List).await? {
        KeyReply::Keys(keys) => {
            print!("{}", key_table(&keys));
            Ok(())
        }
        KeyReply::Done => Err(anyhow::anyhow!("the node answered a list with no keys")),
    }
}

/// Disables (`true`) or enables (`false`) a key on every node.
pub(crate) async fn set_disabled(config_path: &Path, id: &str, disabled: bool) -> anyhow::Result<()> {
    ask(config_path, &KeyRequest::SetDisabled { id: id.to_owned(), disabled }).await?;
    println!("{id}: {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// Deletes a key on every node.
pub(crate) async fn delete(config_path: &Path, id: &str) -> anyhow::Result<()> {
    ask(config_path, &KeyRequest::Delete { id: id.to_owned() }).await?;
    println!("{id}: deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_owner_state_and_creation_but_no_secret() {
        let keys = [
            AccessKeyInfo {
                id: "MKABC".into(),
                name: "encoder".into(),
                created: 0,
                owner: KeyOwner::User("u-7".into()),
                owner_recorded: true,
                disabled: Some(5),
            },
            AccessKeyInfo {
                id: "MERIDIANDEV".into(),
                name: "dev".into(),
                created: 0,
                owner: KeyOwner::Service("dev".into()),
                owner_recorded: false,
                disabled: None,
            },
        ];
        let table = key_table(&keys);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("MKABC") && lines[1].contains("disabled") && lines[1].contains("user:u-7"));
        assert!(lines[1].contains("1970-01-01T00:00:00Z"));
        assert!(lines[2].contains("enabled") && lines[2].contains("service:dev (legacy)"));
    }
}
