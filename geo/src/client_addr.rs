//! Which address a request comes from.
//!
//! The socket's peer address is the truth unless the peer is one of the operator's own reverse
//! proxies (`[geo] trusted_proxies`): only then are `Forwarded` (RFC 7239) or, when it is absent,
//! `X-Forwarded-For` read. Anyone else could write any address into those headers and pick the
//! node that serves them, so from anyone else they are ignored.
//!
//! The chain is read from the right (the hop nearest to us) leftwards, skipping trusted proxies;
//! the first address that is not one of them is the client. An entry that cannot be parsed
//! (`unknown`, an obfuscated name) ends the walk: nothing left of it can be trusted, so the
//! last trusted hop stands for the client.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::cidr::{IpNetwork, contains};

/// The operator's reverse proxies, whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    /// The blocks from `[geo] trusted_proxies`.
    networks: Vec<IpNetwork>,
}

/// Where a client address came from, for the routing explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    /// The socket's peer address.
    Peer,
    /// `Forwarded: for=...`, sent by a trusted proxy.
    Forwarded,
    /// `X-Forwarded-For`, sent by a trusted proxy.
    XForwardedFor,
    /// Named explicitly by an authenticated caller (`?ip=`).
    Given,
}

/// The client's address and how it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientAddress {
    /// The address used to locate the client.
    pub ip: IpAddr,
    /// Which source it came from.
    pub source: AddressSource,
    /// The socket peer (the proxy, when a header was used).
    pub peer: IpAddr,
    /// Why forwarding headers were not used, when there were some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TrustedProxies {
    /// Trusts these blocks.
    pub fn new(networks: Vec<IpNetwork>) -> Self {
        Self { networks }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| contains(n, ip))
    }

    /// The client address of a request from `peer` carrying these header lines (each header may
    /// appear on several lines; pass them all, in order).
    pub fn client_address(&self, peer: IpAddr, forwarded: &[&str], x_forwarded_for: &[&str]) -> ClientAddress {
        let peer = peer.to_canonical();
        let has_headers = !forwarded.is_empty() || !x_forwarded_for.is_empty();
        let plain = |note: Option<String>| ClientAddress { ip: peer, source: AddressSource::Peer, peer, note };
        if !has_headers {
            return plain(None);
        }
        if !self.contains(peer) {
            return plain(Some(format!("forwarding headers ignored: {peer} is not a trusted proxy")));
        }
        let (chain, source) = if forwarded.is_empty() {
            (
                x_forwarded_for.iter().flat_map(|line| line.split(',')).map(parse_hop).collect::<Vec<_>>(),
                AddressSource::XForwardedFor,
            )
        } else {
            (forwarded.iter().flat_map(|line| line.split(',')).map(forwarded_for).collect(), AddressSource::Forwarded)
        };
        let mut client = None;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) if self.contains(*ip) => client = Some(*ip),
                Some(ip) => {
                    client = Some(*ip);
                    break;
                }
                None => break,
            }
        }
        match client {
            Some(ip) => ClientAddress { ip, source, peer, note: None },
            None => plain(Some("forwarding header from a trusted proxy has no usable address".into())),
        }
    }
}

/// The `for=` address of one `Forwarded` element (`for=192.0.2.60;proto=http;by=...`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| parse_hop(value)).flatten()
    })
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `"[2001:db8::1]:4711"`; `None` for
/// `unknown`, obfuscated names and anything else.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).and_then(|v6| v6.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::parse_cidr;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec![parse_cidr("127.0.0.1/32").expect("cidr"), parse_cidr("10.0.0.0/8").expect("cidr")])
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let got = proxies().client_address(ip("127.0.0.2"), &[], &["127.0.0.4"]);
        assert_eq!((got.ip, got.source), (ip("127.0.0.2"), AddressSource::Peer));
        assert!(got.note.is_some_and(|n| n.contains("not a trusted proxy")));
        let got = proxies().client_address(ip("127.0.0.2"), &[], &[]);
        assert_eq!((got.ip, got.source, got.note), (ip("127.0.0.2"), AddressSource::Peer, None));
    }

    #[test]
    fn trusted_peer_x_forwarded_for_walks_from_the_right() {
        let p = proxies();
        let got = p.client_address(ip("127.0.0.1"), &[], &["127.0.0.4"]);
        assert_eq!((got.ip, got.source), (ip("127.0.0.4"), AddressSource::XForwardedFor));
        // The left entry was written by the client itself: only the rightmost untrusted counts.
        let got = p.client_address(ip("127.0.0.1"), &[], &["6.6.6.6, 127.0.0.3", "10.1.2.3"]);
        assert_eq!(got.ip, ip("127.0.0.3"));
        // Every hop trusted: the leftmost one is as far as we can see.
        let got = p.client_address(ip("127.0.0.1"), &[], &["10.0.0.9, 10.0.0.8"]);
        assert_eq!(got.ip, ip("10.0.0.9"));
        // Garbage next to us: nothing beyond it is believed.
        let got = p.client_address(ip("127.0.0.1"), &[], &["127.0.0.4, garbage"]);
        assert_eq!((got.ip, got.source), (ip("127.0.0.1"), AddressSource::Peer));
        let got = p.client_address(ip("::ffff:127.0.0.1"), &[], &["::ffff:127.0.0.3"]);
        assert_eq!(got.ip, ip("127.0.0.3"));
    }

    #[test]
    fn forwarded_takes_precedence_and_parses_ports_and_brackets() {
        let p = proxies();
        let got = p.client_address(
            ip("127.0.0.1"),
            &["for=\"[2001:db8::7]:4711\";proto=https, For=10.0.0.2:80;by=10.0.0.1"],
            &["127.0.0.4"],
        );
        assert_eq!((got.ip, got.source), (ip("2001:db8::7"), AddressSource::Forwarded));
        let got = p.client_address(ip("127.0.0.1"), &["for=127.0.0.3:999"], &[]);
        assert_eq!(got.ip, ip("127.0.0.3"));
        let got = p.client_address(ip("127.0.0.1"), &["for=unknown"], &[]);
        assert_eq!(got.source, AddressSource::Peer);
    }
}
