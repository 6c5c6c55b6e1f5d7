//! A consistent view of the replicated records for a snapshot dump that runs beside `apply`.
//!
//! A sled iterator is not a snapshot: a key it has not reached yet shows the writes applied
//! since the iteration began. A dump must show the state at one applied index (the snapshot's
//! `last_log_id`), yet writing 1M records takes seconds, too long to keep `apply` waiting. So
//! while a dump is in progress, every write of the replicated records goes through
//! [`Tables::apply_batch`](crate::tables::Tables::apply_batch), which first saves the
//! *pre-image* of each key it is about to change (its value, or "absent") once per key, here;
//! the dump emits a key's saved pre-image instead of what it read, and at the end the saved
//! pre-images of keys it never met (deleted since the view opened).
//!
//! # Why the dump emits exactly the state at the view's index
//!
//! The view opens on the state machine worker between two `apply` calls, so the tree then holds
//! exactly the state at the applied index `A`. Every later change of a replicated record is a
//! [`StateBatch`] applied by `Tables::apply_batch`, and there is one writer (the worker); the
//! records outside the dump (`tables::WORK`, this node's own work items) are neither saved nor
//! dumped. The dump reads keys in increasing order; after reading key `k` with value `v` it
//! takes the lock, moves the cursor to `k` and takes `k`'s pre-image if one is saved. A writer
//! takes the same lock, saves the pre-image of each key of its batch that is past the cursor
//! and has none yet (reading it from the tree under the lock), releases it, and only then
//! applies the batch. For a key `k` the iterator returns:
//! - if a pre-image of `k` is saved when the dump looks (its lock section `D`), it was saved by
//!   the first batch after `A` that changed `k`: no batch touching `k` before it, so what it read
//!   from the tree is `k`'s value at `A`. The dump emits it (or nothing, if `k` was absent).
//! - if none is saved at `D`, every batch that changes `k` after `A` saves `k`'s pre-image in a
//!   lock section after `D` (or skips it, `k` being at the cursor then), so it reaches the tree
//!   after `D`, which is after the read. The read therefore saw no change after `A`: `v` is
//!   `k`'s value at `A`. A batch applied after `D` for a key at or behind the cursor needs no
//!   pre-image: that key's value at `A` is already in the file.
//!
//! A key the iterator does not return was absent when the iterator passed its place. If it was
//! present at `A`, a batch deleted it after `A`, before the cursor reached it: that batch saved
//! its pre-image, which the dump never took (it takes only keys it read), so it is emitted at
//! the end. A key absent at `A` and created later has the pre-image "absent" and is never
//! emitted. Each key is thus emitted once, with its value at `A`; the file's order does not
//! matter to an install (it replaces the whole state in one batch, in this release and in
//! a01dacd).
//!
//! # Memory
//!
//! The pre-images live in memory: only keys ahead of the dump's cursor are saved, and each is
//! dropped when the dump reaches it, so the map holds the writes applied during one dump to
//! keys the dump has not reached (at a fill of new 1 KiB objects, ~100 bytes a key: the new keys
//! and their events). It is bounded: past [`BUDGET_BYTES`], `apply` waits
//! ([`SnapshotView::room`]) until the dump has consumed some or finished, so a write pattern
//! that would outgrow it (rewriting large values far ahead of the cursor faster than the dump
//! reads) slows writes instead of growing the node's memory. A side table would not need the
//! wait but would add a sled write (and its cache churn) to every change during every dump;
//! the common case fits the budget by orders of magnitude.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sled::IVec;

use crate::error::StoreError;
use crate::tables;

/// Bytes of saved pre-images (keys and values) past which `apply` waits for the dump.
pub(crate) const BUDGET_BYTES: usize = 64 << 20;

/// Bookkeeping bytes counted per saved key beside its key and value (map node, lengths).
const ENTRY_OVERHEAD: usize = 64;

/// The changes of one apply step to the replicated records, applied atomically by
/// [`Tables::apply_batch`](crate::tables::Tables::apply_batch). It is sled's batch with its
/// keys visible, which the view needs (sled's `Batch` hides them).
#[derive(Default)]
pub(crate) struct StateBatch {
    /// Key to new value (`None`: removed); the last write of a key wins, as in sled's batch.
    writes: BTreeMap<IVec, Option<IVec>>,
}

impl StateBatch {
    /// Sets `key` to `value` when the batch is applied.
    pub(crate) fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    /// Removes `key` when the batch is applied.
    pub(crate) fn remove(&mut self, key: impl Into<IVec>) {
        self.writes.insert(key.into(), None);
    }

    /// The keys the batch changes, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &IVec> {
        self.writes.keys()
    }

    /// The same writes as sled's batch.
    pub(crate) fn into_sled(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (key, value) in self.writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        batch
    }
}

/// The pre-images of an open view (see the module doc).
#[derive(Default)]
struct OpenView {
    /// Key to its value when the view opened (`None`: absent), for keys ahead of `cursor`
    /// changed since.
    pre_images: BTreeMap<IVec, Option<IVec>>,
    /// The last key the dump handled; writes at or behind it need no pre-image.
    cursor: Option<IVec>,
    /// What `pre_images` holds, counted as in [`BUDGET_BYTES`].
    bytes: usize,
    /// The most `bytes` ever was, for the dump's log line.
    peak_bytes: usize,
    /// How many pre-images were saved in all, for the dump's log line.
    saved: u64,
}

/// What the view cost, reported with the snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ViewStats {
    /// Pre-images saved while the view was open.
    pub(crate) saved: u64,
    /// The most memory they held at once (bytes, as counted for the budget).
    pub(crate) peak_bytes: usize,
}

/// The view shared by the apply path and a dump; closed (`None`) when no dump is running.
#[derive(Default)]
pub(crate) struct SnapshotView {
    /// The open view's pre-images, if a dump is in progress.
    state: Mutex<Option<OpenView>>,
    /// Wakes an `apply` waiting for room in the budget.
    room: tokio::sync::Notify,
}

/// An open view; closes it when dropped, so a failed dump never leaves writes saving
/// pre-images forever.
pub(crate) struct OpenedView {
    /// The view it keeps open.
    view: Arc<SnapshotView>,
}

fn size_of(key: &IVec, value: Option<&IVec>) -> usize {
    key.len() + value.map_or(0, |v| v.len()) + ENTRY_OVERHEAD
}

impl SnapshotView {
    fn lock(&self) -> MutexGuard<'_, Option<OpenView>> {
        // A panic while holding the lock leaves the map as consistent as it was (every
        // operation on it is a single insert or remove), so the poison is not worth a crash.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the view. Must be called where no batch is being applied (on the state machine
    /// worker, between two `apply` calls); the tree then holds the state the dump emits.
    pub(crate) fn open(self: &Arc<Self>) -> Result<OpenedView, StoreError> {
        let mut state = self.lock();
        if state.is_some() {
            return Err(StoreError::Codec("a snapshot view is already open".into()));
        }
        *state = Some(OpenView::default());
        Ok(OpenedView { view: self.clone() })
    }

    /// Saves the pre-image of each replicated key of `batch` the open dump has not reached yet
    /// and has none: called by the one writer just before the batch is applied.
    pub(crate) fn save_pre_images(&self, tree: &sled::Tree, batch: &StateBatch) -> Result<(), StoreError> {
        let mut state = self.lock();
        let Some(view) = state.as_mut() else { return Ok(()) };
        for key in batch.keys() {
            if key.starts_with(tables::WORK)
                || view.cursor.as_ref().is_some_and(|cursor| key <= cursor)
                || view.pre_images.contains_key(key)
            {
                continue;
            }
            let value = tree.get(key)?;
            let size = size_of(key, value.as_ref());
            view.pre_images.insert(key.clone(), value);
            view.bytes += size;
            view.peak_bytes = view.peak_bytes.max(view.bytes);
            view.saved += 1;
        }
        Ok(())
    }

    /// Returns once the open view's pre-images are under the budget (at once when no view is
    /// open): `apply` waits here before each entry.
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wake between the check and the await is kept.
            notified.as_mut().enable();
            if self.lock().as_ref().is_none_or(|view| view.bytes <= BUDGET_BYTES) {
                return;
            }
            notified.await;
        }
    }
}

impl OpenedView {
    /// What the dump writes for `key`, which the iterator just returned with `read`: its
    /// value when the view opened (`None`: it did not exist then). Keys must come in
    /// increasing order.
    pub(crate) fn resolve(&self, key: &IVec, read: IVec) -> Result<Option<IVec>, StoreError> {
        let mut state = self.view.lock();
        let Some(view) = state.as_mut() else { return Err(StoreError::Codec("the snapshot view closed".into())) };
        if view.cursor.as_ref().is_some_and(|cursor| key <= cursor) {
            return Err(StoreError::Codec("the state table iterator went backwards during a dump".into()));
        }
        view.cursor = Some(key.clone());
        let Some(pre_image) = view.pre_images.remove(key) else { return Ok(Some(read)) };
        let was_over = view.bytes > BUDGET_BYTES;
        view.bytes -= size_of(key, pre_image.as_ref());
        if was_over && view.bytes <= BUDGET_BYTES {
            self.view.room.notify_waiters();
        }
        Ok(pre_image)
    }

    /// Closes the view and returns the records that existed when it opened but that the
    /// iterator never met (deleted since), with what the view cost.
    pub(crate) fn finish(self) -> (Vec<(IVec, IVec)>, ViewStats) {
        let view = self.view.lock().take().unwrap_or_default();
        self.view.room.notify_waiters();
        let stats = ViewStats { saved: view.saved, peak_bytes: view.peak_bytes };
        let deleted = view.pre_images.into_iter().filter_map(|(key, value)| Some((key, value?))).collect();
        (deleted, stats)
    }
}

impl Drop for OpenedView {
    fn drop(&mut self) {
        self.view.lock().take();
        self.view.room.notify_waiters();
    }
}
