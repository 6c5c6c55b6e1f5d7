//! The two session cookies of the pages: the access token and the refresh token, both
//! HttpOnly (scripts never see a token), SameSite, and Secure when served over TLS.

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue};

/// Whether cookies get the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// When the request came over TLS: through a proxy that says `X-Forwarded-Proto: https`
    /// (the web listener itself speaks plain HTTP).
    Auto,
    /// Always (the panel is only ever reached over https).
    Always,
    /// Never (plain-HTTP development setups).
    Never,
}

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (links into the panel keep the session).
    Lax,
    /// Never sent from other sites.
    Strict,
}

/// How the session cookies are named and flagged.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// Name of the access-token cookie; the refresh token's is this plus `_refresh`.
    pub name: String,
    /// The `Secure` policy.
    pub secure: CookieSecure,
    /// The `SameSite` policy.
    pub same_site: SameSite,
}

impl CookieSettings {
    /// Name of the refresh-token cookie.
    pub(crate) fn refresh_name(&self) -> String {
        format!("{}_refresh", self.name)
    }

    /// A `Set-Cookie` value storing `value` for `max_age` seconds (`None`: until the browser
    /// closes). `Path=/` so both the pages and the API receive it.
    pub(crate) fn set(&self, name: &str, value: &str, max_age: Option<u64>, headers: &HeaderMap) -> HeaderValue {
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite={}", self.same_site_text());
        if let Some(max_age) = max_age {
            cookie.push_str(&format!("; Max-Age={max_age}"));
        }
        if self.is_secure(headers) {
            cookie.push_str("; Secure");
        }
        // Token characters (base64url and dots) are all valid header bytes; a value that is
        // not is dropped rather than sent half-formed.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| self.clear(name, headers))
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub(crate) fn clear(&self, name: &str, headers: &HeaderMap) -> HeaderValue {
        let secure = if self.is_secure(headers) { "; Secure" } else { "" };
        let cookie = format!("{name}=; Path=/; HttpOnly; SameSite={}; Max-Age=0{secure}", self.same_site_text());
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("meridian_session=; Max-Age=0"))
    }

    fn same_site_text(&self) -> &'static str {
        match self.same_site {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }

    fn is_secure(&self, headers: &HeaderMap) -> bool {
        self.secure.applies(headers)
    }
}

impl CookieSecure {
    /// Whether a cookie set in answer to a request with these headers gets `Secure` (also used
    /// by the share links' CSRF cookie, which exists without sign-in configured).
    pub(crate) fn applies(self, headers: &HeaderMap) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https")),
        }
    }
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// False when a browser says the request comes from a page of another origin (`Origin` whose
/// host differs from `Host`). Requests that carry cookies and change state are refused then:
/// SameSite does not separate two ports of one host, which are one "site". Requests without
/// `Origin` (non-browser clients, same-origin GETs) pass.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever bytes a client sends as `Cookie`, `Origin` and `Host`, reading a cookie and
        /// judging the origin never panic, and a value read is one cookie's (no `;`, not empty).
        #[test]
        fn cookie_parsers_take_any_bytes(
            cookie in prop::collection::vec(any::<u8>(), 0..200),
            second in "[ -~]{0,80}",
            origin in prop::collection::vec(any::<u8>(), 0..80),
            host in "[ -~]{0,40}",
            name in prop_oneof![Just("meridian_session".to_owned()), "[a-z_=; ]{0,12}"],
        ) {
            let mut headers = HeaderMap::new();
            for value in [HeaderValue::from_bytes(&cookie), HeaderValue::from_str(&second)].into_iter().flatten() {
                headers.append(COOKIE, value);
            }
            if let Ok(origin) = HeaderValue::from_bytes(&origin) {
                headers.insert(ORIGIN, origin);
            }
            if let Ok(host) = HeaderValue::from_str(&host) {
                headers.insert(HOST, host);
            }
            if let Some(value) = read(&headers, &name) {
                prop_assert!(!value.is_empty() && !value.contains(';'), "{value:?}");
            }
            let _ = same_origin(&headers);
            let _ = crate::identity::jwt::unverified_expiry(&String::from_utf8_lossy(&cookie));
        }
    }

    fn settings(secure: CookieSecure) -> CookieSettings {
        CookieSettings { name: "s".into(), secure, same_site: SameSite::Lax }
    }

    #[test]
    fn cookies_are_http_only_and_secure_behind_tls() {
        let mut headers = HeaderMap::new();
        let plain = settings(CookieSecure::Auto).set("s", "tok", Some(60), &headers);
        assert_eq!(plain, "s=tok; Path=/; HttpOnly; SameSite=Lax; Max-Age=60");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let tls = settings(CookieSecure::Auto).set("s", "tok", None, &headers);
        assert_eq!(tls, "s=tok; Path=/; HttpOnly; SameSite=Lax; Secure");
        let never = settings(CookieSecure::Never).clear("s", &headers);
        assert_eq!(never, "s=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    }

    #[test]
    fn reads_one_cookie_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; s_refresh=r"));
        headers.append(COOKIE, HeaderValue::from_static("s=tok"));
        assert_eq!(read(&headers, "s").as_deref(), Some("tok"));
        assert_eq!(read(&headers, "s_refresh").as_deref(), Some("r"));
        assert_eq!(read(&headers, "missing"), None);
    }

    #[test]
    fn foreign_origins_are_told_apart() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers));
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8001"));
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8001"));
        assert!(same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:9999"));
        assert!(!same_origin(&headers));
    }
}
