//! Applying the bucket CORS commands: a bucket's configuration set or removed.

use super::Changes;
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{CommandOutcome, Rejection};
use crate::cors::BucketCors;
use crate::error::StoreError;
use crate::tables::{self, record_key};

impl Changes<'_> {
    /// [`crate::Command::PutBucketCors`]: the bucket's configuration, replacing any before it.
    pub(super) fn put_bucket_cors(&mut self, bucket: &str, cors: &BucketCors) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        self.put(record_key(tables::CORS, &[bucket]), cors)?;
        Ok(Done)
    }

    /// [`crate::Command::DeleteBucketCors`]: the bucket has no configuration afterwards.
    pub(super) fn delete_bucket_cors(&mut self, bucket: &str) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        self.batch.remove(record_key(tables::CORS, &[bucket]));
        Ok(Done)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, CommandOutcome, Rejection};
    use crate::cors::{BucketCors, CorsRule};
    use crate::model::Bucket;
    use crate::state_machine::testing::{entry, state_machine};

    fn rules() -> BucketCors {
        BucketCors {
            rules: vec![CorsRule {
                id: Some("web".into()),
                allowed_origins: vec!["https://*.example.com".into()],
                allowed_methods: vec!["GET".into()],
                allowed_headers: vec!["*".into()],
                expose_headers: vec!["ETag".into()],
                max_age_seconds: Some(600),
            }],
        }
    }

    #[test]
    fn a_configuration_is_set_replaced_removed_and_goes_with_its_bucket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 1, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket.clone()))).expect("apply");
        let put = Command::PutBucketCors { bucket: "b".into(), cors: rules() };
        assert_eq!(sm.apply_entry(&entry(2, put)).expect("apply").0, CommandOutcome::Done);
        assert_eq!(sm.tables.bucket_cors("b").expect("read"), Some(rules()));
        let delete = Command::DeleteBucketCors { bucket: "b".into() };
        assert_eq!(sm.apply_entry(&entry(3, delete)).expect("apply").0, CommandOutcome::Done);
        assert_eq!(sm.tables.bucket_cors("b").expect("read"), None);

        let put = Command::PutBucketCors { bucket: "b".into(), cors: rules() };
        sm.apply_entry(&entry(4, put)).expect("apply");
        sm.apply_entry(&entry(5, Command::DeleteBucket { name: "b".into() })).expect("apply");
        sm.apply_entry(&entry(6, Command::CreateBucket(bucket))).expect("apply");
        assert_eq!(sm.tables.bucket_cors("b").expect("read"), None, "a re-created bucket starts without rules");

        let missing = Command::PutBucketCors { bucket: "nope".into(), cors: rules() };
        assert_eq!(
            sm.apply_entry(&entry(7, missing)).expect("apply").0,
            CommandOutcome::Rejected(Rejection::NoSuchBucket)
        );
    }
}
