//! HMAC-SHA256 signatures on requests between nodes.
//!
//! **Scheme v2** (`x-meridian-signature-v2`), the one every node sends: an HMAC, keyed with the
//! cluster secret, over the cluster name, the destination node id, method, path (with query),
//! the request's Unix time, a random 128-bit nonce and the SHA-256 of the body, each field
//! length-prefixed so no two field lists share an input. The body's hash travels in its own
//! header, so the receiver checks the whole signature, the time window and the nonce from the
//! headers alone, before it reads a byte of body; once the body is in, its hash must be the
//! signed one. A request made for one node is refused by every other node and by other clusters
//! sharing the secret, and the same request is refused the second time (see [`ReplayGuard`]).
//!
//! **Scheme v1** (`x-meridian-signature`), the previous release's: an HMAC over method, path,
//! time and the body's hash only, so it can be replayed to any node within the window. It is
//! refused unless `legacy` is on (a rolling upgrade from that release); then it is also sent,
//! next to v2, so nodes still running the old release understand it.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Header with the request's Unix time in seconds (both schemes).
pub const TIMESTAMP_HEADER: &str = "x-meridian-timestamp";
/// Header with the hex HMAC of scheme v1 (the previous release's).
pub const SIGNATURE_HEADER: &str = "x-meridian-signature";
/// Header with the hex HMAC of scheme v2.
pub const SIGNATURE_V2_HEADER: &str = "x-meridian-signature-v2";
/// Header with the request's random nonce, 32 hex digits (scheme v2).
pub const NONCE_HEADER: &str = "x-meridian-nonce";
/// Header with the hex SHA-256 of the body (scheme v2), signed with the rest.
pub const CONTENT_SHA256_HEADER: &str = "x-meridian-content-sha256";
/// How far a request's time may be from the receiver's clock, in seconds.
pub const REPLAY_WINDOW_SECS: u64 = 30;
/// Domain separation of the v2 MAC from every other HMAC keyed with the cluster secret.
const V2_TAG: &[u8] = b"meridian-internal-v2";
/// Nonce length in bytes.
const NONCE_LEN: usize = 16;

/// Why a request's signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No timestamp or signature header.
    #[error("request is not signed")]
    Missing,
    /// The timestamp is not a number or is outside the replay window.
    #[error("request timestamp is stale or malformed")]
    Stale,
    /// The HMAC does not match (or a signature header is malformed).
    #[error("request signature does not match")]
    Forged,
    /// The nonce was seen within the replay window: the request is a replay.
    #[error("request was already received (replay)")]
    Replayed,
    /// The body is not the one the signature covers.
    #[error("request body does not match its signature")]
    BodyMismatch,
    /// Only a v1 signature, and this node does not accept v1 (`legacy_signatures` is off).
    #[error("request carries only the previous signature scheme, which this node refuses")]
    LegacyRefused,
}

/// Signs and verifies internal requests with the cluster secret.
#[derive(Clone)]
pub struct RequestSigner {
    /// The cluster secret.
    key: Vec<u8>,
    /// The cluster name, signed into every v2 request.
    cluster: String,
    /// Also send, and accept, scheme v1 (rolling upgrade from the previous release).
    legacy: bool,
}

/// HMAC-SHA256 keyed with `key`, ready for input.
fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// HMAC-SHA256, keyed with `key`, of the concatenation of `parts`: the one MAC of Meridian
/// (internal requests, webhook deliveries, SigV4 presigning).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Parses a timestamp header and checks it against `now`; `abs_diff` so that no value (say
/// `i64::MIN`) can overflow the subtraction.
fn fresh_timestamp(value: &str, now: i64) -> Result<i64, SignatureError> {
    let timestamp: i64 = value.parse().map_err(|_| SignatureError::Stale)?;
    if now.abs_diff(timestamp) > REPLAY_WINDOW_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(timestamp)
}

/// Decodes exactly `N` bytes of hex, or fails as a forged signature.
fn hex_array<const N: usize>(value: &str) -> Result<[u8; N], SignatureError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(value, &mut out).map_err(|_| SignatureError::Forged)?;
    Ok(out)
}

/// A request whose headers passed the check; what is left is its body (see
/// [`RequestSigner::check_headers`]).
pub struct Pending {
    /// What the body must match.
    kind: PendingKind,
}

/// The two schemes' body checks.
enum PendingKind {
    /// v2: the body's hash was signed; the nonce and time go to the [`ReplayGuard`].
    V2 {
        /// The signed SHA-256 of the body.
        body_sha256: [u8; 32],
        /// The request's nonce.
        nonce: [u8; NONCE_LEN],
        /// The request's time.
        timestamp: i64,
    },
    /// v1: the MAC over method, path and time, still to be fed the body's hash.
    Legacy {
        /// The MAC so far.
        mac: Box<Hmac<Sha256>>,
        /// The signature it must end as.
        signature: Vec<u8>,
    },
}

impl Pending {
    /// The nonce and time of a v2 request, for the [`ReplayGuard`]; `None` for v1 (which has
    /// no nonce: accepting it at all is the rolling-upgrade compromise).
    pub fn nonce(&self) -> Option<([u8; NONCE_LEN], i64)> {
        match &self.kind {
            PendingKind::V2 { nonce, timestamp, .. } => Some((*nonce, *timestamp)),
            PendingKind::Legacy { .. } => None,
        }
    }

    /// Whether the request was signed with the previous scheme only.
    pub fn is_legacy(&self) -> bool {
        matches!(self.kind, PendingKind::Legacy { .. })
    }

    /// Checks the body against the signature.
    pub fn verify_body(self, body: &[u8]) -> Result<(), SignatureError> {
        let hash: [u8; 32] = Sha256::digest(body).into();
        match self.kind {
            PendingKind::V2 { body_sha256, .. } => {
                // Both hashes are of public data: a plain comparison leaks nothing.
                if hash == body_sha256 { Ok(()) } else { Err(SignatureError::BodyMismatch) }
            }
            PendingKind::Legacy { mut mac, signature } => {
                mac.update(hex::encode(hash).as_bytes());
                mac.verify_slice(&signature).map_err(|_| SignatureError::Forged)
            }
        }
    }
}

impl RequestSigner {
    /// A signer keyed with the cluster secret, for the cluster called `cluster`; scheme v2 only.
    pub fn new(secret: &str, cluster: &str) -> Self {
        Self { key: secret.as_bytes().to_vec(), cluster: cluster.to_owned(), legacy: false }
    }

    /// The same signer, also sending and accepting scheme v1 when `legacy` is true.
    #[must_use]
    pub fn with_legacy(mut self, legacy: bool) -> Self {
        self.legacy = legacy;
        self
    }

    /// Whether scheme v1 is sent and accepted.
    pub fn legacy(&self) -> bool {
        self.legacy
    }

    /// The v1 MAC up to (not including) the body's hash.
    fn mac_v1_prefix(&self, method: &str, path: &str, timestamp: i64) -> Hmac<Sha256> {
        let mut mac = keyed(&self.key);
        mac.update(format!("{method}\n{path}\n{timestamp}\n").as_bytes());
        mac
    }

    /// The v2 MAC: every field length-prefixed (u32, big endian) after the scheme's tag.
    fn mac_v2(
        &self,
        to: u64,
        method: &str,
        path: &str,
        timestamp: i64,
        nonce: &[u8; NONCE_LEN],
        body_sha256: &[u8; 32],
    ) -> Hmac<Sha256> {
        let mut mac = keyed(&self.key);
        mac.update(V2_TAG);
        let to = to.to_string();
        let timestamp = timestamp.to_string();
        let fields: [&[u8]; 7] = [
            self.cluster.as_bytes(),
            to.as_bytes(),
            method.as_bytes(),
            path.as_bytes(),
            timestamp.as_bytes(),
            nonce,
            body_sha256,
        ];
        for field in fields {
            // Paths and names are far below 4 GiB; saturating keeps this total anyway.
            mac.update(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
            mac.update(field);
        }
        mac
    }

    /// The headers to attach to a request for node `to` (`path` includes the query string, if
    /// any): scheme v2 always, scheme v1 as well under `legacy`.
    pub fn headers(&self, method: &str, path: &str, to: u64, body: &[u8]) -> Vec<(&'static str, String)> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        self.headers_at(method, path, to, body, unix_now(), nonce)
    }

    /// [`RequestSigner::headers`] with a given time and nonce.
    fn headers_at(
        &self,
        method: &str,
        path: &str,
        to: u64,
        body: &[u8],
        timestamp: i64,
        nonce: [u8; NONCE_LEN],
    ) -> Vec<(&'static str, String)> {
        let body_sha256: [u8; 32] = Sha256::digest(body).into();
        let signature = self.mac_v2(to, method, path, timestamp, &nonce, &body_sha256).finalize().into_bytes();
        let mut headers = vec![
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (NONCE_HEADER, hex::encode(nonce)),
            (CONTENT_SHA256_HEADER, hex::encode(body_sha256)),
            (SIGNATURE_V2_HEADER, hex::encode(signature)),
        ];
        if self.legacy {
            let mut v1 = self.mac_v1_prefix(method, path, timestamp);
            v1.update(hex::encode(body_sha256).as_bytes());
            headers.push((SIGNATURE_HEADER, hex::encode(v1.finalize().into_bytes())));
        }
        headers
    }

    /// Checks what can be checked of a request to node `me` before its body is read: for v2,
    /// the whole signature and the time window; for v1 (only under `legacy`), the time window.
    /// `header` looks a header up by its lowercase name.
    pub fn check_headers<'a>(
        &self,
        me: u64,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Pending, SignatureError> {
        self.check_headers_at(me, method, path, header, unix_now())
    }

    /// [`RequestSigner::check_headers`] against the clock reading `now`.
    fn check_headers_at<'a>(
        &self,
        me: u64,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<&'a str>,
        now: i64,
    ) -> Result<Pending, SignatureError> {
        let timestamp = header(TIMESTAMP_HEADER);
        if let Some(signature) = header(SIGNATURE_V2_HEADER) {
            let (Some(timestamp), Some(nonce), Some(body_sha256)) =
                (timestamp, header(NONCE_HEADER), header(CONTENT_SHA256_HEADER))
            else {
                return Err(SignatureError::Missing);
            };
            let timestamp = fresh_timestamp(timestamp, now)?;
            let nonce: [u8; NONCE_LEN] = hex_array(nonce)?;
            let body_sha256: [u8; 32] = hex_array(body_sha256)?;
            let signature: [u8; 32] = hex_array(signature)?;
            self.mac_v2(me, method, path, timestamp, &nonce, &body_sha256)
                .verify_slice(&signature)
                .map_err(|_| SignatureError::Forged)?;
            return Ok(Pending { kind: PendingKind::V2 { body_sha256, nonce, timestamp } });
        }
        let (Some(timestamp), Some(signature)) = (timestamp, header(SIGNATURE_HEADER)) else {
            return Err(SignatureError::Missing);
        };
        if !self.legacy {
            return Err(SignatureError::LegacyRefused);
        }
        let timestamp = fresh_timestamp(timestamp, now)?;
        let signature = hex::decode(signature).map_err(|_| SignatureError::Forged)?;
        let mac = Box::new(self.mac_v1_prefix(method, path, timestamp));
        Ok(Pending { kind: PendingKind::Legacy { mac, signature } })
    }
}

/// The nonces of the v2 requests a node accepted within the replay window: a nonce seen again
/// is a replay. Bounded: when full, the oldest entry goes; if it could still pass the time
/// check, every request that old or older is refused from then on (`floor`), so eviction
/// never reopens a replay, it only refuses more under a flood of valid requests.
pub struct ReplayGuard {
    /// The cache, behind one lock (a few hash operations per request).
    inner: Mutex<Nonces>,
    /// Most entries kept.
    capacity: usize,
}

/// [`ReplayGuard`]'s state.
#[derive(Default)]
struct Nonces {
    /// Nonces with their request's time, in the order they were accepted.
    order: VecDeque<(i64, [u8; NONCE_LEN])>,
    /// The same nonces, for lookup.
    seen: HashSet<[u8; NONCE_LEN]>,
    /// Requests at or before this time are refused: a nonce of theirs may have been evicted.
    floor: Option<i64>,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` nonces (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { inner: Mutex::new(Nonces::default()), capacity: capacity.max(1) }
    }

    /// Records a nonce of a request made at `timestamp`; refuses it if seen before.
    pub fn check(&self, nonce: [u8; NONCE_LEN], timestamp: i64) -> Result<(), SignatureError> {
        self.check_at(nonce, timestamp, unix_now())
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |n| n.order.len())
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`ReplayGuard::check`] against the clock reading `now`.
    fn check_at(&self, nonce: [u8; NONCE_LEN], timestamp: i64, now: i64) -> Result<(), SignatureError> {
        // A poisoned lock only means another request panicked mid-update; the sets stay usable.
        let mut nonces = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let expired = |t: i64| t < now && now.abs_diff(t) > REPLAY_WINDOW_SECS;
        while let Some(&(t, old)) = nonces.order.front() {
            if !expired(t) {
                break;
            }
            nonces.order.pop_front();
            nonces.seen.remove(&old);
        }
        if nonces.floor.is_some_and(|floor| timestamp <= floor) || nonces.seen.contains(&nonce) {
            return Err(SignatureError::Replayed);
        }
        while nonces.order.len() >= self.capacity {
            let Some((t, old)) = nonces.order.pop_front() else { break };
            nonces.seen.remove(&old);
            if !expired(t) {
                nonces.floor = Some(nonces.floor.map_or(t, |f| f.max(t)));
            }
        }
        nonces.order.push_back((timestamp, nonce));
        nonces.seen.insert(nonce);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLUSTER: &str = "c1";

    /// Checks a whole request (headers, then body) as the listener does.
    fn verify(
        signer: &RequestSigner,
        me: u64,
        method: &str,
        path: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let lookup = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        signer.check_headers(me, method, path, lookup)?.verify_body(body)
    }

    #[test]
    fn signed_request_verifies_and_tampering_does_not() {
        let signer = RequestSigner::new("secret", CLUSTER);
        let headers = signer.headers("POST", "/internal/v1/raft/vote", 2, b"body");
        assert_eq!(verify(&signer, 2, "POST", "/internal/v1/raft/vote", &headers, b"body"), Ok(()));
        assert_eq!(
            verify(&signer, 2, "POST", "/internal/v1/raft/vote", &headers, b"other"),
            Err(SignatureError::BodyMismatch)
        );
        assert_eq!(
            verify(&signer, 2, "POST", "/internal/v1/raft/append", &headers, b"body"),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            verify(&signer, 3, "POST", "/internal/v1/raft/vote", &headers, b"body"),
            Err(SignatureError::Forged)
        );
        let other_cluster = RequestSigner::new("secret", "c2");
        assert_eq!(
            verify(&other_cluster, 2, "POST", "/internal/v1/raft/vote", &headers, b"body"),
            Err(SignatureError::Forged)
        );
        let other = RequestSigner::new("other secret", CLUSTER);
        assert_eq!(verify(&other, 2, "POST", "/internal/v1/raft/vote", &headers, b"body"), Err(SignatureError::Forged));
        assert_eq!(verify(&signer, 2, "POST", "/p", &[], b""), Err(SignatureError::Missing));
    }

    #[test]
    fn stale_and_overflowing_timestamps_are_refused() {
        let signer = RequestSigner::new("secret", CLUSTER);
        let now = unix_now();
        for at in [now - 35, now + 35, i64::MIN, i64::MAX, 0] {
            let headers = signer.headers_at("GET", "/x", 1, b"", at, [7; NONCE_LEN]);
            assert_eq!(verify(&signer, 1, "GET", "/x", &headers, b""), Err(SignatureError::Stale), "at {at}");
        }
        // `now - i64::MIN` overflows i64: abs_diff must say stale, not panic or wrap.
        let lookup = |name: &str| (name == TIMESTAMP_HEADER).then_some("-9223372036854775808");
        assert!(signer.check_headers_at(1, "GET", "/x", lookup, i64::MAX).is_err());
    }

    #[test]
    fn the_previous_scheme_is_accepted_only_under_legacy() {
        let old = RequestSigner::new("secret", CLUSTER).with_legacy(true);
        let headers = old.headers("POST", "/p", 1, b"b");
        let v1_only: Vec<_> =
            headers.iter().filter(|(n, _)| *n == TIMESTAMP_HEADER || *n == SIGNATURE_HEADER).cloned().collect();
        assert_eq!(v1_only.len(), 2, "legacy sends the v1 signature too: {headers:?}");
        let strict = RequestSigner::new("secret", CLUSTER);
        assert_eq!(verify(&strict, 1, "POST", "/p", &v1_only, b"b"), Err(SignatureError::LegacyRefused));
        assert_eq!(verify(&old, 1, "POST", "/p", &v1_only, b"b"), Ok(()));
        assert_eq!(verify(&old, 1, "POST", "/p", &v1_only, b"c"), Err(SignatureError::Forged));
        // v1 as the previous release computes it: HMAC of "METHOD\nPATH\nTIME\nhex(sha256(body))".
        let ts = unix_now();
        let canonical = format!("POST\n/p\n{ts}\n{}", hex::encode(Sha256::digest(b"b")));
        let sig = hex::encode(hmac_sha256(b"secret", &[canonical.as_bytes()]));
        let released = [(TIMESTAMP_HEADER, ts.to_string()), (SIGNATURE_HEADER, sig)];
        assert_eq!(verify(&old, 1, "POST", "/p", &released, b"b"), Ok(()));
        // Both schemes on one request: a strict node checks v2 and ignores v1.
        assert_eq!(verify(&strict, 1, "POST", "/p", &headers, b"b"), Ok(()));
    }

    #[test]
    fn a_nonce_is_accepted_once_and_eviction_never_reopens_a_replay() {
        let guard = ReplayGuard::new(3);
        let now = 1_000_000;
        assert_eq!(guard.check_at([1; 16], now, now), Ok(()));
        assert_eq!(guard.check_at([1; 16], now, now), Err(SignatureError::Replayed));
        assert_eq!(guard.check_at([2; 16], now + 1, now + 1), Ok(()));
        assert_eq!(guard.check_at([3; 16], now + 2, now + 2), Ok(()));
        // Full: [1] goes, still within the window, so requests of its time are refused.
        assert_eq!(guard.check_at([4; 16], now + 3, now + 3), Ok(()));
        assert_eq!(guard.len(), 3);
        assert_eq!(guard.check_at([1; 16], now, now + 3), Err(SignatureError::Replayed), "evicted, still refused");
        assert_eq!(guard.check_at([9; 16], now + 3, now + 3), Ok(()), "newer requests pass");
        // Past the window every entry expires on the next check.
        let later = now + 100;
        assert_eq!(guard.check_at([5; 16], later, later), Ok(()));
        assert_eq!(guard.len(), 1);
    }

    fn arb_header() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            any::<String>().prop_map(Some),
            "[0-9a-f]{0,80}".prop_map(Some),
            "-?[0-9]{1,25}".prop_map(Some)
        ]
    }

    proptest! {
        /// Arbitrary header values and bodies never panic and never verify.
        #[test]
        fn garbage_headers_never_verify(
            timestamp in arb_header(),
            nonce in arb_header(),
            sha in arb_header(),
            v2 in arb_header(),
            v1 in arb_header(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            legacy in any::<bool>(),
        ) {
            let signer = RequestSigner::new("secret", CLUSTER).with_legacy(legacy);
            let values = [
                (TIMESTAMP_HEADER, timestamp),
                (NONCE_HEADER, nonce),
                (CONTENT_SHA256_HEADER, sha),
                (SIGNATURE_V2_HEADER, v2),
                (SIGNATURE_HEADER, v1),
            ];
            let lookup = |name: &str| values.iter().find(|(n, _)| *n == name).and_then(|(_, v)| v.as_deref());
            let verified = signer.check_headers(1, "POST", "/p", lookup).and_then(|p| p.verify_body(&body));
            prop_assert!(verified.is_err());
        }

        /// A signature verifies for exactly the method, path, body, destination and cluster it
        /// was made for.
        #[test]
        fn a_signature_binds_every_field(
            method in "[A-Z]{1,7}",
            path in "/[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..128),
            to in any::<u64>(),
            cluster in "[a-z0-9-]{1,12}",
            other_method in "[A-Z]{1,7}",
            other_path in "/[ -~]{0,40}",
            other_body in proptest::collection::vec(any::<u8>(), 0..128),
            other_to in any::<u64>(),
            other_cluster in "[a-z0-9-]{1,12}",
        ) {
            let signer = RequestSigner::new("secret", &cluster);
            let headers = signer.headers(&method, &path, to, &body);
            prop_assert_eq!(verify(&signer, to, &method, &path, &headers, &body), Ok(()));
            prop_assert_eq!(
                verify(&signer, to, &other_method, &path, &headers, &body).is_ok(),
                other_method == method
            );
            prop_assert_eq!(verify(&signer, to, &method, &other_path, &headers, &body).is_ok(), other_path == path);
            prop_assert_eq!(verify(&signer, to, &method, &path, &headers, &other_body).is_ok(), other_body == body);
            prop_assert_eq!(verify(&signer, other_to, &method, &path, &headers, &body).is_ok(), other_to == to);
            let elsewhere = RequestSigner::new("secret", &other_cluster);
            prop_assert_eq!(verify(&elsewhere, to, &method, &path, &headers, &body).is_ok(), other_cluster == cluster);
            let forger = RequestSigner::new("not the secret", &cluster);
            prop_assert!(verify(&forger, to, &method, &path, &headers, &body).is_err());
        }
    }
}
