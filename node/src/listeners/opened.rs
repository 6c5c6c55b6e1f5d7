//! Connections the listeners opened, by listener and by the HTTP version spoken on them, for
//! `/metrics`.
//!
//! Between nodes a connection should be opened once per peer and then kept: each new one costs
//! a TLS handshake, one round trip more for the call that waits on it, which across a WAN is the
//! difference between a write's usual latency and its tail (BENCHMARKS.md, "Regions 100 ms
//! apart"). The internal listener's counter shows whether peers keep to that; the integration
//! tests assert on it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The listeners counted, in the order of [`ConnectionsOpened`]' rows.
const LISTENERS: [&str; 3] = ["s3", "web", "internal"];

/// The protocols a served connection can speak, in the order of [`ConnectionsOpened`]' columns.
const PROTOCOLS: [&str; 2] = ["http1", "h2"];

/// What a served connection speaks, as told by TLS's ALPN (plain connections are HTTP/1.1:
/// the listeners do not take HTTP/2 without TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.1: one request at a time per connection.
    Http1,
    /// HTTP/2, negotiated by ALPN: concurrent calls share the connection.
    Http2,
}

/// Counters of connections served (after the TLS handshake and the peer check), per listener and
/// protocol.
#[derive(Debug, Default)]
pub(crate) struct ConnectionsOpened {
    /// `[listener][protocol]`, in [`LISTENERS`] and [`PROTOCOLS`] order.
    counts: [[AtomicU64; PROTOCOLS.len()]; LISTENERS.len()],
}

impl ConnectionsOpened {
    /// Counts one connection of `listener` speaking `protocol`.
    pub(crate) fn count(&self, listener: &str, protocol: Protocol) {
        let Some(row) = LISTENERS.iter().position(|l| *l == listener) else { return };
        let column = usize::from(protocol == Protocol::Http2);
        self.counts[row][column].fetch_add(1, Ordering::Relaxed);
    }

    /// The series in the Prometheus text format.
    pub(crate) fn write_prometheus(&self, out: &mut String) {
        let name = "meridian_connections_opened_total";
        let _ = writeln!(
            out,
            "# HELP {name} Connections a listener served since start (after TLS and the peer check), by HTTP version.\n# TYPE {name} counter"
        );
        for (listener, row) in LISTENERS.iter().zip(&self.counts) {
            for (protocol, count) in PROTOCOLS.iter().zip(row) {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{listener}\",protocol=\"{protocol}\"}} {}",
                    count.load(Ordering::Relaxed)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listener_and_protocol_has_its_series() {
        let opened = ConnectionsOpened::default();
        opened.count("internal", Protocol::Http2);
        opened.count("internal", Protocol::Http2);
        opened.count("s3", Protocol::Http1);
        opened.count("nonsense", Protocol::Http1);
        let mut out = String::new();
        opened.write_prometheus(&mut out);
        assert!(out.contains("meridian_connections_opened_total{listener=\"internal\",protocol=\"h2\"} 2\n"), "{out}");
        assert!(out.contains("meridian_connections_opened_total{listener=\"s3\",protocol=\"http1\"} 1\n"), "{out}");
        assert!(out.contains("meridian_connections_opened_total{listener=\"web\",protocol=\"http1\"} 0\n"), "{out}");
    }
}
