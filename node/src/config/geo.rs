//! `[geo]` and `[[geo.cidr]]` of `cluster.toml`: where clients are (the CIDR map, GeoIP
//! databases, trusted proxies) and how their requests are routed to nodes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, resolve};

/// `[geo]`: where clients are and how requests are routed to nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GeoSection {
    /// The CIDR-to-region map ("fake GeoIP"), asked first.
    pub(crate) cidr: Vec<CidrRule>,
    /// MaxMind-format GeoIP databases (GeoIP2 City or DB-IP City Lite), asked in order after the
    /// CIDR map; relative to the config file. Empty: no GeoIP, unknown clients get the default
    /// region.
    pub(crate) mmdb: Vec<PathBuf>,
    /// Reverse proxies (CIDR) whose `Forwarded` / `X-Forwarded-For` headers are believed.
    pub(crate) trusted_proxies: Vec<String>,
    /// The one header the trusted proxies write: `x-forwarded-for` or `forwarded`. The other is
    /// ignored, since a proxy passes it through as the client wrote it.
    pub(crate) forwarded_header: String,
    /// Downloads: holders within this many km of the nearest holder share the load.
    pub(crate) near_tier_km: f64,
    /// How often each node polls its peers' load and health.
    pub(crate) load_interval_ms: u64,
    /// A load report older than this many intervals counts as unknown.
    pub(crate) load_stale_intervals: u32,
    /// Outgoing S3 bytes per second that weigh as much as one more request in flight.
    pub(crate) bytes_per_sec_per_request: u64,
    /// Validity of the presigned URLs the routing API hands out.
    pub(crate) presign_expiry_secs: u64,
    /// Uploads above this size get a multipart plan instead of one PUT URL.
    pub(crate) multipart_threshold_mib: u64,
    /// Part size of multipart plans.
    pub(crate) multipart_part_mib: u64,
}

impl Default for GeoSection {
    fn default() -> Self {
        Self {
            cidr: Vec::new(),
            mmdb: Vec::new(),
            trusted_proxies: Vec::new(),
            forwarded_header: meridian_geo::ForwardedHeader::default().name().to_owned(),
            near_tier_km: 1500.0,
            load_interval_ms: 1000,
            load_stale_intervals: 3,
            bytes_per_sec_per_request: 10 * 1024 * 1024,
            presign_expiry_secs: 300,
            multipart_threshold_mib: 64,
            multipart_part_mib: 16,
        }
    }
}

impl GeoSection {
    /// Checks the CIDR map against the configured region names, the proxies, the header, the
    /// GeoIP files (resolved against `base_dir`) and the routing numbers.
    pub(super) fn validate(&self, path: &Path, base_dir: &Path, regions: &HashSet<String>) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::invalid(path, field, message);
        for (i, rule) in self.cidr.iter().enumerate() {
            if let Err(e) = meridian_geo::parse_cidr(&rule.cidr) {
                return Err(invalid(format!("geo.cidr[{i}].cidr"), e.to_string()));
            }
            if !regions.contains(&rule.region) {
                return Err(invalid(
                    format!("geo.cidr[{i}].region"),
                    format!("{:?} is not a configured region", rule.region),
                ));
            }
        }
        for (i, proxy) in self.trusted_proxies.iter().enumerate() {
            if let Err(e) = meridian_geo::parse_cidr(proxy) {
                return Err(invalid(format!("geo.trusted_proxies[{i}]"), e.to_string()));
            }
        }
        if meridian_geo::ForwardedHeader::from_name(&self.forwarded_header).is_none() {
            return Err(invalid("geo.forwarded_header".into(), "must be \"x-forwarded-for\" or \"forwarded\"".into()));
        }
        for (i, mmdb) in self.mmdb.iter().enumerate() {
            let resolved = resolve(base_dir, mmdb);
            if !resolved.is_file() {
                return Err(invalid(
                    format!("geo.mmdb[{i}]"),
                    format!("{} is not a file (scripts/fetch-geoip downloads one)", resolved.display()),
                ));
            }
        }
        let checks: [(&str, bool, &str); 6] = [
            ("near_tier_km", self.near_tier_km.is_finite() && self.near_tier_km >= 0.0, "must be a number >= 0"),
            ("load_interval_ms", (100..=60_000).contains(&self.load_interval_ms), "must be within 100..=60000"),
            ("load_stale_intervals", self.load_stale_intervals >= 1, "must be at least 1"),
            (
                "presign_expiry_secs",
                (1..=meridian_admin::presign::MAX_EXPIRY_SECS).contains(&self.presign_expiry_secs),
                "must be within 1..=604800 (7 days, the S3 limit)",
            ),
            (
                "multipart_part_mib",
                (5..=5120).contains(&self.multipart_part_mib),
                "must be within 5..=5120 (S3 part limits)",
            ),
            ("bytes_per_sec_per_request", self.bytes_per_sec_per_request > 0, "must be greater than 0"),
        ];
        for (name, ok, message) in checks {
            if !ok {
                return Err(invalid(format!("geo.{name}"), message.into()));
            }
        }
        Ok(())
    }
}

/// One `[[geo.cidr]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CidrRule {
    /// `address/prefix`.
    pub(crate) cidr: String,
    /// Region of the clients in it.
    pub(crate) region: String,
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, assert_errors_name_the_field};

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (format!("{VALID}[geo]\ntrusted_proxies = [\"10.0.0.1\"]\n"), "geo.trusted_proxies[0]"),
            (format!("{VALID}[geo]\nmmdb = [\"missing.mmdb\"]\n"), "geo.mmdb[0]"),
            (format!("{VALID}[geo]\nforwarded_header = \"x-real-ip\"\n"), "geo.forwarded_header"),
            (format!("{VALID}[geo]\nnear_tier_km = -1.0\n"), "geo.near_tier_km"),
            (format!("{VALID}[geo]\npresign_expiry_secs = 0\n"), "geo.presign_expiry_secs"),
            (format!("{VALID}[geo]\nmultipart_part_mib = 1\n"), "geo.multipart_part_mib"),
            (format!("{VALID}[geo]\nload_interval_ms = 5\n"), "geo.load_interval_ms"),
            (format!("{VALID}[[geo.cidr]]\ncidr = \"10.0.0.0\"\nregion = \"a\"\n"), "geo.cidr[0].cidr"),
        ]);
    }
}
