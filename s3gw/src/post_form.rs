//! Browser form uploads (POST Object): what the gateway checks of the form beyond s3s.
//!
//! s3s verifies the signed policy and answers `success_action_status` and
//! `success_action_redirect` itself, but only after the object is stored: a redirect it then
//! cannot use would fail the request with the bytes already written. The gateway refuses such
//! a form before storing anything, so a failed upload leaves no trace.

use s3s::{S3Result, s3_error};

/// Refuses a `success_action_redirect` that the answer could not carry: one with control
/// characters (a line break would inject a header into the 303) or that is not an absolute
/// http(s) URL (a browser is sent there; `javascript:` and relative targets are not pages).
pub(crate) fn check_redirect(redirect: Option<&str>) -> S3Result<()> {
    let Some(target) = redirect else { return Ok(()) };
    if target.chars().any(char::is_control) {
        return Err(s3_error!(InvalidArgument, "success_action_redirect contains control characters"));
    }
    let lower = target.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    if rest.is_none_or(|rest| rest.is_empty() || rest.starts_with('/')) {
        return Err(s3_error!(InvalidArgument, "success_action_redirect must be an absolute http or https URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_web_urls_without_control_characters_pass() {
        for good in [None, Some("https://cinema.example/done?x=1"), Some("HTTP://cinema.example")] {
            assert!(check_redirect(good).is_ok(), "{good:?}");
        }
        for bad in [
            "https://cinema.example/\r\nSet-Cookie: a=b",
            "https://cinema.example/\u{7f}",
            "javascript:alert(1)",
            "/relative",
            "https://",
            "http:///path",
            "",
        ] {
            assert!(check_redirect(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
