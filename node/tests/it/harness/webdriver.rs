//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), with
//! plain reqwest: enough to sign in, fill forms, pick files, read the page and take screenshots.
//!
//! The browser must be installed (`scripts/test` installs it): a test that needs it fails with
//! a message saying how, never skips silently.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::POLL;
use super::process::{Running, free_loopback_ports};

/// The key under which WebDriver returns an element's id.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// Where screenshots go: `target/test-artifacts/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_path_buf();
    let dir = target.join("test-artifacts/screenshots");
    fs::create_dir_all(&dir).expect("create the screenshot dir");
    dir
}

/// The first of `names` found on `PATH` or as an absolute path.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        let direct = Path::new(name);
        if direct.is_absolute() {
            return direct.is_file().then(|| direct.to_path_buf());
        }
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
    })
}

/// A running `chromedriver`, killed on drop.
pub struct Driver {
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// The browser binary.
    chromium: PathBuf,
    /// Its log and the browsers' profiles.
    dir: tempfile::TempDir,
    proc: Mutex<Option<Running>>,
    http: reqwest::Client,
}

impl Driver {
    /// Starts chromedriver and waits until it is ready. Panics, saying how to install them, when
    /// chromium or chromium-driver is missing.
    pub async fn start() -> Driver {
        let missing = "the browser test needs Debian's headless Chromium: \
                       `apt-get install -y chromium chromium-driver` (scripts/test installs them)";
        let driver = find_program(&["chromedriver", "/usr/lib/chromium/chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found; {missing}"));
        let chromium = find_program(&["chromium", "/usr/lib/chromium/chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium not found; {missing}"));
        let dir = tempfile::Builder::new().prefix("meridian-browser-").tempdir().expect("temp dir");
        let log = OpenOptions::new().create(true).append(true).open(dir.path().join("chromedriver.log")).expect("log");
        let port = free_loopback_ports::<1>()[0].port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {missing}", driver.display()));
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(120)).build().expect("client");
        let started = Driver {
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            proc: Mutex::new(Some(Running::watch(child, dir.path()))),
            dir,
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = started.http.get(format!("{}/status", started.url)).send().await
                && let Ok(status) = resp.json::<Value>().await
                && status["value"]["ready"] == true
            {
                return started;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready within 30 s\n{}", started.log());
            tokio::time::sleep(POLL).await;
        }
    }

    /// chromedriver's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// A new browser with its own profile (a fresh context: no cookies, no storage), saving
    /// downloads into `downloads`.
    pub async fn browser(&self, name: &str, downloads: &Path) -> Browser {
        let profile = self.dir.path().join(format!("profile-{name}"));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
                    "--disable-features=Translate,MediaRouter", "--force-color-profile=srgb",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                    "safebrowsing.enabled": false,
                },
            },
        }}});
        let resp =
            self.http.post(format!("{}/session", self.url)).json(&capabilities).send().await.expect("POST /session");
        let body: Value = resp.json().await.expect("session JSON");
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {body}\n{}", self.log()))
            .to_owned();
        let browser =
            Browser { base: format!("{}/session/{id}", self.url), http: self.http.clone(), name: name.to_owned() };
        // Headless Chromium saves downloads only when told where (the prefs are not always read).
        browser.cdp("Browser.setDownloadBehavior", json!({ "behavior": "allow", "downloadPath": downloads })).await;
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- chromedriver log (tail) -----\n{}", tail(&self.log(), 40));
        }
        if let Ok(mut guard) = self.proc.lock()
            && let Some(running) = guard.take()
        {
            running.kill9();
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One browser window (a WebDriver session).
pub struct Browser {
    /// `http://127.0.0.1:PORT/session/ID`.
    base: String,
    http: reqwest::Client,
    /// For messages and screenshot names.
    name: String,
}

/// An element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        // WebDriver wants a JSON body on every POST, if only `{}`.
        if method == reqwest::Method::POST {
            request = request.json(&body.unwrap_or_else(|| json!({})));
        }
        let resp = request.send().await.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {method} {path} ({}): {status} {value}", self.name);
        value["value"].clone()
    }

    /// A Chrome DevTools command, through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> Value {
        self.call(reqwest::Method::POST, "/goog/cdp/execute", Some(json!({ "cmd": command, "params": params }))).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// The element `css` selects, if there is one now.
    pub async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let resp = self
            .http
            .post(format!("{}/element", self.base))
            .json(&json!({ "using": "css selector", "value": css }))
            .send()
            .await
            .expect("WebDriver find");
        if !resp.status().is_success() {
            return None;
        }
        let value: Value = resp.json().await.ok()?;
        value["value"][ELEMENT].as_str().map(|id| Element { browser: self, id: id.to_owned() })
    }

    /// The element `css` selects, waiting up to [`WAIT`] for it.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(element) = self.try_find(css).await {
                return element;
            }
            if Instant::now() > deadline {
                panic!("{}: no {css:?} within {WAIT:?} on {}\n{}", self.name, self.url().await, self.source().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits up to [`WAIT`] until the URL satisfies `done`; returns it.
    pub async fn wait_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!("{}: {what} not reached within {WAIT:?}; at {url}\n{}", self.name, self.source().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits up to `timeout` until the page's text contains `needle`.
    pub async fn wait_text(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.execute("return document.body ? document.body.innerText : '';", json!([])).await;
            if text.as_str().is_some_and(|t| t.contains(needle)) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{}: {needle:?} not on the page within {timeout:?}; at {}\n{text}", self.name, self.url().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A PNG of the whole page, saved as `target/test-artifacts/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true, "fromSurface": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Element<'_> {
    /// Clicks it.
    pub async fn click(&self) {
        self.browser.call(reqwest::Method::POST, &format!("/element/{}/click", self.id), None).await;
    }

    /// Empties a text field.
    pub async fn clear(&self) {
        self.browser.call(reqwest::Method::POST, &format!("/element/{}/clear", self.id), None).await;
    }

    /// Types `text` into it (for a file input: the file's path).
    pub async fn type_text(&self, text: &str) {
        self.browser
            .call(reqwest::Method::POST, &format!("/element/{}/value", self.id), Some(json!({ "text": text })))
            .await;
    }

    /// Its visible text.
    pub async fn text(&self) -> String {
        self.browser
            .call(reqwest::Method::GET, &format!("/element/{}/text", self.id), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A DOM property, e.g. `value`.
    pub async fn property(&self, name: &str) -> Value {
        self.browser.call(reqwest::Method::GET, &format!("/element/{}/property/{name}", self.id), None).await
    }
}
