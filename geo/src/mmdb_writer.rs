//! A small writer of MaxMind DB (MMDB 2.0) files, so tests can build the GeoIP databases they
//! look addresses up in instead of shipping a 60 MB download.
//!
//! It writes exactly what [`crate::locate`] reads, in the two record layouts found in the
//! wild: MaxMind's GeoIP2 City (nested maps, doubles) and DB-IP City Lite as published by
//! ip-location-db (a flat map, single-precision floats). Networks must not overlap; this is a
//! test fixture builder, not a general-purpose database compiler.

use std::collections::BTreeMap;

use crate::cidr::IpNetwork;

/// The record layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `{city: {names: {en}}, country: {iso_code}, location: {latitude, longitude}}`, doubles.
    GeoIp2City,
    /// `{city, country_code, state1, state2, postcode, timezone, latitude, longitude}`, floats.
    Flat,
}

/// What one network maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// City name.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

impl Record {
    /// A record for a city.
    pub fn new(latitude: f64, longitude: f64, city: &str, country: &str) -> Self {
        Self { latitude, longitude, city: city.to_owned(), country: country.to_owned() }
    }
}

/// One value of the MMDB data section.
enum Value {
    /// UTF-8 string (type 2).
    Str(String),
    /// IEEE 754 double (type 3).
    Double(f64),
    /// IEEE 754 single (extended type 15).
    Float(f32),
    /// Unsigned 16-bit (type 5).
    U16(u16),
    /// Unsigned 32-bit (type 6).
    U32(u32),
    /// Unsigned 64-bit (extended type 9).
    U64(u64),
    /// Map with string keys (type 7).
    Map(Vec<(&'static str, Value)>),
    /// Array (extended type 11).
    Array(Vec<Value>),
}

/// A child of a search-tree node while building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    /// No data below.
    Empty,
    /// Another node.
    Node(usize),
    /// The record with this index.
    Data(usize),
}

/// Builds one MMDB file in memory.
pub struct MmdbWriter {
    /// Record layout.
    layout: Layout,
    /// 4 or 6.
    ip_version: u16,
    /// 24, 28 or 32 bits.
    record_size: u16,
    /// The search tree; node 0 is the root.
    nodes: Vec<[Child; 2]>,
    /// The records, in insertion order.
    records: Vec<Record>,
}

impl MmdbWriter {
    /// An empty database of this layout, IP version (4 or 6) and record size (24, 28, 32).
    pub fn new(layout: Layout, ip_version: u16, record_size: u16) -> Self {
        assert!(ip_version == 4 || ip_version == 6, "ip_version must be 4 or 6");
        assert!(matches!(record_size, 24 | 28 | 32), "record_size must be 24, 28 or 32");
        Self { layout, ip_version, record_size, nodes: vec![[Child::Empty; 2]], records: Vec::new() }
    }

    /// Maps every address of `network` to `record`. IPv4 networks in an IPv6 database go where
    /// readers look for them (`::a.b.c.d`).
    pub fn insert(&mut self, network: IpNetwork, record: Record) {
        let (bits, len): (u128, u8) = match (network, self.ip_version) {
            (IpNetwork::V4(n), 4) => (u128::from(u32::from(n.network())) << 96, n.prefix()),
            (IpNetwork::V4(n), _) => (u128::from(u32::from(n.network())), n.prefix() + 96),
            (IpNetwork::V6(n), 6) => (u128::from(n.network()), n.prefix()),
            (IpNetwork::V6(_), _) => panic!("an IPv6 network cannot go into an IPv4 database"),
        };
        assert!(len > 0, "a /0 network is not supported");
        let data = self.records.len();
        self.records.push(record);
        let mut node = 0;
        for depth in 0..len {
            let bit = usize::from((bits >> (127 - depth)) & 1 == 1);
            if depth + 1 == len {
                assert_eq!(self.nodes[node][bit], Child::Empty, "overlapping networks are not supported");
                self.nodes[node][bit] = Child::Data(data);
                return;
            }
            node = match self.nodes[node][bit] {
                Child::Node(next) => next,
                Child::Empty => {
                    self.nodes.push([Child::Empty; 2]);
                    let next = self.nodes.len() - 1;
                    self.nodes[node][bit] = Child::Node(next);
                    next
                }
                Child::Data(_) => panic!("overlapping networks are not supported"),
            };
        }
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(self.records.len());
        for record in &self.records {
            offsets.push(data.len());
            encode(&self.record_value(record), &mut data);
        }
        let node_count = self.nodes.len();
        let value = |child: Child| -> u64 {
            let v = match child {
                Child::Empty => node_count,
                Child::Node(n) => n,
                // Data pointers count from the start of the 16-byte separator.
                Child::Data(d) => node_count + 16 + offsets[d],
            };
            u64::try_from(v).expect("fits")
        };
        let mut out = Vec::new();
        for [left, right] in &self.nodes {
            let (l, r) = (value(*left), value(*right));
            match self.record_size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    let middle = u8::try_from(((l >> 24) & 0x0f) << 4 | ((r >> 24) & 0x0f)).expect("two nibbles");
                    out.push(middle);
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                _ => {
                    out.extend_from_slice(&l.to_be_bytes()[4..]);
                    out.extend_from_slice(&r.to_be_bytes()[4..]);
                }
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let database_type = match self.layout {
            Layout::GeoIp2City => "GeoIP2-City",
            Layout::Flat => "city",
        };
        let metadata = Value::Map(vec![
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_700_000_000)),
            ("database_type", Value::Str(database_type.into())),
            ("description", Value::Map(vec![("en", Value::Str("Meridian test database".into()))])),
            ("ip_version", Value::U16(self.ip_version)),
            ("languages", Value::Array(vec![Value::Str("en".into())])),
            ("node_count", Value::U32(u32::try_from(node_count).expect("fits"))),
            ("record_size", Value::U16(self.record_size)),
        ]);
        encode(&metadata, &mut out);
        out
    }

    /// A record in this writer's layout.
    fn record_value(&self, r: &Record) -> Value {
        match self.layout {
            Layout::GeoIp2City => Value::Map(vec![
                ("city", Value::Map(vec![("names", Value::Map(vec![("en", Value::Str(r.city.clone()))]))])),
                ("country", Value::Map(vec![("iso_code", Value::Str(r.country.clone()))])),
                (
                    "location",
                    Value::Map(vec![
                        ("latitude", Value::Double(r.latitude)),
                        ("longitude", Value::Double(r.longitude)),
                    ]),
                ),
            ]),
            #[allow(clippy::cast_possible_truncation)] // DB-IP stores single-precision floats
            Layout::Flat => Value::Map(vec![
                ("city", Value::Str(r.city.clone())),
                ("country_code", Value::Str(r.country.clone())),
                ("latitude", Value::Float(r.latitude as f32)),
                ("longitude", Value::Float(r.longitude as f32)),
                ("postcode", Value::Str(String::new())),
                ("state1", Value::Str(String::new())),
                ("state2", Value::Str(String::new())),
                ("timezone", Value::Str(String::new())),
            ]),
        }
    }
}

/// Writes a control byte (and extended type byte and size bytes) for `kind` and `size`.
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let (low, extra): (u8, Vec<u8>) = match size {
        0..29 => (u8::try_from(size).expect("small"), Vec::new()),
        29..285 => (29, vec![u8::try_from(size - 29).expect("one byte")]),
        285..65_821 => (30, u16::try_from(size - 285).expect("two bytes").to_be_bytes().to_vec()),
        _ => (31, u32::try_from(size - 65_821).expect("three bytes").to_be_bytes()[1..].to_vec()),
    };
    if kind <= 7 {
        out.push(kind << 5 | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

/// Appends the minimal big-endian bytes of an unsigned integer with its control byte.
fn unsigned(kind: u8, value: u64, out: &mut Vec<u8>) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends one value in the MMDB data format.
fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Double(d) => {
            control(3, 8, out);
            out.extend_from_slice(&d.to_be_bytes());
        }
        Value::Float(f) => {
            control(15, 4, out);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::U16(v) => unsigned(5, u64::from(*v), out),
        Value::U32(v) => unsigned(6, u64::from(*v), out),
        Value::U64(v) => unsigned(9, *v, out),
        Value::Map(pairs) => {
            // Sorted keys, as MaxMind's own writers emit them.
            let sorted: BTreeMap<&str, &Value> = pairs.iter().map(|(k, v)| (*k, v)).collect();
            control(7, sorted.len(), out);
            for (key, value) in sorted {
                encode(&Value::Str(key.to_owned()), out);
                encode(value, out);
            }
        }
        Value::Array(items) => {
            control(11, items.len(), out);
            for item in items {
                encode(item, out);
            }
        }
    }
}
