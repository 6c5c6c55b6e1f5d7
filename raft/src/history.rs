//! The retained event history: the events `apply` derives, kept in the state machine under `e/`
//! in the same atomic sled batch as the change that caused them. It travels in snapshots like
//! every other record, so a consumer that was away can catch up long after the Raft log was
//! purged.
//!
//! It is bounded by a retention policy, but trimmed only by [`Command::TrimEvents`] entries: the
//! leader works out from its `[events]` settings how far the history may go ([`trim_target`])
//! and proposes that. Trimming while applying by each node's own settings would let two nodes
//! that applied the same log hold different histories (one answers a cursor, the other 410).
//!
//! Its bookkeeping record (`m/events`, [`HistoryState`]) says how many events are kept, the
//! newest one trimmed (a consumer whose cursor is older missed events: it gets
//! [`EventsError::Gone`], never a silent gap), and how far a batch entry that is applied in
//! several sled batches got (so re-applying it after a crash neither duplicates nor renumbers
//! the events it already stored).

use std::ops::Bound;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::decode;
#[cfg(doc)]
use crate::command::Command;
use crate::error::StoreError;
use crate::event::{Actor, Cursor, Event, EventKind};
use crate::model::UnixMillis;
use crate::tables::{self, Tables};

/// At most this many old events are removed by one trim command, so lowering the retention of a
/// big history never stalls `apply`; the leader proposes the rest in the following ones.
pub(crate) const TRIM_PER_ENTRY: usize = 4096;

/// Key of the time of the newest event ever recorded (trimming never moves it back): events of
/// commands that carry no time of their own take it, so time never runs backwards in the stream.
const NEWEST_AT: &[u8] = b"m/newest_event_at";

/// How much event history to keep (`[events]` of `cluster.toml`). Only the leader's values
/// matter: it proposes the trims (see the module docs), so a node configured differently still
/// holds the same history as every other.
#[derive(Debug, Clone, Copy)]
pub struct EventRetention {
    /// Most events kept (at least 1).
    pub max_events: u64,
    /// Events older than this, measured back from the newest event's time, are dropped too.
    /// `None`: no age limit.
    pub max_age: Option<Duration>,
}

impl Default for EventRetention {
    fn default() -> Self {
        Self { max_events: 100_000, max_age: None }
    }
}

/// Why events cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Events right after the cursor were trimmed from the retained history: the caller missed
    /// them and must decide what to do (resume behind `trimmed_through`, resynchronize...).
    #[error("events after {after} are no longer retained (history trimmed through {trimmed_through})")]
    Gone {
        /// The cursor asked for.
        after: Cursor,
        /// The newest event that was trimmed; resuming behind it reads the oldest retained one.
        trimmed_through: Cursor,
        /// The oldest retained event, if any is left.
        oldest: Option<Cursor>,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The history's bookkeeping, stored at `m/events` (replicated, in snapshots).
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HistoryState {
    /// Events stored under `e/` (kept up to date so trimming never has to count).
    retained: u64,
    /// The newest event ever trimmed.
    trimmed_through: Option<Cursor>,
    /// A batch entry whose commands were partly applied (see [`PartialEntry`]).
    partial: Option<PartialEntry>,
}

crate::codec::record! { HistoryState => "event history state" }

#[cfg(test)]
impl HistoryState {
    /// A state with `retained` events, for the codec's legacy-record tests.
    pub(crate) fn for_tests(retained: u64) -> Self {
        Self { retained, trimmed_through: Some(Cursor { index: u64::MAX, sub: 1 }), partial: None }
    }
}

/// How far a batch entry got: its commands are applied one sled batch each (every command must
/// see the previous ones), and a crash in between re-applies the whole entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartialEntry {
    /// Log index of the entry.
    index: u64,
    /// Its first commands whose events are stored.
    commands_done: u32,
    /// The sub-position the next event gets.
    next_sub: u32,
}

/// An event derived by `apply`, before it has its place in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewEvent {
    /// See [`Event::at`].
    pub(crate) at: UnixMillis,
    /// See [`Event::actor`].
    pub(crate) actor: Option<Actor>,
    /// See [`Event::kind`].
    pub(crate) kind: EventKind,
    /// See [`Event::client`].
    pub(crate) client: Option<String>,
}

/// `e/` ++ big-endian index ++ big-endian sub: byte order is cursor order.
fn event_key(cursor: Cursor) -> Vec<u8> {
    let mut key = Vec::with_capacity(tables::EVENT.len() + 12);
    key.extend_from_slice(tables::EVENT);
    key.extend_from_slice(&cursor.index.to_be_bytes());
    key.extend_from_slice(&cursor.sub.to_be_bytes());
    key
}

fn cursor_of_key(key: &[u8]) -> Result<Cursor, StoreError> {
    let rest = key.strip_prefix(tables::EVENT).filter(|rest| rest.len() == 12);
    let rest = rest.ok_or_else(|| StoreError::Codec("malformed event key".into()))?;
    let (index, sub) = rest.split_at(8);
    let index = u64::from_be_bytes(index.try_into().map_err(|_| StoreError::Codec("event key index".into()))?);
    let sub = u32::from_be_bytes(sub.try_into().map_err(|_| StoreError::Codec("event key sub".into()))?);
    Ok(Cursor { index, sub })
}

fn load_state(tables: &Tables) -> Result<HistoryState, StoreError> {
    Ok(tables.get(tables::EVENTS_STATE)?.unwrap_or_default())
}

/// The events of one log entry on their way into the history.
pub(crate) struct HistoryWriter {
    /// The bookkeeping as read at the start of the entry, updated as it goes.
    state: HistoryState,
    /// The entry's log index.
    index: u64,
    /// Sub-position of the entry's next event.
    next_sub: u32,
    /// Commands of a re-applied batch whose events are already stored.
    commands_done: u32,
    /// Events of the entry not yet put into a sled batch.
    pending: Vec<Event>,
    /// Time of the newest event recorded, to be written to [`NEWEST_AT`] (set once the entry
    /// records one).
    newest_at: Option<UnixMillis>,
    /// Whether `state` must be written back.
    dirty: bool,
}

impl HistoryWriter {
    /// Starts recording the events of entry `index`; resumes a batch entry a crash interrupted.
    pub(crate) fn begin(tables: &Tables, index: u64) -> Result<Self, StoreError> {
        let mut state = load_state(tables)?;
        let (mut next_sub, mut commands_done, mut dirty) = (0, 0, false);
        if let Some(partial) = state.partial.take() {
            dirty = true;
            if partial.index == index {
                (next_sub, commands_done) = (partial.next_sub, partial.commands_done);
            }
        }
        Ok(Self { state, index, next_sub, commands_done, pending: Vec::new(), newest_at: None, dirty })
    }

    /// Whether the batch's command at `position` is applied already, its state changes and its
    /// events stored (the entry is being re-applied after a crash): it is then skipped, since
    /// applying it again on top of the later commands of the batch would undo them.
    pub(crate) fn already_applied(&self, position: usize) -> bool {
        u32::try_from(position).is_ok_and(|p| p < self.commands_done)
    }

    /// Whether this entry is a batch entry resumed after a crash (some commands already applied).
    pub(crate) fn resumed(&self) -> bool {
        self.commands_done > 0
    }

    /// Gives the events their cursors, in order.
    pub(crate) fn add(&mut self, events: Vec<NewEvent>) -> Result<(), StoreError> {
        for NewEvent { at, actor, kind, client } in events {
            // u32::MAX is the "after the whole entry" cursor, never an event's.
            if self.next_sub == u32::MAX {
                return Err(StoreError::Codec(format!("entry {} yields too many events", self.index)));
            }
            let cursor = Cursor { index: self.index, sub: self.next_sub };
            self.next_sub += 1;
            self.pending.push(Event { cursor, at, actor, kind, client });
        }
        Ok(())
    }

    fn write_pending(&mut self, batch: &mut crate::snapshot_view::StateBatch) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        for event in self.pending.drain(..) {
            batch.insert(event_key(event.cursor), Tables::value(&event)?);
            self.state.retained += 1;
            self.newest_at = Some(event.at);
        }
        if let Some(at) = self.newest_at {
            batch.insert(NEWEST_AT, Tables::value(&at)?);
        }
        self.dirty = true;
        Ok(())
    }

    /// Puts the events so far into `batch`, which is applied before the batch entry's next
    /// command, and notes that its first `commands_done` commands are recorded.
    pub(crate) fn checkpoint(
        &mut self,
        batch: &mut crate::snapshot_view::StateBatch,
        commands_done: usize,
    ) -> Result<(), StoreError> {
        self.write_pending(batch)?;
        let commands_done =
            u32::try_from(commands_done).map_err(|_| StoreError::Codec("batch of over 2^32 commands".into()))?;
        self.commands_done = self.commands_done.max(commands_done);
        self.state.partial =
            Some(PartialEntry { index: self.index, commands_done: self.commands_done, next_sub: self.next_sub });
        batch.insert(tables::EVENTS_STATE, Tables::value(&self.state)?);
        self.state.partial = None;
        self.dirty = true;
        Ok(())
    }

    /// Puts the entry's remaining events and the bookkeeping into `batch`: the entry's final
    /// batch, the one that moves the applied index.
    pub(crate) fn finish(mut self, batch: &mut crate::snapshot_view::StateBatch) -> Result<(), StoreError> {
        self.write_pending(batch)?;
        if self.dirty {
            batch.insert(tables::EVENTS_STATE, Tables::value(&self.state)?);
        }
        Ok(())
    }

    /// Applies [`Command::TrimEvents`]: removes stored events up to and including `through`,
    /// oldest first, at most [`TRIM_PER_ENTRY`] of them. Only what the tree holds counts, so
    /// every node that applied the same log removes the same events.
    pub(crate) fn trim_through(
        &mut self,
        tables: &Tables,
        batch: &mut crate::snapshot_view::StateBatch,
        through: Cursor,
    ) -> Result<(), StoreError> {
        let range = tables::EVENT.to_vec()..=event_key(through);
        for item in tables.tree.range(range).take(TRIM_PER_ENTRY) {
            let (key, _) = item?;
            // Keys come in cursor order, all behind anything trimmed before: this only moves on.
            self.state.trimmed_through = Some(cursor_of_key(&key)?);
            self.state.retained = self.state.retained.saturating_sub(1);
            batch.remove(key);
            self.dirty = true;
        }
        Ok(())
    }
}

/// How far the leader may trim the history now (computed from the `[events]` retention and the
/// retained events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimTarget {
    /// The newest event to drop: what [`Command::TrimEvents`] carries.
    pub through: Cursor,
    /// Set when the retention lets go of more than one trim entry removes: propose again at once.
    pub more: bool,
}

/// How far `retention` lets the history go now (at most [`TRIM_PER_ENTRY`] events from the
/// oldest), if at all: what the leader proposes as [`Command::TrimEvents`]. Ages are measured
/// back from the newest event's time, so an idle cluster keeps its history however long it
/// stays idle.
pub(crate) fn trim_target(tables: &Tables, retention: EventRetention) -> Result<Option<TrimTarget>, StoreError> {
    let mut excess = load_state(tables)?.retained.saturating_sub(retention.max_events.max(1));
    let cutoff = match retention.max_age {
        Some(age) => {
            newest_time(tables)?.map(|newest| newest.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)))
        }
        None => None,
    };
    let mut target = None;
    for (n, item) in tables.tree.scan_prefix(tables::EVENT).enumerate() {
        let (key, value) = item?;
        let too_old = match cutoff {
            Some(cutoff) => decode::<Event>(&value)?.at < cutoff,
            None => false,
        };
        if excess == 0 && !too_old {
            break;
        }
        if n == TRIM_PER_ENTRY {
            return Ok(target.map(|through| TrimTarget { through, more: true }));
        }
        excess = excess.saturating_sub(1);
        target = Some(cursor_of_key(&key)?);
    }
    Ok(target.map(|through| TrimTarget { through, more: false }))
}

/// Reads up to `limit` retained events behind `after` (from the oldest retained one when
/// `None`), none beyond log index `applied`: an entry's events are all visible once it counts as
/// applied, so stopping there never skips an event that is still being written.
pub(crate) fn read(
    tables: &Tables,
    after: Option<Cursor>,
    limit: usize,
    applied: u64,
) -> Result<Vec<Event>, EventsError> {
    let start = match after {
        Some(after) => Bound::Excluded(event_key(after)),
        None => Bound::Included(tables::EVENT.to_vec()),
    };
    let mut events = Vec::new();
    for item in tables.tree.range((start, Bound::Unbounded)) {
        if events.len() >= limit {
            break;
        }
        let (key, value) = item.map_err(StoreError::from)?;
        if !key.starts_with(tables::EVENT) {
            break;
        }
        let event = Event::decode_stored(&value)?;
        if event.cursor.index > applied {
            break;
        }
        events.push(event);
    }
    // Checked after the read, so a trim that ran meanwhile cannot hide a gap.
    if let Some(after) = after
        && let Some(trimmed_through) = load_state(tables)?.trimmed_through
        && after < trimmed_through
    {
        let oldest = match tables.tree.scan_prefix(tables::EVENT).next() {
            Some(item) => Some(cursor_of_key(&item.map_err(StoreError::from)?.0)?),
            None => None,
        };
        return Err(EventsError::Gone { after, trimmed_through, oldest });
    }
    Ok(events)
}

/// The time of the newest event recorded, for events whose command carries no time. Kept apart
/// from the events themselves, so trimming never changes it.
pub(crate) fn newest_time(tables: &Tables) -> Result<Option<UnixMillis>, StoreError> {
    if let Some(at) = tables.get(NEWEST_AT)? {
        return Ok(Some(at));
    }
    // A state machine written before NEWEST_AT existed: its newest retained event (every node
    // kept at least that one) until the next event records the key.
    match tables.tree.scan_prefix(tables::EVENT).next_back() {
        Some(item) => Ok(Some(Event::decode_stored(&item?.1)?.at)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(dir: &std::path::Path) -> Tables {
        let db = sled::Config::new().path(dir.join("db")).temporary(true).open().expect("sled");
        Tables::new(db.open_tree("state").expect("tree"))
    }

    fn deleted(key: &str, at: UnixMillis) -> NewEvent {
        NewEvent {
            at,
            actor: None,
            kind: EventKind::ObjectDeleted { bucket: "b".into(), key: key.into() },
            client: None,
        }
    }

    /// Records one entry with these events, as `apply` does.
    fn record(tables: &Tables, index: u64, events: Vec<NewEvent>) {
        let mut writer = HistoryWriter::begin(tables, index).expect("begin");
        writer.add(events).expect("add");
        let mut batch = crate::snapshot_view::StateBatch::default();
        writer.finish(&mut batch).expect("finish");
        tables.apply_batch(batch).expect("apply");
    }

    /// Applies a `TrimEvents { through }` entry at `index`, as `apply` does.
    fn trim(tables: &Tables, index: u64, through: Cursor) {
        let mut writer = HistoryWriter::begin(tables, index).expect("begin");
        let mut batch = crate::snapshot_view::StateBatch::default();
        writer.trim_through(tables, &mut batch, through).expect("trim");
        writer.finish(&mut batch).expect("finish");
        tables.apply_batch(batch).expect("apply");
    }

    fn cursors(events: &[Event]) -> Vec<String> {
        events.iter().map(|e| e.cursor.to_string()).collect()
    }

    #[test]
    fn events_read_back_in_order_behind_the_cursor_and_up_to_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tables(dir.path());
        record(&t, 3, vec![deleted("a", 1), deleted("b", 1)]);
        record(&t, 5, vec![deleted("c", 2)]);
        let all = |after| read(&t, after, 100, 5).expect("read");
        assert_eq!(cursors(&all(None)), ["3.0", "3.1", "5.0"]);
        assert_eq!(cursors(&all(Some(Cursor::after_entry(0)))), ["3.0", "3.1", "5.0"]);
        assert_eq!(cursors(&all(Some(Cursor { index: 3, sub: 0 }))), ["3.1", "5.0"]);
        assert_eq!(cursors(&all(Some(Cursor::after_entry(3)))), ["5.0"]);
        assert!(all(Some(Cursor { index: 5, sub: 0 })).is_empty());
        assert_eq!(cursors(&read(&t, None, 2, 5).expect("read")), ["3.0", "3.1"]);
        assert_eq!(cursors(&read(&t, None, 100, 4).expect("read")), ["3.0", "3.1"], "stops at the applied index");
    }

    /// Recording never trims, whatever the retention; the target keeps the newest `max_events`
    /// and a trim through it refuses cursors behind it.
    #[test]
    fn trimming_keeps_the_newest_and_refuses_cursors_behind_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tables(dir.path());
        let keep3 = EventRetention { max_events: 3, max_age: None };
        for index in 1..=4 {
            record(&t, index, vec![deleted("k", 0)]);
        }
        assert_eq!(cursors(&read(&t, None, 100, 10).expect("read")), ["1.0", "2.0", "3.0", "4.0"], "no trim yet");
        let target = trim_target(&t, keep3).expect("target");
        assert_eq!(target, Some(TrimTarget { through: Cursor { index: 1, sub: 0 }, more: false }));
        trim(&t, 5, Cursor { index: 1, sub: 0 });
        assert_eq!(trim_target(&t, keep3).expect("target"), None, "nothing more to trim");
        assert_eq!(cursors(&read(&t, None, 100, 10).expect("read")), ["2.0", "3.0", "4.0"]);
        assert_eq!(
            cursors(&read(&t, Some(Cursor { index: 1, sub: 0 }), 100, 10).expect("exact resume")),
            ["2.0", "3.0", "4.0"]
        );
        match read(&t, Some(Cursor::after_entry(0)), 100, 10) {
            Err(EventsError::Gone { trimmed_through, oldest, .. }) => {
                assert_eq!(trimmed_through, Cursor { index: 1, sub: 0 });
                assert_eq!(oldest, Some(Cursor { index: 2, sub: 0 }));
            }
            other => panic!("expected Gone, got {other:?}"),
        }
        // A stale trim (behind what is trimmed) changes nothing.
        let before = load_state(&t).expect("state");
        trim(&t, 6, Cursor { index: 1, sub: 0 });
        assert_eq!(load_state(&t).expect("state"), before);
        // An entry with more events than the limit: the target keeps only its last ones.
        record(&t, 7, (0..5).map(|i| deleted(&i.to_string(), 0)).collect());
        let target = trim_target(&t, keep3).expect("target").expect("something to trim").through;
        assert_eq!(target, Cursor { index: 7, sub: 1 });
        trim(&t, 8, target);
        assert_eq!(cursors(&read(&t, None, 100, 10).expect("read")), ["7.2", "7.3", "7.4"]);
        assert_eq!(load_state(&t).expect("state").retained, 3);
    }

    #[test]
    fn trimming_by_age_is_measured_from_the_newest_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tables(dir.path());
        let ten_secs = EventRetention { max_events: 100, max_age: Some(Duration::from_secs(10)) };
        record(&t, 1, vec![deleted("old", 1_000)]);
        record(&t, 2, vec![deleted("mid", 9_000)]);
        record(&t, 3, vec![deleted("new", 15_000)]);
        let target = trim_target(&t, ten_secs).expect("target").map(|t| t.through);
        assert_eq!(target, Some(Cursor { index: 1, sub: 0 }));
        trim(&t, 4, Cursor { index: 1, sub: 0 });
        assert_eq!(cursors(&read(&t, None, 100, 10).expect("read")), ["2.0", "3.0"]);
    }

    /// The time events without one of their own take is the newest recorded, even once every
    /// event is trimmed: trimming must not make time run backwards.
    #[test]
    fn newest_time_survives_trimming() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tables(dir.path());
        assert_eq!(newest_time(&t).expect("newest"), None);
        record(&t, 1, vec![deleted("a", 5_000), deleted("b", 7_000)]);
        assert_eq!(newest_time(&t).expect("newest"), Some(7_000));
        trim(&t, 2, Cursor::after_entry(1));
        assert!(read(&t, None, 100, 10).expect("read").is_empty(), "everything trimmed");
        assert_eq!(newest_time(&t).expect("newest"), Some(7_000));
    }

    /// A batch entry interrupted between its sled batches and applied again records each event
    /// once, under the cursor it first got.
    #[test]
    fn a_reapplied_batch_entry_neither_duplicates_nor_renumbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tables(dir.path());
        // First attempt: command 0 yields two events and its batch is applied; then a "crash".
        let mut writer = HistoryWriter::begin(&t, 7).expect("begin");
        writer.add(vec![deleted("a", 1), deleted("b", 1)]).expect("add");
        let mut batch = crate::snapshot_view::StateBatch::default();
        writer.checkpoint(&mut batch, 1).expect("checkpoint");
        t.apply_batch(batch).expect("apply");
        // Second attempt: command 0 is skipped; command 1 yields one event.
        let mut writer = HistoryWriter::begin(&t, 7).expect("begin");
        assert!(writer.resumed());
        assert!(writer.already_applied(0));
        assert!(!writer.already_applied(1));
        writer.add(vec![deleted("c", 1)]).expect("add");
        let mut batch = crate::snapshot_view::StateBatch::default();
        writer.finish(&mut batch).expect("finish");
        t.apply_batch(batch).expect("apply");
        let events = read(&t, None, 100, 7).expect("read");
        assert_eq!(cursors(&events), ["7.0", "7.1", "7.2"]);
        assert_eq!(load_state(&t).expect("state"), HistoryState { retained: 3, trimmed_through: None, partial: None });
    }
}
