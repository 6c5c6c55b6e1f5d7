//! Applying the share commands: creating, revoking and using shares, and the indexes that
//! find them by file, by user and by creator.

use super::Changes;
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{CommandOutcome, Rejection};
use crate::error::StoreError;
use crate::event::EventKind;
use crate::history;
use crate::model::{Share, ShareAudience, ShareState, UnixMillis};
use crate::tables::{self, record_key};

impl Changes<'_> {
    /// [`crate::Command::CreateShare`]: a share of an existing file, indexed for its lookups.
    pub(super) fn create_share(&mut self, share: &Share) -> Result<CommandOutcome, StoreError> {
        if self.tables.share(&share.id)?.is_some() {
            return Ok(Rejected(Rejection::PreconditionFailed));
        }
        // The file may have been deleted since the proposer looked: a share of nothing
        // would come back to life with the next file at that key.
        if self.tables.object(&share.bucket, &share.key)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchKey));
        }
        self.put(record_key(tables::SHARE, &[&share.id]), share)?;
        self.index_share(share)?;
        let audience = match &share.audience {
            ShareAudience::Public { token_sha256, .. } => {
                self.put(record_key(tables::SHARE_TOKEN, &[token_sha256]), &share.id)?;
                "public".to_owned()
            }
            ShareAudience::User { user, permission } => format!("user:{user}:{permission}"),
        };
        let kind = EventKind::ShareCreated {
            share: share.id.clone(),
            bucket: share.bucket.clone(),
            key: share.key.clone(),
            audience,
            expires: share.expires,
        };
        self.emit(Some(share.created), kind)?;
        Ok(Done)
    }

    /// [`crate::Command::RevokeShare`]: an active share is revoked.
    pub(super) fn revoke_share(&mut self, id: &str, at: UnixMillis) -> Result<CommandOutcome, StoreError> {
        let Some(mut share) = self.tables.share(id)?.filter(|s| s.revoked.is_none()) else {
            return Ok(Rejected(Rejection::NoSuchKey));
        };
        share.revoked = Some(at);
        self.put(record_key(tables::SHARE, &[id]), &share)?;
        let kind = EventKind::ShareRevoked { share: id.to_owned(), bucket: share.bucket, key: share.key };
        self.emit(Some(at), kind)?;
        Ok(Done)
    }

    /// [`crate::Command::UseShare`]: one download through a share, refused once it is no longer
    /// active.
    pub(super) fn use_share(&mut self, id: &str, at: UnixMillis, client: &str) -> Result<CommandOutcome, StoreError> {
        let Some(mut share) = self.tables.share(id)? else {
            return Ok(Rejected(Rejection::NoSuchKey));
        };
        // Judged no earlier than the newest time already in the history, so a proposer
        // whose clock runs behind cannot stretch a link past its expiry.
        let now = history::newest_time(self.tables)?.map_or(at, |newest| newest.max(at));
        if share.state(now) != ShareState::Active {
            return Ok(Rejected(Rejection::PreconditionFailed));
        }
        share.downloads += 1;
        self.put(record_key(tables::SHARE, &[id]), &share)?;
        let kind = EventKind::ShareUsed {
            share: id.to_owned(),
            bucket: share.bucket,
            key: share.key,
            client: client.to_owned(),
        };
        self.emit(Some(at), kind)?;
        Ok(Done)
    }

    /// [`crate::Command::CountShareUses`]: downloads counted on a node, added as one.
    pub(super) fn count_share_uses(
        &mut self,
        id: &str,
        at: UnixMillis,
        count: u64,
        client: &str,
    ) -> Result<CommandOutcome, StoreError> {
        let Some(mut share) = self.tables.share(id)? else {
            return Ok(Rejected(Rejection::NoSuchKey));
        };
        share.downloads = share.downloads.saturating_add(count);
        self.put(record_key(tables::SHARE, &[id]), &share)?;
        let client = if count > 1 { format!("{client} and {} more downloads", count - 1) } else { client.to_owned() };
        let kind = EventKind::ShareUsed { share: id.to_owned(), bucket: share.bucket, key: share.key, client };
        self.emit(Some(at), kind)?;
        Ok(Done)
    }

    /// Indexes a new share by file, by the user it names and by its creator (see `tables`).
    fn index_share(&mut self, share: &Share) -> Result<(), StoreError> {
        let id = &share.id;
        self.put(record_key(tables::SHARE_BY_OBJECT, &[&share.bucket, &share.key, id]), id)?;
        self.put(record_key(tables::SHARE_BY_CREATOR, &[&share.created_by, id]), id)?;
        if let ShareAudience::User { user, .. } = &share.audience {
            self.put(record_key(tables::SHARE_BY_USER, &[user, &share.bucket, &share.key, id]), id)?;
        }
        Ok(())
    }

    /// Revokes the shares of a file that is going away (deleted, or its bucket deleted), so a
    /// later file at the same key, maybe someone else's, is never reachable through them; and
    /// drops them from the file and user indexes, which describe the file as it is now. The
    /// creator keeps seeing them, revoked.
    pub(super) fn revoke_shares_of(&mut self, shares: Vec<Share>) -> Result<(), StoreError> {
        let at = self.command_time()?;
        for mut share in shares {
            let id = share.id.clone();
            self.batch.remove(record_key(tables::SHARE_BY_OBJECT, &[&share.bucket, &share.key, &id]));
            if let ShareAudience::User { user, .. } = &share.audience {
                self.batch.remove(record_key(tables::SHARE_BY_USER, &[user, &share.bucket, &share.key, &id]));
            }
            if share.revoked.is_some() {
                continue;
            }
            share.revoked = Some(at);
            self.put(record_key(tables::SHARE, &[&id]), &share)?;
            let kind = EventKind::ShareRevoked { share: id, bucket: share.bucket, key: share.key };
            self.emit(Some(at), kind)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, CommandOutcome, Rejection};

    use crate::model::{Bucket, Share, ShareAudience};

    use crate::state_machine::testing::{entry, put, state_machine};
    use crate::tables::{self, Tables, record_key};

    fn share(id: &str, key: &str, audience: ShareAudience) -> Command {
        Command::CreateShare(Share {
            id: id.into(),
            bucket: "b".into(),
            key: key.into(),
            created_by: "u-alice".into(),
            created: 10,
            expires: Some(1_000),
            revoked: None,
            downloads: 0,
            audience,
        })
    }

    fn public(token: &str) -> ShareAudience {
        ShareAudience::Public { token_sha256: token.into(), password_hash: None, max_downloads: Some(2) }
    }

    /// Downloads counted on a node arrive as one count: added to the link's downloads, with
    /// one event for all of them; an unknown link is refused.
    #[test]
    fn counted_share_uses_add_up_with_one_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        sm.apply_entry(&entry(2, put("k", "ef01", 1).attributed(None, 20))).expect("apply");
        let unlimited = ShareAudience::Public { token_sha256: "t".into(), password_hash: None, max_downloads: None };
        sm.apply_entry(&entry(3, share("s1", "k", unlimited))).expect("apply");
        let count =
            |id: &str, count| Command::CountShareUses { id: id.into(), at: 30, count, client: "192.0.2.1".into() };
        let (outcome, _) = sm.apply_entry(&entry(4, count("s1", 40))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Done);
        let (outcome, _) = sm.apply_entry(&entry(5, count("nope", 1))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Rejected(Rejection::NoSuchKey));
        assert_eq!(sm.tables.share("s1").expect("read").map(|s| s.downloads), Some(40));
        let used = crate::history::read(&sm.tables, None, 100, 5).expect("read");
        let used: Vec<_> = used.iter().filter(|e| e.kind.name() == "ShareUsed").collect();
        assert_eq!(used.len(), 1, "one event for the whole count");
    }

    /// Shares die with their file: a delete (not an overwrite) revokes them and drops them from
    /// the file and user indexes, so a new file at the key starts with none; a share of a
    /// missing file is refused; a bucket delete revokes what is left; uses are judged at the
    /// newest time in the history, not an older proposer clock.
    #[test]
    fn shares_die_with_their_file() {
        use crate::model::SharePermission;
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        let (outcome, _) = sm.apply_entry(&entry(2, share("s0", "k", public("t0")))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Rejected(Rejection::NoSuchKey), "no file, no share");
        sm.apply_entry(&entry(3, put("k", "ee01", 1).attributed(None, 20))).expect("apply");
        sm.apply_entry(&entry(4, put("k/sub", "ee02", 1).attributed(None, 21))).expect("apply");
        let carol = ShareAudience::User { user: "u-carol".into(), permission: SharePermission::Write };
        for (i, command) in
            [share("s1", "k", public("t1")), share("s2", "k", carol), share("s3", "k/sub", public("t3"))]
                .into_iter()
                .enumerate()
        {
            let (outcome, _) = sm.apply_entry(&entry(5 + i as u64, command)).expect("apply");
            assert_eq!(outcome, CommandOutcome::Done);
        }
        let ids = |shares: Vec<Share>| shares.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(sm.tables.shares_of_object("b", "k").expect("read")), ["s1", "s2"], "not k/sub's");
        assert_eq!(ids(sm.tables.user_shares_of("u-carol", "b", "k").expect("read")), ["s2"]);
        assert_eq!(ids(sm.tables.shares_created_by("u-alice", None, 10).expect("read").shares), ["s1", "s2", "s3"]);

        // An overwrite keeps them.
        sm.apply_entry(&entry(8, put("k", "ee03", 1).attributed(None, 30))).expect("apply");
        assert_eq!(sm.tables.shares_of_object("b", "k").expect("read").len(), 2, "an overwrite keeps shares");

        // A use at a time before the newest event is judged at the newest event's time.
        let use_at = |at| Command::UseShare { id: "s1".into(), at, client: "c".into() };
        sm.apply_entry(&entry(9, put("late", "ee04", 1).attributed(None, 1_500))).expect("apply");
        let (outcome, _) = sm.apply_entry(&entry(10, use_at(900))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Rejected(Rejection::PreconditionFailed), "expired at the cluster's time");

        // A delete revokes them and empties the indexes; the creator still lists them.
        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        sm.apply_entry(&entry(11, delete.attributed(None, 1_600))).expect("apply");
        assert!(sm.tables.shares_of_object("b", "k").expect("read").is_empty());
        assert!(sm.tables.user_shares_of("u-carol", "b", "k").expect("read").is_empty());
        let s1 = sm.tables.share_by_token("t1").expect("read").expect("s1 kept");
        assert_eq!(s1.revoked, Some(1_600));
        sm.apply_entry(&entry(12, put("k", "ee05", 1).attributed(None, 1_700))).expect("apply");
        assert!(sm.tables.shares_of_object("b", "k").expect("read").is_empty(), "a new file starts without shares");
        assert_eq!(sm.tables.share("s3").expect("read").and_then(|s| s.revoked), None, "k/sub untouched");

        // Emptied and deleted, the bucket takes its remaining shares with it, including one
        // recorded before the indexes existed (written here straight into `h/`).
        let delete =
            Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into(), "k/sub".into(), "late".into()] };
        sm.apply_entry(&entry(13, delete.attributed(None, 1_800))).expect("apply");
        assert!(sm.tables.share("s3").expect("read").is_some_and(|s| s.revoked.is_some()));
        let Command::CreateShare(legacy) = share("s4", "gone", public("t4")) else { unreachable!() };
        sm.tables
            .tree
            .insert(record_key(tables::SHARE, &["s4"]), Tables::value(&legacy).expect("encode"))
            .expect("insert");
        sm.apply_entry(&entry(14, Command::DeleteBucket { name: "b".into() }.attributed(None, 1_900))).expect("apply");
        assert_eq!(sm.tables.share("s4").expect("read").and_then(|s| s.revoked), Some(1_900));
        let revoked = crate::history::read(&sm.tables, None, 100, 14)
            .expect("read")
            .iter()
            .filter(|e| e.kind.name() == "ShareRevoked")
            .count();
        assert_eq!(revoked, 4, "one ShareRevoked per share");
    }
}
