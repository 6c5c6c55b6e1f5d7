//! Applying the user commands: the admin panel's users, upserted from the Auth service and
//! marked deleted rather than removed.

use super::Changes;
use crate::command::CommandOutcome;
use crate::command::CommandOutcome::Done;
use crate::error::StoreError;
use crate::model::{UnixMillis, User, UserProfile};
use crate::tables::{self, record_key};

impl Changes<'_> {
    /// [`crate::Command::UpsertUsers`]: users seen at the Auth service are created or updated.
    pub(super) fn upsert_users(
        &mut self,
        users: &[UserProfile],
        at: UnixMillis,
        sign_in: bool,
    ) -> Result<CommandOutcome, StoreError> {
        for profile in users {
            let user = match self.tables.user(&profile.id)? {
                Some(mut user) => {
                    if user.profile != *profile || user.deleted.is_some() {
                        user.updated = at;
                    }
                    user.profile.clone_from(profile);
                    user.deleted = None;
                    if sign_in {
                        user.last_sign_in = Some(at);
                    }
                    user
                }
                None => User {
                    profile: profile.clone(),
                    first_seen: at,
                    updated: at,
                    last_sign_in: sign_in.then_some(at),
                    deleted: None,
                },
            };
            self.put(record_key(tables::USER, &[&profile.id]), &user)?;
        }
        Ok(Done)
    }

    /// [`crate::Command::MarkUsersDeleted`]: users gone from the Auth service are marked, not
    /// removed.
    pub(super) fn mark_users_deleted(&mut self, ids: &[String], at: UnixMillis) -> Result<CommandOutcome, StoreError> {
        for id in ids {
            if let Some(mut user) = self.tables.user(id)?
                && user.deleted.is_none()
            {
                user.deleted = Some(at);
                self.put(record_key(tables::USER, &[id]), &user)?;
            }
        }
        Ok(Done)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::Command;

    use crate::state_machine::testing::{entry, state_machine};

    fn profile(id: &str, name: &str) -> crate::model::UserProfile {
        crate::model::UserProfile {
            id: id.into(),
            login: id.into(),
            name: name.into(),
            email: String::new(),
            roles: vec!["user".into()],
        }
    }

    /// Users are created, changed (keeping first-seen and last sign-in), marked deleted with a
    /// time rather than removed, and come back when seen again; re-applying is harmless.
    #[test]
    fn users_are_upserted_and_marked_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let upsert = |users, at, sign_in| Command::UpsertUsers { users, at, sign_in };
        sm.apply_entry(&entry(1, upsert(vec![profile("a", "Ann")], 10, true))).expect("apply");
        sm.apply_entry(&entry(2, upsert(vec![profile("a", "Ann"), profile("b", "Ben")], 20, false))).expect("apply");
        let a = sm.tables.user("a").expect("read").expect("a exists");
        assert_eq!((a.first_seen, a.updated, a.last_sign_in, a.deleted), (10, 10, Some(10), None));

        sm.apply_entry(&entry(3, upsert(vec![profile("a", "Anna")], 30, false))).expect("apply");
        let a = sm.tables.user("a").expect("read").expect("a exists");
        assert_eq!((a.profile.name.as_str(), a.updated, a.last_sign_in), ("Anna", 30, Some(10)));

        let delete = Command::MarkUsersDeleted { ids: vec!["b".into(), "nobody".into()], at: 40 };
        sm.apply_entry(&entry(4, delete.clone())).expect("apply");
        sm.apply_entry(&entry(5, delete)).expect("re-apply");
        let b = sm.tables.user("b").expect("read").expect("b is kept");
        assert_eq!(b.deleted, Some(40), "the first deletion time stays");
        assert!(sm.tables.user("nobody").expect("read").is_none());
        assert_eq!(sm.tables.users().expect("read").len(), 2);

        sm.apply_entry(&entry(6, upsert(vec![profile("b", "Ben")], 50, false))).expect("apply");
        let b = sm.tables.user("b").expect("read").expect("b");
        assert_eq!((b.deleted, b.updated, b.first_seen), (None, 50, 20));
    }
}
