//! What the state machine's unit tests share: a state machine on a temporary sled, entries,
//! objects and what applying them left behind.

use super::*;
use crate::command::WriteCondition;
use crate::model::{ObjectMeta, WorkItem};

/// A state machine of node 1 on a temporary sled, every entry visible at once.
pub(super) fn state_machine(dir: &std::path::Path) -> StateMachine {
    let db = sled::Config::new().path(dir.join("db")).temporary(true).open().expect("sled");
    StateMachine {
        node: 1,
        tables: Tables::new(db.open_tree("state").expect("tree")),
        snapshots: SnapshotFiles::new(dir.join("snapshots")),
        work: watch::channel(0).0,
        applied_tx: watch::channel(0).0,
        incoming: None,
        leases: std::sync::Arc::new(crate::lease::Leases::new(
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
            Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), u64::MAX)),
        )),
    }
}

/// A normal entry of term 1 at `index`.
pub(super) fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry { log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(command) }
}

/// A one-byte blob-backed object held by `holder`.
pub(super) fn object(blob: &str, holder: NodeId) -> ObjectMeta {
    ObjectMeta {
        blob: blob.into(),
        inline: None,
        size: 1,
        etag: "e".into(),
        last_modified: 0,
        headers: Default::default(),
        tags: Vec::new(),
        checksums: Default::default(),
        parts: Vec::new(),
        holders: [(holder, 0)].into(),
    }
}

/// The work items this node owes, in order.
pub(super) fn owed(sm: &StateMachine) -> Vec<WorkItem> {
    sm.tables.work_items().expect("work").into_iter().map(|(_, w)| w).collect()
}

/// The kinds of the retained events up to `applied`, in order.
pub(super) fn kinds(sm: &StateMachine, applied: u64) -> Vec<&'static str> {
    crate::history::read(&sm.tables, None, 100, applied).expect("read").iter().map(|e| e.kind.name()).collect()
}

/// A write of `key` in bucket `b`, without condition.
pub(super) fn put(key: &str, blob: &str, holder: NodeId) -> Command {
    Command::PutObject {
        bucket: "b".into(),
        key: key.into(),
        meta: object(blob, holder),
        condition: WriteCondition::None,
        completes_upload: None,
    }
}
