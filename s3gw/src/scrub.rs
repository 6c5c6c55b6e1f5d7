//! The scrub: a pass over every blob placement says this node holds, checking that the file is
//! on the local disk with the right size and digests (the same [`Verifier`] that checks pulls).
//!
//! A corrupt copy is first moved aside (`<blob>.corrupt`, so it is never served or mistaken for
//! a good copy by the replicator), then reported through Raft as [`Command::ReplicaLost`]:
//! applying it unlists this node and owes it a pull, so the replicator fetches the blob again
//! from a holder with intact bytes, and the quarantined file is deleted. Reads in the meantime
//! stream from another holder, as for any object this node does not hold yet.
//!
//! What the scrub must never do is make things worse:
//! - the last holder of an object is never unlisted (the state machine refuses it): a corrupt
//!   last copy stays quarantined for whoever can recover it, and the pass reports it loudly;
//! - a pass aborts when `blobs/` has lost its marker or when most listed blobs are missing: that
//!   is a volume not mounted or a directory emptied by mistake, not lost blobs;
//! - a missing blob is reported only when two consecutive passes find it missing, so a passing
//!   glitch of the disk unlists nothing.

use std::collections::HashSet;
use std::time::Instant;

use meridian_raft::model::ObjectMeta;
use meridian_raft::{Command, CommandOutcome, Rejection, StoreError};
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
    /// Of the missing ones, those the previous pass did not find missing: not reported yet, the
    /// next pass reports them if they are still missing then.
    #[serde(default)]
    pub unconfirmed: u64,
    /// Blobs whose size or digests did not match; their files were quarantined (`*.corrupt`).
    pub corrupt: u64,
    /// Missing or corrupt blobs whose holding was dropped through Raft (each is pulled again).
    pub unlisted: u64,
    /// Missing or corrupt blobs of which no other node holds a copy: left listed (a corrupt one
    /// quarantined), and logged as errors. Their bytes are lost unless recovered by hand.
    #[serde(default)]
    pub last_copy: u64,
    /// Blobs that could not be checked, quarantined or reported (disk or store errors, no
    /// leader); the next pass looks at them again.
    pub errors: u64,
}

/// Why a pass stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    /// The metadata store could not be read.
    #[error("reading placement: {0}")]
    Store(#[from] StoreError),
    /// `blobs/` lacks the marker written when it was created: not the directory this node filled.
    #[error("the blob directory has lost its marker file (not mounted? replaced?); nothing was reported")]
    NoMarker,
    /// The marker could not be checked.
    #[error("cannot check the blob directory's marker: {0}")]
    Marker(#[source] std::io::Error),
    /// Most blobs listed here are missing: a directory emptied or swapped rather than lost blobs.
    #[error(
        "{missing} of the {checked} blobs listed here are missing; nothing was reported (is the blob directory the right one?)"
    )]
    MostMissing {
        /// Blobs found missing.
        missing: u64,
        /// Blobs checked.
        checked: u64,
    },
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
    /// Holds the blobs the last completed pass found missing: the next one reports those it
    /// finds missing again.
    running: tokio::sync::Mutex<HashSet<String>>,
}

/// A blob found missing during a pass, reported (or not) once the pass is known to be sane.
struct Missing {
    /// Its bucket.
    bucket: String,
    /// Its key.
    key: String,
    /// The version as listed when the pass looked.
    object: ObjectMeta,
}

impl Scrubber {
    /// A scrubber reading at most `bytes_per_sec` (0: unlimited).
    pub fn new(gateway: Gateway, bytes_per_sec: u64) -> Self {
        Self { gateway, throttle: Throttle::new(bytes_per_sec), running: tokio::sync::Mutex::new(HashSet::new()) }
    }

    /// Checks every blob this node is listed as holding; quarantines and re-pulls the bad ones.
    pub async fn run_pass(&self) -> Result<ScrubReport, ScrubError> {
        let mut suspects = self.running.lock().await;
        let started = Instant::now();
        self.check_marker().await?;
        let mut report = ScrubReport::default();
        let mut missing = Vec::new();
        for bucket in self.gateway.meta.buckets()? {
            let mut after: Option<String> = None;
            loop {
                let page = self.page(&bucket.name, after.as_deref())?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (key, object) in page {
                    if let Some(lost) = self.check(&bucket.name, key, object, &mut report).await {
                        missing.push(lost);
                    }
                }
            }
            // The kept versions of a versioned bucket are objects too.
            let mut after: Option<(String, String)> = None;
            loop {
                let page = self.kept_page(&bucket.name, after.as_ref())?;
                let Some((last_key, last_sort, _)) = page.last() else { break };
                after = Some((last_key.clone(), last_sort.clone()));
                for (key, _, object) in page {
                    if let Some(lost) = self.check(&bucket.name, key, object, &mut report).await {
                        missing.push(lost);
                    }
                }
            }
        }
        // Checked again: the directory may have gone away during the pass.
        self.check_marker().await?;
        let count = missing.len() as u64;
        if count > 1 && count * 2 > report.checked {
            let error = ScrubError::MostMissing { missing: count, checked: report.checked };
            tracing::error!(missing = count, checked = report.checked, "scrub pass aborted: {error}");
            return Err(error);
        }
        let previous = std::mem::take(&mut *suspects);
        for lost in missing {
            let (bucket, key, blob) = (&lost.bucket, &lost.key, lost.object.blob.as_str());
            if previous.contains(blob) {
                tracing::warn!(%bucket, %key, %blob, "scrub: blob listed as held here is missing from disk (two passes in a row)");
                self.report_lost(bucket, key, &lost.object, &mut report).await;
            } else {
                tracing::warn!(%bucket, %key, %blob, "scrub: blob listed as held here is missing from disk; reported if the next pass finds it missing too");
                report.unconfirmed += 1;
            }
            suspects.insert(lost.object.blob);
        }
        tracing::info!(
            checked = report.checked,
            mib = report.bytes / (1024 * 1024),
            missing = report.missing,
            unconfirmed = report.unconfirmed,
            corrupt = report.corrupt,
            unlisted = report.unlisted,
            last_copy = report.last_copy,
            errors = report.errors,
            took = ?started.elapsed(),
            "scrub pass finished"
        );
        Ok(report)
    }

    /// Fails when `blobs/` lacks its marker (see [`DiskBlobs::has_marker`]).
    ///
    /// [`DiskBlobs::has_marker`]: crate::blob::DiskBlobs::has_marker
    async fn check_marker(&self) -> Result<(), ScrubError> {
        match self.gateway.blobs.has_marker().await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::error!("scrub pass aborted: {}", ScrubError::NoMarker);
                Err(ScrubError::NoMarker)
            }
            Err(e) => Err(ScrubError::Marker(e)),
        }
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

    /// Up to [`PAGE`] kept versions (not delete markers) of `bucket` after `after` (key, sort
    /// key), in key order, each key's newest first.
    fn kept_page(
        &self,
        bucket: &str,
        after: Option<&(String, String)>,
    ) -> Result<Vec<(String, String, ObjectMeta)>, StoreError> {
        let mut walk = self.gateway.meta.version_walk(bucket, "", after.map(|(k, s)| (k.as_str(), Some(s.as_str()))));
        let mut page = Vec::with_capacity(PAGE);
        while page.len() < PAGE {
            match walk.next_version()? {
                Some((key, sort, version)) => {
                    if let Some(meta) = version.meta {
                        page.push((key, sort, meta));
                    }
                }
                None => break,
            }
        }
        Ok(page)
    }

    /// Checks one object's local copy if this node is listed as holding it: quarantines and
    /// reports a corrupt one, returns a missing one (reported after the pass, if it is sane).
    async fn check(&self, bucket: &str, key: String, object: ObjectMeta, report: &mut ScrubReport) -> Option<Missing> {
        let me = self.gateway.meta.node_id();
        if object.inline.is_some() || !object.holders.contains_key(&me) {
            return None;
        }
        report.checked += 1;
        let blob = object.blob.as_str();
        let verdict = match self.inspect(&object, report).await {
            Ok(Verdict::Intact) => return None,
            Ok(verdict) => verdict,
            Err(e) => {
                // Not proof of bad bytes (a full file table, a transient error): keep the copy.
                tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not read a blob; will retry next pass");
                report.errors += 1;
                return None;
            }
        };
        // An overwrite or delete may have dropped the blob while it was being read.
        match self.gateway.meta.version_with_blob(bucket, &key, &object.blob) {
            Ok(Some(now)) if now.holders.contains_key(&me) => {}
            Ok(_) => {
                tracing::debug!(%bucket, %key, %blob, "object moved on during the scrub; nothing to repair");
                return None;
            }
            Err(e) => {
                tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not re-read placement");
                report.errors += 1;
                return None;
            }
        }
        match verdict {
            Verdict::Missing => {
                report.missing += 1;
                Some(Missing { bucket: bucket.to_owned(), key, object })
            }
            Verdict::Corrupt(why) => {
                report.corrupt += 1;
                // Moved aside before the report: once unlisted, the replicator would otherwise
                // take a file already in place for a good copy and report it as held.
                match self.gateway.blobs.quarantine(blob).await {
                    Ok(aside) => tracing::warn!(%bucket, %key, %blob, reason = %why, quarantined = %aside.display(),
                        "scrub: blob on disk is corrupt; moved it aside"),
                    Err(e) => {
                        tracing::warn!(%bucket, %key, %blob, reason = %why, error = %e,
                            "scrub: blob on disk is corrupt but could not be moved aside");
                        report.errors += 1;
                        return None;
                    }
                }
                self.report_lost(bucket, &key, &object, report).await;
                None
            }
            Verdict::Intact => None,
        }
    }

    /// Reports this node's copy of `object` lost through Raft: unlisted and pulled again when
    /// another node holds it (the quarantined copy, if any, is then deleted); left listed, and
    /// logged as an error, when no other node does.
    async fn report_lost(&self, bucket: &str, key: &str, object: &ObjectMeta, report: &mut ScrubReport) {
        let blob = object.blob.as_str();
        let lost = Command::ReplicaLost {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            blob: blob.to_owned(),
            node: self.gateway.meta.node_id(),
            at: now_millis(),
        };
        match self.gateway.meta.propose(lost).await {
            Ok(CommandOutcome::Done) => {
                report.unlisted += 1;
                self.discard_quarantined(bucket, key, blob, report).await;
            }
            Ok(CommandOutcome::Rejected(Rejection::PreconditionFailed)) => {
                report.last_copy += 1;
                tracing::error!(%bucket, %key, %blob,
                    "scrub: this node's copy is missing or corrupt and no other node holds the object: it stays \
                     listed here, a corrupt copy stays quarantined as {blob}.corrupt; the object cannot be read \
                     until its bytes are recovered by hand");
            }
            Ok(outcome) => {
                // Overwritten or deleted meanwhile: the quarantined bytes belong to nothing.
                tracing::debug!(%bucket, %key, %blob, ?outcome, "lost replica report was moot");
                self.discard_quarantined(bucket, key, blob, report).await;
            }
            Err(e) => {
                // Still listed here with no file: reads stream from another holder, and the next
                // passes find the blob missing and report it again.
                tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not report a lost replica");
                report.errors += 1;
            }
        }
    }

    /// Deletes the quarantined copy of `blob`, if there is one.
    async fn discard_quarantined(&self, bucket: &str, key: &str, blob: &str, report: &mut ScrubReport) {
        if let Err(e) = self.gateway.blobs.discard_quarantined(blob).await {
            tracing::warn!(%bucket, %key, %blob, error = %e, "scrub could not delete a quarantined copy");
            report.errors += 1;
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
