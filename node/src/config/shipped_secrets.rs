//! The development secrets the repository's `cluster.toml` ships with (public, so known to
//! anyone), and the check that keeps them off any listener that is not on loopback.

use std::net::SocketAddr;
use std::path::Path;

use super::{ClusterConfig, ConfigError, RegionConfig};

/// The development secrets of the repository's `cluster.toml`: public, so refused on any
/// non-loopback listener (see [`ClusterConfig::refuse_shipped_secrets`]).
const SHIPPED_CLUSTER_SECRET: &str = "dev-only-cluster-secret-change-me-0123456789";
/// The shipped `[dev_key]` id.
const SHIPPED_DEV_KEY_ID: &str = "MERIDIANDEV0000000001";
/// The shipped `[dev_key]` secret.
const SHIPPED_DEV_KEY_SECRET: &str = "meridian-dev-secret-access-key-0000000001";
/// The shipped `[auth] hs256_secret` (the stand-in Auth service signs with it).
const SHIPPED_AUTH_SECRET: &str = "dev-only-auth-secret-change-me-0123456789abcdef";
/// The shipped `[auth] service_token`.
const SHIPPED_AUTH_SERVICE_TOKEN: &str = "dev-only-auth-service-token-0123456789";
/// The secret of the commented-out `[[events.webhook]]` example.
const SHIPPED_WEBHOOK_SECRET: &str = "change-me-shared-with-the-receiver";

impl ClusterConfig {
    /// Refuses the secrets shipped in the repository's `cluster.toml` (public, so known to
    /// anyone) unless every listener of `region` is on loopback, where they serve a laptop
    /// cluster. Per region, as a config may mix a loopback test region with real ones.
    pub(crate) fn refuse_shipped_secrets(&self, path: &Path, region: &RegionConfig) -> Result<(), ConfigError> {
        let Some(exposed) = Self::exposed_listener(region) else { return Ok(()) };
        match self.shipped_secret_field() {
            Some(field) => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                message: format!(
                    "is the development value shipped with Meridian, which anyone can read; region {:?} \
                     listens on {exposed}, which is not loopback: set a secret of your own (or, for the \
                     dev key, remove [dev_key] and create keys with `meridian key create`)",
                    region.name
                ),
            }),
            None => Ok(()),
        }
    }

    /// The first listener address of `region` that is not on loopback (a host name counts as
    /// not loopback), if any: where a shipped secret would be exposed.
    fn exposed_listener(region: &RegionConfig) -> Option<&str> {
        let listeners = [&region.s3, &region.web, &region.internal].into_iter().chain(region.internal_bind.as_ref());
        listeners
            .map(|addr| (addr, addr.parse::<SocketAddr>()))
            .find(|(_, parsed)| parsed.as_ref().map_or(true, |a| !a.ip().to_canonical().is_loopback()))
            .map(|(addr, _)| addr.as_str())
    }

    /// The field of the first secret that still has the value shipped in the repository's
    /// `cluster.toml`, wherever the nodes listen (`meridian doctor` warns about it on loopback).
    pub(crate) fn shipped_secret_field(&self) -> Option<String> {
        let auth = self.auth.as_ref();
        let shipped = [
            ("cluster.secret", Some(self.cluster.secret.as_str()) == Some(SHIPPED_CLUSTER_SECRET)),
            ("dev_key.access_key_id", self.dev_key.as_ref().is_some_and(|k| k.access_key_id == SHIPPED_DEV_KEY_ID)),
            (
                "dev_key.secret_access_key",
                self.dev_key.as_ref().is_some_and(|k| k.secret_access_key == SHIPPED_DEV_KEY_SECRET),
            ),
            ("auth.hs256_secret", auth.is_some_and(|a| a.hs256_secret.as_deref() == Some(SHIPPED_AUTH_SECRET))),
            ("auth.service_token", auth.is_some_and(|a| a.service_token == SHIPPED_AUTH_SERVICE_TOKEN)),
        ];
        let hooks = self
            .events
            .webhook
            .iter()
            .enumerate()
            .map(|(i, hook)| (format!("events.webhook[{i}].secret"), hook.secret == SHIPPED_WEBHOOK_SECRET));
        shipped
            .into_iter()
            .map(|(field, bad)| (field.to_owned(), bad))
            .chain(hooks)
            .find(|(_, bad)| *bad)
            .map(|(f, _)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::load_str;
    use super::*;

    /// The shipped cluster.toml starts on loopback as it is; each shipped secret on a
    /// non-loopback listener of the region is refused naming its field; fresh secrets, or the
    /// shipped ones on another (loopback) region's node, are not.
    #[test]
    fn shipped_secrets_are_refused_off_loopback_naming_the_field() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let shipped = std::fs::read_to_string(&path).expect("cluster.toml");
        let config = ClusterConfig::load(&path).expect("cluster.toml loads");
        for region in &config.region {
            config.refuse_shipped_secrets(&path, region).expect("shipped secrets on loopback");
        }
        let exposed = |text: &str, field: &str| {
            let config = load_str(text).expect("loads");
            let mut region = config.region[0].clone();
            region.web = "0.0.0.0:8001".into();
            let refused = config.refuse_shipped_secrets(&path, &region).err().map(|e| e.to_string());
            let other = config.region[1].clone();
            assert!(config.refuse_shipped_secrets(&path, &other).is_ok(), "a loopback region may keep them");
            assert!(refused.as_deref().is_some_and(|m| m.contains(field)), "{field}: {refused:?}");
        };
        exposed(&shipped, "cluster.secret");
        let fresh = |text: &str, value: &str| text.replace(value, "a-secret-of-our-own-0123456789abcdef");
        let text = fresh(&shipped, SHIPPED_CLUSTER_SECRET);
        exposed(&text, "dev_key.access_key_id");
        let text = text.replace(SHIPPED_DEV_KEY_ID, "MYOWNKEY0001");
        exposed(&text, "dev_key.secret_access_key");
        let text = fresh(&text, SHIPPED_DEV_KEY_SECRET);
        exposed(&text, "auth.hs256_secret");
        let text = text.replace(SHIPPED_AUTH_SECRET, "another-secret-of-our-own-0123456789abcdef");
        exposed(&text, "auth.service_token");
        let text = text.replace(SHIPPED_AUTH_SERVICE_TOKEN, "a-token-of-our-own-0123456789");
        let hook = "[[events.webhook]]\nname = \"c\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"change-me-shared-with-the-receiver\"\n";
        let with_hook = text.replace("# The \"fake GeoIP\"", &format!("{hook}\n# The \"fake GeoIP\""));
        assert_ne!(with_hook, text, "the webhook example went in");
        exposed(&with_hook, "events.webhook[0].secret");

        // Without any shipped value, or without a dev key at all, a public address is fine.
        let config = load_str(&text).expect("loads");
        let mut region = config.region[0].clone();
        region.s3 = "[2001:db8::1]:9001".into();
        region.internal_bind = Some("0.0.0.0:7001".into());
        assert!(config.refuse_shipped_secrets(&path, &region).is_ok());
        let no_dev_key = text.replace("[dev_key]", "[dev_key_removed]");
        let cut = no_dev_key.find("[dev_key_removed]").expect("section");
        let end = no_dev_key[cut..].find("\n\n").expect("end of section") + cut;
        let no_dev_key = format!("{}{}", &no_dev_key[..cut], &no_dev_key[end..]);
        let config = load_str(&no_dev_key).expect("[dev_key] is optional");
        assert!(config.dev_key.is_none());
    }
}
