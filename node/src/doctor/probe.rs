//! The network steps of the checks, each bounded: resolve, connect, a TLS handshake, and a
//! minimal HTTP/1.1 GET on a kept-alive connection.
//!
//! The GET is written here rather than taken from reqwest because the clock check needs to know
//! when each request left and its answer came back on one reused connection, with nothing in
//! between (no pool, no retries), and needs HTTPS that trusts the cluster CA alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig};

/// The bound of each network step (resolving, connecting, a handshake, one request).
pub(super) const STEP: Duration = Duration::from_secs(2);

/// The most of an answer's head and body kept (a `/healthz` answer is ~100 bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// The host part of `host:port` / `ip:port` / `[v6]:port`, as a TLS server name wants it.
pub(super) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(host, _)| host).trim_matches(['[', ']'])
}

/// The first address `addr` (`ip:port` or `host:port`) resolves to.
pub(super) async fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(socket) = addr.parse() {
        return Ok(socket);
    }
    match tokio::time::timeout(STEP, tokio::net::lookup_host(addr)).await {
        Err(_) => Err(format!("resolving {addr} timed out after {} s", STEP.as_secs())),
        Ok(Err(e)) => Err(format!("cannot resolve {addr}: {e}")),
        Ok(Ok(mut found)) => found.next().ok_or_else(|| format!("{addr} resolves to no address")),
    }
}

/// Why a connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unreachable {
    /// The host answered that nothing listens there: the node is not running (yet).
    Refused(String),
    /// No answer, no route, no such name: a network or DNS problem, or the host is down.
    Other(String),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) | Self::Other(why) => f.write_str(why),
        }
    }
}

impl From<Unreachable> for String {
    fn from(e: Unreachable) -> Self {
        e.to_string()
    }
}

/// A TCP connection to `socket`, or why not in words an operator acts on.
pub(super) async fn connect(socket: SocketAddr) -> Result<TcpStream, Unreachable> {
    match tokio::time::timeout(STEP, TcpStream::connect(socket)).await {
        Err(_) => Err(Unreachable::Other(format!(
            "unreachable: no answer from {socket} within {} s (firewall? host down?)",
            STEP.as_secs()
        ))),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(Unreachable::Refused(format!("refused: nothing listens on {socket} (node not running?)")))
        }
        Ok(Err(e)) => Err(Unreachable::Other(format!("cannot connect to {socket}: {e}"))),
        Ok(Ok(stream)) => {
            // Requests are tiny and timed: Nagle's delay would be measured as clock error.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

/// Anything a request can go over: TCP, or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A TLS handshake on `stream` with `config`, verifying the server as `host`; the error says
/// whose certificate is the problem.
pub(super) async fn handshake<S: Io + 'static>(
    stream: S,
    config: Arc<ClientConfig>,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<S>, String> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
    match tokio::time::timeout(STEP, TlsConnector::from(config).connect(name, stream)).await {
        Err(_) => Err(format!("the TLS handshake did not finish within {} s", STEP.as_secs())),
        Ok(Err(e)) => Err(tls_failure(&e)),
        Ok(Ok(tls)) => Ok(tls),
    }
}

/// Words for a failed handshake, from the rustls error inside the I/O error.
pub(super) fn tls_failure(e: &std::io::Error) -> String {
    let inner = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(why)) => {
            format!("certificate problem: its certificate {}", certificate_words(why))
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("certificate problem: it refused the handshake ({alert:?}): our certificate is not one it accepts")
        }
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
            "does not speak TLS (a release without TLS, or plain HTTP?)".to_owned()
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "closed the connection during the TLS handshake (does it speak TLS? does it accept our certificate?)"
                .to_owned()
        }
        None => format!("TLS handshake failed: {e}"),
    }
}

/// What is wrong with a certificate the handshake refused, in words.
fn certificate_words(why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match why {
        E::UnknownIssuer => "is not issued by this cluster's CA ([tls] ca_cert)".to_owned(),
        E::Expired | E::ExpiredContext { .. } => "has expired".to_owned(),
        E::NotValidYet | E::NotValidYetContext { .. } => "is not valid yet (clock behind?)".to_owned(),
        E::NotValidForName | E::NotValidForNameContext { .. } => "does not name the host dialed".to_owned(),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
            "is not for this use (it needs serverAuth and clientAuth)".to_owned()
        }
        other => format!("is refused: {other}"),
    }
}

/// An HTTP/1.1 connection kept alive between requests.
pub(super) struct HttpConnection {
    /// The connection (TCP or TLS).
    stream: Box<dyn Io>,
    /// The `Host` header's value.
    host: String,
    /// Bytes read past the previous answer.
    buffered: Vec<u8>,
}

/// The parts of an answer the checks read.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    /// The status code.
    pub(super) status: u16,
    /// The `Date` header, seconds since the Unix epoch.
    pub(super) date: Option<i64>,
    /// The body.
    pub(super) body: Vec<u8>,
}

impl HttpConnection {
    /// Connects to a web listener at `addr` (`ip:port`): plain HTTP when `plain`, else HTTPS
    /// with `tls` (which trusts the cluster CA), verifying the server as the address's host.
    pub(super) async fn open(addr: &str, plain: bool, tls: Option<Arc<ClientConfig>>) -> Result<Self, String> {
        let socket = resolve(addr).await?;
        let tcp = connect(socket).await?;
        let host = host_of(addr).to_owned();
        let stream: Box<dyn Io> = if plain {
            Box::new(tcp)
        } else {
            let tls = tls.ok_or("it answers only HTTPS, and the node certificate or CA to dial it did not load")?;
            Box::new(handshake(tcp, tls, &host).await?)
        };
        Ok(Self { stream, host: addr.to_owned(), buffered: Vec::new() })
    }

    /// `GET path`, bounded by [`STEP`].
    pub(super) async fn get(&mut self, path: &str) -> Result<Answer, String> {
        match tokio::time::timeout(STEP, self.exchange(path)).await {
            Err(_) => Err(format!("no answer to GET {path} within {} s", STEP.as_secs())),
            Ok(result) => result.map_err(|e| format!("GET {path}: {e}")),
        }
    }

    async fn exchange(&mut self, path: &str) -> Result<Answer, String> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: meridian-doctor\r\n\r\n", self.host);
        self.stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let head_end = loop {
            if let Some(at) = find(&self.buffered, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buffered[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or("not an HTTP answer")?;
        let (mut date, mut length, mut chunked) = (None, None, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "date" => date = parse_http_date(value),
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
        self.buffered.drain(..head_end);
        let body = if chunked { self.chunked_body().await? } else { self.take(length.unwrap_or(0)).await? };
        Ok(Answer { status, date, body })
    }

    /// Reads more bytes into the buffer.
    async fn fill(&mut self) -> Result<(), String> {
        if self.buffered.len() > MAX_ANSWER {
            return Err("answer too large".into());
        }
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        self.buffered.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next `n` bytes.
    async fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        if n > MAX_ANSWER {
            return Err("answer too large".into());
        }
        while self.buffered.len() < n {
            self.fill().await?;
        }
        Ok(self.buffered.drain(..n).collect())
    }

    /// A body in chunked transfer encoding.
    async fn chunked_body(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.buffered, b"\r\n") {
                    break at;
                }
                self.fill().await?;
            };
            let size_text = String::from_utf8_lossy(&self.buffered[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size")?;
            self.buffered.drain(..line_end + 2);
            let chunk = self.take(size + 2).await?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
            if body.len() > MAX_ANSWER {
                return Err("answer too large".into());
            }
        }
    }
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, what every current server sends)
/// as seconds since the Unix epoch.
pub(super) fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => time::Month::January,
        "Feb" => time::Month::February,
        "Mar" => time::Month::March,
        "Apr" => time::Month::April,
        "May" => time::Month::May,
        "Jun" => time::Month::June,
        "Jul" => time::Month::July,
        "Aug" => time::Month::August,
        "Sep" => time::Month::September,
        "Oct" => time::Month::October,
        "Nov" => time::Month::November,
        "Dec" => time::Month::December,
        _ => return None,
    };
    let year: i32 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|n| n.parse::<u8>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" {
        return None;
    }
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let at = date.with_hms(hour, minute, second).ok()?;
    Some(at.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_read_as_unix_seconds() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Mon, 07 Dec 2026 12:34:44 GMT"), Some(1_796_646_884));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None, "the obsolete forms are not sent");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(parse_http_date("Sun, 31 Feb 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("127.0.0.1:7001"), "127.0.0.1");
        assert_eq!(host_of("fra.example.net:7001"), "fra.example.net");
        assert_eq!(host_of("[::1]:7001"), "::1");
    }
}
