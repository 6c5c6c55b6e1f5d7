//! Which address a request comes from.
//!
//! The socket's peer address is the truth unless the peer is one of the operator's own reverse
//! proxies (`[geo] trusted_proxies`): only then is the one header those proxies write read
//! (`[geo] forwarded_header`: `X-Forwarded-For`, or `Forwarded` of RFC 7239). The other header
//! is never read: a proxy that appends to one passes the other through as the client wrote it.
//! Anyone else could write any address into those headers and pick the node that serves them
//! (and the address the limits count), so from anyone else they are ignored.
//!
//! The chain is read from the right (the hop nearest to us) leftwards, skipping trusted proxies;
//! the first address that is not one of them is the client. An entry that cannot be parsed
//! (`unknown`, an obfuscated name) ends the walk: nothing left of it can be trusted, so the
//! last trusted hop stands for the client.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::cidr::{IpNetwork, contains};

/// The operator's reverse proxies, whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    /// The blocks from `[geo] trusted_proxies`.
    networks: Vec<IpNetwork>,
    /// The header they write.
    header: ForwardedHeader,
}

/// Which forwarding header the trusted proxies write (`[geo] forwarded_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name in lower case, as `cluster.toml` and the HTTP layer spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }

    /// The header named `name` (case-insensitive), if it is one of the two.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::XForwardedFor, Self::Forwarded].into_iter().find(|h| h.name().eq_ignore_ascii_case(name.trim()))
    }
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
    /// Trusts these blocks, writing `X-Forwarded-For`.
    pub fn new(networks: Vec<IpNetwork>) -> Self {
        Self { networks, header: ForwardedHeader::default() }
    }

    /// Reads `header` (only) from the trusted proxies.
    #[must_use]
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The header read from the trusted proxies.
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| contains(n, ip))
    }

    /// The client address of a request from `peer` carrying these header lines (each header may
    /// appear on several lines; pass them all, in order). Only the configured header's lines
    /// are read; the other's are ignored as if absent.
    pub fn client_address(&self, peer: IpAddr, forwarded: &[&str], x_forwarded_for: &[&str]) -> ClientAddress {
        let peer = peer.to_canonical();
        let lines = match self.header {
            ForwardedHeader::Forwarded => forwarded,
            ForwardedHeader::XForwardedFor => x_forwarded_for,
        };
        let plain = |note: Option<String>| ClientAddress { ip: peer, source: AddressSource::Peer, peer, note };
        if lines.is_empty() {
            return plain(None);
        }
        if !self.contains(peer) {
            return plain(Some(format!("forwarding headers ignored: {peer} is not a trusted proxy")));
        }
        let (chain, source) = match self.header {
            ForwardedHeader::XForwardedFor => (
                lines.iter().flat_map(|line| line.split(',')).map(parse_hop).collect::<Vec<_>>(),
                AddressSource::XForwardedFor,
            ),
            ForwardedHeader::Forwarded => {
                (lines.iter().flat_map(|line| line.split(',')).map(forwarded_for).collect(), AddressSource::Forwarded)
            }
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
    use proptest::prelude::*;

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
    fn forwarded_parses_ports_and_brackets_and_ignores_x_forwarded_for() {
        let p = proxies().with_header(ForwardedHeader::Forwarded);
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
        // The proxy writes `Forwarded`: an `X-Forwarded-For` is the client's own invention.
        let got = p.client_address(ip("127.0.0.1"), &[], &["6.6.6.6"]);
        assert_eq!((got.ip, got.source, got.note), (ip("127.0.0.1"), AddressSource::Peer, None));
    }

    /// The attack: the proxy appends `X-Forwarded-For` and passes a client's own `Forwarded`
    /// through untouched. That header must not pick the address.
    #[test]
    fn a_client_written_forwarded_header_is_ignored_behind_an_x_forwarded_for_proxy() {
        let p = proxies();
        assert_eq!(p.header(), ForwardedHeader::XForwardedFor, "the default");
        let got = p.client_address(ip("127.0.0.1"), &["for=6.6.6.6"], &["127.0.0.4"]);
        assert_eq!((got.ip, got.source), (ip("127.0.0.4"), AddressSource::XForwardedFor));
        let got = p.client_address(ip("127.0.0.1"), &["for=6.6.6.6"], &[]);
        assert_eq!((got.ip, got.source), (ip("127.0.0.1"), AddressSource::Peer));
    }

    #[test]
    fn header_names_parse() {
        assert_eq!(ForwardedHeader::from_name("X-Forwarded-For"), Some(ForwardedHeader::XForwardedFor));
        assert_eq!(ForwardedHeader::from_name("forwarded"), Some(ForwardedHeader::Forwarded));
        assert_eq!(ForwardedHeader::from_name("x-real-ip"), None);
    }

    fn lines() -> impl Strategy<Value = Vec<String>> {
        let hop = prop_oneof![
            any::<String>(),
            any::<std::net::IpAddr>().prop_map(|ip| ip.to_string()),
            any::<std::net::SocketAddr>().prop_map(|a| format!("\"{a}\"")),
            Just("unknown".to_owned()),
            Just("for=".to_owned()),
            Just("[".to_owned()),
            Just(";".to_owned()),
        ];
        let line = prop::collection::vec(hop, 0..6).prop_map(|hops| hops.join(", "));
        prop::collection::vec(line, 0..4)
    }

    proptest! {
        /// Arbitrary header lines never panic, and the address chosen is the peer or one
        /// written in the configured header (never one from the other header).
        #[test]
        fn arbitrary_forwarding_headers_never_panic(
            peer in any::<std::net::IpAddr>(),
            forwarded in lines(),
            xff in lines(),
            use_forwarded in any::<bool>(),
        ) {
            let header = if use_forwarded { ForwardedHeader::Forwarded } else { ForwardedHeader::XForwardedFor };
            let p = TrustedProxies::new(vec![parse_cidr("0.0.0.0/0").expect("cidr"), parse_cidr("::/0").expect("cidr")])
                .with_header(header);
            let f: Vec<&str> = forwarded.iter().map(String::as_str).collect();
            let x: Vec<&str> = xff.iter().map(String::as_str).collect();
            let got = p.client_address(peer, &f, &x);
            let read = if use_forwarded { &f } else { &x };
            prop_assert!(got.ip == peer.to_canonical() || read.iter().any(|l| !l.is_empty()), "{got:?}");
            if got.source != AddressSource::Peer {
                prop_assert_eq!(got.source == AddressSource::Forwarded, use_forwarded);
            }
        }
    }
}
