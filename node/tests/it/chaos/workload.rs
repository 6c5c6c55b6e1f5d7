//! The clients of a chaos run: each a tokio task with one `aws-sdk-s3` client per region (short
//! timeouts, no retries), making random PUTs, overwrites, DELETEs, GETs, HEADs, LISTs and small
//! multipart uploads on a small key space so keys collide, and recording every request in the
//! history. Every written value is unique and names itself (its first bytes, its ETag and its
//! `x-amz-meta-chaos-value`), so a read says which write it saw.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{ACCESS_KEY, REGION, SECRET_KEY, TestNode, XorShift, etag_of, multipart_etag, random_bytes};

use super::history::{Kind, Observed, Op, Outcome, ValueId};

/// The user metadata that names a value (HEAD sees it without the body).
const VALUE_META: &str = "chaos-value";
/// Every part of a multipart value but the last is this big (S3's minimum part size).
pub(crate) const PART_SIZE: usize = 5 * 1024 * 1024;

/// What one written value is: enough to regenerate its bytes and its ETag.
#[derive(Debug, Clone)]
pub(crate) struct ValueSpec {
    /// Total size in bytes.
    pub(crate) size: usize,
    /// The key it is written to (a value read under another key is garbage).
    pub(crate) key: String,
    /// The ETag S3 must report for it.
    pub(crate) etag: String,
}

/// Every value the run wrote or is about to write, by id and by ETag.
#[derive(Debug, Default)]
pub(crate) struct Values {
    /// The specs, by id.
    by_id: HashMap<ValueId, ValueSpec>,
    /// Ids by the ETag S3 reports (listings only show ETags).
    by_etag: HashMap<String, ValueId>,
}

/// The bytes of value `id`: a header naming it, then pseudo-random bytes of the run's seed.
pub(crate) fn value_bytes(seed: u64, id: ValueId, size: usize) -> Vec<u8> {
    let mut bytes = random_bytes(seed.wrapping_mul(1_000_003).wrapping_add(u64::from(id)), size.max(24));
    let header = format!("chaos-v{id:010}\n");
    bytes[..header.len()].copy_from_slice(header.as_bytes());
    bytes.truncate(size.max(header.len()));
    bytes
}

/// The value id a body's header names, if it has one.
fn id_in(body: &[u8]) -> Option<ValueId> {
    let text = std::str::from_utf8(body.get(..18)?).ok()?;
    text.strip_prefix("chaos-v")?.strip_suffix('\n')?.parse().ok()
}

/// The parts a multipart value is uploaded in.
pub(crate) fn parts_of(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.chunks(PART_SIZE).collect()
}

impl Values {
    /// Registers a new value of `size` bytes and returns its id and bytes.
    fn create(&mut self, seed: u64, next: &AtomicU32, key: &str, size: usize, multipart: bool) -> (ValueId, Vec<u8>) {
        let id = next.fetch_add(1, Ordering::Relaxed);
        let bytes = value_bytes(seed, id, size);
        let etag = if multipart { multipart_etag(&parts_of(&bytes)) } else { etag_of(&bytes) };
        self.by_etag.insert(etag.clone(), id);
        self.by_id.insert(id, ValueSpec { size: bytes.len(), key: key.to_owned(), etag });
        (id, bytes)
    }

    /// What a GET body shows: the value it is, or why it is none the run wrote.
    pub(crate) fn judge_body(&self, seed: u64, key: &str, body: &[u8]) -> Observed {
        let Some(id) = id_in(body) else {
            return Observed::Garbage(format!("{} bytes without a value header", body.len()));
        };
        let Some(spec) = self.by_id.get(&id) else {
            return Observed::Garbage(format!("v{id} was never written"));
        };
        if spec.key != key {
            return Observed::Garbage(format!("v{id} was written to {}, not here", spec.key));
        }
        if body.len() != spec.size || body != value_bytes(seed, id, spec.size).as_slice() {
            return Observed::Garbage(format!(
                "{} bytes claiming v{id} ({} bytes) do not match it",
                body.len(),
                spec.size
            ));
        }
        Observed::Value(Some(id))
    }

    /// What a HEAD shows: the value its metadata names, checked against its ETag.
    fn judge_head(&self, key: &str, meta: Option<&str>, etag: Option<&str>) -> Observed {
        let id: Option<ValueId> = meta.and_then(|m| m.parse().ok());
        match (id, id.and_then(|id| self.by_id.get(&id))) {
            (Some(id), Some(spec)) if etag == Some(spec.etag.as_str()) && spec.key == key => Observed::Value(Some(id)),
            _ => Observed::Garbage(format!("HEAD with metadata {meta:?} and ETag {etag:?}")),
        }
    }

    /// The value an ETag names, if it was written to `key`.
    fn by_etag(&self, key: &str, etag: &str) -> Option<ValueId> {
        self.by_etag.get(etag).copied().filter(|id| self.by_id.get(id).is_some_and(|spec| spec.key == key))
    }
}

/// How a failed request counts.
enum Failure {
    /// 404: the key is absent (for a read).
    NotFound,
    /// A definite refusal: no effect.
    Refused(String),
    /// May or may not have taken effect.
    Unknown(String),
}

/// Which failures are definite. A 4xx answer is: the gateway checks a request (signature,
/// arguments, the bucket, the upload) before it proposes anything, and the state machine's own
/// refusals (NoSuchKey, PreconditionFailed) are outcomes of a committed no-op. A connection that
/// was refused never carried the request. A 507 InsufficientStorage is refused before anything
/// is stored or proposed (the node's disk is full). Everything else is not: a 503 after the commit
/// timeout may still commit (the forwarded proposal may sit in a frozen leader's socket), a 500
/// may come after the log entry was appended, and a timeout or a reset says nothing.
fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match e {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("-").to_owned();
            match status {
                404 if code != "NoSuchBucket" && code != "NoSuchUpload" => Failure::NotFound,
                400..=499 => Failure::Refused(format!("{status} {code}")),
                // A node whose disk is full refuses before it stores or proposes anything.
                507 if code == "InsufficientStorage" => Failure::Refused(format!("{status} {code}")),
                _ => Failure::Unknown(format!("{status} {code}")),
            }
        }
        SdkError::ConstructionFailure(_) => Failure::Refused("never sent".into()),
        other => {
            let mut source: Option<&(dyn StdError + 'static)> = Some(other);
            while let Some(err) = source {
                if let Some(io) = err.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::ConnectionRefused
                {
                    return Failure::Refused("connection refused".into());
                }
                source = err.source();
            }
            Failure::Unknown(short(&aws_sdk_s3::error::DisplayErrorContext(other).to_string()))
        }
    }
}

/// The first 120 characters of an error text.
fn short(text: &str) -> String {
    text.chars().take(120).collect()
}

/// An S3 client for `node` that gives up after `timeout` and never retries: every attempt is
/// one recorded operation.
pub(crate) fn chaos_client(node: &TestNode, timeout: Duration) -> Client {
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "meridian-chaos");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(node.s3_url())
        .credentials_provider(creds)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder().connect_timeout(Duration::from_secs(1)).operation_timeout(timeout).build(),
        )
        .build();
    Client::from_conf(conf)
}

/// What every client of a run shares.
pub(crate) struct Shared {
    /// The run's seed (values' bytes, each client's choices).
    pub(crate) seed: u64,
    /// The bucket every key lives in.
    pub(crate) bucket: String,
    /// The key space.
    pub(crate) keys: Vec<String>,
    /// The prefix every key starts with (what LIST asks for).
    pub(crate) prefix: String,
    /// When the run started: every instant of the history is measured from it.
    pub(crate) start: Instant,
    /// The values written so far.
    pub(crate) values: Mutex<Values>,
    /// The next value id.
    next_value: AtomicU32,
    /// Every recorded operation (ids are given when the run ends).
    ops: Mutex<Vec<Op>>,
    /// Set to stop the clients.
    pub(crate) stop: AtomicBool,
    /// How big the bigger (blob) values get; small ones stay inline (<= 16 KiB).
    pub(crate) max_blob: usize,
}

impl Shared {
    /// A run over `keys` keys named `<prefix>k<n>` in `bucket`.
    pub(crate) fn new(seed: u64, bucket: String, prefix: &str, keys: usize) -> Arc<Shared> {
        Arc::new(Shared {
            seed,
            bucket,
            keys: (0..keys).map(|i| format!("{prefix}k{i}")).collect(),
            prefix: prefix.to_owned(),
            start: Instant::now(),
            values: Mutex::new(Values::default()),
            next_value: AtomicU32::new(1),
            ops: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            max_blob: 64 * 1024,
        })
    }

    /// Microseconds since the run started.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Registers a new value.
    pub(crate) fn new_value(&self, key: &str, size: usize, multipart: bool) -> (ValueId, Vec<u8>) {
        let mut values = self.values.lock().expect("values lock");
        values.create(self.seed, &self.next_value, key, size, multipart)
    }

    /// Records one operation.
    pub(crate) fn record(&self, op: Op) {
        self.ops.lock().expect("ops lock").push(op);
    }

    /// The history so far, ordered by invocation, ids given.
    pub(crate) fn history(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().expect("ops lock").clone();
        ops.sort_by_key(|op| (op.invoked_us, op.completed_us));
        for (i, op) in ops.iter_mut().enumerate() {
            op.id = i;
        }
        ops
    }

    /// How many operations were recorded.
    pub(crate) fn recorded(&self) -> usize {
        self.ops.lock().expect("ops lock").len()
    }
}

/// One client's view: its index and a client per region.
pub(crate) struct Actor {
    /// Client index (`usize::MAX` for the checker's own final reads).
    pub(crate) client: usize,
    /// One S3 client per node index.
    pub(crate) s3: Vec<Client>,
    /// The run.
    pub(crate) shared: Arc<Shared>,
    /// Whether its operations are the reads made after healing.
    pub(crate) after_heal: bool,
}

impl Actor {
    /// A new operation record, invoked now.
    fn begin(&self, region: usize, key: &str, kind: Kind) -> Op {
        Op {
            id: 0,
            client: self.client,
            region,
            key: key.to_owned(),
            kind,
            wrote: None,
            observed: Observed::Nothing,
            invoked_us: self.shared.now_us(),
            completed_us: 0,
            outcome: Outcome::Ok,
            after_heal: self.after_heal,
        }
    }

    /// Completes `op` with `outcome` and records it; returns it.
    fn finish(&self, mut op: Op, outcome: Outcome) -> Op {
        op.completed_us = self.shared.now_us();
        op.outcome = outcome;
        self.shared.record(op.clone());
        op
    }

    /// PutObject of a fresh value of `size` bytes.
    pub(crate) async fn put(&self, region: usize, key: &str, size: usize) -> Op {
        let (id, bytes) = self.shared.new_value(key, size, false);
        let mut op = self.begin(region, key, Kind::Put);
        op.wrote = Some(Some(id));
        let sent = self.s3[region]
            .put_object()
            .bucket(&self.shared.bucket)
            .key(key)
            .metadata(VALUE_META, id.to_string())
            .body(ByteStream::from(bytes))
            .send()
            .await;
        let outcome = match sent {
            Ok(_) => Outcome::Ok,
            Err(e) => failed_write(&e),
        };
        self.finish(op, outcome)
    }

    /// A multipart upload of a fresh value of `size` bytes (parts of [`PART_SIZE`]). The write
    /// is the Complete: if it is never sent, nothing was written.
    pub(crate) async fn multipart(&self, region: usize, key: &str, size: usize) -> Op {
        let (id, bytes) = self.shared.new_value(key, size, true);
        let s3 = &self.s3[region];
        let bucket = &self.shared.bucket;
        let mut op = self.begin(region, key, Kind::Multipart);
        op.wrote = Some(Some(id));
        let created =
            s3.create_multipart_upload().bucket(bucket).key(key).metadata(VALUE_META, id.to_string()).send().await;
        let upload_id = match created.map(|c| c.upload_id().map(str::to_owned)) {
            Ok(Some(upload_id)) => upload_id,
            Ok(None) => return self.finish(op, Outcome::Refused("CreateMultipartUpload without an upload id".into())),
            Err(e) => {
                return self.finish(op, Outcome::Refused(format!("CreateMultipartUpload failed: {}", why_of(&e))));
            }
        };
        let mut done = Vec::new();
        for (n, part) in (1..).zip(parts_of(&bytes)) {
            let sent = s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from(part.to_vec()))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    done.push(
                        CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_owned)).build(),
                    );
                }
                Err(e) => return self.finish(op, Outcome::Refused(format!("UploadPart {n} failed: {}", why_of(&e)))),
            }
        }
        // Only the Complete can make the value visible: it is the write's invocation.
        op.invoked_us = self.shared.now_us();
        let body = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
        let sent = s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(body)
            .send()
            .await;
        let outcome = match sent {
            Ok(_) => Outcome::Ok,
            Err(e) => failed_write(&e),
        };
        self.finish(op, outcome)
    }

    /// DeleteObject.
    pub(crate) async fn delete(&self, region: usize, key: &str) -> Op {
        let mut op = self.begin(region, key, Kind::Delete);
        op.wrote = Some(None);
        let sent = self.s3[region].delete_object().bucket(&self.shared.bucket).key(key).send().await;
        let outcome = match sent {
            Ok(_) => Outcome::Ok,
            Err(e) => failed_write(&e),
        };
        self.finish(op, outcome)
    }

    /// GetObject, the whole body judged.
    pub(crate) async fn get(&self, region: usize, key: &str) -> Op {
        let mut op = self.begin(region, key, Kind::Get);
        let sent = self.s3[region].get_object().bucket(&self.shared.bucket).key(key).send().await;
        let outcome = match sent {
            Ok(out) => match out.body.collect().await {
                Ok(body) => {
                    let body = body.into_bytes();
                    op.observed =
                        self.shared.values.lock().expect("values lock").judge_body(self.shared.seed, key, &body);
                    Outcome::Ok
                }
                Err(e) => Outcome::Unknown(format!("body: {}", short(&e.to_string()))),
            },
            Err(e) => failed_read(&e, &mut op),
        };
        self.finish(op, outcome)
    }

    /// HeadObject: metadata and ETag judged.
    pub(crate) async fn head(&self, region: usize, key: &str) -> Op {
        let mut op = self.begin(region, key, Kind::Head);
        let sent = self.s3[region].head_object().bucket(&self.shared.bucket).key(key).send().await;
        let outcome = match sent {
            Ok(out) => {
                let meta = out.metadata().and_then(|m| m.get(VALUE_META)).map(String::as_str);
                op.observed = self.shared.values.lock().expect("values lock").judge_head(key, meta, out.e_tag());
                Outcome::Ok
            }
            Err(e) => failed_read(&e, &mut op),
        };
        self.finish(op, outcome)
    }

    /// ListObjectsV2 of the run's prefix (one page: the key space is far below 1000 keys).
    pub(crate) async fn list(&self, region: usize) -> Op {
        let prefix = self.shared.prefix.clone();
        let mut op = self.begin(region, &prefix, Kind::List);
        let sent = self.s3[region].list_objects_v2().bucket(&self.shared.bucket).prefix(&prefix).send().await;
        let outcome = match sent {
            Ok(out) => {
                let values = self.shared.values.lock().expect("values lock");
                let mut listed = BTreeMap::new();
                let mut garbage = Vec::new();
                for object in out.contents() {
                    let key = object.key().unwrap_or_default();
                    let etag = object.e_tag().unwrap_or_default();
                    match values.by_etag(key, etag) {
                        Some(id) if self.shared.keys.iter().any(|k| k == key) => {
                            listed.insert(key.to_owned(), id);
                        }
                        _ => garbage.push(format!("{key} with ETag {etag}")),
                    }
                }
                op.observed = if garbage.is_empty() {
                    Observed::Listing(listed)
                } else {
                    Observed::Garbage(format!("listed {garbage:?}"))
                };
                if out.is_truncated() == Some(true) {
                    op.observed = Observed::Garbage("a listing of a few keys was truncated".into());
                }
                Outcome::Ok
            }
            Err(e) => match classify(&e) {
                Failure::Refused(why) => Outcome::Refused(why),
                Failure::Unknown(_) | Failure::NotFound => Outcome::Unknown(why_of(&e)),
            },
        };
        self.finish(op, outcome)
    }
}

/// The text of a failure.
fn why_of<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match classify(e) {
        Failure::NotFound => "404".into(),
        Failure::Refused(w) | Failure::Unknown(w) => w,
    }
}

/// The outcome of a write that failed.
fn failed_write<E>(e: &SdkError<E, HttpResponse>) -> Outcome
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match classify(e) {
        Failure::NotFound => Outcome::Refused("404".into()),
        Failure::Refused(why) => Outcome::Refused(why),
        Failure::Unknown(why) => Outcome::Unknown(why),
    }
}

/// The outcome of a read that failed; a 404 is a read of "absent".
fn failed_read<E>(e: &SdkError<E, HttpResponse>, op: &mut Op) -> Outcome
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match classify(e) {
        Failure::NotFound => {
            op.observed = Observed::Value(None);
            Outcome::Ok
        }
        Failure::Refused(why) => Outcome::Refused(why),
        Failure::Unknown(why) => Outcome::Unknown(why),
    }
}

/// The mix of one client's operations, in percent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mix {
    /// PutObject (small, sometimes a blob).
    pub(crate) put: u64,
    /// A small multipart upload.
    pub(crate) multipart: u64,
    /// DeleteObject.
    pub(crate) delete: u64,
    /// GetObject.
    pub(crate) get: u64,
    /// HeadObject.
    pub(crate) head: u64,
    // The rest: ListObjectsV2.
}

impl Default for Mix {
    fn default() -> Self {
        Mix { put: 30, multipart: 4, delete: 10, get: 32, head: 12 }
    }
}

/// One client: random operations through random regions until the run stops.
pub(crate) async fn client_loop(actor: Actor, mix: Mix) {
    let shared = Arc::clone(&actor.shared);
    let mut rng = XorShift::new(shared.seed.wrapping_mul(7919).wrapping_add(actor.client as u64));
    while !shared.stop.load(Ordering::Relaxed) {
        let region = rng.below(actor.s3.len() as u64) as usize;
        let key = shared.keys[rng.below(shared.keys.len() as u64) as usize].clone();
        let roll = rng.below(100);
        let small = 30 + rng.below(4000) as usize;
        let size = if rng.below(5) == 0 {
            16 * 1024 + rng.below((shared.max_blob - 16 * 1024) as u64) as usize
        } else {
            small
        };
        let Mix { put, multipart, delete, get, head } = mix;
        let op = if roll < put {
            actor.put(region, &key, size).await
        } else if roll < put + multipart {
            actor.multipart(region, &key, size).await
        } else if roll < put + multipart + delete {
            actor.delete(region, &key).await
        } else if roll < put + multipart + delete + get {
            actor.get(region, &key).await
        } else if roll < put + multipart + delete + get + head {
            actor.head(region, &key).await
        } else {
            actor.list(region).await
        };
        if !matches!(op.outcome, Outcome::Ok) {
            // A region that failed is probably down: give the others a turn instead of
            // filling the history with attempts on it.
            tokio::time::sleep(Duration::from_millis(50 + rng.below(150))).await;
        }
    }
}
