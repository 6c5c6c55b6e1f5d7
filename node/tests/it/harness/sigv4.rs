//! SigV4 header signing for hand-built requests (the SDK cannot send a wrong streaming
//! trailer). Presigned URLs come from the production presigner, `meridian_admin::presign`.

use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac};
pub use meridian_admin::presign::amz_dates;
use sha2::{Digest, Sha256};

/// HMAC-SHA256 of `msg` under `key`: the primitive of SigV4 and of the internal listener's
/// signatures.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Header-based SigV4 for hand-built requests (the SDK cannot send a wrong streaming trailer).
pub struct HeaderSign<'a> {
    pub method: &'a str,
    /// `127.0.0.1:PORT`, sent as the Host header.
    pub host: &'a str,
    /// Canonical (already URI-encoded) path, e.g. `/bucket/key`, optionally with a query of
    /// plain names and values (`/bucket/key?retention`), canonicalized when signing.
    pub path: &'a str,
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    /// Value of `x-amz-content-sha256` (hex digest, `UNSIGNED-PAYLOAD`,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`...); also the canonical request's payload hash.
    pub content_sha256: &'a str,
    /// Extra headers to send and sign (lower-case names), besides host, x-amz-date and
    /// x-amz-content-sha256.
    pub headers: &'a [(&'a str, String)],
    pub now: SystemTime,
}

impl HeaderSign<'_> {
    /// `request` with every signed header but `host` (the HTTP client writes that one from the
    /// URL, which names the same address).
    pub fn sign(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (k, v) in self.signed_headers() {
            if k != "host" {
                request = request.header(k, v);
            }
        }
        request
    }

    /// Every header to send, `authorization` included (not `content-length`, which the HTTP
    /// client sets).
    pub fn signed_headers(&self) -> Vec<(String, String)> {
        let (date, stamp) = amz_dates(self.now);
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let mut headers: Vec<(String, String)> = vec![
            ("host".to_owned(), self.host.to_owned()),
            ("x-amz-date".to_owned(), stamp.clone()),
            ("x-amz-content-sha256".to_owned(), self.content_sha256.to_owned()),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let (uri, query) = self.path.split_once('?').unwrap_or((self.path, ""));
        let mut pairs: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| if p.contains('=') { p.to_owned() } else { format!("{p}=") })
            .collect();
        pairs.sort();
        let query = pairs.join("&");
        let canonical_request =
            format!("{}\n{uri}\n{query}\n{canonical_headers}\n{signed}\n{}", self.method, self.content_sha256);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let k_date = hmac_sha256(format!("AWS4{}", self.secret_key).as_bytes(), date.as_bytes());
        let k_region = hmac_sha256(&k_date, self.region.as_bytes());
        let k_service = hmac_sha256(&k_region, b"s3");
        let k_signing = hmac_sha256(&k_service, b"aws4_request");
        let signature = hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()));
        headers.push((
            "authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.access_key
            ),
        ));
        headers
    }
}

/// The `<Code>` of an S3 XML error body.
pub fn xml_error_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].to_owned())
}
