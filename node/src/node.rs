//! `meridian node`: opens the stores of one region and runs its listeners and workers until
//! SIGTERM, then stops them in order (listeners drain, workers stop, Raft stops, sled flushes).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use meridian_geo::LoadBoard;
use meridian_raft::model::{AccessKey, KeyOwner};
use meridian_raft::signing::ReplayGuard;
use meridian_raft::{Command, MetaStore, StoreConfig};
use meridian_s3gw::blob::DiskBlobs;
use meridian_s3gw::{Gateway, Scrubber};

use crate::config::{ClusterConfig, Role};
use crate::listeners;
use crate::load::LoadMeter;
use crate::load_exchange;
use crate::shutdown::Shutdown;
use crate::tls::NodeTls;
use crate::workers;

/// Runs the node of `region_name` until it is told to stop.
pub(crate) async fn run(config_path: &Path, region_name: &str) -> anyhow::Result<()> {
    let config = ClusterConfig::load(config_path)?;
    let region = config
        .region(region_name)
        .with_context(|| format!("{} has no [[region]] named {region_name:?}", config_path.display()))?
        .clone();
    config.refuse_shipped_secrets(config_path, &region)?;
    let data_dir = config.data_dir(&region);
    tracing::info!(region = %region.name, id = region.id, data_dir = %data_dir.display(), "starting node");
    let shutdown = Shutdown::on_signals()?;
    // Certificates before anything else: without them no peer would talk to this node.
    let tls = Arc::new(NodeTls::load(&config, &region)?);

    let meta = MetaStore::open(StoreConfig {
        node_id: region.id,
        node: ClusterConfig::node_of(&region),
        dir: data_dir.clone(),
        cluster_name: config.cluster.name.clone(),
        secret: config.cluster.secret.clone(),
        legacy_signatures: config.internal_rpc.legacy_signatures,
        timing: config.timing(),
        transport: tls.peer_transport()?,
        source_address: region.internal_source,
        cache_bytes: config.storage.cache_bytes(),
    })
    .await
    .context("cannot open the metadata store")?;
    tls.admit_members_of(&meta);
    let blobs = Arc::new(DiskBlobs::open(&data_dir).context("cannot open the blob store")?);
    // The web API presigns with the system key on behalf of users and services, naming them.
    let gateway = Gateway::new(meta.clone(), blobs.clone(), region.name.clone(), config.read_consistency())
        .with_delegating_key(meridian_admin::presign::system_key(&config.cluster.secret).id)
        .with_pull_settings(config.replication.pull_settings());

    // Bind everything before initializing, so peers can reach us as soon as Raft starts.
    let s3 = listeners::bind("s3", &region.s3).await?;
    let web = listeners::bind("web", &region.web).await?;
    let internal = listeners::bind("internal", ClusterConfig::internal_bind(&region)).await?;
    let s3_tls = tls.public_listener(&config, &region.s3)?;
    let web_tls = tls.public_listener(&config, &region.web)?;
    let internal_tls = tls.internal_listener()?;
    let signer = Arc::new(listeners::internal::signer(&config));
    let replay = Arc::new(ReplayGuard::new(config.internal_rpc.nonce_cache_entries));
    let limits = |max| listeners::ConnLimits::from_config(&config.limits, max);
    let scrub_rate = config.storage.scrub_bandwidth_mib_per_sec.saturating_mul(1024 * 1024);
    let scrubber = Arc::new(Scrubber::new(gateway.clone(), scrub_rate));

    // Geo routing: this node's load meter (fed by the S3 listener), the board of every node's
    // load (fed by the exchange), and the web API's routing state over both.
    let pulls = gateway.pulls().clone();
    let opened = tls.opened().clone();
    let metrics = Arc::new(meridian_admin::metrics::Metrics::with_external(vec![
        meridian_admin::metrics::ExternalSeries(Arc::new(move |out: &mut String| pulls.stats.write_prometheus(out))),
        meridian_admin::metrics::ExternalSeries(Arc::new(move |out: &mut String| opened.write_prometheus(out))),
    ]));
    let meter = Arc::new(LoadMeter::new(metrics.s3.clone(), data_dir.clone(), meta.clone()));
    let (load_interval, load_stale) = crate::geo::load_timing(&config);
    let board = Arc::new(LoadBoard::new(load_stale));
    let routing = Arc::new(crate::geo::routing(&config, board.clone())?);
    let peers = config
        .region
        .iter()
        .filter(|r| r.id != region.id)
        .map(|r| load_exchange::Peer { id: r.id, internal: r.internal.clone() })
        .collect();

    let mut web_state = meridian_admin::WebState::new(
        meta.clone(),
        region.name.clone(),
        config.dev_key.as_ref().map(|k| k.access_key_id.clone()),
    )
    .with_service_tokens(config.api.service_tokens())
    .with_share_settings(config.shares.settings())
    .with_open_status(config.api.status_open(&region.web))
    .with_tls_status(tls.clone())
    .with_version_restorer(Arc::new(crate::restorer::GatewayRestorer(gateway.clone())));
    if let Some(auth) = &config.auth {
        web_state = web_state.with_identity(auth.identity_settings(&config.base_dir)?).context("[auth]")?;
    }

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(tls.clone().run_reload(shutdown.clone()));
    tasks.spawn(crate::store_recovery::run(meta.clone(), shutdown.clone()));
    tasks.spawn(listeners::serve_axum(
        "internal",
        internal,
        limits(config.limits.max_connections_internal),
        internal_tls,
        listeners::internal::router(meta.clone(), blobs, signer, replay, meter.clone(), scrubber.clone()),
        shutdown.clone(),
    ));
    tasks.spawn(load_exchange::run(
        region.id,
        meter,
        board.clone(),
        peers,
        meta.peers().clone(),
        load_interval,
        shutdown.clone(),
    ));
    let web_state = web_state.with_metrics(metrics.clone()).with_routing(routing).with_stop_signal(shutdown.receiver());
    tasks.spawn(listeners::serve_axum(
        "web",
        web,
        limits(config.limits.max_connections_web),
        web_tls,
        meridian_admin::router(web_state.clone())
            .layer(axum::middleware::from_fn_with_state(meta.clone(), listeners::store_gate::refuse_while_failed)),
        shutdown.clone(),
    ));
    let stop = shutdown.clone();
    tasks.spawn(meridian_admin::run_user_sync(web_state, async move { stop.wait().await }));
    tasks.spawn(workers::work_queue(gateway.clone(), shutdown.clone()));
    tasks.spawn(
        crate::replication::Replicator::new(gateway.clone(), &config, &region, board.clone()).run(shutdown.clone()),
    );
    tasks.spawn(crate::webhooks::run(meta.clone(), config.events.webhook.clone(), shutdown.clone()));
    tasks.spawn(crate::event_trim::run(meta.clone(), config.events.retention(), shutdown.clone()));
    tasks.spawn(workers::sweeps(
        gateway.clone(),
        Duration::from_secs(config.storage.multipart_max_age_secs),
        shutdown.clone(),
    ));
    tasks.spawn(workers::scrubs(scrubber, Duration::from_secs(config.storage.scrub_interval_secs), shutdown.clone()));

    let first_voter = config.region.iter().filter(|r| r.role == Role::Voter).map(|r| r.id).min();
    if first_voter == Some(region.id) {
        let voters: BTreeMap<_, _> =
            config.region.iter().filter(|r| r.role == Role::Voter).map(|r| (r.id, ClusterConfig::node_of(r))).collect();
        if meta.initialize_if_new(voters).await.context("cannot initialize the cluster")? {
            tracing::info!("initialized a new cluster");
        }
        // Installed once, when first missing, as keys of the services they are for, created now.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let dev_key = config.dev_key.as_ref().map(|dev_key| {
            let key = AccessKey {
                id: dev_key.access_key_id.clone(),
                secret: dev_key.secret_access_key.clone(),
                name: "dev (cluster.toml)".into(),
                created: now,
            };
            (key, KeyOwner::Service("dev".into()))
        });
        // The web API presigns with the system key for callers without a key of their own.
        let system = meridian_admin::presign::system_key(&config.cluster.secret);
        let system_key = AccessKey {
            id: system.id,
            secret: system.secret,
            name: "system (web API presigning)".into(),
            created: now,
        };
        let system_id = system_key.id.clone();
        let keys = dev_key.into_iter().chain([(system_key, KeyOwner::Service("system".into()))]).collect();
        tasks.spawn(ensure_keys(meta.clone(), keys, system_id, shutdown.clone()));
    }

    let s3_result = listeners::s3::serve(
        s3,
        limits(config.limits.max_connections_s3),
        s3_tls,
        gateway,
        listeners::s3::S3Addressing {
            domain: config.cluster.s3_domain.clone(),
            trusted_proxies: config.s3.trusted_proxies(),
        },
        metrics.s3.clone(),
        shutdown.clone(),
    )
    .await;
    // The S3 listener returns once the stop signal came and its requests drained.
    while tasks.join_next().await.is_some() {}
    meta.shutdown().await.context("stopping the metadata store")?;
    tracing::info!("node stopped");
    s3_result
}

/// Puts the keys every node relies on (the development key of `cluster.toml`, the system key
/// of the web API) into the replicated key store once a leader exists, so they work on every
/// node; then deletes the system keys of earlier cluster secrets (every `MSYS` key but `system`).
async fn ensure_keys(meta: MetaStore, keys: Vec<(AccessKey, KeyOwner)>, system: String, shutdown: Shutdown) {
    for (key, owner) in keys {
        if !ensure_key(&meta, key, owner, &shutdown).await {
            return;
        }
    }
    // A rotated cluster secret retires the system key of the old one: its secret is derived
    // from the old cluster secret, so whoever still has that could sign any S3 request.
    if let Err(error) = crate::keys::retire_old_system_keys(&meta, &system).await {
        tracing::error!(%error, "cannot retire the system keys of earlier cluster secrets");
    }
}

/// Installs one key, retrying until a leader takes it; false if the node stops first. A key
/// already there with the same secret and name is left as it is (its creation time and owner
/// stay); a new one is created with its owner; one whose secret changed in the config is
/// replaced.
async fn ensure_key(meta: &MetaStore, key: AccessKey, owner: KeyOwner, shutdown: &Shutdown) -> bool {
    for attempt in 0u32..600 {
        let command = match meta.access_key(&key.id) {
            Ok(Some(existing)) if existing.secret == key.secret && existing.name == key.name => return true,
            Ok(Some(_)) => Command::PutAccessKey(key.clone()),
            Ok(None) => Command::CreateAccessKey { key: key.clone(), owner: owner.clone() },
            Err(e) => {
                tracing::warn!(error = %e, "reading the key store failed");
                Command::PutAccessKey(key.clone())
            }
        };
        match meta.propose(command).await {
            Ok(_) => {
                tracing::info!(access_key = %key.id, name = %key.name, "access key installed");
                return true;
            }
            Err(e) => tracing::debug!(attempt, error = %e, "cannot install the key yet"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.wait() => return false,
        }
    }
    tracing::error!(access_key = %key.id, "gave up installing an access key");
    true
}
