//! Request ids on the S3 listener: every answer carries `x-amz-request-id`, and every XML error
//! body names the same id in `<RequestId>`, as AWS does. Clients log the id of a failed call
//! and operators look it up in the node's log (the listener logs it with the status), so the
//! two must agree; s3s writes neither.
//!
//! Also the answers the listener gives itself, before s3s parses a request (a malformed
//! presigned URL): S3 XML errors that carry the id like the rest.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use rand::RngCore as _;

/// The header AWS names a request's id in.
pub(crate) const HEADER: &str = "x-amz-request-id";

/// Most bytes of an error body the listener rewrites to add the id: s3s's error bodies are a
/// few hundred bytes; anything larger is not one of them and is left alone.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A new request id: 16 upper-case hex digits (64 random bits), the shape AWS uses, which
/// some clients expect. Random rather than a counter so ids of different nodes never collide
/// in a log that gathers them.
pub(crate) fn new_id() -> String {
    format!("{:016X}", rand::rng().next_u64())
}

/// Puts the request id on a response: the header always, and into an XML error body that
/// does not name one yet.
pub(crate) fn stamp(response: &mut http::Response<s3s::Body>, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(HEADER, value);
    }
    if response.status().as_u16() < 300 {
        return;
    }
    let Some(body) = response.body().bytes() else { return };
    if let Some(rewritten) = with_request_id(&body, id) {
        // The length changed; hyper computes it again from the new body.
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
        *response.body_mut() = s3s::Body::from(rewritten);
    }
}

/// The error body `body` with `<RequestId>id</RequestId>` added before `</Error>`; `None`
/// when it is no S3 error body, is too large, or names a request id already.
fn with_request_id(body: &[u8], id: &str) -> Option<Bytes> {
    if body.len() > MAX_ERROR_BODY {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    if text.contains("<RequestId>") {
        return None;
    }
    let end = text.rfind("</Error>")?;
    let mut out = String::with_capacity(text.len() + id.len() + 24);
    out.push_str(&text[..end]);
    out.push_str("<RequestId>");
    out.push_str(id);
    out.push_str("</RequestId>");
    out.push_str(&text[end..]);
    Some(Bytes::from(out))
}

/// An S3 XML error answered by the listener itself, with the request id in body and header.
/// `code` and `message` are the listener's own constants, never request text (no escaping).
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str, id: &str) -> http::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>{id}</RequestId></Error>"
    );
    let mut response = http::Response::new(s3s::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    stamp(&mut response, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_id_goes_before_the_end_of_the_error() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>";
        let out = with_request_id(body, "ABC").expect("rewritten");
        assert_eq!(
            &out[..],
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>ABC</RequestId></Error>"
        );
        assert_eq!(with_request_id(&out, "ABC"), None, "named once");
        assert_eq!(with_request_id(b"<ListBucketResult/>", "ABC"), None, "not an error");
        assert_eq!(with_request_id(&[0xff, 0xfe], "ABC"), None, "not text");
    }

    #[test]
    fn every_answer_carries_the_header() {
        let mut ok = http::Response::new(s3s::Body::from(Bytes::from_static(b"<ListAllMyBucketsResult/>")));
        stamp(&mut ok, "ID1");
        assert_eq!(ok.headers()[HEADER], "ID1");
        let error = error_response(StatusCode::BAD_REQUEST, "AuthorizationQueryParametersError", "m", "ID2");
        assert_eq!(error.headers()[HEADER], "ID2");
        let body = error.body().bytes().expect("in memory");
        assert!(std::str::from_utf8(&body).is_ok_and(|b| b.matches("<RequestId>ID2</RequestId>").count() == 1));
    }
}
