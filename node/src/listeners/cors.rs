//! CORS for presigned URLs on the S3 listener, so the admin panel's pages (served by the web
//! listener, another origin) can upload and download with them from the browser.
//!
//! Only requests carrying a presigned signature (`X-Amz-Signature` in the query) take part:
//! such a URL is already a capability that works from anywhere, so letting any origin use it
//! from a script grants nothing new. Browsers send no cookies or credentials to the S3
//! listener (`Access-Control-Allow-Credentials` is never set), and header-signed requests
//! (SDKs) are left exactly as they were.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// What a browser request on a presigned URL needs from CORS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cors {
    /// Not a cross-origin request on a presigned URL: left alone.
    None,
    /// A preflight (`OPTIONS` with `Access-Control-Request-Method`): answered here, s3s never
    /// sees it.
    Preflight,
    /// The request itself: its response gets the allow and expose headers.
    Simple,
}

/// Classifies a request by its method, query and headers.
pub(crate) fn classify(method: &Method, query: Option<&str>, headers: &HeaderMap) -> Cors {
    let presigned = query.is_some_and(|q| q.split('&').any(|pair| pair.starts_with("X-Amz-Signature=")));
    if !presigned || !headers.contains_key(ORIGIN) {
        Cors::None
    } else if method == Method::OPTIONS && headers.contains_key("access-control-request-method") {
        Cors::Preflight
    } else {
        Cors::Simple
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
    fn only_presigned_cross_origin_requests_take_part() {
        let mut headers = HeaderMap::new();
        let signed = Some("X-Amz-Expires=60&X-Amz-Signature=ab");
        assert_eq!(classify(&Method::PUT, signed, &headers), Cors::None, "no Origin: not a browser script");
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8001"));
        assert_eq!(classify(&Method::PUT, signed, &headers), Cors::Simple);
        assert_eq!(classify(&Method::PUT, Some("uploads"), &headers), Cors::None, "header-signed");
        assert_eq!(classify(&Method::OPTIONS, signed, &headers), Cors::Simple, "a plain OPTIONS");
        headers.insert("access-control-request-method", HeaderValue::from_static("PUT"));
        assert_eq!(classify(&Method::OPTIONS, signed, &headers), Cors::Preflight);
        let answer = preflight(&headers);
        assert_eq!(answer.headers()[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
    }
}
