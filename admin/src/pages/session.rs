//! Sessions of the pages: the layer every page goes through (refresh before expiry, the CSRF
//! cookie, security headers), the [`PageUser`] extractor, and signing in and out.
//!
//! Sign-in and refresh are the API's own (`identity::session::open_session` and
//! `renew_session`): the pages only turn their answers into cookies and redirects.

use askama::Template;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::csrf::{self, CsrfForm};
use super::{Chrome, HeaderUser, PageError, render, see_other};
use crate::WebState;
use crate::identity::session::{
    REFRESH_REFUSED, SignInError, TOO_MANY_ATTEMPTS, clear_cookies, client_of, open_session, renew_session,
    session_cookies,
};
use crate::identity::signed_in::identity;
use crate::identity::{SignedInUser, cookies, now_secs};

/// How long before the access token expires a page refreshes it: long enough that the page's
/// own requests (uploads from its script) do not meet an expired token.
const REFRESH_MARGIN_SECS: u64 = 120;

/// The layer of every page route: refreshes the session when its access token is missing or
/// about to expire and a refresh cookie is there, makes sure the browser has a CSRF token, and
/// adds the headers that keep the pages out of frames and their scripts to this origin.
pub(crate) async fn page_layer(State(state): State<WebState>, mut request: Request, next: Next) -> Response {
    let mut set_cookies: Vec<HeaderValue> = Vec::new();
    let token = match csrf::from_cookie(request.headers()) {
        Some(token) => token,
        None => {
            let token = csrf::new_token();
            set_cookies.push(csrf_cookie(&state, request.headers(), &token));
            token
        }
    };
    // Stylesheet and script need no session; the page that loads them refreshed it already.
    let page = !request.uri().path().starts_with("/static/");
    if let Some(identity) = state.identity.as_ref().filter(|_| page) {
        let headers = request.headers();
        let access = cookies::read(headers, &identity.cookie.name);
        let expiring = access
            .as_deref()
            .and_then(crate::identity::jwt::unverified_expiry)
            .is_none_or(|exp| exp <= now_secs() + REFRESH_MARGIN_SECS);
        let refresh_token = cookies::read(headers, &identity.cookie.refresh_name());
        if expiring && let Some(refresh_token) = refresh_token {
            match renew_session(&state, identity, &refresh_token).await {
                Ok(session) => {
                    set_cookies.extend(session_cookies(identity, headers, &session));
                    replace_cookie(request.headers_mut(), &identity.cookie.name, Some(session.access_token()));
                    tracing::debug!(path = %request.uri().path(), "page session refreshed");
                }
                Err(error) if error.code == REFRESH_REFUSED => {
                    set_cookies.extend(clear_cookies(identity, headers).into_iter().map(|(_, v)| v));
                    replace_cookie(request.headers_mut(), &identity.cookie.name, None);
                }
                // The Auth service is away: the current token may still do; if not, the
                // page sends the user to sign in.
                Err(error) => {
                    tracing::warn!(code = error.code, message = %error.message, "page session refresh failed");
                }
            }
        }
    }
    request.extensions_mut().insert(csrf::Token(token));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for cookie in set_cookies {
        headers.append(SET_COOKIE, cookie);
    }
    for (name, value) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}

/// Headers of every page. The script may call this origin and the S3 listeners of the
/// cluster (presigned uploads, on other ports); nothing is inline; no framing. The referrer
/// policy keeps the `Origin` of same-origin posts, which the CSRF check reads.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; connect-src 'self' http: https:; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

/// The CSRF cookie: HttpOnly (only the server reads it back; the form has the value),
/// `SameSite=Strict`, Secure as the session cookies are.
fn csrf_cookie(state: &WebState, headers: &HeaderMap, token: &str) -> HeaderValue {
    match state.identity.as_ref() {
        Some(identity) => {
            let strict = crate::identity::CookieSettings {
                same_site: crate::identity::SameSite::Strict,
                ..identity.cookie.clone()
            };
            strict.set(csrf::COOKIE, token, None, headers)
        }
        None => HeaderValue::from_str(&format!("{}={token}; Path=/; HttpOnly; SameSite=Strict", csrf::COOKIE))
            .unwrap_or_else(|_| HeaderValue::from_static("meridian_csrf=; Max-Age=0")),
    }
}

/// Rewrites the request's `Cookie` headers with cookie `name` set to `value` (or removed), so
/// the handler sees the session the layer just refreshed.
fn replace_cookie(headers: &mut HeaderMap, name: &str, value: Option<&str>) {
    let mut pairs: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(key, _)| key != name))
        .map(str::to_owned)
        .collect();
    if let Some(value) = value {
        pairs.push(format!("{name}={value}"));
    }
    headers.remove(COOKIE);
    if let Ok(joined) = HeaderValue::from_str(&pairs.join("; ")) {
        headers.insert(COOKIE, joined);
    }
}

/// A signed-in user on a page, with what the layout shows of them.
pub(crate) struct PageUser {
    /// Who it is, as the API's extractor found it.
    pub(crate) user: SignedInUser,
    /// Name and badge for the header.
    pub(crate) header: HeaderUser,
    /// The CSRF token for the page's forms.
    pub(crate) csrf: String,
}

impl PageUser {
    /// The layout of a page titled `title` in navigation `section`.
    pub(crate) fn chrome(&self, title: impl Into<String>, section: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            user: Some(self.header.clone()),
            csrf: self.csrf.clone(),
            expires_at: self.user.expires_at,
        }
    }
}

impl FromRequestParts<WebState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let csrf = parts.extensions.get::<csrf::Token>().map(|t| t.0.clone()).unwrap_or_default();
        let user = match SignedInUser::from_request_parts(parts, state).await {
            Ok(user) => user,
            Err(error) if error.status == StatusCode::UNAUTHORIZED => {
                let next = parts.uri.path_and_query().map_or("/files", |p| p.as_str()).to_owned();
                return Err(PageError::SignIn { next });
            }
            // The session cookie on a post from another origin: the forms' own refusal.
            Err(error) if error.status == StatusCode::FORBIDDEN => return Err(PageError::Csrf),
            Err(error) => return Err(PageError::Api(error)),
        };
        let stored = state.meta.user(&user.id).ok().flatten();
        let (name, login) = match stored {
            Some(stored) if !stored.profile.name.is_empty() => (stored.profile.name, stored.profile.login),
            Some(stored) => (stored.profile.login.clone(), stored.profile.login),
            None => (user.id.clone(), user.id.clone()),
        };
        let header = HeaderUser { name, login, admin: user.is_admin() };
        Ok(PageUser { user, header, csrf })
    }
}

/// `GET /`: the files when signed in, else the sign-in page.
pub(crate) async fn home(user: Option<SignedInUser>) -> Response {
    if user.is_some() { see_other("/files") } else { see_other("/signin") }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "signin.html")]
pub(crate) struct SignInPage {
    /// The layout.
    chrome: Chrome,
    /// Where to go once signed in.
    next: String,
    /// The login typed last time (after a refusal).
    login: String,
    /// Why the last attempt failed.
    error: Option<String>,
}

/// Query of the sign-in page.
#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    /// Where to go once signed in.
    next: Option<String>,
}

/// Where a signed-in user lands when `next` is missing or refused.
const HOME: &str = "/files";
/// Most rounds of percent-decoding looked through: `%25` nested deeper than this is refused.
const DECODE_ROUNDS: usize = 4;

/// Only paths of this site: `next` must not send the user elsewhere after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if is_local_path(next) => next.to_owned(),
        Some(next) => {
            tracing::warn!(next = %next.escape_debug(), "sign-in: next refused, not a path of this site");
            HOME.to_owned()
        }
        None => HOME.to_owned(),
    }
}

/// Whether `next` is a path of this origin however a browser reads it: one leading `/` and
/// not `//` or `/\` (both mean another host), no backslash (browsers read it as `/`) and no
/// control character (browsers drop tabs and newlines, so `/\t/evil.example` becomes
/// `//evil.example`) anywhere, and the same after each round of percent-decoding (a server or
/// proxy behind may decode `%2F` or `%09`). Plain ASCII only: a redirect carries no other bytes.
pub(crate) fn is_local_path(next: &str) -> bool {
    let mut text = std::borrow::Cow::Borrowed(next);
    for _ in 0..DECODE_ROUNDS {
        let bytes = text.as_bytes();
        let shape = bytes.first() == Some(&b'/') && !matches!(bytes.get(1), Some(b'/' | b'\\'));
        if !shape || bytes.iter().any(|b| !b.is_ascii() || b.is_ascii_control() || *b == b'\\') {
            return false;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(bytes).collect();
        if decoded == bytes {
            return true;
        }
        match String::from_utf8(decoded) {
            Ok(decoded) => text = std::borrow::Cow::Owned(decoded),
            Err(_) => return false,
        }
    }
    false
}

fn sign_in_chrome(csrf: String) -> Chrome {
    Chrome { title: "Sign in".to_owned(), section: "", user: None, csrf, expires_at: 0 }
}

/// `GET /signin`: the form; a signed-in user goes straight on.
pub(crate) async fn sign_in_page(
    user: Option<SignedInUser>,
    axum::Extension(token): axum::Extension<csrf::Token>,
    Query(query): Query<SignInQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if user.is_some() {
        return see_other(&next);
    }
    render(StatusCode::OK, &SignInPage { chrome: sign_in_chrome(token.0), next, login: String::new(), error: None })
}

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    /// The login name, passed to the Auth service with the password.
    login: String,
    /// Password, passed to the Auth service.
    password: String,
    /// Where to go once signed in.
    next: Option<String>,
}

/// `POST /signin`: the Auth service checks the password; the cookies are set and the browser
/// goes on to `next`. A refusal shows the form again with a message and the login kept.
pub(crate) async fn sign_in(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Extension(token): axum::Extension<csrf::Token>,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<Response, PageError> {
    let identity = identity(&state)?;
    let next = safe_next(form.next.as_deref());
    let client = client_of(&state, peer, &headers);
    match open_session(&state, identity, form.login.trim(), &form.password, client).await {
        Ok(session) => {
            let mut response = see_other(&next);
            for cookie in session_cookies(identity, &headers, &session) {
                response.headers_mut().append(SET_COOKIE, cookie);
            }
            Ok(response)
        }
        Err(SignInError { error, retry_after_secs }) => {
            let message = match (error.code, retry_after_secs) {
                (TOO_MANY_ATTEMPTS, Some(secs)) => {
                    format!("Too many failed sign-ins. Wait {} and try again.", wait_text(secs))
                }
                ("invalid_credentials", _) => "Wrong login or password. Check both and try again.".to_owned(),
                ("bad_request", _) => format!("Check what you entered: {}.", error.message),
                _ => "The sign-in service did not answer properly. Try again in a moment.".to_owned(),
            };
            tracing::info!(code = error.code, "sign-in page: refused");
            let page = SignInPage { chrome: sign_in_chrome(token.0), next, login: form.login, error: Some(message) };
            let mut response = render(error.status, &page);
            if let Some(secs) = retry_after_secs {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            Ok(response)
        }
    }
}

/// "42 seconds" or "5 minutes": a wait as a person reads it.
fn wait_text(secs: u64) -> String {
    match secs {
        0..=1 => "a second".to_owned(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// The sign-out form: only the token.
#[derive(Deserialize)]
pub(crate) struct SignOutForm {}

/// `POST /signout`: clears the session cookies and shows the sign-in page.
pub(crate) async fn sign_out(
    State(state): State<WebState>,
    headers: HeaderMap,
    CsrfForm(SignOutForm {}): CsrfForm<SignOutForm>,
) -> Result<Response, PageError> {
    let identity = identity(&state)?;
    let mut response = see_other("/signin");
    for (_, cookie) in clear_cookies(identity, &headers) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response.into_response())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The panel's origin, for resolving `next` the way a browser does.
    const ORIGIN: &str = "https://panel.example/signin?next=x";

    /// Whether a browser at the sign-in page would go to another origin for `location`.
    fn leaves_origin(location: &str) -> bool {
        let base = reqwest::Url::parse(ORIGIN).expect("base");
        base.join(location).map_or(true, |url| url.origin() != base.origin())
    }

    /// The confirmed payload (`/%09/evil.example`: the tab is dropped, `//evil.example` is
    /// another host) and its variants go home; plain paths of the panel are kept.
    #[test]
    fn next_is_a_path_of_this_site() {
        let refused = [
            "/%09/evil.example",
            "/\t/evil.example",
            "/%0a/evil.example",
            "/%0d%0a/evil.example",
            "//evil.example",
            "/\\evil.example",
            "/%5cevil.example",
            "/%5Cevil.example",
            "/%2f/evil.example",
            "/%2F%2Fevil.example",
            "/%252F/evil.example",
            "/%25252525252F/evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /files",
            "/files\\..\\x",
            "/fïles",
            "/%ff",
        ];
        for next in refused {
            assert_eq!(safe_next(Some(next)), HOME, "{next:?} must be refused");
        }
        for next in ["/files", "/files?prefix=a%2Fb", "/shares", "/", "/files/b/k%20x", "/a//b"] {
            assert_eq!(safe_next(Some(next)), next, "{next:?} is a path of this site");
        }
        assert_eq!(safe_next(None), HOME);
        assert!(leaves_origin("/\t/evil.example"), "the browser model agrees the payload is off-site");
    }

    /// Characters that matter for where a browser goes, mixed with a few plain ones.
    fn tricky() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "/",
            "\\",
            "\t",
            "\n",
            "\r",
            " ",
            "%",
            "%2",
            "%2f",
            "%2F",
            "%5c",
            "%5C",
            "%09",
            "%0a",
            "%25",
            "@",
            ":",
            ".",
            "..",
            "evil.example",
            "http:",
            "https:",
            "?",
            "#",
            "a",
            "\u{0}",
            "\u{7f}",
            "é",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|p| p.concat())
    }

    proptest! {
        /// Whatever `next` holds, accepting it never sends a browser off this origin, neither
        /// as given nor after any round of percent-decoding; and nothing panics.
        #[test]
        fn accepted_next_never_leaves_the_origin(next in prop_oneof![tricky(), any::<String>()]) {
            let chosen = safe_next(Some(&next));
            prop_assert!(!leaves_origin(&chosen), "{next:?} -> {chosen:?}");
            if chosen == next {
                let mut text = next.clone();
                for _ in 0..DECODE_ROUNDS {
                    prop_assert!(!leaves_origin(&text), "{next:?} decoded to {text:?}");
                    text = percent_encoding::percent_decode_str(&text).decode_utf8_lossy().into_owned();
                }
            }
        }
    }
}
