//! The admin panel's pages: server-rendered HTML (askama templates in `admin/templates/`,
//! HTML-escaped by default) on top of the same functions the JSON API calls, one CSS file and a
//! little JS (upload progress, copy to clipboard, session refresh) in `admin/static/`.
//!
//! Every page takes a [`PageUser`]: the session cookie, refreshed here before it expires
//! (`session`), or a redirect to the sign-in page. Every form carries a CSRF token checked on
//! every POST ([`csrf`]). Authorization is the API's: the pages ask `access` (`may_access`) and
//! call `list_files`, `create_share`... and show their 404s as 404 pages.

mod csrf;
mod files;
mod format;
mod lists;
mod session;

use askama::Template;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::WebState;
use crate::error::ApiError;
pub(crate) use session::PageUser;

/// The page routes, with the layer that refreshes sessions and hands out CSRF tokens.
pub(crate) fn router(state: WebState) -> Router<WebState> {
    Router::new()
        .route("/", get(session::home))
        .route("/signin", get(session::sign_in_page).post(session::sign_in))
        .route("/signout", get(to_files).post(session::sign_out))
        .route("/files", get(files::list::my_files))
        .route("/files/buckets", get(to_files).post(files::actions::create_bucket))
        .route("/files/delete", get(files::actions::confirm_delete).post(files::actions::delete))
        .route("/files/restore", get(to_files).post(files::actions::restore_version))
        .route("/file/{bucket}/{*key}", get(files::detail::file_page))
        .route("/shares", get(to_files).post(files::actions::create_share))
        .route("/shares/revoke", get(to_files).post(files::actions::revoke_share))
        .route("/history", get(lists::history))
        .route("/shared", get(lists::shared_with_me))
        .route("/static/panel.css", get(stylesheet))
        .route("/static/panel.js", get(script))
        .layer(axum::middleware::from_fn_with_state(state, session::page_layer))
}

/// `GET` of a form's target (a bookmark, or the address bar after a post): to "My files", rather
/// than a bare 405.
async fn to_files() -> Response {
    see_other("/files")
}

/// What the layout around every page shows: the title, the section of the navigation, the
/// signed-in user with the sign-out form, and when the session needs refreshing.
pub(crate) struct Chrome {
    /// The page's title (also the `<title>`).
    pub(crate) title: String,
    /// Which navigation entry is current: `files`, `shared`, `history`, or empty.
    pub(crate) section: &'static str,
    /// The user in the header; `None` on the sign-in and error pages of a stranger.
    pub(crate) user: Option<HeaderUser>,
    /// The CSRF token every form of the page carries.
    pub(crate) csrf: String,
    /// When the access token expires (seconds since the epoch; 0: no session): the page's
    /// script refreshes the session shortly before, so a page left open keeps working.
    pub(crate) expires_at: u64,
}

/// The signed-in user as the header shows them.
#[derive(Clone)]
pub(crate) struct HeaderUser {
    /// Display name (the login when the Auth service gave none).
    pub(crate) name: String,
    /// Sign-in name.
    pub(crate) login: String,
    /// Whether they are an administrator (shown as a badge: they see everyone's files).
    pub(crate) admin: bool,
}

/// Renders a template as an HTML response that is never cached (pages show private data and
/// one-time links).
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, [(CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, [(CACHE_CONTROL, "no-store")], "the page could not be rendered")
                .into_response()
        }
    }
}

/// A 303 to `location`: what every successful form answers (POST, then GET: reloading the
/// result never posts again).
pub(crate) fn see_other(location: &str) -> Response {
    let value = HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/files"));
    (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response()
}

/// The error page, in the panel's style.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    /// The layout (no user: error pages are shown to anyone).
    pub(crate) chrome: Chrome,
    /// The HTTP status, shown small.
    pub(crate) status: u16,
    /// What happened, for a person.
    pub(crate) message: String,
    /// What they can do about it.
    pub(crate) hint: &'static str,
}

/// A page of a public share link (`/s/{token}`): the panel's style, no navigation (the visitor
/// is not signed in).
#[derive(Template)]
#[template(path = "link.html")]
pub(crate) struct LinkPage<'a> {
    /// The layout.
    chrome: Chrome,
    /// What to say.
    message: &'a str,
    /// The link's form: the link's token and the form's CSRF token; `None` for a message only.
    form: Option<(&'a str, &'a str)>,
    /// Whether the form asks for the link's password.
    password: bool,
    /// Why the last password was refused.
    error: Option<&'a str>,
}

fn stranger(title: &str) -> Chrome {
    Chrome { title: title.to_owned(), section: "", user: None, csrf: String::new(), expires_at: 0 }
}

/// A share link's message page (not found, expired, used up...).
pub(crate) fn link_message(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &LinkPage { chrome: stranger(title), message, form: None, password: false, error: None })
}

/// A share link's form, posting back to `/s/{token}` with `csrf`: a password field when
/// `password`, else only the download button of a link with a download limit.
pub(crate) fn link_form(status: StatusCode, token: &str, csrf: &str, password: bool, error: Option<&str>) -> Response {
    let message = if password {
        "This file is protected by a password."
    } else {
        "This link allows a limited number of downloads."
    };
    let page = LinkPage { chrome: stranger("Shared file"), message, form: Some((token, csrf)), password, error };
    render(status, &page)
}

/// Why a page is not shown.
#[derive(Debug)]
pub(crate) enum PageError {
    /// No valid session: to the sign-in page, then back to `next`.
    SignIn {
        /// The path (and query) to come back to.
        next: String,
    },
    /// The form's CSRF token is missing or wrong, or it came from another origin.
    Csrf,
    /// What the API would have answered, as a page.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

/// An error page for `status` with `message`.
pub(crate) fn error_page(status: StatusCode, message: String) -> Response {
    let (title, hint) = match status.as_u16() {
        400 => ("That did not work", "Go back, check what you entered and try again."),
        401 => ("Please sign in", "Sign in again to go on."),
        403 => ("Not allowed", "Go back, reload the page and try again."),
        404 => ("Not found", "It does not exist, or it is not yours to see."),
        409 => ("Already there", "Pick another name and try again."),
        410 => ("Gone", "This no longer exists or has expired."),
        429 => ("Too many attempts", "Wait a few minutes and try again."),
        502..=504 => ("Service unavailable", "A service Meridian depends on did not answer. Try again in a moment."),
        _ => ("Something went wrong", "Try again in a moment; if it keeps happening, tell the administrators."),
    };
    let chrome = Chrome { title: title.to_owned(), section: "", user: None, csrf: String::new(), expires_at: 0 };
    render(status, &ErrorPage { chrome, status: status.as_u16(), message, hint })
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { next } => {
                let query = format::query(&[("next", next.as_str())]);
                see_other(&format!("/signin?{query}"))
            }
            Self::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this site, so it was not accepted.".to_owned(),
            ),
            Self::Api(error) => error_page(error.status, error.message),
        }
    }
}

/// Any other path: a 404 page, except under `/api/`, whose clients expect no HTML.
pub(crate) async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::not_found(format!("no route {}", uri.path())).into_response();
    }
    error_page(StatusCode::NOT_FOUND, "There is no page at this address.".to_owned())
}

/// `GET /static/panel.css`.
async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../static/panel.css"))
}

/// `GET /static/panel.js`.
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../static/panel.js"))
}

/// A static file, cached for a short while (it changes with the binary).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=300")], body).into_response()
}
