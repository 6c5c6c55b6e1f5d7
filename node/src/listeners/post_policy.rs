//! POST Object policy failures answered as AWS answers them.
//!
//! A browser form whose fields break a condition of its signed policy (a key outside
//! `starts-with`, a field that is not the value the policy names) is 403 `AccessDenied`
//! ("Invalid according to Policy: Policy Condition failed") on AWS; s3s answers 400
//! `InvalidPolicyDocument`, the code AWS keeps for a policy that cannot be read. Clients and
//! upload pages tell the two apart (the first is the user's fault, the second the site's), so
//! the listener rewrites the first kind. s3s 0.14's message for a failed condition starts with
//! [`S3S_CONDITION_FAILED`]; every other `InvalidPolicyDocument` passes unchanged.

use bytes::Bytes;
use http::StatusCode;

/// How s3s begins the message of a failed `eq` or `starts-with` condition.
/// Its quotes are escaped in the XML body, so they are not part of the match.)
const S3S_CONDITION_FAILED: &str = "<Message>Policy condition ";

/// Error bodies are small; anything larger is not one of s3s's and is left alone.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Turns s3s's 400 `InvalidPolicyDocument` for a failed policy condition into AWS's 403
/// `AccessDenied`, keeping s3s's explanation after AWS's own words.
pub(crate) fn as_aws_condition_failure(response: &mut http::Response<s3s::Body>) {
    if response.status() != StatusCode::BAD_REQUEST {
        return;
    }
    let Some(body) = response.body().bytes() else { return };
    let Some(rewritten) = rewrite(&body) else { return };
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    *response.body_mut() = s3s::Body::from(rewritten);
}

/// The body with code `AccessDenied` and AWS's message prefix, or `None` when `body` is not
/// s3s's failed-condition error.
fn rewrite(body: &[u8]) -> Option<Bytes> {
    if body.len() > MAX_ERROR_BODY {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<Code>InvalidPolicyDocument</Code>") || !text.contains(S3S_CONDITION_FAILED) {
        return None;
    }
    let out = text.replacen("<Code>InvalidPolicyDocument</Code>", "<Code>AccessDenied</Code>", 1).replacen(
        "<Message>",
        "<Message>Invalid according to Policy: Policy Condition failed: ",
        1,
    );
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_condition_becomes_access_denied() {
        let failed = b"<?xml version=\"1.0\"?><Error><Code>InvalidPolicyDocument</Code><Message>Policy condition &apos;starts-with&apos; for field &apos;key&apos; failed</Message></Error>";
        let out = rewrite(failed).expect("rewritten");
        let out = std::str::from_utf8(&out).expect("text");
        assert!(out.contains("<Code>AccessDenied</Code>"), "{out}");
        assert!(
            out.contains(
                "<Message>Invalid according to Policy: Policy Condition failed: Policy condition &apos;starts-with&apos;"
            ),
            "{out}"
        );

        let unreadable =
            b"<Error><Code>InvalidPolicyDocument</Code><Message>failed to parse POST policy</Message></Error>";
        assert_eq!(rewrite(unreadable), None, "a policy that cannot be read stays 400");
        let other = b"<Error><Code>InvalidArgument</Code><Message>Policy condition 'x'</Message></Error>";
        assert_eq!(rewrite(other), None);

        let mut response = http::Response::new(s3s::Body::from(Bytes::from_static(failed)));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        as_aws_condition_failure(&mut response);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
