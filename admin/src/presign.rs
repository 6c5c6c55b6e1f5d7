//! AWS Signature Version 4 presigned URLs (query-string authentication) for the S3 listeners:
//! the routing API hands them out so a client talks S3 straight to the chosen node without
//! holding a key.
//!
//! The payload is `UNSIGNED-PAYLOAD`. `host` is always signed, and so is every header in
//! [`Presign::headers`]: the client must send each with exactly the signed value. The web API
//! signs what it promised that way (an upload's `content-length` and `content-type`), and the
//! S3 listeners refuse a system-key URL that leaves stored headers or the size unsigned.
//!
//! The URLs are signed either with the caller's own access key, or with the cluster's
//! *system key* ([`system_key`]): a key derived from the cluster secret with HMAC, so every
//! node computes the same one without storing it anywhere, and installed in the replicated key
//! store by the first voter (the S3 listeners look keys up there).

use std::time::SystemTime;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// Longest validity S3 allows for a presigned URL.
pub const MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// Characters SigV4 leaves unencoded: RFC 3986 unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same plus `/`, for object keys in the path.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// A URL that cannot be presigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    /// The endpoint is not `http://host[:port]` or `https://host[:port]`.
    #[error("endpoint {0:?} is not http(s)://host[:port]")]
    Endpoint(String),
}

/// Everything a presigned URL depends on.
#[derive(Debug, Clone)]
pub struct Presign<'a> {
    /// HTTP method the URL is for (`GET`, `PUT`, `POST`, `DELETE`, `HEAD`).
    pub method: &'a str,
    /// `http://host:port` of the S3 listener (no path); the host part is the signed `Host`.
    pub endpoint: &'a str,
    /// SigV4 signing region.
    pub region: &'a str,
    /// Access key id.
    pub access_key: &'a str,
    /// Its secret.
    pub secret_key: &'a str,
    /// The bucket the URL addresses (path-style).
    pub bucket: &'a str,
    /// Object key (empty for a bucket-level request).
    pub key: &'a str,
    /// Extra query parameters, e.g. `("uploadId", id)`, `("partNumber", "3")`, `("uploads", "")`.
    pub query: &'a [(&'a str, String)],
    /// Headers signed besides `host`, lower-case names with their exact values, e.g.
    /// `("content-length", "1024")`.
    pub headers: &'a [(&'a str, String)],
    /// Validity, seconds. Not bounded here (tests sign out-of-range URLs to see them refused);
    /// S3 listeners refuse more than [`MAX_EXPIRY_SECS`], and `cluster.toml` bounds the web
    /// API's own expiry.
    pub expires_secs: u64,
    /// Signing time.
    pub now: SystemTime,
}

impl Presign<'_> {
    /// The full URL.
    pub fn url(&self) -> Result<String, PresignError> {
        let host = self
            .endpoint
            .strip_prefix("http://")
            .or_else(|| self.endpoint.strip_prefix("https://"))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| PresignError::Endpoint(self.endpoint.to_owned()))?;
        let (date, stamp) = amz_dates(self.now);
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let mut path = format!("/{}", utf8_percent_encode(self.bucket, UNRESERVED));
        if !self.key.is_empty() {
            path.push('/');
            path.extend(utf8_percent_encode(self.key, UNRESERVED_AND_SLASH));
        }
        let mut signed: Vec<(&str, &str)> = vec![("host", host)];
        signed.extend(self.headers.iter().map(|(name, value)| (*name, value.trim())));
        signed.sort_unstable();
        let signed_names = signed.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(";");
        let canonical_headers: String = signed.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        let mut params: Vec<(String, String)> = vec![
            ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
            ("X-Amz-Credential".into(), format!("{}/{scope}", self.access_key)),
            ("X-Amz-Date".into(), stamp.clone()),
            ("X-Amz-Expires".into(), self.expires_secs.to_string()),
            ("X-Amz-SignedHeaders".into(), signed_names.clone()),
        ];
        params.extend(self.query.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut encoded: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        // SigV4 sorts by encoded name (then value), which is what sorting "name=value" gives,
        // since '=' sorts below every character allowed in an encoded name.
        encoded.sort();
        let query = encoded.join("&");
        let canonical_request =
            format!("{}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\nUNSIGNED-PAYLOAD", self.method);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let k_date = hmac(format!("AWS4{}", self.secret_key).as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, b"s3");
        let k_signing = hmac(&k_service, b"aws4_request");
        let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
        Ok(format!("{}{path}?{query}&X-Amz-Signature={signature}", self.endpoint))
    }
}

/// RFC 3986 encoding of a query name or value.
fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// HMAC-SHA256 of one message, as SigV4 chains them.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    meridian_raft::signing::hmac_sha256(key, &[message])
}

/// `(yyyymmdd, yyyymmddThhmmssZ)` of a UTC time, as SigV4 writes them.
pub fn amz_dates(t: SystemTime) -> (String, String) {
    let t = time::OffsetDateTime::from(t);
    let date = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
    let stamp = format!("{date}T{:02}{:02}{:02}Z", t.hour(), t.minute(), t.second());
    (date, stamp)
}

/// The system key: an S3 key pair the web API presigns with when the caller has no access key
/// of its own (service tokens). Derived from the cluster secret, so it changes with it.
#[derive(Clone, PartialEq, Eq)]
pub struct SystemKey {
    /// Access key id (`MSYS` and 16 hex digits).
    pub id: String,
    /// Secret access key (64 hex digits).
    pub secret: String,
}

impl std::fmt::Debug for SystemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The system key of a cluster whose secret is `cluster_secret`.
///
/// Security: the cluster secret IS this key's secret. Whoever has `[cluster] secret` can derive
/// the system key and sign any S3 request, on any bucket, as the cluster itself; so the secret
/// is as sensitive as a root key, the repository's development value is refused on anything but
/// loopback (`meridian node` checks it), and a rotated secret retires the old system key (the
/// first voter deletes every `MSYS` key but the current one when it starts).
pub fn system_key(cluster_secret: &str) -> SystemKey {
    let id = hmac(cluster_secret.as_bytes(), b"meridian system access key id");
    let secret = hmac(cluster_secret.as_bytes(), b"meridian system secret access key");
    SystemKey { id: format!("MSYS{}", hex::encode_upper(&id[..8])), secret: hex::encode(secret) }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// AWS's published presigned GET example (S3 documentation, "Authenticating Requests:
    /// Using Query Parameters"), with its example credentials.
    #[test]
    fn matches_the_aws_documentation_example() {
        let now = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let url = Presign {
            method: "GET",
            endpoint: "https://examplebucket.s3.amazonaws.com",
            region: "us-east-1",
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            bucket: "",
            key: "",
            query: &[],
            headers: &[],
            expires_secs: 86_400,
            now,
        };
        // The documentation signs a virtual-host URL whose path is /test.txt; the same canonical
        // request results from the "bucket" position holding the key here.
        let url = Presign { bucket: "test.txt", ..url }.url().expect("presign");
        assert!(
            url.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            "{url}"
        );
        assert!(url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
    }

    #[test]
    fn extra_query_is_sorted_and_keys_are_encoded() {
        let url = Presign {
            method: "PUT",
            endpoint: "http://127.0.0.1:9001",
            region: "frankfurt",
            access_key: "K",
            secret_key: "S",
            bucket: "films",
            key: "a b/ü+c",
            query: &[("uploadId", "x/y".into()), ("partNumber", "3".into())],
            headers: &[],
            expires_secs: 60,
            now: UNIX_EPOCH,
        }
        .url()
        .expect("presign");
        assert!(url.starts_with("http://127.0.0.1:9001/films/a%20b/%C3%BC%2Bc?X-Amz-"), "{url}");
        let params: Vec<&str> =
            url.split_once('?').expect("query").1.split('&').map(|p| p.split('=').next().unwrap_or_default()).collect();
        let mut sorted = params[..params.len() - 1].to_vec();
        sorted.sort_unstable();
        assert_eq!(params[..params.len() - 1], sorted[..], "{url}");
        assert!(url.contains("uploadId=x%2Fy"), "{url}");
    }

    #[test]
    fn bad_input_is_refused() {
        let base = Presign {
            method: "GET",
            endpoint: "127.0.0.1:9001",
            region: "r",
            access_key: "K",
            secret_key: "S",
            bucket: "b",
            key: "k",
            query: &[],
            headers: &[],
            expires_secs: 60,
            now: UNIX_EPOCH,
        };
        assert!(matches!(base.url(), Err(PresignError::Endpoint(_))));
        let base = Presign { endpoint: "http://127.0.0.1:9001/path", ..base };
        assert!(matches!(base.url(), Err(PresignError::Endpoint(_))));
    }

    #[test]
    fn dates_and_system_key() {
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(amz_dates(t), ("20000229".to_owned(), "20000229T000000Z".to_owned()));
        let a = system_key("secret one");
        assert_eq!(a, system_key("secret one"));
        assert_ne!(a.secret, system_key("secret two").secret);
        assert_eq!(a.id.len(), 20);
        assert!(!format!("{a:?}").contains(&a.secret), "Debug must not print the secret");
    }
}
