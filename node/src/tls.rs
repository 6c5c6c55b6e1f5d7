//! TLS at run time: the certificates a node holds, what its listeners accept, how it dials its
//! peers, and what it tells about them.
//!
//! A node holds two identities ([`Identity`]): `internal` (its certificate of the cluster CA:
//! the internal listener, and the client certificate of every call to a peer) and `public`
//! (the S3 and web listeners; the same object unless `public_cert` is set). One task
//! ([`NodeTls::run_reload`]) reloads both on SIGHUP and when their files change, and warns
//! about coming expiries. Every refused connection is recorded in [`Refusals`] (logs,
//! `/metrics`, `/api/v1/cluster`).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meridian_admin::tls_status::{CertificateStatus, RecentRefusal, RefusalCount, TlsStatus, TlsStatusSource};
use meridian_raft::network::PeerTransport;
use meridian_tls::{Identity, Refusal, TlsAcceptor, TrustAnchors};

use crate::config::{ClusterConfig, InternalTls, RegionConfig};
use crate::listeners::opened::ConnectionsOpened;
use crate::listeners::tls::{ListenerTls, PeerCheck};
use crate::shutdown::Shutdown;

/// How often the certificate files' modification times are checked.
const RELOAD_POLL: Duration = Duration::from_secs(10);
/// How often a coming expiry is warned about again.
const EXPIRY_WARNING_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The listeners whose refusals are counted, in the order of [`Refusals`]' counters.
const LISTENERS: [&str; 3] = ["s3", "web", "internal"];
/// How many refusals the status keeps.
const RECENT_REFUSALS: usize = 10;
/// Least time between two log lines about refusals of the same client address.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Client addresses whose last log time is remembered before old ones are forgotten.
const REFUSAL_LOG_PEERS: usize = 4096;

/// Connections the listeners refused: counters per listener and reason, the last few, and
/// when each client address was last logged (a client retrying in a loop, or a scanner, must
/// not flood the log).
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// `[listener][reason]`, in [`LISTENERS`] and [`Refusal::LABELS`] order.
    counts: [[AtomicU64; Refusal::LABELS.len()]; LISTENERS.len()],
    /// The last [`RECENT_REFUSALS`], oldest first.
    recent: Mutex<VecDeque<RecentRefusal>>,
    /// Per client address: when it was last logged, and refusals not logged since.
    logged: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

impl Refusals {
    /// Counts, keeps and (at most once per address per [`REFUSAL_LOG_INTERVAL`]) logs a
    /// refused connection.
    pub(crate) fn record(&self, listener: &'static str, peer: SocketAddr, refusal: &Refusal) {
        let l = LISTENERS.iter().position(|x| *x == listener).unwrap_or(0);
        let r = Refusal::LABELS.iter().position(|x| *x == refusal.label()).unwrap_or(0);
        self.counts[l][r].fetch_add(1, Ordering::Relaxed);
        {
            let mut recent = lock(&self.recent);
            if recent.len() == RECENT_REFUSALS {
                recent.pop_front();
            }
            recent.push_back(RecentRefusal {
                at_unix_ms: now_unix_ms(),
                listener: listener.to_owned(),
                peer: peer.to_string(),
                reason: refusal.to_string(),
            });
        }
        let suppressed = {
            let mut logged = lock(&self.logged);
            let now = Instant::now();
            if logged.len() >= REFUSAL_LOG_PEERS {
                logged.retain(|_, (at, _)| now.duration_since(*at) < REFUSAL_LOG_INTERVAL);
            }
            match logged.get_mut(&peer.ip()) {
                Some((at, skipped)) if now.duration_since(*at) < REFUSAL_LOG_INTERVAL => {
                    *skipped += 1;
                    None
                }
                Some((at, skipped)) => {
                    *at = now;
                    Some(std::mem::take(skipped))
                }
                None => {
                    if logged.len() < REFUSAL_LOG_PEERS {
                        logged.insert(peer.ip(), (now, 0));
                    }
                    Some(0)
                }
            }
        };
        if let Some(suppressed) = suppressed {
            tracing::warn!(
                listener,
                peer = %peer,
                reason = %refusal,
                earlier_unlogged = suppressed,
                "refused a connection"
            );
        }
    }

    /// Every counter (zeros included) and the recent refusals.
    fn snapshot(&self) -> (Vec<RefusalCount>, Vec<RecentRefusal>) {
        let mut counts = Vec::with_capacity(LISTENERS.len() * Refusal::LABELS.len());
        for (listener, row) in LISTENERS.iter().zip(&self.counts) {
            for (reason, count) in Refusal::LABELS.iter().zip(row) {
                counts.push(RefusalCount {
                    listener: (*listener).to_owned(),
                    reason: (*reason).to_owned(),
                    count: count.load(Ordering::Relaxed),
                });
            }
        }
        (counts, lock(&self.recent).iter().cloned().collect())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One node's TLS: its identities, the cluster CA, and who may connect.
pub(crate) struct NodeTls {
    /// The node's certificate of the cluster CA: internal listener and calls to peers.
    internal: Arc<Identity>,
    /// The S3 and web listeners' certificate (the same object as `internal` without
    /// `public_cert`).
    public: Arc<Identity>,
    /// The cluster CA.
    anchors: TrustAnchors,
    /// Mutual TLS only, or plaintext too (rolling upgrade).
    mode: InternalTls,
    /// Who the internal listener admits: `[cluster] name` and the regions of cluster.toml.
    peers: PeerCheck,
    /// Days ahead of an expiry from which it is warned about.
    warning_days: u32,
    /// The listeners' refusals.
    refusals: Arc<Refusals>,
    /// The connections the listeners served.
    opened: Arc<ConnectionsOpened>,
}

impl NodeTls {
    /// Loads the CA and the certificates of `region`; fails, naming the file, when one is
    /// missing or its key does not match (a node must not start without its certificates).
    pub(crate) fn load(config: &ClusterConfig, region: &RegionConfig) -> anyhow::Result<Self> {
        let tls = config.tls();
        let ca = config.resolve(&tls.ca_cert);
        let anchors = TrustAnchors::load(&ca).with_context(|| format!("[tls] ca_cert {}", ca.display()))?;
        let files = tls.region_files(region);
        let (cert, key) = (config.resolve(&files.cert), config.resolve(&files.key));
        let internal = load_identity(&cert, &key, &region.name)?;
        let (public_cert, public_key) = (config.resolve(&files.public_cert), config.resolve(&files.public_key));
        let public = if (&public_cert, &public_key) == (&cert, &key) {
            internal.clone()
        } else {
            load_identity(&public_cert, &public_key, &region.name)?
        };
        let summary = internal.summary();
        let expected = meridian_tls::NodeName::new(&config.cluster.name, &region.name);
        if summary.name.as_ref() != Some(&expected) {
            // Peers would refuse every call of this node: say so at start, not as timeouts.
            tracing::warn!(
                certificate = %cert.display(),
                names = ?summary.name.map(|n| n.uri()),
                expected = %expected.uri(),
                "this node's certificate does not name its region of this cluster; peers will refuse it"
            );
        }
        Ok(Self {
            internal,
            public,
            anchors,
            mode: tls.internal,
            peers: PeerCheck {
                cluster: config.cluster.name.clone(),
                regions: config.region.iter().map(|r| r.name.clone()).collect(),
                members: Arc::default(),
            },
            warning_days: tls.expiry_warning_days,
            refusals: Arc::default(),
            opened: Arc::default(),
        })
    }

    /// The connections the listeners served, for `/metrics`.
    pub(crate) fn opened(&self) -> &Arc<ConnectionsOpened> {
        &self.opened
    }

    /// Lets the internal listener also admit the regions of the Raft membership (see
    /// [`PeerCheck`]), once the store is open.
    pub(crate) fn admit_members_of(&self, meta: &meridian_raft::MetaStore) {
        let _ = self.peers.members.set(meta.clone());
    }

    /// How calls to peers travel: mutual TLS with this node's certificate, or plaintext in
    /// `accept-plaintext` mode (peers of the old release cannot answer TLS yet).
    pub(crate) fn peer_transport(&self) -> anyhow::Result<PeerTransport> {
        transport(self.mode, self.internal.clone(), &self.anchors)
    }

    /// The internal listener's TLS: mutual, this cluster's nodes only; plaintext too in
    /// `accept-plaintext` mode.
    pub(crate) fn internal_listener(&self) -> anyhow::Result<ListenerTls> {
        let config = meridian_tls::internal_server_config(self.internal.clone(), &self.anchors)?;
        Ok(ListenerTls {
            acceptor: TlsAcceptor::from(config),
            plaintext: self.mode == InternalTls::AcceptPlaintext,
            peers: Some(self.peers.clone()),
            refusals: self.refusals.clone(),
            opened: self.opened.clone(),
        })
    }

    /// An S3 or web listener bound to `bind`: HTTPS, and plain HTTP too where the config
    /// allows it (loopback, `plain_http_networks`).
    pub(crate) fn public_listener(&self, config: &ClusterConfig, bind: &str) -> anyhow::Result<ListenerTls> {
        let ip = bind.parse::<SocketAddr>().with_context(|| format!("listener address {bind:?}"))?.ip();
        let server = meridian_tls::public_server_config(self.public.clone())?;
        Ok(ListenerTls {
            acceptor: TlsAcceptor::from(server),
            plaintext: config.tls().plain_http_allowed(ip),
            peers: None,
            refusals: self.refusals.clone(),
            opened: self.opened.clone(),
        })
    }

    /// The identities, each once, with their role.
    fn identities(&self) -> Vec<(&'static str, &Arc<Identity>)> {
        let mut all = vec![("internal", &self.internal)];
        if !Arc::ptr_eq(&self.internal, &self.public) {
            all.push(("public", &self.public));
        }
        all
    }

    /// Reloads the certificates on SIGHUP (always) and when their files change (polled every
    /// [`RELOAD_POLL`]), until shutdown; warns at start and once a day about certificates that
    /// expire within `expiry_warning_days`. A file that does not load keeps the pair in use
    /// (error logged): a botched renewal must not take the node off the network. Open
    /// connections keep what they started with; new handshakes use the new pair.
    pub(crate) async fn run_reload(self: Arc<Self>, shutdown: Shutdown) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; certificates reload on file change only");
                None
            }
        };
        let mut poll = tokio::time::interval(RELOAD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        self.warn_expiring();
        let mut last_warning = Instant::now();
        loop {
            let forced = tokio::select! {
                _ = poll.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                () = shutdown.wait() => return,
            };
            if forced {
                tracing::info!("SIGHUP: reloading the TLS certificates");
            }
            for (role, identity) in self.identities() {
                match identity.reload(forced) {
                    Ok(Some(summary)) => {
                        tracing::info!(
                            certificate = role,
                            path = %summary.path.display(),
                            not_after = %unix_text(summary.not_after_unix),
                            expires_in_days = summary.expires_in_secs() / 86_400,
                            "loaded a new TLS certificate"
                        );
                        // A renewal that is itself about to expire is worth saying at once.
                        self.warn_if_expiring(role, identity);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(
                        certificate = role,
                        error = %e,
                        "cannot reload the TLS certificate; the one in use stays"
                    ),
                }
            }
            if last_warning.elapsed() >= EXPIRY_WARNING_EVERY {
                last_warning = Instant::now();
                self.warn_expiring();
            }
        }
    }

    /// Warns about each certificate that expires within `expiry_warning_days` (or has).
    fn warn_expiring(&self) {
        for (role, identity) in self.identities() {
            self.warn_if_expiring(role, identity);
        }
    }

    /// Warns if `identity` expires within `expiry_warning_days` (or has).
    fn warn_if_expiring(&self, role: &str, identity: &Identity) {
        let summary = identity.summary();
        let left = summary.expires_in_secs();
        if left <= i64::from(self.warning_days) * 86_400 {
            tracing::warn!(
                certificate = role,
                path = %summary.path.display(),
                not_after = %unix_text(summary.not_after_unix),
                expires_in_days = left / 86_400,
                "TLS certificate expires soon: re-issue it (meridian cert issue); the node reloads it by itself"
            );
        }
    }
}

impl TlsStatusSource for NodeTls {
    fn tls_status(&self) -> TlsStatus {
        let certificates = [("internal", &self.internal), ("public", &self.public)]
            .into_iter()
            .map(|(role, identity)| {
                let summary = identity.summary();
                CertificateStatus {
                    certificate: role.to_owned(),
                    path: summary.path.display().to_string(),
                    not_after_unix: summary.not_after_unix,
                }
            })
            .collect();
        let (refusals, recent_refusals) = self.refusals.snapshot();
        TlsStatus { certificates, refusals, recent_refusals }
    }
}

/// RFC 3339 of a Unix time, for the logs.
fn unix_text(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

fn load_identity(cert: &Path, key: &Path, region: &str) -> anyhow::Result<Arc<Identity>> {
    Identity::load(cert, key).with_context(|| {
        format!(
            "the TLS certificate of region {region} ({} with {}); make it with `meridian cert issue --region {region}`",
            cert.display(),
            key.display()
        )
    })
}

fn transport(mode: InternalTls, identity: Arc<Identity>, anchors: &TrustAnchors) -> anyhow::Result<PeerTransport> {
    Ok(match mode {
        InternalTls::Mutual => PeerTransport::Tls(Box::new(meridian_tls::internal_client_config(identity, anchors)?)),
        InternalTls::AcceptPlaintext => PeerTransport::Plain,
    })
}

/// Whose certificate a command-line tool presents to the internal listeners.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CliIdentity<'a> {
    /// The region's (`meridian scrub --region`: the node it asks).
    Of(&'a str),
    /// The first region of the config whose key file this user can read (`meridian key`).
    FirstReadable,
    /// The first readable one of a region other than this one, else this one's: membership
    /// changes name a region the running nodes may not admit (one being added is in their
    /// configs only once they restart) or whose host may be gone (one being removed).
    Besides(&'a str),
}

/// How a command-line tool dials the internal listeners (see [`CliIdentity`]): the tool runs
/// on a node's host, with that node's files.
pub(crate) fn cli_transport(config: &ClusterConfig, who: CliIdentity<'_>) -> anyhow::Result<PeerTransport> {
    let tls = config.tls();
    if tls.internal == InternalTls::AcceptPlaintext {
        return Ok(PeerTransport::Plain);
    }
    let ca = config.resolve(&tls.ca_cert);
    let anchors = TrustAnchors::load(&ca).with_context(|| format!("[tls] ca_cert {}", ca.display()))?;
    let files_of = |r: &RegionConfig| {
        let files = tls.region_files(r);
        (config.resolve(&files.cert), config.resolve(&files.key))
    };
    let readable = |r: &&RegionConfig| std::fs::File::open(files_of(r).1).is_ok();
    let chosen = match who {
        CliIdentity::Of(name) => Some(config.region(name).with_context(|| format!("no [[region]] named {name:?}"))?),
        CliIdentity::FirstReadable => config.region.iter().find(readable),
        CliIdentity::Besides(name) => {
            config.region.iter().filter(|r| r.name != name).find(readable).or_else(|| config.region(name))
        }
    };
    let (name, (cert, key)) = chosen.map(|r| (r.name.clone(), files_of(r))).with_context(|| {
        format!(
            "no region's TLS key is readable here ({}): the internal listeners admit only a node's \
                     certificate, so run this on a node's host as a user who can read its key",
            config.region.iter().map(|r| files_of(r).1.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let identity = load_identity(&cert, &key, &name)?;
    transport(tls.internal, identity, &anchors)
}

/// A `PeerClient` for a command-line tool (see [`cli_transport`]).
pub(crate) fn cli_peer_client(
    config: &ClusterConfig,
    who: CliIdentity<'_>,
) -> anyhow::Result<meridian_raft::network::PeerClient> {
    let signer = Arc::new(crate::listeners::internal::signer(config));
    meridian_raft::network::PeerClient::new(signer, cli_transport(config, who)?)
        .context("cannot build the client of the internal listeners")
}

/// An HTTP client for other nodes' S3 and web listeners: the system's roots and the cluster CA
/// (the default setup serves the nodes' own certificates there; a `public_cert` of a public
/// CA is trusted through the system's roots).
pub(crate) fn public_client(config: &ClusterConfig) -> anyhow::Result<reqwest::ClientBuilder> {
    let ca = config.resolve(&config.tls().ca_cert);
    let pem = std::fs::read(&ca).with_context(|| format!("[tls] ca_cert {}", ca.display()))?;
    let mut builder = reqwest::Client::builder();
    for cert in
        reqwest::Certificate::from_pem_bundle(&pem).with_context(|| format!("[tls] ca_cert {}", ca.display()))?
    {
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder)
}

/// The URL of a region's web listener for tools: `http://` where it answers plain HTTP
/// (loopback, `plain_http_networks`), else `https://`.
pub(crate) fn web_url(config: &ClusterConfig, region: &RegionConfig) -> String {
    let plain = region.web.parse::<SocketAddr>().is_ok_and(|a| config.tls().plain_http_allowed(a.ip()));
    format!("{}://{}", if plain { "http" } else { "https" }, region.web)
}
