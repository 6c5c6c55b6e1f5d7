//! How a certificate names the node that holds it.

use std::fmt;

/// A node's name for mutual TLS: its cluster and its region, written in its certificate as the
/// URI `spiffe://<cluster>/region/<region>` (the SPIFFE form, so tools that read workload
/// identities read ours). Region names are lowercase letters, digits and '-' (the config says
/// so); the cluster's name is percent-encoded where it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName {
    /// `[cluster] name`.
    pub cluster: String,
    /// The region's name.
    pub region: String,
}

impl NodeName {
    /// The name of `region` in `cluster`.
    pub fn new(cluster: &str, region: &str) -> Self {
        Self { cluster: cluster.to_owned(), region: region.to_owned() }
    }

    /// The URI written in the certificate.
    pub fn uri(&self) -> String {
        format!("spiffe://{}/region/{}", encode(&self.cluster), encode(&self.region))
    }

    /// Reads a URI back; `None` when it is not a Meridian node's name.
    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("spiffe://")?;
        let (cluster, region) = rest.split_once("/region/")?;
        if region.contains('/') {
            return None;
        }
        Some(Self { cluster: decode(cluster)?, region: decode(region)? })
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "region {:?} of cluster {:?}", self.region, self.cluster)
    }
}

/// Percent-encodes every byte but lowercase letters, digits, '-', '.' and '_' (what a SPIFFE
/// trust domain and path segment allow).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_reads_back_from_its_uri() {
        for (cluster, region) in [("meridian-dev", "frankfurt"), ("Cinema Prod/EU", "a-1"), ("100%", "x")] {
            let name = NodeName::new(cluster, region);
            assert_eq!(NodeName::parse(&name.uri()), Some(name.clone()), "{}", name.uri());
        }
        assert_eq!(NodeName::new("meridian-dev", "frankfurt").uri(), "spiffe://meridian-dev/region/frankfurt");
    }

    #[test]
    fn other_uris_are_not_names() {
        for uri in ["https://x/region/a", "spiffe://c/regions/a", "spiffe://c/region/a/b", "spiffe://c/region/%G0"] {
            assert_eq!(NodeName::parse(uri), None, "{uri}");
        }
    }
}
