//! Applying the commands about the event stream: webhook delivery cursors and history trims.

use super::Changes;
use crate::command::CommandOutcome;
use crate::command::CommandOutcome::Done;
use crate::error::StoreError;
use crate::event::Cursor;
use crate::tables::{self, record_key};

impl Changes<'_> {
    /// [`crate::Command::WebhookDelivered`]: a subscription's delivery cursor, which only moves
    /// forward.
    pub(super) fn webhook_delivered(
        &mut self,
        subscription: &str,
        cursor: Cursor,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.delivered(subscription)?.is_none_or(|current| current < cursor) {
            self.put(record_key(tables::SUBSCRIPTION, &[subscription]), &cursor)?;
        }
        Ok(Done)
    }

    /// [`crate::Command::TrimEvents`]: noted for the caller, which owns the history's bookkeeping.
    pub(super) fn trim_events(&mut self, through: Cursor) -> Result<CommandOutcome, StoreError> {
        self.trim = Some(through);
        Ok(Done)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::Command;
    use crate::event::Cursor;
    use crate::model::Bucket;

    use crate::state_machine::testing::{entry, put, state_machine};

    /// Applying never trims the history by itself, however long it grows; `TrimEvents` does,
    /// inside a batch too, and a cursor behind it is then refused. Events without a time keep
    /// the newest time even once everything is trimmed.
    #[test]
    fn events_are_trimmed_only_by_the_trim_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        for i in 0..200u64 {
            let mut command = put(&format!("k{i}"), &format!("ab{i:02x}"), 1);
            if let Command::PutObject { meta, .. } = &mut command {
                meta.last_modified = 1_000 + i64::try_from(i).expect("small");
            }
            sm.apply_entry(&entry(2 + i, command)).expect("apply");
        }
        let all = crate::history::read(&sm.tables, None, 1000, 300).expect("read");
        assert_eq!(all.len(), 201, "nothing is trimmed without a TrimEvents entry");

        let through = all[150].cursor;
        let mut late = put("late", "abff", 1);
        if let Command::PutObject { meta, .. } = &mut late {
            meta.last_modified = 5_000;
        }
        let batch = Command::Batch(vec![Command::TrimEvents { through }, late]);
        sm.apply_entry(&entry(300, batch)).expect("apply");
        let left = crate::history::read(&sm.tables, None, 1000, 300).expect("read");
        assert_eq!(left.first().map(|e| e.cursor), Some(all[151].cursor));
        assert_eq!(left.len(), 51);
        assert!(matches!(
            crate::history::read(&sm.tables, Some(all[10].cursor), 10, 300),
            Err(crate::history::EventsError::Gone { .. })
        ));

        sm.apply_entry(&entry(301, Command::TrimEvents { through: Cursor::after_entry(300) })).expect("apply");
        assert!(crate::history::read(&sm.tables, None, 1000, 301).expect("read").is_empty());
        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["late".into()] };
        sm.apply_entry(&entry(302, delete)).expect("apply");
        let deleted = crate::history::read(&sm.tables, None, 10, 302).expect("read");
        assert_eq!(deleted.iter().map(|e| e.at).collect::<Vec<_>>(), [5_000], "the newest time, not 0");
    }
}
