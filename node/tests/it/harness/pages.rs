//! A small browser stand-in for the HTTP-level page tests: keeps cookies, sends `Origin` on
//! posts as browsers do, follows no redirects (the tests look at them) and reads the CSRF field
//! of forms.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

/// What a page request answered.
#[derive(Debug)]
pub struct PageResponse {
    /// HTTP status.
    pub status: u16,
    /// `Location`, on redirects.
    pub location: Option<String>,
    /// The raw `Set-Cookie` values.
    pub set_cookies: Vec<String>,
    /// The body.
    pub html: String,
}

impl PageResponse {
    /// The `value` of the first `<input name="csrf">` of the page.
    pub fn csrf(&self) -> String {
        field(&self.html, "csrf").unwrap_or_else(|| panic!("no csrf field in the page:\n{}", self.html))
    }

    /// The `Set-Cookie` value for cookie `name`, if set.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies.iter().map(String::as_str).find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// The `value` of the first input named `name` in `html`.
pub fn field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    rest.split('"').next().map(str::to_owned)
}

/// One browser: its cookies and the site it talks to.
pub struct PageClient {
    /// `http://127.0.0.1:PORT` of the web listener.
    pub web: String,
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl PageClient {
    /// A browser with no cookies yet.
    pub fn new(web: &str) -> PageClient {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        PageClient { web: web.to_owned(), http, cookies: Mutex::default() }
    }

    /// The cookie header this browser sends.
    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().expect("lock");
        cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// The value of cookie `name`, if the browser has it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().expect("lock").get(name).cloned()
    }

    /// Sets (or with `None` drops) a cookie by hand, as a test of tampering or expiry.
    pub fn set_cookie(&self, name: &str, value: Option<&str>) {
        let mut cookies = self.cookies.lock().expect("lock");
        match value {
            Some(value) => cookies.insert(name.to_owned(), value.to_owned()),
            None => cookies.remove(name),
        };
    }

    async fn finish(&self, resp: reqwest::Response) -> PageResponse {
        let status = resp.status().as_u16();
        let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let set_cookies: Vec<String> =
            resp.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        {
            let mut cookies = self.cookies.lock().expect("lock");
            for cookie in &set_cookies {
                let pair = cookie.split(';').next().unwrap_or_default();
                let Some((name, value)) = pair.split_once('=') else { continue };
                if value.is_empty() || cookie.contains("Max-Age=0") {
                    cookies.remove(name);
                } else {
                    cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let html = resp.text().await.unwrap_or_default();
        PageResponse { status, location, set_cookies, html }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> PageResponse {
        let resp = self
            .http
            .get(format!("{}{path}", self.web))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.finish(resp).await
    }

    /// `POST path` with a form, from this site's own pages (`Origin` = the site).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> PageResponse {
        let origin = self.web.clone();
        self.post_from(path, form, &origin).await
    }

    /// `POST path` with a form, as a page of `origin` would send it.
    pub async fn post_from(&self, path: &str, form: &[(&str, &str)], origin: &str) -> PageResponse {
        let resp = self
            .http
            .post(format!("{}{path}", self.web))
            .header(COOKIE, self.cookie_header())
            .header(ORIGIN, origin)
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.finish(resp).await
    }

    /// Signs in through the sign-in page; panics unless it ends in a redirect to `/files`.
    pub async fn sign_in(&self, login: &str, password: &str) -> PageResponse {
        let page = self.get("/signin").await;
        assert_eq!(page.status, 200, "the sign-in page");
        let resp = self
            .post("/signin", &[("csrf", &page.csrf()), ("login", login), ("password", password), ("next", "/files")])
            .await;
        assert_eq!(resp.status, 303, "sign-in of {login}: {}", resp.html);
        assert_eq!(resp.location.as_deref(), Some("/files"));
        resp
    }
}
