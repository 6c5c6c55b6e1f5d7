//! Applying the access key commands: legacy and owned keys, disabling, deleting.

use super::Changes;
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{CommandOutcome, Rejection};
use crate::error::StoreError;
use crate::model::{AccessKey, KeyOwner, KeyRecord, UnixMillis};
use crate::tables::{self, record_key};

impl Changes<'_> {
    /// [`crate::Command::PutAccessKey`]: a legacy key, without an owner record.
    pub(super) fn put_access_key(&mut self, access_key: &AccessKey) -> Result<CommandOutcome, StoreError> {
        self.put(record_key(tables::KEY, &[&access_key.id]), access_key)?;
        Ok(Done)
    }

    /// [`crate::Command::CreateAccessKey`]: a new key with its owner, never over an existing one.
    pub(super) fn create_access_key(
        &mut self,
        key: &AccessKey,
        owner: &KeyOwner,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.access_key(&key.id)?.is_some() {
            return Ok(Rejected(Rejection::PreconditionFailed));
        }
        self.put(record_key(tables::KEY, &[&key.id]), key)?;
        let record = KeyRecord { owner: Some(owner.clone()), disabled: None };
        self.put(record_key(tables::KEY_RECORD, &[&key.id]), &record)?;
        Ok(Done)
    }

    /// [`crate::Command::SetAccessKeyDisabled`]: disables or enables a key.
    pub(super) fn set_access_key_disabled(
        &mut self,
        id: &str,
        disabled: Option<UnixMillis>,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.access_key(id)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchKey));
        }
        // A legacy key gets a record here, its owner still unknown.
        let mut record = self.tables.key_record(id)?.unwrap_or_default();
        record.disabled = disabled;
        self.put(record_key(tables::KEY_RECORD, &[id]), &record)?;
        Ok(Done)
    }

    /// [`crate::Command::DeleteAccessKey`]: the key and its record go.
    pub(super) fn delete_access_key(&mut self, id: &str) -> Result<CommandOutcome, StoreError> {
        if self.tables.access_key(id)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchKey));
        }
        self.batch.remove(record_key(tables::KEY, &[id]));
        self.batch.remove(record_key(tables::KEY_RECORD, &[id]));
        Ok(Done)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, CommandOutcome, Rejection};

    use crate::state_machine::StateMachine;

    use crate::state_machine::testing::{entry, state_machine};

    /// Keys are created with an owner (never over another key), disabled and enabled, and
    /// deleted with their record; a key made by `PutAccessKey` is a legacy key: enabled, owned
    /// by the service named after it, until it gets a record.
    #[test]
    fn access_keys_are_created_disabled_enabled_and_deleted() {
        use crate::model::{AccessKey, KeyOwner};
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let key = |id: &str| AccessKey { id: id.into(), secret: "s".into(), name: format!("n-{id}"), created: 7 };
        let owner = KeyOwner::User("u-1".into());
        let create = |id: &str| Command::CreateAccessKey { key: key(id), owner: owner.clone() };
        let outcome = |sm: &StateMachine, i, c| sm.apply_entry(&entry(i, c)).expect("apply").0;
        assert_eq!(outcome(&sm, 1, create("K1")), CommandOutcome::Done);
        assert_eq!(outcome(&sm, 2, create("K1")), CommandOutcome::Rejected(Rejection::PreconditionFailed));
        assert_eq!(outcome(&sm, 3, Command::PutAccessKey(key("LEGACY"))), CommandOutcome::Done);
        let infos = sm.tables.access_keys().expect("list");
        assert_eq!(infos.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["K1", "LEGACY"]);
        assert_eq!((infos[0].owner.clone(), infos[0].owner_recorded), (owner.clone(), true));
        assert_eq!((infos[1].owner.clone(), infos[1].owner_recorded), (KeyOwner::Service("n-LEGACY".into()), false));
        assert!(infos.iter().all(|i| i.disabled.is_none() && i.created == 7));

        let disable = |id: &str, at| Command::SetAccessKeyDisabled { id: id.into(), disabled: at };
        assert_eq!(outcome(&sm, 4, disable("LEGACY", Some(50))), CommandOutcome::Done);
        assert_eq!(sm.tables.key_record("LEGACY").expect("read").and_then(|r| r.disabled), Some(50));
        assert_eq!(sm.tables.access_keys().expect("list")[1].owner, KeyOwner::Service("n-LEGACY".into()));
        assert_eq!(outcome(&sm, 5, disable("LEGACY", None)), CommandOutcome::Done);
        assert_eq!(sm.tables.key_record("LEGACY").expect("read").and_then(|r| r.disabled), None);
        assert_eq!(outcome(&sm, 6, disable("NOPE", Some(1))), CommandOutcome::Rejected(Rejection::NoSuchKey));

        let delete = |id: &str| Command::DeleteAccessKey { id: id.into() };
        assert_eq!(outcome(&sm, 7, delete("K1")), CommandOutcome::Done);
        assert_eq!(sm.tables.access_key("K1").expect("read"), None);
        assert_eq!(sm.tables.key_record("K1").expect("read"), None);
        assert_eq!(outcome(&sm, 8, delete("K1")), CommandOutcome::Rejected(Rejection::NoSuchKey));
        // A key re-created at a deleted id starts enabled, with its new owner.
        assert_eq!(outcome(&sm, 9, create("K1")), CommandOutcome::Done);
        assert_eq!(sm.tables.key_record("K1").expect("read").and_then(|r| r.disabled), None);
    }
}
