//! Builds the web API's geo routing from `cluster.toml`: the client locator (CIDR map, GeoIP
//! databases, default region), the regions' S3 endpoints and coordinates, the planner's
//! tunables and the presigning settings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use meridian_admin::presign::system_key;
use meridian_admin::route::{PresignSettings, Routing, Site};
use meridian_geo::{ClientLocator, GeoPoint, LoadBoard, PlanSettings, Region, TrustedProxies, parse_cidr};

use crate::config::ClusterConfig;

/// How long the routing API waits for another node's S3 listener (starting a multipart upload).
const S3_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The routing state of a node whose load board is `board`.
pub(crate) fn routing(config: &ClusterConfig, board: Arc<LoadBoard>) -> anyhow::Result<Routing> {
    let geo = &config.geo;
    let regions: Vec<Region> = config
        .region
        .iter()
        .map(|r| Region { name: r.name.clone(), position: GeoPoint::new(r.latitude, r.longitude) })
        .collect();
    // The config was validated: every block parses and every region exists.
    let cidr = geo
        .cidr
        .iter()
        .enumerate()
        .map(|(i, rule)| Ok((parse_cidr(&rule.cidr).with_context(|| format!("geo.cidr[{i}]"))?, rule.region.clone())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut locator = ClientLocator::new(&regions, &cidr, &config.cluster.default_region)?;
    for (i, path) in geo.mmdb.iter().enumerate() {
        locator.add_mmdb(&config.resolve(path)).with_context(|| format!("geo.mmdb[{i}]"))?;
    }
    let trusted = geo
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, text)| parse_cidr(text).with_context(|| format!("geo.trusted_proxies[{i}]")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sites = config
        .region
        .iter()
        .map(|r| Site {
            id: r.id,
            region: r.name.clone(),
            position: GeoPoint::new(r.latitude, r.longitude),
            s3_endpoint: config.s3_url(r),
        })
        .collect();
    // Other nodes' S3 listeners may answer https only, with certificates of the cluster CA.
    let http = crate::tls::public_client(config)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .timeout(S3_CALL_TIMEOUT)
        .build()
        .context("cannot build the HTTP client of the routing API")?;
    const MIB: u64 = 1024 * 1024;
    Ok(Routing {
        locator,
        board,
        sites,
        trusted_proxies: TrustedProxies::new(trusted)
            .with_header(meridian_geo::ForwardedHeader::from_name(&geo.forwarded_header).unwrap_or_default()),
        settings: PlanSettings {
            near_tier_km: geo.near_tier_km,
            bytes_per_request: geo.bytes_per_sec_per_request as f64,
        },
        presign: PresignSettings {
            expiry: Duration::from_secs(geo.presign_expiry_secs),
            multipart_threshold: geo.multipart_threshold_mib.saturating_mul(MIB),
            part_size: geo.multipart_part_mib * MIB,
            system_key: Some(system_key(&config.cluster.secret)),
        },
        http,
    })
}

/// The load interval and how old a report may get before it counts as unknown.
pub(crate) fn load_timing(config: &ClusterConfig) -> (Duration, Duration) {
    let interval = Duration::from_millis(config.geo.load_interval_ms);
    (interval, interval * config.geo.load_stale_intervals)
}
