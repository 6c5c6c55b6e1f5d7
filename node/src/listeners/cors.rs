//! CORS on the S3 listener: for presigned URLs, so the admin panel's pages (served by the web
//! listener, another origin) can upload and download with them from the browser; and for
//! every other cross-origin request, by the rules of the bucket it names (PutBucketCors).
//!
//! **Presigned URLs** (`X-Amz-Signature` in the query) are answered for any origin: such a URL
//! is already a capability that works from anywhere, so letting any origin use it from a
//! script grants nothing new. Browsers send no cookies or credentials to the S3 listener
//! (`Access-Control-Allow-Credentials` is never set).
//!
//! **Other requests with an `Origin`** (header-signed or anonymous, from a bucket's web
//! pages) are judged by the bucket's rules ([`meridian_s3gw::Gateway::cors_preflight`]): a
//! preflight no rule allows is refused with 403 AccessForbidden, as S3 does; an allowed one
//! gets the rule's headers; a request itself gets them on its response when a rule allows it.
//! Requests without `Origin` (SDKs, tools) are left exactly as they were.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// What a browser request needs from CORS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cors {
    /// Not a cross-origin request (no `Origin`), or one that names no bucket: left alone.
    None,
    /// A preflight (`OPTIONS` with `Access-Control-Request-Method`) on a presigned URL:
    /// answered here for any origin, s3s never sees it.
    Preflight,
    /// A request on a presigned URL: its response gets the allow and expose headers.
    Simple,
    /// A preflight on a bucket or object: answered here from the bucket's rules.
    BucketPreflight {
        /// The bucket the request names.
        bucket: String,
    },
    /// A cross-origin request on a bucket or object: its response gets the headers of the
    /// bucket's rule that allows it, if one does.
    BucketRequest {
        /// The bucket the request names.
        bucket: String,
        /// The request's `Origin`.
        origin: String,
        /// The request's method.
        method: String,
    },
}

/// Classifies a request by its method, URI and headers; `domain` is the listener's
/// virtual-host domain (`s3_domain`), if any, so `BUCKET.DOMAIN` names a bucket too.
pub(crate) fn classify(method: &Method, uri: &http::Uri, headers: &HeaderMap, domain: Option<&str>) -> Cors {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else { return Cors::None };
    let preflight = method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let presigned = uri.query().is_some_and(|q| q.split('&').any(|pair| pair.starts_with("X-Amz-Signature=")));
    if presigned {
        return if preflight { Cors::Preflight } else { Cors::Simple };
    }
    let Some(bucket) = bucket_of(uri, headers, domain) else { return Cors::None };
    if preflight {
        Cors::BucketPreflight { bucket }
    } else {
        Cors::BucketRequest { bucket, origin: origin.to_owned(), method: method.as_str().to_owned() }
    }
}

/// The bucket a request names: the host's first label under the virtual-host domain, else
/// the path's first segment (path style).
fn bucket_of(uri: &http::Uri, headers: &HeaderMap, domain: Option<&str>) -> Option<String> {
    if let Some(domain) = domain {
        let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).or_else(|| uri.host());
        let host = host.map(|h| h.rsplit_once(':').map_or(h, |(name, _port)| name));
        if let Some(bucket) = host.and_then(|h| h.strip_suffix(domain)).and_then(|h| h.strip_suffix('.')) {
            return (!bucket.is_empty()).then(|| bucket.to_owned());
        }
    }
    let first = uri.path().trim_start_matches('/').split('/').next()?;
    (!first.is_empty()).then(|| first.to_owned())
}

/// The answer to a preflight on `bucket` from its rules: 200 with the rule's headers, or 403
/// AccessForbidden when no rule allows it (or the bucket has none).
pub(crate) fn bucket_preflight(
    gateway: &meridian_s3gw::Gateway,
    bucket: &str,
    request: &HeaderMap,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let header = |name: &http::header::HeaderName| request.get(name).and_then(|v| v.to_str().ok());
    let origin = header(&ORIGIN).unwrap_or_default();
    let method = header(&ACCESS_CONTROL_REQUEST_METHOD).unwrap_or_default();
    match gateway.cors_preflight(bucket, origin, method, header(&ACCESS_CONTROL_REQUEST_HEADERS)) {
        Ok(answer) => {
            let mut response = http::Response::new(s3s::Body::empty());
            answer.write(response.headers_mut());
            response
        }
        Err(refusal) => {
            tracing::debug!(bucket, origin, method, ?refusal, "CORS preflight refused");
            super::request_id::error_response(StatusCode::FORBIDDEN, "AccessForbidden", refusal.message(), request_id)
        }
    }
}

/// The answer to a preflight: any origin, the methods presigned URLs are made for, the headers
/// the browser asks to send (the content type), cached for ten minutes.
pub(crate) fn preflight(request: &HeaderMap) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, PUT, POST, DELETE"));
    let asked = request.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.unwrap_or_else(|| HeaderValue::from_static("content-type")));
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}

/// Adds the CORS headers to the response of a presigned request: scripts may read it, and its
/// `ETag` (a multipart upload needs each part's ETag to complete).
pub(crate) fn allow(headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_requests_answer_any_origin_and_others_go_by_the_bucket() {
        let mut headers = HeaderMap::new();
        let signed: http::Uri = "/b/k?X-Amz-Expires=60&X-Amz-Signature=ab".parse().expect("uri");
        let plain: http::Uri = "/b/k?uploads".parse().expect("uri");
        assert_eq!(classify(&Method::PUT, &signed, &headers, None), Cors::None, "no Origin: not a browser script");
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8001"));
        assert_eq!(classify(&Method::PUT, &signed, &headers, None), Cors::Simple);
        let by_bucket =
            Cors::BucketRequest { bucket: "b".into(), origin: "http://127.0.0.1:8001".into(), method: "PUT".into() };
        assert_eq!(classify(&Method::PUT, &plain, &headers, None), by_bucket, "header-signed");
        assert_eq!(classify(&Method::OPTIONS, &signed, &headers, None), Cors::Simple, "a plain OPTIONS");
        assert_eq!(classify(&Method::GET, &"/".parse().expect("uri"), &headers, None), Cors::None, "no bucket");
        headers.insert("access-control-request-method", HeaderValue::from_static("PUT"));
        assert_eq!(classify(&Method::OPTIONS, &signed, &headers, None), Cors::Preflight);
        assert_eq!(classify(&Method::OPTIONS, &plain, &headers, None), Cors::BucketPreflight { bucket: "b".into() });
        headers.insert(http::header::HOST, HeaderValue::from_static("films.s3.example.com:9000"));
        assert_eq!(
            classify(&Method::OPTIONS, &"/k".parse().expect("uri"), &headers, Some("s3.example.com")),
            Cors::BucketPreflight { bucket: "films".into() },
            "virtual-hosted"
        );
        let answer = preflight(&headers);
        assert_eq!(answer.headers()[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
    }
}
