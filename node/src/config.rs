//! `cluster.toml`: the one typed description of a cluster, shared by every node and tool.
//!
//! Loading checks everything a node relies on and names the offending field in its error, so
//! a bad file is refused at start instead of failing later in a confusing way.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A config file that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (not a `source`: the message already says it once).
        cause: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (toml names the field).
    #[error("{path}: {cause}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and key.
        cause: Box<toml::de::Error>,
    },
    /// A field has a value that cannot work.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field, e.g. `region[1].s3`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterConfig {
    /// Cluster-wide settings.
    pub(crate) cluster: ClusterSection,
    /// The development access key; optional (`scripts/cluster-up` and the tests use one).
    #[serde(default)]
    pub(crate) dev_key: Option<DevKey>,
    /// Raft timing.
    #[serde(default)]
    pub(crate) raft: RaftSection,
    /// Storage settings.
    #[serde(default)]
    pub(crate) storage: StorageSection,
    /// Replication settings.
    #[serde(default)]
    pub(crate) replication: ReplicationSection,
    /// Client-position settings (used by geo routing).
    #[serde(default)]
    pub(crate) geo: GeoSection,
    /// Who may call the web listener's JSON API besides access-key holders.
    #[serde(default)]
    pub(crate) api: ApiSection,
    /// The event bus: retained history and webhook subscriptions.
    #[serde(default)]
    pub(crate) events: EventsSection,
    /// Sign-in through the cinema's Auth service; without it the user routes answer 503.
    #[serde(default)]
    pub(crate) auth: Option<AuthSection>,
    /// Share links: how many wrong passwords are tolerated.
    #[serde(default)]
    pub(crate) shares: SharesSection,
    /// Timeouts and connection caps of the three listeners.
    #[serde(default)]
    pub(crate) limits: LimitsSection,
    /// Signatures of requests between nodes.
    #[serde(default)]
    pub(crate) internal_rpc: InternalRpcSection,
    /// The regions, one node each, in the order scripts list them.
    pub(crate) region: Vec<RegionConfig>,
    /// Directory of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub(crate) base_dir: PathBuf,
}

/// The development secrets of the repository's `cluster.toml`: public, so refused on any
/// non-loopback listener (see [`ClusterConfig::refuse_shipped_secrets`]).
const SHIPPED_CLUSTER_SECRET: &str = "dev-only-cluster-secret-change-me-0123456789";
/// The shipped `[dev_key]` id.
const SHIPPED_DEV_KEY_ID: &str = "MERIDIANDEV0000000001";
/// The shipped `[dev_key]` secret.
const SHIPPED_DEV_KEY_SECRET: &str = "meridian-dev-secret-access-key-0000000001";
/// The shipped `[auth] hs256_secret` (the stand-in Auth service signs with it).
const SHIPPED_AUTH_SECRET: &str = "dev-only-auth-secret-change-me-0123456789abcdef";
/// The shipped `[auth] service_token`.
const SHIPPED_AUTH_SERVICE_TOKEN: &str = "dev-only-auth-service-token-0123456789";
/// The secret of the commented-out `[[events.webhook]]` example.
const SHIPPED_WEBHOOK_SECRET: &str = "change-me-shared-with-the-receiver";

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSection {
    /// Name of the cluster; Raft refuses peers with another.
    pub(crate) name: String,
    /// Key of the HMAC that signs internal requests.
    pub(crate) secret: String,
    /// Region for clients whose position is unknown.
    pub(crate) default_region: String,
    /// Base domain for virtual-host style S3 requests (`bucket.domain`); path style always works.
    #[serde(default)]
    pub(crate) s3_domain: Option<String>,
}

/// `[dev_key]`: installed in the replicated key store by the first voter at each start (a
/// deleted dev key comes back then: remove the section to keep it gone).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevKey {
    /// Access key id.
    pub(crate) access_key_id: String,
    /// Secret access key.
    pub(crate) secret_access_key: String,
}

/// `[raft]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RaftSection {
    /// Leader heartbeat interval.
    pub(crate) heartbeat_ms: u64,
    /// Election timeout, lower bound.
    pub(crate) election_timeout_min_ms: u64,
    /// Election timeout, upper bound.
    pub(crate) election_timeout_max_ms: u64,
    /// Entries between snapshots.
    pub(crate) snapshot_every: u64,
    /// How long a write may wait for its commit before the client gets ServiceUnavailable.
    pub(crate) commit_timeout_ms: u64,
    /// `linearizable` (default): every read first catches up with the leader's commit index;
    /// `local`: reads of known keys are served from local state without a round trip.
    pub(crate) read_consistency: ReadConsistencySetting,
    /// How long a read lease lasts, ms: while a node holds one, a linearizable read costs no
    /// round trip (see docs/architecture.md, "Read leases"). Unset: `election_timeout_min_ms`;
    /// 0: no leases (every linearizable read asks the leader for a read index). At most
    /// `election_timeout_min_ms`, because a new leader only waits out leases up to its election
    /// timeout; every node must use the same value (a leader refuses leases to other durations).
    pub(crate) read_lease_ms: Option<u64>,
}

/// `[raft] read_consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReadConsistencySetting {
    /// See [`meridian_s3gw::ReadConsistency::Linearizable`].
    Linearizable,
    /// See [`meridian_s3gw::ReadConsistency::Local`].
    Local,
}

impl Default for RaftSection {
    fn default() -> Self {
        Self {
            heartbeat_ms: 300,
            election_timeout_min_ms: 1500,
            election_timeout_max_ms: 3000,
            snapshot_every: 20_000,
            commit_timeout_ms: 10_000,
            read_consistency: ReadConsistencySetting::Linearizable,
            read_lease_ms: None,
        }
    }
}

/// `[limits]`: what one client can hold of a listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    /// Time a client has to send a request's headers (also how long an idle keep-alive
    /// connection stays open): bounds slowloris connections.
    pub(crate) header_read_timeout_ms: u64,
    /// A connection on which no byte moves for this long, while it waits on the client (a
    /// stalled body, an unread response), is closed. The server's own silence (a handler
    /// working, a long poll, an event stream between events) is not idle.
    pub(crate) idle_timeout_ms: u64,
    /// Most open connections on the S3 listener; further clients wait to be accepted.
    pub(crate) max_connections_s3: usize,
    /// Most open connections on the web listener.
    pub(crate) max_connections_web: usize,
    /// Most open connections on the internal listener (peers and the CLI only).
    pub(crate) max_connections_internal: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections_s3: 4096,
            max_connections_web: 4096,
            max_connections_internal: 256,
        }
    }
}

/// `[internal_rpc]`: signatures of requests between nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct InternalRpcSection {
    /// Also send and accept the signature of releases before scheme v2, which does not name
    /// the destination node or the cluster and has no nonce (replayable within 30 s to any
    /// node). Only for a rolling upgrade from such a release: turn it off once every node runs
    /// this one.
    pub(crate) legacy_signatures: bool,
    /// Nonces of accepted requests a node remembers for the replay window; when full, the
    /// oldest goes and requests as old are refused.
    pub(crate) nonce_cache_entries: usize,
}

impl Default for InternalRpcSection {
    fn default() -> Self {
        Self { legacy_signatures: false, nonce_cache_entries: 100_000 }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageSection {
    /// Multipart uploads older than this are aborted.
    pub(crate) multipart_max_age_secs: u64,
    /// Pause between the end of one scrub pass and the start of the next (a pass re-reads every
    /// blob this node holds, to find missing and corrupt copies and pull them again); 0 turns
    /// the periodic scrub off (`meridian scrub` still runs one on demand).
    pub(crate) scrub_interval_secs: u64,
    /// Read bandwidth of a scrub pass, MiB/s, so it does not starve clients of the disk;
    /// 0 means unlimited.
    pub(crate) scrub_bandwidth_mib_per_sec: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self { multipart_max_age_secs: 24 * 3600, scrub_interval_secs: 6 * 3600, scrub_bandwidth_mib_per_sec: 64 }
    }
}

/// `[replication]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ReplicationSection {
    /// How many blobs a node pulls at once.
    pub(crate) max_concurrent_pulls: usize,
    /// Bandwidth limit of all pulls of a node together, MiB/s; 0 means unlimited.
    pub(crate) bandwidth_mib_per_sec: u64,
}

impl Default for ReplicationSection {
    fn default() -> Self {
        Self { max_concurrent_pulls: 4, bandwidth_mib_per_sec: 0 }
    }
}

/// `[geo]`: where clients are and how requests are routed to nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GeoSection {
    /// The CIDR-to-region map ("fake GeoIP"), asked first.
    pub(crate) cidr: Vec<CidrRule>,
    /// MaxMind-format GeoIP databases (GeoIP2 City or DB-IP City Lite), asked in order after the
    /// CIDR map; relative to the config file. Empty: no GeoIP, unknown clients get the default
    /// region.
    pub(crate) mmdb: Vec<PathBuf>,
    /// Reverse proxies (CIDR) whose `Forwarded` / `X-Forwarded-For` headers are believed.
    pub(crate) trusted_proxies: Vec<String>,
    /// The one header the trusted proxies write: `x-forwarded-for` or `forwarded`. The other is
    /// ignored, since a proxy passes it through as the client wrote it.
    pub(crate) forwarded_header: String,
    /// Downloads: holders within this many km of the nearest holder share the load.
    pub(crate) near_tier_km: f64,
    /// How often each node polls its peers' load and health.
    pub(crate) load_interval_ms: u64,
    /// A load report older than this many intervals counts as unknown.
    pub(crate) load_stale_intervals: u32,
    /// Outgoing S3 bytes per second that weigh as much as one more request in flight.
    pub(crate) bytes_per_sec_per_request: u64,
    /// Validity of the presigned URLs the routing API hands out.
    pub(crate) presign_expiry_secs: u64,
    /// Uploads above this size get a multipart plan instead of one PUT URL.
    pub(crate) multipart_threshold_mib: u64,
    /// Part size of multipart plans.
    pub(crate) multipart_part_mib: u64,
}

impl Default for GeoSection {
    fn default() -> Self {
        Self {
            cidr: Vec::new(),
            mmdb: Vec::new(),
            trusted_proxies: Vec::new(),
            forwarded_header: meridian_geo::ForwardedHeader::default().name().to_owned(),
            near_tier_km: 1500.0,
            load_interval_ms: 1000,
            load_stale_intervals: 3,
            bytes_per_sec_per_request: 10 * 1024 * 1024,
            presign_expiry_secs: 300,
            multipart_threshold_mib: 64,
            multipart_part_mib: 16,
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSection {
    /// Bearer tokens of the cinema's services (event consumers, the upload front end).
    #[serde(default)]
    pub(crate) service_token: Vec<ServiceTokenConfig>,
    /// Who may read `/metrics` and `/api/v1/cluster` (they describe the cluster's members,
    /// addresses and load).
    #[serde(default)]
    pub(crate) status_access: StatusAccess,
}

/// `[api] status_access`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusAccess {
    /// Open when the node's web listener binds a loopback address, else `token`.
    #[default]
    Auto,
    /// Anyone who reaches the web listener.
    Open,
    /// Only callers with a service token or an access key (as on the rest of the JSON API).
    Token,
}

impl ApiSection {
    /// Whether the status routes are open to anyone on a web listener bound to `web`.
    pub(crate) fn status_open(&self, web: &str) -> bool {
        match self.status_access {
            StatusAccess::Open => true,
            StatusAccess::Token => false,
            StatusAccess::Auto => web.parse::<SocketAddr>().is_ok_and(|addr| addr.ip().is_loopback()),
        }
    }
}

/// `[shares]`: limits on guessing a share link's password (per node), and how long the URLs
/// handed out through shares live (see docs/admin.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SharesSection {
    /// Wrong passwords tolerated per link within the window, from anyone (1 to 10,000).
    pub(crate) password_attempts_per_link: u32,
    /// Wrong passwords tolerated per client (IPv4 address or IPv6 /64) within the window, over
    /// all links (1 to 10,000).
    pub(crate) password_attempts_per_client: u32,
    /// The window, seconds (1 to one day).
    pub(crate) password_window_secs: u64,
    /// Life of a presigned URL handed out through a share, seconds (5 to 3600): the most a URL
    /// outlives a revocation, so kept short (the download itself may take longer: S3 checks the
    /// expiry when the request starts).
    pub(crate) presign_secs: u64,
    /// Downloads through links tolerated per link within `uses_window_secs`, from anyone (1 to
    /// 100,000: each is remembered for the window).
    pub(crate) uses_per_link: u32,
    /// Downloads tolerated per client (IPv4 address or IPv6 /64) within the window, over all
    /// links (1 to 100,000).
    pub(crate) uses_per_client: u32,
    /// The window of the download limits, seconds (1 to one day).
    pub(crate) uses_window_secs: u64,
    /// How often downloads of links without a limit are committed as one count per link,
    /// milliseconds (50 to 60,000): what a node that stops may leave uncounted.
    pub(crate) flush_ms: u64,
}

impl Default for SharesSection {
    fn default() -> Self {
        let defaults = meridian_admin::ShareSettings::default();
        Self {
            password_attempts_per_link: defaults.attempts.per_link,
            password_attempts_per_client: defaults.attempts.per_client,
            password_window_secs: defaults.attempts.window.as_secs(),
            presign_secs: defaults.presign.as_secs(),
            uses_per_link: defaults.uses.per_link,
            uses_per_client: defaults.uses.per_client,
            uses_window_secs: defaults.uses.window.as_secs(),
            flush_ms: u64::try_from(defaults.flush_every.as_millis()).unwrap_or(1000),
        }
    }
}

impl SharesSection {
    /// The settings as the web listener applies them.
    pub(crate) fn settings(&self) -> meridian_admin::ShareSettings {
        meridian_admin::ShareSettings {
            attempts: meridian_admin::AttemptLimits {
                per_link: self.password_attempts_per_link,
                per_client: self.password_attempts_per_client,
                window: Duration::from_secs(self.password_window_secs),
            },
            presign: Duration::from_secs(self.presign_secs),
            uses: meridian_admin::AttemptLimits {
                per_link: self.uses_per_link,
                per_client: self.uses_per_client,
                window: Duration::from_secs(self.uses_window_secs),
            },
            flush_every: Duration::from_millis(self.flush_ms),
        }
    }
}

/// `[events]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct EventsSection {
    /// Most events the retained history keeps (at least 1): how far back a consumer can resume.
    pub(crate) retain: u64,
    /// Events older than this many seconds (counted back from the newest event) are dropped
    /// too; 0: no age limit.
    pub(crate) retain_max_age_secs: u64,
    /// Webhook subscriptions: every event POSTed to each, in order, at least once.
    pub(crate) webhook: Vec<WebhookConfig>,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self { retain: 100_000, retain_max_age_secs: 0, webhook: Vec::new() }
    }
}

impl EventsSection {
    /// The retention the leader trims the history to (see `event_trim`).
    pub(crate) fn retention(&self) -> meridian_raft::EventRetention {
        meridian_raft::EventRetention {
            max_events: self.retain,
            max_age: (self.retain_max_age_secs > 0).then(|| Duration::from_secs(self.retain_max_age_secs)),
        }
    }
}

/// One `[[events.webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    /// Names the subscription: its delivery progress is recorded under this name, so renaming it
    /// starts over from the oldest retained event.
    pub(crate) name: String,
    /// Where events are POSTed (`http://` or `https://`).
    pub(crate) url: String,
    /// Key of the HMAC-SHA256 that signs each delivery, shared with the receiver.
    pub(crate) secret: String,
    /// Most events per POST: a receiver that was down catches up in batches of this size.
    #[serde(default = "WebhookConfig::default_max_batch")]
    pub(crate) max_batch: usize,
    /// How long one POST may take before it counts as failed.
    #[serde(default = "WebhookConfig::default_timeout_ms")]
    pub(crate) timeout_ms: u64,
    /// Delay before the first retry of a failed POST; doubles on each failure...
    #[serde(default = "WebhookConfig::default_retry_min_ms")]
    pub(crate) retry_min_ms: u64,
    /// ...up to this. Retries never stop while the node leads: dropping events would break
    /// at-least-once delivery.
    #[serde(default = "WebhookConfig::default_retry_max_ms")]
    pub(crate) retry_max_ms: u64,
}

impl WebhookConfig {
    fn default_max_batch() -> usize {
        100
    }
    fn default_timeout_ms() -> u64 {
        10_000
    }
    fn default_retry_min_ms() -> u64 {
        500
    }
    fn default_retry_max_ms() -> u64 {
        60_000
    }
}

/// One `[[api.service_token]]`: only the token's hash is in the file, so a leaked config does not
/// leak the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceTokenConfig {
    /// Who holds the token; the actor name of what it does.
    pub(crate) name: String,
    /// Lowercase hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub(crate) sha256: String,
}

impl ApiSection {
    /// The tokens in the form the web listener checks.
    pub(crate) fn service_tokens(&self) -> Vec<meridian_admin::ServiceToken> {
        self.service_token
            .iter()
            .filter_map(|t| {
                let mut sha256 = [0u8; 32];
                hex::decode_to_slice(&t.sha256, &mut sha256).ok()?;
                Some(meridian_admin::ServiceToken { name: t.name.clone(), sha256 })
            })
            .collect()
    }
}

/// `[auth]`: where the cinema's Auth service is and how its tokens are checked (the contract
/// is `docs/auth.md`). Required fields default to empty and are reported by validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthSection {
    /// The login endpoint (`POST`, login + password -> tokens).
    pub(crate) login_url: String,
    /// The refresh endpoint (`POST`, refresh token -> tokens).
    pub(crate) refresh_url: String,
    /// The paginated user list (`GET`, called with `service_token`).
    pub(crate) users_url: String,
    /// The JWKS of RS256 keys; RS256 needs this or `public_key_file`.
    pub(crate) jwks_url: Option<String>,
    /// The one accepted token algorithm; tokens with another `alg` are refused.
    pub(crate) algorithm: AuthAlgorithm,
    /// HS256: the secret shared with the Auth service (at least 32 bytes).
    pub(crate) hs256_secret: Option<String>,
    /// RS256: the Auth service's public key, PEM (relative to the config file).
    pub(crate) public_key_file: Option<PathBuf>,
    /// Required `iss` of tokens.
    pub(crate) issuer: String,
    /// Required `aud` of tokens, if the Auth service sets one.
    pub(crate) audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub(crate) leeway_secs: u64,
    /// Bearer token Meridian presents to the user list.
    pub(crate) service_token: String,
    /// How often the leader syncs the user list, seconds.
    pub(crate) sync_interval_secs: u64,
    /// Users asked for per page of the user list.
    pub(crate) users_page_size: u32,
    /// Timeout of each call to the Auth service, ms.
    pub(crate) request_timeout_ms: u64,
    /// How long fetched JWKS keys are used before they are fetched again, seconds.
    pub(crate) jwks_refresh_secs: u64,
    /// Name of the session cookie (the refresh cookie adds `_refresh`).
    pub(crate) cookie_name: String,
    /// `auto` (Secure when the request came through TLS, per `X-Forwarded-Proto`), `always`, `never`.
    pub(crate) cookie_secure: CookieSecureSetting,
    /// `lax` or `strict`.
    pub(crate) cookie_same_site: SameSiteSetting,
    /// Sign-in attempts refused by the Auth service tolerated per login within
    /// `sign_in_window_secs`, from anyone (1 to 10,000); then 429.
    pub(crate) sign_in_attempts_per_login: u32,
    /// Sign-in attempts refused tolerated per client (IPv4 address or IPv6 /64) within the
    /// window, over all logins (1 to 10,000).
    pub(crate) sign_in_attempts_per_client: u32,
    /// The window of the sign-in limits, seconds (1 to one day).
    pub(crate) sign_in_window_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            login_url: String::new(),
            refresh_url: String::new(),
            users_url: String::new(),
            jwks_url: None,
            algorithm: AuthAlgorithm::Hs256,
            hs256_secret: None,
            public_key_file: None,
            issuer: String::new(),
            audience: None,
            leeway_secs: 30,
            service_token: String::new(),
            sync_interval_secs: 60,
            users_page_size: 100,
            request_timeout_ms: 5000,
            jwks_refresh_secs: 300,
            cookie_name: "meridian_session".into(),
            cookie_secure: CookieSecureSetting::Auto,
            cookie_same_site: SameSiteSetting::Lax,
            sign_in_attempts_per_login: 10,
            sign_in_attempts_per_client: 30,
            sign_in_window_secs: 300,
        }
    }
}

/// `[auth] algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum AuthAlgorithm {
    /// HMAC-SHA256 with `hs256_secret`.
    #[serde(rename = "HS256")]
    Hs256,
    /// RSA-SHA256 with `public_key_file` or `jwks_url`.
    #[serde(rename = "RS256")]
    Rs256,
}

/// `[auth] cookie_secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CookieSecureSetting {
    /// See [`meridian_admin::identity::CookieSecure::Auto`].
    Auto,
    /// See [`meridian_admin::identity::CookieSecure::Always`].
    Always,
    /// See [`meridian_admin::identity::CookieSecure::Never`].
    Never,
}

/// `[auth] cookie_same_site`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SameSiteSetting {
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
}

impl AuthSection {
    /// Checks the section; errors name the field (without the `auth.` prefix the caller adds).
    fn validate(&self, base_dir: &Path) -> Result<(), (String, String)> {
        let invalid = |field: &str, message: String| Err((field.to_owned(), message));
        for (field, url) in
            [("login_url", &self.login_url), ("refresh_url", &self.refresh_url), ("users_url", &self.users_url)]
                .into_iter()
                .chain(self.jwks_url.as_ref().map(|url| ("jwks_url", url)))
        {
            if url.is_empty() {
                return invalid(field, "must be set".into());
            }
            match reqwest::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                _ => return invalid(field, format!("{url:?} is not an http(s) URL")),
            }
        }
        match self.algorithm {
            AuthAlgorithm::Hs256 => {
                if self.hs256_secret.as_ref().is_none_or(|s| s.len() < 32) {
                    return invalid("hs256_secret", "HS256 needs a shared secret of at least 32 bytes".into());
                }
                if self.public_key_file.is_some() || self.jwks_url.is_some() {
                    return invalid(
                        "algorithm",
                        "HS256 takes hs256_secret; public_key_file and jwks_url are for RS256".into(),
                    );
                }
            }
            AuthAlgorithm::Rs256 => {
                if self.hs256_secret.is_some() {
                    return invalid("hs256_secret", "is for HS256; RS256 takes public_key_file or jwks_url".into());
                }
                match (&self.public_key_file, &self.jwks_url) {
                    (Some(_), Some(_)) | (None, None) => {
                        return invalid("algorithm", "RS256 needs exactly one of public_key_file and jwks_url".into());
                    }
                    (Some(file), None) => {
                        let file = resolve(base_dir, file);
                        if let Err(e) = std::fs::metadata(&file) {
                            return invalid("public_key_file", format!("{}: {e}", file.display()));
                        }
                    }
                    (None, Some(_)) => {}
                }
            }
        }
        if self.issuer.trim().is_empty() {
            return invalid("issuer", "must be set (the `iss` of the Auth service's tokens)".into());
        }
        if self.service_token.len() < 16 {
            return invalid("service_token", "must be at least 16 characters".into());
        }
        if self.leeway_secs > 300 {
            return invalid("leeway_secs", format!("{} is more than 300 seconds", self.leeway_secs));
        }
        if self.sync_interval_secs == 0 {
            return invalid("sync_interval_secs", "must be at least 1".into());
        }
        if !(1..=500).contains(&self.users_page_size) {
            return invalid("users_page_size", format!("{} is not within 1..=500", self.users_page_size));
        }
        if self.request_timeout_ms < 100 {
            return invalid("request_timeout_ms", "must be at least 100".into());
        }
        if self.jwks_refresh_secs < 10 {
            return invalid("jwks_refresh_secs", "must be at least 10".into());
        }
        for (field, value, max) in [
            ("sign_in_attempts_per_login", u64::from(self.sign_in_attempts_per_login), 10_000),
            ("sign_in_attempts_per_client", u64::from(self.sign_in_attempts_per_client), 10_000),
            ("sign_in_window_secs", self.sign_in_window_secs, 86_400),
        ] {
            if !(1..=max).contains(&value) {
                return invalid(field, format!("must be 1 to {max}"));
            }
        }
        if self.cookie_name.is_empty()
            || !self.cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return invalid("cookie_name", format!("{:?} must be letters, digits, '_' and '-'", self.cookie_name));
        }
        Ok(())
    }

    /// The settings of the web listener's identity part; reads the public key file.
    pub(crate) fn identity_settings(&self, base_dir: &Path) -> anyhow::Result<meridian_admin::IdentitySettings> {
        use meridian_admin::identity::{CookieSecure, CookieSettings, SameSite, VerificationKey};
        let key = match (self.algorithm, &self.public_key_file, &self.jwks_url) {
            (AuthAlgorithm::Hs256, ..) => {
                VerificationKey::Hs256 { secret: self.hs256_secret.clone().unwrap_or_default().into_bytes() }
            }
            (AuthAlgorithm::Rs256, Some(file), _) => {
                let file = resolve(base_dir, file);
                let pem = std::fs::read(&file)
                    .map_err(|e| anyhow::anyhow!("auth.public_key_file: cannot read {}: {e}", file.display()))?;
                VerificationKey::Rs256Pem { pem }
            }
            (AuthAlgorithm::Rs256, None, jwks) => VerificationKey::Rs256Jwks {
                url: jwks.clone().unwrap_or_default(),
                refresh: Duration::from_secs(self.jwks_refresh_secs),
            },
        };
        Ok(meridian_admin::IdentitySettings {
            login_url: self.login_url.clone(),
            refresh_url: self.refresh_url.clone(),
            users_url: self.users_url.clone(),
            key,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: Duration::from_secs(self.leeway_secs),
            service_token: self.service_token.clone(),
            sync_interval: Duration::from_secs(self.sync_interval_secs),
            users_page_size: self.users_page_size,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            cookie: CookieSettings {
                name: self.cookie_name.clone(),
                secure: match self.cookie_secure {
                    CookieSecureSetting::Auto => CookieSecure::Auto,
                    CookieSecureSetting::Always => CookieSecure::Always,
                    CookieSecureSetting::Never => CookieSecure::Never,
                },
                same_site: match self.cookie_same_site {
                    SameSiteSetting::Lax => SameSite::Lax,
                    SameSiteSetting::Strict => SameSite::Strict,
                },
            },
            sign_in_attempts: meridian_admin::AttemptLimits {
                per_link: self.sign_in_attempts_per_login,
                per_client: self.sign_in_attempts_per_client,
                window: Duration::from_secs(self.sign_in_window_secs),
            },
        })
    }
}

/// `path` resolved against the config file's directory.
pub(crate) fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base_dir.join(path) }
}

/// One `[[geo.cidr]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CidrRule {
    /// `address/prefix`.
    pub(crate) cidr: String,
    /// Region of the clients in it.
    pub(crate) region: String,
}

/// Whether a region votes in Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Votes and counts for the quorum.
    Voter,
    /// Receives the log but does not vote.
    Learner,
}

/// One `[[region]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegionConfig {
    /// Raft node id, unique and stable.
    pub(crate) id: u64,
    /// Region name, unique.
    pub(crate) name: String,
    /// Latitude of the region, degrees.
    pub(crate) latitude: f64,
    /// Longitude of the region, degrees.
    pub(crate) longitude: f64,
    /// S3 listener.
    pub(crate) s3: String,
    /// How clients reach the S3 listener, for presigned URLs (`http(s)://host[:port]`, e.g. a
    /// public name in front of it); `http://{s3}` when absent.
    #[serde(default)]
    pub(crate) s3_url: Option<String>,
    /// Web listener.
    pub(crate) web: String,
    /// Internal listener: the address peers dial, recorded in the Raft membership.
    pub(crate) internal: String,
    /// Address the internal listener binds when it is not `internal` itself: when peers reach
    /// this node through something in between (a relay, a NAT, a WAN emulator), they dial
    /// `internal` while the node listens here. Default: `internal`.
    #[serde(default)]
    pub(crate) internal_bind: Option<String>,
    /// Data directory (relative to the config file).
    pub(crate) data_dir: PathBuf,
    /// Voter or learner.
    pub(crate) role: Role,
}

impl ClusterConfig {
    /// Reads and validates a config file.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|cause| ConfigError::Read { path: path.to_path_buf(), cause })?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|cause| ConfigError::Parse { path: path.to_path_buf(), cause: Box::new(cause) })?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if config.base_dir.as_os_str().is_empty() {
            config.base_dir = PathBuf::from(".");
        }
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |field: String, message: String| ConfigError::Invalid { path: path.to_path_buf(), field, message };
        if self.cluster.name.trim().is_empty() {
            return Err(invalid("cluster.name".into(), "must not be empty".into()));
        }
        if self.cluster.secret.len() < 16 {
            return Err(invalid("cluster.secret".into(), "must be at least 16 characters".into()));
        }
        if let Some(dev_key) = &self.dev_key
            && (dev_key.access_key_id.len() < 3 || dev_key.secret_access_key.len() < 8)
        {
            return Err(invalid(
                "dev_key".into(),
                "access_key_id (>= 3 chars) and secret_access_key (>= 8 chars) are required".into(),
            ));
        }
        if self.region.is_empty() {
            return Err(invalid("region".into(), "at least one [[region]] is required".into()));
        }
        let raft = &self.raft;
        if raft.heartbeat_ms == 0 || raft.election_timeout_min_ms <= raft.heartbeat_ms {
            return Err(invalid(
                "raft.election_timeout_min_ms".into(),
                "must be greater than raft.heartbeat_ms (> 0)".into(),
            ));
        }
        if raft.election_timeout_max_ms <= raft.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms".into(),
                "must be greater than raft.election_timeout_min_ms".into(),
            ));
        }
        if let Some(lease) = raft.read_lease_ms
            && lease > raft.election_timeout_min_ms
        {
            return Err(invalid(
                "raft.read_lease_ms".into(),
                format!(
                    "{lease} is longer than raft.election_timeout_min_ms ({}): a new leader waits out the \
                     leases of its predecessor for at most its election timeout, so a longer lease could \
                     serve stale reads after a leader change",
                    raft.election_timeout_min_ms
                ),
            ));
        }
        let (mut ids, mut names, mut addrs) = (HashSet::new(), HashSet::new(), HashSet::new());
        for (i, region) in self.region.iter().enumerate() {
            let field = |name: &str| format!("region[{i}].{name}");
            if region.id == 0 || !ids.insert(region.id) {
                return Err(invalid(field("id"), format!("{} is zero or used twice", region.id)));
            }
            if region.name.is_empty()
                || !region.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    field("name"),
                    format!("{:?} must be lowercase letters, digits and '-'", region.name),
                ));
            }
            if !names.insert(region.name.clone()) {
                return Err(invalid(field("name"), format!("{:?} is used twice", region.name)));
            }
            if !(-90.0..=90.0).contains(&region.latitude) {
                return Err(invalid(field("latitude"), format!("{} is not within -90..=90", region.latitude)));
            }
            if !(-180.0..=180.0).contains(&region.longitude) {
                return Err(invalid(field("longitude"), format!("{} is not within -180..=180", region.longitude)));
            }
            let bind = region.internal_bind.iter().map(|a| ("internal_bind", a));
            for (name, addr) in
                [("s3", &region.s3), ("web", &region.web), ("internal", &region.internal)].into_iter().chain(bind)
            {
                if addr.parse::<SocketAddr>().is_err() {
                    return Err(invalid(field(name), format!("{addr:?} is not an ip:port address")));
                }
                if !addrs.insert(addr.clone()) {
                    return Err(invalid(field(name), format!("{addr} is used twice")));
                }
            }
            if let Some(url) = &region.s3_url {
                let host = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
                if host.is_none_or(|h| h.is_empty() || h.contains('/')) {
                    return Err(invalid(field("s3_url"), format!("{url:?} is not http(s)://host[:port]")));
                }
            }
        }
        if !self.region.iter().any(|r| r.role == Role::Voter) {
            return Err(invalid("region".into(), "at least one region must have role = \"voter\"".into()));
        }
        if !names.contains(&self.cluster.default_region) {
            return Err(invalid(
                "cluster.default_region".into(),
                format!("{:?} is not a configured region", self.cluster.default_region),
            ));
        }
        for (i, rule) in self.geo.cidr.iter().enumerate() {
            if let Err(e) = meridian_geo::parse_cidr(&rule.cidr) {
                return Err(invalid(format!("geo.cidr[{i}].cidr"), e.to_string()));
            }
            if !names.contains(&rule.region) {
                return Err(invalid(
                    format!("geo.cidr[{i}].region"),
                    format!("{:?} is not a configured region", rule.region),
                ));
            }
        }
        self.validate_geo(&invalid)?;
        self.validate_limits(&invalid)?;
        self.validate_events(path)?;
        self.validate_shares(path)?;
        if let Some(auth) = &self.auth {
            auth.validate(&self.base_dir).map_err(|(field, message)| invalid(format!("auth.{field}"), message))?;
        }
        for (i, token) in self.api.service_token.iter().enumerate() {
            if token.name.trim().is_empty() {
                return Err(invalid(format!("api.service_token[{i}].name"), "must not be empty".into()));
            }
            if token.sha256.len() != 64 || !token.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    format!("api.service_token[{i}].sha256"),
                    "must be 64 hex digits (the SHA-256 of the token)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Refuses the secrets shipped in the repository's `cluster.toml` (public, so known to
    /// anyone) unless every listener of `region` is on loopback, where they serve a laptop
    /// cluster. Per region, as a config may mix a loopback test region with real ones.
    pub(crate) fn refuse_shipped_secrets(&self, path: &Path, region: &RegionConfig) -> Result<(), ConfigError> {
        let listeners = [&region.s3, &region.web, &region.internal].into_iter().chain(region.internal_bind.as_ref());
        let exposed = listeners
            .map(|addr| (addr, addr.parse::<SocketAddr>()))
            .find(|(_, parsed)| parsed.as_ref().map_or(true, |a| !a.ip().to_canonical().is_loopback()));
        let Some((exposed, _)) = exposed else { return Ok(()) };
        let auth = self.auth.as_ref();
        let shipped = [
            ("cluster.secret", Some(self.cluster.secret.as_str()) == Some(SHIPPED_CLUSTER_SECRET)),
            ("dev_key.access_key_id", self.dev_key.as_ref().is_some_and(|k| k.access_key_id == SHIPPED_DEV_KEY_ID)),
            (
                "dev_key.secret_access_key",
                self.dev_key.as_ref().is_some_and(|k| k.secret_access_key == SHIPPED_DEV_KEY_SECRET),
            ),
            ("auth.hs256_secret", auth.is_some_and(|a| a.hs256_secret.as_deref() == Some(SHIPPED_AUTH_SECRET))),
            ("auth.service_token", auth.is_some_and(|a| a.service_token == SHIPPED_AUTH_SERVICE_TOKEN)),
        ];
        let hooks = self
            .events
            .webhook
            .iter()
            .enumerate()
            .map(|(i, hook)| (format!("events.webhook[{i}].secret"), hook.secret == SHIPPED_WEBHOOK_SECRET));
        let found = shipped.into_iter().map(|(field, bad)| (field.to_owned(), bad)).chain(hooks).find(|(_, bad)| *bad);
        match found {
            Some((field, _)) => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                message: format!(
                    "is the development value shipped with Meridian, which anyone can read; region {:?} \
                     listens on {exposed}, which is not loopback: set a secret of your own (or, for the \
                     dev key, remove [dev_key] and create keys with `meridian key create`)",
                    region.name
                ),
            }),
            None => Ok(()),
        }
    }

    /// Checks `[geo]` beyond the CIDR map.
    fn validate_geo(&self, invalid: &dyn Fn(String, String) -> ConfigError) -> Result<(), ConfigError> {
        let geo = &self.geo;
        for (i, proxy) in geo.trusted_proxies.iter().enumerate() {
            if let Err(e) = meridian_geo::parse_cidr(proxy) {
                return Err(invalid(format!("geo.trusted_proxies[{i}]"), e.to_string()));
            }
        }
        if meridian_geo::ForwardedHeader::from_name(&geo.forwarded_header).is_none() {
            return Err(invalid("geo.forwarded_header".into(), "must be \"x-forwarded-for\" or \"forwarded\"".into()));
        }
        for (i, path) in geo.mmdb.iter().enumerate() {
            let resolved = self.resolve(path);
            if !resolved.is_file() {
                return Err(invalid(
                    format!("geo.mmdb[{i}]"),
                    format!("{} is not a file (scripts/fetch-geoip downloads one)", resolved.display()),
                ));
            }
        }
        let checks: [(&str, bool, &str); 6] = [
            ("near_tier_km", geo.near_tier_km.is_finite() && geo.near_tier_km >= 0.0, "must be a number >= 0"),
            ("load_interval_ms", (100..=60_000).contains(&geo.load_interval_ms), "must be within 100..=60000"),
            ("load_stale_intervals", geo.load_stale_intervals >= 1, "must be at least 1"),
            (
                "presign_expiry_secs",
                (1..=meridian_admin::presign::MAX_EXPIRY_SECS).contains(&geo.presign_expiry_secs),
                "must be within 1..=604800 (7 days, the S3 limit)",
            ),
            (
                "multipart_part_mib",
                (5..=5120).contains(&geo.multipart_part_mib),
                "must be within 5..=5120 (S3 part limits)",
            ),
            ("bytes_per_sec_per_request", geo.bytes_per_sec_per_request > 0, "must be greater than 0"),
        ];
        for (name, ok, message) in checks {
            if !ok {
                return Err(invalid(format!("geo.{name}"), message.into()));
            }
        }
        Ok(())
    }

    /// Checks `[limits]` and `[internal_rpc]`.
    fn validate_limits(&self, invalid: &dyn Fn(String, String) -> ConfigError) -> Result<(), ConfigError> {
        let l = &self.limits;
        let checks: [(&str, u64, u64, u64); 6] = [
            ("limits.header_read_timeout_ms", l.header_read_timeout_ms, 100, 600_000),
            ("limits.idle_timeout_ms", l.idle_timeout_ms, 100, 3_600_000),
            ("limits.max_connections_s3", l.max_connections_s3 as u64, 1, 1_000_000),
            ("limits.max_connections_web", l.max_connections_web as u64, 1, 1_000_000),
            ("limits.max_connections_internal", l.max_connections_internal as u64, 1, 1_000_000),
            ("internal_rpc.nonce_cache_entries", self.internal_rpc.nonce_cache_entries as u64, 16, 100_000_000),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(invalid(field.into(), format!("{value} is not within {min}..={max}")));
            }
        }
        Ok(())
    }

    /// A path of the config, resolved against the config file's directory.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        resolve(&self.base_dir, path)
    }

    fn validate_shares(&self, path: &Path) -> Result<(), ConfigError> {
        let shares = &self.shares;
        for (field, value, min, max) in [
            ("password_attempts_per_link", u64::from(shares.password_attempts_per_link), 1, 10_000),
            ("password_attempts_per_client", u64::from(shares.password_attempts_per_client), 1, 10_000),
            ("password_window_secs", shares.password_window_secs, 1, 86_400),
            ("presign_secs", shares.presign_secs, 5, 3600),
            ("uses_per_link", u64::from(shares.uses_per_link), 1, 100_000),
            ("uses_per_client", u64::from(shares.uses_per_client), 1, 100_000),
            ("uses_window_secs", shares.uses_window_secs, 1, 86_400),
            ("flush_ms", shares.flush_ms, 50, 60_000),
        ] {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    field: format!("shares.{field}"),
                    message: format!("must be {min} to {max}"),
                });
            }
        }
        Ok(())
    }

    fn validate_events(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |field: String, message: String| ConfigError::Invalid { path: path.to_path_buf(), field, message };
        if self.events.retain == 0 {
            return Err(invalid("events.retain".into(), "must be at least 1".into()));
        }
        let mut names = HashSet::new();
        for (i, hook) in self.events.webhook.iter().enumerate() {
            let field = |name: &str| format!("events.webhook[{i}].{name}");
            if hook.name.is_empty() || !hook.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid(field("name"), format!("{:?} must be letters, digits, '-' and '_'", hook.name)));
            }
            if !names.insert(hook.name.as_str()) {
                return Err(invalid(field("name"), format!("{:?} is used twice", hook.name)));
            }
            match reqwest::Url::parse(&hook.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => return Err(invalid(field("url"), format!("{:?} is not an http(s) URL", hook.url))),
            }
            if hook.secret.len() < 16 {
                return Err(invalid(field("secret"), "must be at least 16 characters".into()));
            }
            if !(1..=1000).contains(&hook.max_batch) {
                return Err(invalid(field("max_batch"), format!("{} is not within 1..=1000", hook.max_batch)));
            }
            if hook.timeout_ms == 0 {
                return Err(invalid(field("timeout_ms"), "must be greater than 0".into()));
            }
            if hook.retry_min_ms == 0 || hook.retry_max_ms < hook.retry_min_ms {
                return Err(invalid(
                    field("retry_max_ms"),
                    "retry_min_ms must be > 0 and retry_max_ms at least retry_min_ms".into(),
                ));
            }
        }
        Ok(())
    }

    /// The region called `name`.
    pub(crate) fn region(&self, name: &str) -> Option<&RegionConfig> {
        self.region.iter().find(|r| r.name == name)
    }

    /// A region's data directory, resolved against the config file's directory.
    pub(crate) fn data_dir(&self, region: &RegionConfig) -> PathBuf {
        self.resolve(&region.data_dir)
    }

    /// Raft timing as the store wants it.
    pub(crate) fn timing(&self) -> meridian_raft::RaftTiming {
        meridian_raft::RaftTiming {
            heartbeat: Duration::from_millis(self.raft.heartbeat_ms),
            election_min: Duration::from_millis(self.raft.election_timeout_min_ms),
            election_max: Duration::from_millis(self.raft.election_timeout_max_ms),
            snapshot_every: self.raft.snapshot_every.max(1),
            commit_timeout: Duration::from_millis(self.raft.commit_timeout_ms.max(100)),
            read_lease: Duration::from_millis(self.raft.read_lease_ms.unwrap_or(self.raft.election_timeout_min_ms)),
        }
    }

    /// The read consistency the gateway applies.
    pub(crate) fn read_consistency(&self) -> meridian_s3gw::ReadConsistency {
        match self.raft.read_consistency {
            ReadConsistencySetting::Linearizable => meridian_s3gw::ReadConsistency::Linearizable,
            ReadConsistencySetting::Local => meridian_s3gw::ReadConsistency::Local,
        }
    }

    /// Where a region's internal listener binds: `internal_bind`, else `internal`.
    pub(crate) fn internal_bind(region: &RegionConfig) -> &str {
        region.internal_bind.as_deref().unwrap_or(&region.internal)
    }

    /// The membership record of a region.
    pub(crate) fn node_of(region: &RegionConfig) -> meridian_raft::RegionNode {
        meridian_raft::RegionNode {
            region: region.name.clone(),
            internal: region.internal.clone(),
            s3: region.s3.clone(),
            web: region.web.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<ClusterConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).expect("write config");
        ClusterConfig::load(&path)
    }

    const VALID: &str = r#"
[cluster]
name = "t"
secret = "0123456789abcdef0123"
default_region = "a"
[dev_key]
access_key_id = "KEY"
secret_access_key = "secret-secret"
[[region]]
id = 1
name = "a"
latitude = 1.0
longitude = 2.0
s3 = "127.0.0.1:1"
web = "127.0.0.1:2"
internal = "127.0.0.1:3"
data_dir = "data/a"
role = "voter"
"#;

    const WEBHOOK: &str = r#"
[[events.webhook]]
name = "catalog"
url = "http://127.0.0.1:9/hook"
secret = "0123456789abcdef-hook"
"#;

    #[test]
    fn webhooks_load_with_defaults() {
        let config = load_str(&format!("{VALID}{WEBHOOK}")).expect("valid");
        let hook = &config.events.webhook[0];
        assert_eq!((hook.max_batch, hook.retry_min_ms, hook.retry_max_ms), (100, 500, 60_000));
        assert_eq!(config.events.retain, 100_000);
    }

    const AUTH: &str = r#"
[auth]
login_url = "http://127.0.0.1:8100/auth/v1/login"
refresh_url = "http://127.0.0.1:8100/auth/v1/refresh"
users_url = "http://127.0.0.1:8100/auth/v1/users"
algorithm = "HS256"
hs256_secret = "0123456789abcdef0123456789abcdef"
issuer = "test"
service_token = "service-token-0123456789"
"#;

    #[test]
    fn auth_errors_name_the_field() {
        let valid = format!("{VALID}{AUTH}");
        assert!(load_str(&valid).is_ok(), "{:?}", load_str(&valid).err());
        let cases = [
            (valid.replace("0123456789abcdef0123456789abcdef", "short"), "auth.hs256_secret"),
            (valid.replace("http://127.0.0.1:8100/auth/v1/users", "ftp://x/users"), "auth.users_url"),
            (valid.replace("\"HS256\"", "\"RS256\""), "auth.hs256_secret"),
            (valid.replace("\"HS256\"", "\"none\""), "algorithm"),
            (valid.replace("issuer = \"test\"", "issuer = \"\""), "auth.issuer"),
            (format!("{valid}cookie_name = \"a b\"\n"), "auth.cookie_name"),
            (format!("{valid}sync_interval_secs = 0\n"), "auth.sync_interval_secs"),
            (format!("{valid}cookie_secure = \"sometimes\"\n"), "cookie_secure"),
            (
                valid
                    .replace("hs256_secret = \"0123456789abcdef0123456789abcdef\"", "public_key_file = \"nowhere.pem\"")
                    .replace("\"HS256\"", "\"RS256\""),
                "auth.public_key_file",
            ),
        ];
        for (text, field) in cases {
            let message = load_str(&text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(field), "error {message:?} should name {field}");
        }
    }

    #[test]
    fn the_shipped_cluster_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let config = ClusterConfig::load(&path).expect("cluster.toml loads");
        assert_eq!(config.region.len(), 3);
        assert!(config.auth.is_some(), "the shipped cluster signs in through the stand-in");
    }

    #[test]
    fn read_leases_default_to_the_election_timeout_and_may_not_exceed_it() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(config.timing().read_lease, Duration::from_millis(config.raft.election_timeout_min_ms));
        let off = load_str(&format!("{VALID}[raft]\nread_lease_ms = 0\n")).expect("leases off");
        assert_eq!(off.timing().read_lease, Duration::ZERO);
        let too_long = format!("{VALID}[raft]\nelection_timeout_min_ms = 400\nread_lease_ms = 401\n");
        let message = load_str(&too_long).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("raft.read_lease_ms") && message.contains("400"), "{message}");
    }

    #[test]
    fn listener_limits_and_internal_rpc_have_safe_defaults() {
        let config = load_str(VALID).expect("valid");
        let l = &config.limits;
        assert_eq!((l.header_read_timeout_ms, l.idle_timeout_ms), (10_000, 60_000));
        assert_eq!((l.max_connections_s3, l.max_connections_web, l.max_connections_internal), (4096, 4096, 256));
        assert!(!config.internal_rpc.legacy_signatures, "the replayable signature is off unless asked for");
        let set =
            load_str(&format!("{VALID}[limits]\nmax_connections_s3 = 8\n[internal_rpc]\nlegacy_signatures = true\n"))
                .expect("valid with limits");
        assert_eq!(set.limits.max_connections_s3, 8);
        assert!(set.internal_rpc.legacy_signatures);
    }

    #[test]
    fn internal_bind_defaults_to_the_advertised_address() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(ClusterConfig::internal_bind(&config.region[0]), "127.0.0.1:3");
        let relayed = VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"127.0.0.1:4\"");
        let config = load_str(&relayed).expect("valid with internal_bind");
        assert_eq!(ClusterConfig::internal_bind(&config.region[0]), "127.0.0.1:4");
        assert_eq!(ClusterConfig::node_of(&config.region[0]).internal, "127.0.0.1:3", "peers dial `internal`");
    }

    /// The status routes are open on a loopback web listener and need a token elsewhere,
    /// unless `[api] status_access` says otherwise.
    #[test]
    fn status_routes_are_open_only_on_loopback_by_default() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(config.api.status_access, StatusAccess::Auto);
        assert!(config.api.status_open("127.0.0.1:8080"));
        assert!(config.api.status_open("[::1]:8080"));
        assert!(!config.api.status_open("0.0.0.0:8080"));
        assert!(!config.api.status_open("192.0.2.10:8080"));
        let open = load_str(&format!("{VALID}[api]\nstatus_access = \"open\"\n")).expect("valid");
        assert!(open.api.status_open("0.0.0.0:8080"));
        let token = load_str(&format!("{VALID}[api]\nstatus_access = \"token\"\n")).expect("valid");
        assert!(!token.api.status_open("127.0.0.1:8080"));
        let bad = load_str(&format!("{VALID}[api]\nstatus_access = \"maybe\"\n")).err().map(|e| e.to_string());
        assert!(bad.is_some_and(|e| e.contains("status_access")), "a bad value names the field");
    }

    #[test]
    fn errors_name_the_field() {
        assert!(load_str(VALID).is_ok());
        let cases = [
            (VALID.replace("127.0.0.1:1", "nowhere"), "region[0].s3"),
            (VALID.replace("latitude = 1.0", "latitude = 100.0"), "region[0].latitude"),
            (VALID.replace("default_region = \"a\"", "default_region = \"zz\""), "cluster.default_region"),
            (VALID.replace("0123456789abcdef0123", "short"), "cluster.secret"),
            (VALID.replace("role = \"voter\"", "role = \"boss\""), "role"),
            (VALID.replace("name = \"a\"", "name = \"a\"\nbogus = 1"), "bogus"),
            (format!("{VALID}[geo]\ntrusted_proxies = [\"10.0.0.1\"]\n"), "geo.trusted_proxies[0]"),
            (format!("{VALID}[geo]\nmmdb = [\"missing.mmdb\"]\n"), "geo.mmdb[0]"),
            (format!("{VALID}[geo]\nforwarded_header = \"x-real-ip\"\n"), "geo.forwarded_header"),
            (format!("{VALID}[shares]\nuses_per_client = 0\n"), "shares.uses_per_client"),
            (format!("{VALID}[shares]\nflush_ms = 10\n"), "shares.flush_ms"),
            (format!("{VALID}[geo]\nnear_tier_km = -1.0\n"), "geo.near_tier_km"),
            (format!("{VALID}[geo]\npresign_expiry_secs = 0\n"), "geo.presign_expiry_secs"),
            (format!("{VALID}[geo]\nmultipart_part_mib = 1\n"), "geo.multipart_part_mib"),
            (format!("{VALID}[geo]\nload_interval_ms = 5\n"), "geo.load_interval_ms"),
            (format!("{VALID}[[geo.cidr]]\ncidr = \"10.0.0.0\"\nregion = \"a\"\n"), "geo.cidr[0].cidr"),
            (VALID.replace("role = \"voter\"", "role = \"voter\"\ns3_url = \"ftp://x\""), "region[0].s3_url"),
            (format!("{VALID}\n[events]\nretain = 0\n"), "events.retain"),
            (format!("{VALID}{WEBHOOK}").replace("http://127.0.0.1:9/hook", "ftp://x"), "events.webhook[0].url"),
            (format!("{VALID}{WEBHOOK}").replace("0123456789abcdef-hook", "short"), "events.webhook[0].secret"),
            (format!("{VALID}{WEBHOOK}{WEBHOOK}"), "events.webhook[1].name"),
            (format!("{VALID}{WEBHOOK}max_batch = 0\n"), "events.webhook[0].max_batch"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"x\""), "region[0].internal_bind"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"127.0.0.1:1\""), "region[0].internal_bind"),
            (format!("{VALID}[limits]\nheader_read_timeout_ms = 0\n"), "limits.header_read_timeout_ms"),
            (format!("{VALID}[limits]\nidle_timeout_ms = 5\n"), "limits.idle_timeout_ms"),
            (format!("{VALID}[limits]\nmax_connections_s3 = 0\n"), "limits.max_connections_s3"),
            (format!("{VALID}[limits]\nmax_connections_web = 0\n"), "limits.max_connections_web"),
            (format!("{VALID}[limits]\nmax_connections_internal = 0\n"), "limits.max_connections_internal"),
            (format!("{VALID}[internal_rpc]\nnonce_cache_entries = 1\n"), "internal_rpc.nonce_cache_entries"),
            (format!("{VALID}[internal_rpc]\nlegacy_signatures = \"yes\"\n"), "legacy_signatures"),
        ];
        for (text, field) in cases {
            let message = load_str(&text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(field), "error {message:?} should name {field}");
        }
    }

    /// The shipped cluster.toml starts on loopback as it is; each shipped secret on a
    /// non-loopback listener of the region is refused naming its field; fresh secrets, or the
    /// shipped ones on another (loopback) region's node, are not.
    #[test]
    fn shipped_secrets_are_refused_off_loopback_naming_the_field() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let shipped = std::fs::read_to_string(&path).expect("cluster.toml");
        let config = ClusterConfig::load(&path).expect("cluster.toml loads");
        for region in &config.region {
            config.refuse_shipped_secrets(&path, region).expect("shipped secrets on loopback");
        }
        let exposed = |text: &str, field: &str| {
            let config = load_str(text).expect("loads");
            let mut region = config.region[0].clone();
            region.web = "0.0.0.0:8001".into();
            let refused = config.refuse_shipped_secrets(&path, &region).err().map(|e| e.to_string());
            let other = config.region[1].clone();
            assert!(config.refuse_shipped_secrets(&path, &other).is_ok(), "a loopback region may keep them");
            assert!(refused.as_deref().is_some_and(|m| m.contains(field)), "{field}: {refused:?}");
        };
        exposed(&shipped, "cluster.secret");
        let fresh = |text: &str, value: &str| text.replace(value, "a-secret-of-our-own-0123456789abcdef");
        let text = fresh(&shipped, SHIPPED_CLUSTER_SECRET);
        exposed(&text, "dev_key.access_key_id");
        let text = text.replace(SHIPPED_DEV_KEY_ID, "MYOWNKEY0001");
        exposed(&text, "dev_key.secret_access_key");
        let text = fresh(&text, SHIPPED_DEV_KEY_SECRET);
        exposed(&text, "auth.hs256_secret");
        let text = text.replace(SHIPPED_AUTH_SECRET, "another-secret-of-our-own-0123456789abcdef");
        exposed(&text, "auth.service_token");
        let text = text.replace(SHIPPED_AUTH_SERVICE_TOKEN, "a-token-of-our-own-0123456789");
        let hook = "[[events.webhook]]\nname = \"c\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"change-me-shared-with-the-receiver\"\n";
        let with_hook = text.replace("# The \"fake GeoIP\"", &format!("{hook}\n# The \"fake GeoIP\""));
        assert_ne!(with_hook, text, "the webhook example went in");
        exposed(&with_hook, "events.webhook[0].secret");

        // Without any shipped value, or without a dev key at all, a public address is fine.
        let config = load_str(&text).expect("loads");
        let mut region = config.region[0].clone();
        region.s3 = "[2001:db8::1]:9001".into();
        region.internal_bind = Some("0.0.0.0:7001".into());
        assert!(config.refuse_shipped_secrets(&path, &region).is_ok());
        let no_dev_key = text.replace("[dev_key]", "[dev_key_removed]");
        let cut = no_dev_key.find("[dev_key_removed]").expect("section");
        let end = no_dev_key[cut..].find("\n\n").expect("end of section") + cut;
        let no_dev_key = format!("{}{}", &no_dev_key[..cut], &no_dev_key[end..]);
        let config = load_str(&no_dev_key).expect("[dev_key] is optional");
        assert!(config.dev_key.is_none());
    }
}
