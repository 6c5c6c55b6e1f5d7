//! `meridian dev-auth`: runs the STAND-IN Auth service (crate `meridian-dev-auth`) configured
//! from the same `[auth]` section the nodes read, so the two always agree on the listen
//! address, the issuer, the algorithm, the secret and the service token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use meridian_dev_auth::{DevAuthConfig, Signing};

use crate::config::{AuthAlgorithm, ClusterConfig, resolve};
use crate::shutdown::Shutdown;

/// Arguments of `meridian dev-auth`.
#[derive(clap::Args)]
pub(crate) struct DevAuthArgs {
    /// The cluster description; its `[auth]` section says where to listen and how to sign.
    #[arg(long, default_value = "cluster.toml")]
    config: PathBuf,
    /// RS256: the private key (PEM) whose public half `[auth]` verifies with.
    #[arg(long)]
    rs256_key: Option<PathBuf>,
    /// Users to serve (TOML, see devauth/seed.toml); the built-in alice, bob and admin otherwise.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Lifetime of access tokens, seconds.
    #[arg(long, default_value_t = 900)]
    access_ttl_secs: u64,
    /// Lifetime of refresh tokens, seconds.
    #[arg(long, default_value_t = 8 * 3600)]
    refresh_ttl_secs: u64,
    /// Print the seeded logins and passwords, then exit.
    #[arg(long)]
    list_seed: bool,
}

/// Runs the stand-in until SIGTERM / Ctrl-C (or lists its seeded users).
pub(crate) async fn run(args: DevAuthArgs) -> anyhow::Result<()> {
    if args.list_seed {
        for user in meridian_dev_auth::seed_users(args.seed.as_deref())? {
            println!("{:<12} password {:<20} roles {}", user.login, user.password, user.roles.join(","));
        }
        return Ok(());
    }
    let config = ClusterConfig::load(&args.config)?;
    let auth = config.auth.as_ref().with_context(|| format!("{} has no [auth] section", args.config.display()))?;
    let listen = listen_addr(auth)?;
    let signing = match (auth.algorithm, &args.rs256_key) {
        (AuthAlgorithm::Hs256, _) => Signing::Hs256 { secret: auth.hs256_secret.clone().unwrap_or_default() },
        (AuthAlgorithm::Rs256, Some(key)) => Signing::Rs256 { private_key: resolve(&std::env::current_dir()?, key) },
        (AuthAlgorithm::Rs256, None) => {
            bail!("[auth] algorithm is RS256: give the stand-in its private key with --rs256-key")
        }
    };
    let shutdown = Shutdown::on_signals()?;
    meridian_dev_auth::serve(
        DevAuthConfig {
            listen,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            signing,
            service_token: auth.service_token.clone(),
            access_ttl: Duration::from_secs(args.access_ttl_secs),
            refresh_ttl: Duration::from_secs(args.refresh_ttl_secs),
            seed: args.seed,
        },
        async move { shutdown.wait().await },
    )
    .await?;
    Ok(())
}

/// Where the stand-in listens: the host and port of `login_url`. Every configured URL must be
/// one of the stand-in's, on that same address.
fn listen_addr(auth: &crate::config::AuthSection) -> anyhow::Result<std::net::SocketAddr> {
    let login = reqwest::Url::parse(&auth.login_url).context("[auth] login_url")?;
    let host = login.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr =
        host.parse().with_context(|| format!("[auth] login_url: the stand-in needs an IP address, not {host:?}"))?;
    let addr = std::net::SocketAddr::new(ip, login.port_or_known_default().unwrap_or(80));
    let expected = [
        ("login_url", Some(&auth.login_url), meridian_dev_auth::LOGIN_PATH),
        ("refresh_url", Some(&auth.refresh_url), meridian_dev_auth::REFRESH_PATH),
        ("users_url", Some(&auth.users_url), meridian_dev_auth::USERS_PATH),
        ("jwks_url", auth.jwks_url.as_ref(), meridian_dev_auth::JWKS_PATH),
    ];
    for (field, url, path) in expected {
        let Some(url) = url else { continue };
        let parsed = reqwest::Url::parse(url).with_context(|| format!("[auth] {field}"))?;
        let same_addr = parsed.host_str() == login.host_str() && parsed.port_or_known_default() == Some(addr.port());
        if parsed.scheme() != "http" || !same_addr || parsed.path() != path {
            bail!("[auth] {field} = {url:?}: the stand-in serves http://{addr}{path}");
        }
    }
    Ok(addr)
}
