//! `meridian`: one binary for every regional node and for the tools that talk to them.

mod cert_cli;
mod cluster_cli;
mod config;
mod dev_auth;
mod doctor;
mod event_trim;
mod geo;
mod keys;
mod listeners;
mod load;
mod load_exchange;
mod node;
mod replication;
mod restorer;
mod scrub_cli;
mod shutdown;
mod store_recovery;
mod tls;
mod webhooks;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Meridian: a geo-distributed, S3-compatible file store.
#[derive(Parser)]
#[command(name = "meridian", version = RELEASE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node of one region.
    Node {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// Which `[[region]]` of it this node is.
        #[arg(long)]
        region: String,
    },
    /// Inspect or change the cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Manage S3 access keys. Runs on a node's host: presents the certificate of the first
    /// region of the config whose key file is readable to the internal listeners.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Run a scrub pass on one region's node now: re-read every blob it holds, drop missing or
    /// corrupt copies from placement and pull them again; prints what it found. Presents the
    /// certificate of `--region` to its internal listener (run it on that node's host).
    Scrub {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The region whose node is scrubbed.
        #[arg(long)]
        region: String,
        /// Longest wait for the pass, seconds (a pass reads every blob at the scrub bandwidth).
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// Make the cluster's CA and its nodes' certificates (mutual TLS between nodes, HTTPS).
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Check this host for its node: config, secrets, ports, data dir, certificates, peers and
    /// clock offsets; one line per check (OK / WARN / FAIL and what to do), exit status 1 when a
    /// check FAILs.
    Doctor {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The region this host runs (default: the one whose listeners bind this host's addresses).
        #[arg(long)]
        region: Option<String>,
    },
    /// Run the STAND-IN Auth service (development and tests only) that `[auth]` points at.
    DevAuth(dev_auth::DevAuthArgs),
}

#[derive(Subcommand)]
enum CertCommand {
    /// Make the cluster CA at `[tls] ca_cert` and `ca_key` (refuses to replace an existing one:
    /// a new CA disowns every certificate the old one issued).
    Init {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = meridian_tls::pki::CA_VALIDITY_DAYS)]
        days: u32,
        /// Keep an existing CA instead of refusing (for scripts that run it every time).
        #[arg(long)]
        if_missing: bool,
    },
    /// Issue (or renew) a region's node certificate with the CA, written to its `tls_cert` and
    /// `tls_key`; it names the region and every host of its listeners and `s3_url`. A running
    /// node picks up the new files by itself (or at once on SIGHUP).
    Issue {
        /// The cluster description (its CA key must be readable here).
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The region the certificate is for.
        #[arg(long)]
        region: String,
        /// More host names or IP addresses clients reach the node by (a load balancer's name,
        /// the web panel's public name); repeatable.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = meridian_tls::pki::NODE_VALIDITY_DAYS)]
        days: u32,
        /// Keep an existing certificate that names this region and is not about to expire.
        #[arg(long)]
        if_missing: bool,
    },
    /// Show what the CA's and each region's certificate name and when they expire.
    Show {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Every region's view: leader, term, log and applied indexes, replication, last contact,
    /// certificate expiry (days) and TLS refusals. Reads the web listeners (https where they
    /// answer only that, trusting the cluster CA).
    Status {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
    },
    /// Add a region of the config (start its node first): learner, catch up, then voter.
    /// Presents the certificate of the first region besides `--region` whose key is readable
    /// here (the running nodes admit the new one once it is a member), else `--region`'s.
    AddRegion {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The region's name.
        #[arg(long)]
        region: String,
    },
    /// Remove a region from the cluster. Presents the certificate of the first region besides
    /// `--region` whose key is readable here (its host may be gone), else `--region`'s.
    RemoveRegion {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The region's name.
        #[arg(long)]
        region: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key pair in the replicated key store and print it.
    Create {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// A human name for the key.
        #[arg(long)]
        name: String,
        /// Who the key belongs to: `user:ID` or `service:NAME` (default: the service named
        /// after `--name`).
        #[arg(long)]
        owner: Option<meridian_raft::model::KeyOwner>,
    },
    /// List every key: id, state, creation time, owner and name (never the secret).
    List {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
    },
    /// Disable a key: every node refuses it from the moment the command returns.
    Disable {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The access key id.
        id: String,
    },
    /// Enable a disabled key again.
    Enable {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The access key id.
        id: String,
    },
    /// Delete a key for good.
    Delete {
        /// The cluster description.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// The access key id.
        id: String,
    },
}

/// Logging when `RUST_LOG` is not set. s3s logs every client error (a 404 included) at error
/// level, which would drown real problems; the gateway logs its own failures itself.
const DEFAULT_LOG_FILTER: &str = "info,openraft=warn,sled=warn,s3s=off";

/// This binary's release: crate version `+` the git commit it was built from (`build.rs`).
const RELEASE: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("MERIDIAN_GIT_COMMIT"));

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .init();
    meridian_raft::protocol::set_release(RELEASE);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("meridian: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node { config, region } => node::run(&config, &region).await,
            Command::Key { command: KeyCommand::Create { config, name, owner } } => {
                keys::create(&config, &name, owner).await
            }
            Command::Key { command: KeyCommand::List { config } } => keys::list(&config).await,
            Command::Key { command: KeyCommand::Disable { config, id } } => {
                keys::set_disabled(&config, &id, true).await
            }
            Command::Key { command: KeyCommand::Enable { config, id } } => {
                keys::set_disabled(&config, &id, false).await
            }
            Command::Key { command: KeyCommand::Delete { config, id } } => keys::delete(&config, &id).await,
            Command::Scrub { config, region, timeout_secs } => {
                scrub_cli::run(&config, &region, std::time::Duration::from_secs(timeout_secs)).await
            }
            Command::DevAuth(args) => dev_auth::run(args).await,
            Command::Doctor { config, region } => doctor::run(&config, region.as_deref()).await,
            Command::Cert { command: CertCommand::Init { config, days, if_missing } } => {
                cert_cli::init(&config, days, if_missing)
            }
            Command::Cert { command: CertCommand::Issue { config, region, sans, days, if_missing } } => {
                cert_cli::issue(&config, &region, &sans, days, if_missing)
            }
            Command::Cert { command: CertCommand::Show { config } } => cert_cli::show(&config),
            Command::Cluster { command: ClusterCommand::Status { config } } => cluster_cli::status(&config).await,
            Command::Cluster { command: ClusterCommand::AddRegion { config, region } } => {
                cluster_cli::add_region(&config, &region).await
            }
            Command::Cluster { command: ClusterCommand::RemoveRegion { config, region } } => {
                cluster_cli::remove_region(&config, &region).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian: {e:#}");
            ExitCode::FAILURE
        }
    }
}
