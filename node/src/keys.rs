//! `meridian key create`: a new S3 key pair, committed through a running node.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use meridian_raft::model::AccessKey;
use meridian_raft::network::PeerClient;
use rand::RngCore as _;

use crate::config::ClusterConfig;
use crate::listeners::internal::KEYS_PATH;

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

/// Creates a key pair, has the cluster commit it, and prints it.
pub(crate) async fn create(config_path: &Path, name: &str) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let key = AccessKey {
        id: format!("MK{}", random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 18)),
        secret: random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+", 40),
        name: name.to_owned(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0)),
    };
    let peers = PeerClient::new(Arc::new(crate::listeners::internal::signer(&config)));
    let mut last_error = None;
    for region in &config.region {
        let reply: Result<Result<(), String>, _> =
            peers.call(region.id, &region.internal, KEYS_PATH, &key, Duration::from_secs(15)).await;
        match reply {
            Ok(Ok(())) => {
                println!("name:              {}", key.name);
                println!("access key id:     {}", key.id);
                println!("secret access key: {}", key.secret);
                return Ok(());
            }
            Ok(Err(e)) => last_error = Some(format!("{}: {e}", region.name)),
            Err(e) => last_error = Some(format!("{}: {e}", region.name)),
        }
    }
    Err(anyhow::anyhow!(last_error.unwrap_or_default()))
        .context("no node could commit the new key (is the cluster running?)")
}
