//! HMAC-SHA256 signatures on requests between nodes.
//!
//! Every internal request carries the time it was made and an HMAC, keyed with the cluster
//! secret, over method, path, that time and the SHA-256 of the body. The receiver recomputes it
//! and refuses requests that are unsigned, forged, or outside the replay window.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Header with the request's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "x-meridian-timestamp";
/// Header with the hex HMAC.
pub const SIGNATURE_HEADER: &str = "x-meridian-signature";
/// How far a request's time may be from the receiver's clock, in seconds.
pub const REPLAY_WINDOW_SECS: i64 = 30;

/// Why a request's signature was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No timestamp or signature header.
    #[error("request is not signed")]
    Missing,
    /// The timestamp is not a number or is outside the replay window.
    #[error("request timestamp is stale or malformed")]
    Stale,
    /// The HMAC does not match.
    #[error("request signature does not match")]
    Forged,
}

/// Signs and verifies internal requests with the cluster secret.
#[derive(Clone)]
pub struct RequestSigner {
    key: Vec<u8>,
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

impl RequestSigner {
    /// A signer keyed with the cluster secret.
    pub fn new(secret: &str) -> Self {
        Self { key: secret.as_bytes().to_vec() }
    }

    fn mac(&self, method: &str, path: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = keyed(&self.key);
        let body_hash = hex::encode(Sha256::digest(body));
        mac.update(format!("{method}\n{path}\n{timestamp}\n{body_hash}").as_bytes());
        mac
    }

    /// The two headers to attach to a request (`path` includes the query string, if any).
    pub fn headers(&self, method: &str, path: &str, body: &[u8]) -> [(&'static str, String); 2] {
        let timestamp = unix_now();
        let signature = hex::encode(self.mac(method, path, timestamp, body).finalize().into_bytes());
        [(TIMESTAMP_HEADER, timestamp.to_string()), (SIGNATURE_HEADER, signature)]
    }

    /// Checks a received request's headers against its method, path and body.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(SignatureError::Missing);
        };
        let timestamp: i64 = timestamp.parse().map_err(|_| SignatureError::Stale)?;
        if (unix_now() - timestamp).abs() > REPLAY_WINDOW_SECS {
            return Err(SignatureError::Stale);
        }
        let signature = hex::decode(signature).map_err(|_| SignatureError::Forged)?;
        self.mac(method, path, timestamp, body).verify_slice(&signature).map_err(|_| SignatureError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_request_verifies_and_tampering_does_not() {
        let signer = RequestSigner::new("secret");
        let [(_, ts), (_, sig)] = signer.headers("POST", "/internal/v1/raft/vote", b"body");
        assert_eq!(signer.verify("POST", "/internal/v1/raft/vote", Some(&ts), Some(&sig), b"body"), Ok(()));
        assert_eq!(
            signer.verify("POST", "/internal/v1/raft/vote", Some(&ts), Some(&sig), b"other"),
            Err(SignatureError::Forged)
        );
        assert_eq!(
            signer.verify("POST", "/internal/v1/raft/append", Some(&ts), Some(&sig), b"body"),
            Err(SignatureError::Forged)
        );
        let other = RequestSigner::new("other secret");
        assert_eq!(
            other.verify("POST", "/internal/v1/raft/vote", Some(&ts), Some(&sig), b"body"),
            Err(SignatureError::Forged)
        );
        assert_eq!(signer.verify("POST", "/p", None, Some(&sig), b""), Err(SignatureError::Missing));
    }

    #[test]
    fn stale_requests_are_refused() {
        let signer = RequestSigner::new("secret");
        let old = unix_now() - REPLAY_WINDOW_SECS - 5;
        let sig = hex::encode(signer.mac("GET", "/x", old, b"").finalize().into_bytes());
        assert_eq!(signer.verify("GET", "/x", Some(&old.to_string()), Some(&sig), b""), Err(SignatureError::Stale));
    }
}
