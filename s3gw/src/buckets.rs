//! Bucket operations.

use meridian_raft::Command;
use meridian_raft::model::Bucket;
use s3s::dto::{
    BucketLocationConstraint, CreateBucketInput, CreateBucketOutput, DeleteBucketInput, DeleteBucketOutput,
    GetBucketLocationInput, GetBucketLocationOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::access::KeyScope;
use crate::convert::timestamp;
use crate::error;
use crate::gateway::{Gateway, now_millis};

impl Gateway {
    pub(crate) async fn create_bucket_op(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let origin = self.origin_of(&req);
        let mut input = req.input;
        let name = input.bucket.clone();
        if !s3s::path::check_bucket_name(&name) {
            return Err(s3_error!(InvalidBucketName));
        }
        let bucket = Bucket { name: name.clone(), created: now_millis(), region: self.region.clone() };
        let object_lock = input.object_lock_enabled_for_bucket == Some(true);
        let command = if object_lock {
            // Lock's records are format 2: a node of the previous release must not receive them.
            if !self.meta.versioning_available() {
                return Err(crate::versioning::upgrading());
            }
            Command::CreateBucketWithObjectLock(bucket)
        } else {
            Command::CreateBucket(bucket)
        };
        let command = match self.create_bucket_acl(&origin, &mut input)? {
            Some(acl) => self.with_requested_acl(command, Some(acl))?,
            None => command,
        };
        let ownership = input.object_ownership.take();
        match self.commit_as(origin.clone(), command).await {
            Err(e) if *e.code() == S3ErrorCode::BucketAlreadyOwnedByYou => {
                return Err(self.taken_bucket_error(req.extensions.get::<KeyScope>(), &name, e));
            }
            result => result?,
        };
        // S3 takes the bucket's object ownership with its creation (x-amz-object-ownership).
        if let Some(ownership) = ownership {
            self.set_ownership(origin, &name, ownership.as_str()).await?;
        }
        tracing::info!(bucket = %name, object_lock, "bucket created");
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    /// The error for a CreateBucket of a name that exists: AWS answers BucketAlreadyOwnedByYou
    /// to the bucket's owner and BucketAlreadyExists (409 too) to everyone else, so a client
    /// can tell "mine already" (go on) from "taken" (pick another name). A user's key owns
    /// what its user owns (or everything, for an admin); a service's or operator's key acts
    /// for the operator, who owns every bucket.
    fn taken_bucket_error(&self, scope: Option<&KeyScope>, name: &str, owned: S3Error) -> S3Error {
        let Some(person) = scope.and_then(KeyScope::person) else { return owned };
        match self.meta.person_owns(person, name, None) {
            Ok(true) => owned,
            Ok(false) => s3_error!(
                BucketAlreadyExists,
                "The requested bucket name is not available. Select a different name and try again."
            ),
            Err(e) => error::store(e),
        }
    }

    pub(crate) async fn delete_bucket_op(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let origin = self.origin_of(&req);
        let name = req.input.bucket;
        // Make sure we see every object written anywhere before judging emptiness here; the
        // state machine checks again when the command applies.
        self.meta.read_barrier().await.map_err(error::propose)?;
        // S3 aborts a bucket's unfinished uploads with it. Until every node runs this release
        // the previous release's command is proposed, which refuses such a bucket as before.
        let command = if self.meta.cluster_format_at_least(crate::gateway::EDGE_FORMAT) {
            Command::DeleteBucketAbortingUploads { name: name.clone() }
        } else {
            Command::DeleteBucket { name: name.clone() }
        };
        self.commit_as(origin, command).await?;
        tracing::info!(bucket = %name, "bucket deleted");
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(crate) async fn head_bucket_op(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let bucket = self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(bucket.region), ..Default::default() }))
    }

    pub(crate) async fn list_buckets_op(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let page = BucketPage::of(&req.input)?;
        self.sync_for_read().await?;
        let mut buckets = self.meta.buckets().map_err(error::store)?;
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        buckets.retain(|b| page.takes(&b.name));
        // A user's key lists the user's buckets only.
        if let Some(person) = req.extensions.get::<KeyScope>().and_then(KeyScope::person) {
            let mut owned = Vec::with_capacity(buckets.len());
            for bucket in buckets {
                if self.meta.person_owns(person, &bucket.name, None).map_err(error::store)? {
                    owned.push(bucket);
                }
            }
            buckets = owned;
        }
        // One more than asked tells whether another page follows.
        let more = page.max.is_some_and(|max| buckets.len() > max);
        if let Some(max) = page.max {
            buckets.truncate(max);
        }
        let continuation_token = if more { buckets.last().map(|b| encode_bucket_token(&b.name)) } else { None };
        let buckets = buckets
            .into_iter()
            .map(|b| s3s::dto::Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created)),
                bucket_region: Some(b.region),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(crate::listing::operator_owner()),
            continuation_token,
            prefix: req.input.prefix,
        }))
    }

    pub(crate) async fn get_bucket_location_op(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let bucket = self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: Some(BucketLocationConstraint::from(bucket.region)),
        }))
    }
}

/// Most buckets one ListBuckets page may ask for (`max-buckets`), as AWS allows.
const MAX_BUCKETS: i32 = 10_000;

/// Which buckets one ListBuckets page shows: AWS's paging (`max-buckets`, `continuation-token`,
/// `prefix`). Without `max-buckets` every bucket is listed in one page, as before paging existed
/// and as older clients expect.
struct BucketPage {
    /// Only names starting with this.
    prefix: String,
    /// Only names after this one (the last name of the previous page).
    after: Option<String>,
    /// At most this many buckets; `None`: all of them.
    max: Option<usize>,
}

impl BucketPage {
    /// The page a request asks for; InvalidArgument for a `max-buckets` outside 1 to
    /// [`MAX_BUCKETS`] or a token this gateway did not hand out.
    fn of(input: &ListBucketsInput) -> S3Result<Self> {
        let max = match input.max_buckets {
            None => None,
            Some(n) if (1..=MAX_BUCKETS).contains(&n) => usize::try_from(n).ok(),
            Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and {MAX_BUCKETS}")),
        };
        let after = match input.continuation_token.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => Some(
                decode_bucket_token(token)
                    .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
            ),
        };
        Ok(Self { prefix: input.prefix.clone().unwrap_or_default(), after, max })
    }

    /// Whether the bucket called `name` belongs on this page (before the `max` cut).
    fn takes(&self, name: &str) -> bool {
        name.starts_with(&self.prefix) && self.after.as_deref().is_none_or(|after| name > after)
    }
}

/// The continuation token after the bucket `name`: the name itself, URL-safe base64, so it
/// survives any client's query encoding.
fn encode_bucket_token(name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

/// The bucket name in a continuation token, if it is one.
fn decode_bucket_token(token: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(prefix: Option<&str>, token: Option<&str>, max: Option<i32>) -> S3Result<BucketPage> {
        BucketPage::of(&ListBucketsInput {
            prefix: prefix.map(str::to_owned),
            continuation_token: token.map(str::to_owned),
            max_buckets: max,
            ..Default::default()
        })
    }

    #[test]
    fn a_page_takes_names_after_the_token_under_the_prefix() {
        let token = encode_bucket_token("films-b");
        let p = page(Some("films-"), Some(&token), Some(2)).expect("valid");
        assert!(!p.takes("films-a") && !p.takes("films-b") && p.takes("films-c") && !p.takes("posters"));
        assert_eq!(p.max, Some(2));
    }

    #[test]
    fn hostile_paging_parameters_are_invalid_argument() {
        for max in [0, -1, MAX_BUCKETS + 1, i32::MIN] {
            assert!(page(None, None, Some(max)).is_err(), "max-buckets {max}");
        }
        for token in ["%%%", "////", "_w"] {
            assert!(page(None, Some(token), None).is_err(), "token {token}");
        }
    }
}
