//! The checks every other one rests on: the config loads, the host's region is known, and the
//! region does not expose the secrets shipped with Meridian.

use std::path::Path;

use super::{Finding, Host, is_local_address, regions_on_this_host};
use crate::config::{ClusterConfig, RegionConfig};

/// The config loads and validates; on failure, `ClusterConfig::load`'s error as it is (it names
/// the field), since that is exactly what `meridian node` would refuse to start with.
pub(super) fn config(path: &Path) -> Result<(ClusterConfig, Finding), Finding> {
    match ClusterConfig::load(path) {
        Ok(config) => {
            let detail = format!(
                "{} loads: cluster {:?}, {} region(s)",
                path.display(),
                config.cluster.name,
                config.region.len()
            );
            Ok((config, Finding::ok("config", detail)))
        }
        Err(e) => Err(Finding::fail("config", e.to_string(), "correct the field it names")),
    }
}

/// The region this host runs: `--region`, else the one region whose listeners bind addresses
/// of this host.
pub(super) fn region<'a>(
    config: &'a ClusterConfig,
    asked: Option<&str>,
) -> Result<(&'a RegionConfig, Finding), Finding> {
    if let Some(name) = asked {
        let names = || config.region.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
        return match config.region(name) {
            Some(region) => Ok((region, Finding::ok("region", format!("{name} (from --region)")))),
            None => Err(Finding::fail(
                "region",
                format!("no [[region]] named {name:?}"),
                format!("pass --region with one of: {}", names()),
            )),
        };
    }
    match regions_on_this_host(&config.region, is_local_address).as_slice() {
        [region] => {
            Ok((region, Finding::ok("region", format!("{} (its listeners bind addresses of this host)", region.name))))
        }
        [] => Err(Finding::fail(
            "region",
            "no region's listeners bind addresses of this host",
            "pass --region NAME, or correct the region's s3 / web / internal addresses",
        )),
        several => Err(Finding::fail(
            "region",
            format!(
                "the listeners of {} all bind addresses of this host",
                several.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "pass --region NAME",
        )),
    }
}

/// The secrets shipped in the repository's `cluster.toml` are public: tolerated on a loopback
/// (laptop) node with a warning, refused anywhere else, by the node's own rule
/// (`ClusterConfig::refuse_shipped_secrets`).
pub(super) fn secrets(host: &Host<'_>) -> Finding {
    let Some(field) = host.config.shipped_secret_field() else {
        return Finding::ok("secrets", "no development secret shipped with Meridian is in use");
    };
    match host.config.refuse_shipped_secrets(host.path, host.region) {
        Err(e) => Finding::fail("secrets", e.to_string(), "set secrets of your own before this node faces a network"),
        Ok(()) => Finding::warn(
            "secrets",
            format!(
                "{field} is the development value shipped with Meridian (tolerated: every listener is on loopback)"
            ),
            "set secrets of your own before any listener leaves loopback",
        ),
    }
}
