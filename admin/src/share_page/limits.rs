//! What share links keep between requests: their settings, the password attempt and download
//! limits, the argon2 permits, and the downloads of links without a limit, counted on this node
//! and committed in batches ([`flush_uses`]) instead of one Raft entry per click.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_raft::{Command, CommandOutcome, MetaStore};

use crate::attempts::{AttemptLimits, Attempts};
use crate::identity::now_millis;

/// Concurrent argon2 runs per core (checking a link's password, hashing a new link's). Each
/// takes about 19 MiB and a blocking thread for tens of milliseconds; the cap bounds both.
pub(crate) const MAX_VERIFYING: usize = 2;
/// Most links with downloads waiting to be committed. Past it a download is committed on its
/// own, as a limited link's is: memory stays bounded however many links are busy.
const MAX_PENDING_LINKS: usize = 100_000;

/// The settings of share links (`[shares]` in `cluster.toml`).
#[derive(Debug, Clone, Copy)]
pub struct ShareSettings {
    /// The password guessing limits.
    pub attempts: AttemptLimits,
    /// How long a presigned URL handed out through a share lives: the most a URL outlives a
    /// revocation (or, for a limited link, how long one counted download can be re-fetched).
    pub presign: Duration,
    /// Downloads allowed per link (`per_link`) and per client address (`per_client`) within
    /// `window`: anonymous visitors cannot turn a link into a flood of work for the cluster.
    pub uses: AttemptLimits,
    /// How often the downloads of links without a download limit are committed, as one count
    /// per link (instead of one Raft entry and one event per download).
    pub flush_every: Duration,
}

impl Default for ShareSettings {
    fn default() -> Self {
        Self {
            attempts: AttemptLimits::default(),
            presign: Duration::from_secs(60),
            uses: AttemptLimits { per_link: 600, per_client: 30, window: Duration::from_secs(60) },
            flush_every: Duration::from_secs(1),
        }
    }
}

/// Downloads of links without a limit, counted on this node and not yet committed.
#[derive(Default)]
struct Tally {
    /// Per share id: downloads since the last flush, and the latest downloader's address.
    counts: HashMap<String, (u64, String)>,
    /// Whether a flush task runs (it stops once it finds nothing to flush).
    flushing: bool,
}

/// What the share link handlers keep between requests.
pub(crate) struct ShareLinks {
    /// The settings.
    pub(super) settings: ShareSettings,
    /// Password attempts.
    pub(super) attempts: Attempts,
    /// Downloads, per link and per client.
    pub(super) uses: Attempts,
    /// Downloads of unlimited links waiting to be committed.
    tally: Mutex<Tally>,
    /// Permits for argon2 runs at once: checking a link's password, and hashing a new link's
    /// (`shares`), so creating links cannot starve or outrun the cap either.
    pub(super) verifying: Arc<tokio::sync::Semaphore>,
}

impl ShareLinks {
    pub(crate) fn new(settings: ShareSettings) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            settings,
            attempts: Attempts::new(settings.attempts),
            uses: Attempts::new(settings.uses),
            tally: Mutex::default(),
            verifying: Arc::new(tokio::sync::Semaphore::new(MAX_VERIFYING * cores)),
        }
    }

    /// How long URLs handed out through shares live.
    pub(crate) fn presign_expiry(&self) -> Duration {
        self.settings.presign
    }

    /// The permits of argon2 runs (share passwords checked and hashed).
    pub(crate) fn argon2_permits(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.verifying
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a download of a link without a limit, to be committed with the others of the
    /// next flush; starts the flush task when none runs. False when too many links wait: the
    /// caller then commits this download on its own.
    pub(super) fn count_later(self: &Arc<Self>, meta: &MetaStore, id: &str, client: String) -> bool {
        let mut tally = self.tally();
        let full = tally.counts.len() >= MAX_PENDING_LINKS;
        match tally.counts.get_mut(id) {
            Some((count, last)) => {
                *count += 1;
                *last = client;
            }
            None if full => return false,
            None => {
                tally.counts.insert(id.to_owned(), (1, client));
            }
        }
        if !tally.flushing {
            tally.flushing = true;
            tokio::spawn(flush_uses(Arc::clone(self), meta.clone()));
        }
        true
    }

    /// Puts counts that could not be committed back, to go with the next flush.
    fn restore(&self, id: String, count: u64, client: String) {
        let mut tally = self.tally();
        let full = tally.counts.len() >= MAX_PENDING_LINKS;
        match tally.counts.get_mut(&id) {
            Some((pending, _)) => *pending += count,
            None if full => tracing::error!(share = %id, count, "share downloads dropped: too many links pending"),
            None => {
                tally.counts.insert(id, (count, client));
            }
        }
    }
}

/// Commits the counted downloads every `flush_every`, one `CountShareUses` per link (the
/// proposals of one flush share log entries); ends when a flush finds nothing to commit. Counts
/// that cannot be committed now go with the next flush; a node that stops loses at most one
/// interval's counts of links without a limit (never of a limited link: those are committed
/// before their redirect).
async fn flush_uses(links: Arc<ShareLinks>, meta: MetaStore) {
    loop {
        tokio::time::sleep(links.settings.flush_every).await;
        let counts = {
            let mut tally = links.tally();
            if tally.counts.is_empty() {
                tally.flushing = false;
                return;
            }
            std::mem::take(&mut tally.counts)
        };
        let at = now_millis();
        let proposals = counts.into_iter().map(|(id, (count, client))| {
            let meta = meta.clone();
            async move {
                let command = Command::CountShareUses { id: id.clone(), at, count, client: client.clone() };
                (meta.propose(command).await, id, count, client)
            }
        });
        for (outcome, id, count, client) in futures::future::join_all(proposals).await {
            match outcome {
                Ok(CommandOutcome::Done) => tracing::debug!(share = %id, count, "share downloads committed"),
                // Deleted with its file meanwhile: nothing left to count on.
                Ok(other) => tracing::info!(share = %id, count, ?other, "share downloads not counted: share gone"),
                Err(error) => {
                    tracing::warn!(share = %id, count, %error, "cannot commit share downloads yet; retrying");
                    links.restore(id, count, client);
                }
            }
        }
    }
}
