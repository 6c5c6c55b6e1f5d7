//! The scrub: a pass over every blob placement says this node holds, checking that the file is
//! on the local disk with the right size and digests (the same [`Verifier`] that checks pulls).
//!
//! A copy found missing or corrupt is deleted first (so it is never served or mistaken for a
//! good copy by the replicator), then reported through Raft as [`Command::ReplicaLost`]:
//! applying it unlists this node and owes it a pull, so the replicator fetches the blob again
//! from a holder with intact bytes. Reads in the meantime stream from another holder, as for
//! any object this node does not hold yet.

use std::time::Instant;

use meridian_raft::model::ObjectMeta;
use meridian_raft::{Command, CommandOutcome, StoreError};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use crate::blob::BlobStore;
use crate::gateway::{Gateway, now_millis};
use crate::replica::{Throttle, Verifier};

/// Objects read from the metadata store at a time: the walk holds no store iterator while it
/// reads the disk, and never more than this many records in memory.
const PAGE: usize = 256;
/// Bytes read from a blob file per step (each step is one trip to the blocking pool).
const CHUNK: usize = 1024 * 1024;

/// What one scrub pass found. Also the reply of an on-demand pass (`meridian scrub`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    /// Blobs that placement lists this node as holding and that the pass checked.
    pub checked: u64,
    /// Bytes read and hashed.
    pub bytes: u64,
    /// Blobs that were not on disk.
    pub missing: u64,
    /// Blobs whose size or digests did not match; their files were deleted.
    pub corrupt: u64,
    /// Missing or corrupt blobs whose holding was dropped through Raft (each is pulled again).
    pub unlisted: u64,
    /// Blobs that could not be checked, deleted or reported (disk or store errors, no leader);
    /// the next pass looks at them again.
    pub errors: u64,
}

/// Why a pass stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    /// The metadata store could not be read.
    #[error("reading placement: {0}")]
    Store(#[from] StoreError),
}

/// What the disk holds for one blob.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Present, with the right size and digests.
    Intact,
    /// No file.
    Missing,
    /// A file whose bytes are not the object's; says how.
    Corrupt(String),
}

/// Runs scrub passes for one node, one at a time, within a bandwidth limit.
pub struct Scrubber {
    /// The node's gateway: its placement view and blob store.
    gateway: Gateway,
    /// Caps the read bandwidth so a pass does not starve clients of the disk.
    throttle: Throttle,
    /// Held for the whole of a pass: a pass asked for while another runs waits for it to
    /// finish, then makes its own (so its report covers the disk as it is after the request).
    running: tokio::sync::Mutex<()>,
}

impl Scrubber {
    /// A scrubber reading at most `bytes_per_sec` (0: unlimited).
    pub fn new(gateway: Gateway, bytes_per_sec: u64) -> Self {
        Self { gateway, throttle: Throttle::new(bytes_per_sec), running: tokio::sync::Mutex::new(()) }
    }

    /// Checks every blob this node is listed as holding; drops and re-pulls the bad ones.
    pub async fn run_pass(&self) -> Result<ScrubReport, ScrubError> {
        let _one_at_a_time = self.running.lock().await;
        let started = Instant::now();
        let mut report = ScrubReport::default();
        for bucket in self.gateway.meta.buckets()? {
            let mut after: Option<String> = None;
            loop {
                let page = self.page(&bucket.name, after.as_deref())?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (key, object) in &page {
                    self.check(&bucket.name, key, object, &mut report).await;
                }
            }
        }
        tracing::info!(
            checked = report.checked,
            mib = report.bytes / (1024 * 1024),
            missing = report.missing,
            corrupt = report.corrupt,
            unlisted = report.unlisted,
            errors = report.errors,
            took = ?started.elapsed(),
            "scrub pass finished"
        );
        Ok(report)
    }

    /// Up to [`PAGE`] objects of `bucket` after `after`, in key order.
    fn page(&self, bucket: &str, after: Option<&str>) -> Result<Vec<(String, ObjectMeta)>, StoreError> {
        let mut cursor = self.gateway.meta.objects(bucket, "", after);
        let mut page = Vec::with_capacity(PAGE);
        while page.len() < PAGE {
            match cursor.next_object()? {
                Some(found) => page.push(found),
                None => break,
            }
        }
        Ok(page)
    }

    /// Checks one object's local copy if this node is listed as holding it, and reports a bad one.
    async fn check(&self, bucket: &str, key: &str, object: &ObjectMeta, report: &mut ScrubReport) {
        let me = self.gateway.meta.node_id();
        if object.inline.is_some() || !object.holders.contains_key(&me) {
            return;
        }
        report.checked += 1;
        let blob = object.blob.as_str();
        let verdict = match self.inspect(object, report).await {
            Ok(Verdict::Intact) => return,
            Ok(verdict) => verdict,
            Err(e) => {
                // Not proof of bad bytes (a full file table, a transient error): keep the copy.
                tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not read a blob; will retry next pass");
                report.errors += 1;
                return;
            }
        };
        // An overwrite or delete may have dropped the blob while it was being read.
        match self.gateway.meta.object(bucket, key) {
            Ok(Some(now)) if now.blob == object.blob && now.holders.contains_key(&me) => {}
            Ok(_) => {
                tracing::debug!(%bucket, %key, %blob, "object moved on during the scrub; nothing to repair");
                return;
            }
            Err(e) => {
                tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not re-read placement");
                report.errors += 1;
                return;
            }
        }
        match &verdict {
            Verdict::Missing => {
                report.missing += 1;
                tracing::warn!(%bucket, %key, %blob, "scrub: blob listed as held here is missing from disk");
            }
            Verdict::Corrupt(why) => {
                report.corrupt += 1;
                tracing::warn!(%bucket, %key, %blob, reason = %why, "scrub: blob on disk is corrupt; deleting it");
                // Deleted before the report: once unlisted, the replicator would otherwise take
                // a file already in place for a good copy and report it as held.
                if let Err(e) = self.gateway.blobs.remove(blob).await {
                    tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not delete a corrupt blob");
                    report.errors += 1;
                    return;
                }
            }
            Verdict::Intact => return,
        }
        let lost = Command::ReplicaLost {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            blob: blob.to_owned(),
            node: me,
            at: now_millis(),
        };
        match self.gateway.meta.propose(lost).await {
            Ok(CommandOutcome::Done) => {
                report.unlisted += 1;
                if object.holders.len() <= 1 {
                    tracing::error!(%bucket, %key, %blob, "no other node holds this object: its bytes are lost");
                }
            }
            Ok(outcome) => tracing::debug!(%bucket, %key, %blob, ?outcome, "lost replica report was moot"),
            Err(e) => {
                // Still listed here with no file: reads stream from another holder, and the next
                // pass finds the blob missing and reports it again.
                tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not report a lost replica");
                report.errors += 1;
            }
        }
    }

    /// Reads the local copy of `object`'s blob through the throttle and judges it.
    async fn inspect(&self, object: &ObjectMeta, report: &mut ScrubReport) -> std::io::Result<Verdict> {
        let Some(mut file) = self.gateway.blobs.open(&object.blob).await? else {
            return Ok(Verdict::Missing);
        };
        let on_disk = file.metadata().await?.len();
        if on_disk != object.size {
            return Ok(Verdict::Corrupt(format!("{on_disk} bytes on disk, {} expected", object.size)));
        }
        let mut verifier = Verifier::new(object);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            self.throttle.admit(n).await;
            report.bytes += n as u64;
            if !verifier.update(&buf[..n]) {
                return Ok(Verdict::Corrupt("bytes do not match the object's digests".into()));
            }
        }
        if !verifier.verified(object.size) {
            return Ok(Verdict::Corrupt(format!("{} bytes read, {} expected", verifier.bytes_seen(), object.size)));
        }
        Ok(Verdict::Intact)
    }
}
