//! Talking S3 to a node: `aws-sdk-s3` clients, unique bucket names, object helpers, what a
//! refused request answered, and the URL encodings S3 uses.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::node::{ACCESS_KEY, REGION, SECRET_KEY, TestNode};

impl TestNode {
    /// A client with `request_checksum_calculation(WhenRequired)`: no checksum unless the
    /// operation requires one (DeleteObjects, PutObjectTagging...) or the test sets one.
    pub fn client(&self) -> Client {
        self.client_with(ACCESS_KEY, SECRET_KEY, RequestChecksumCalculation::WhenRequired)
    }

    /// A client that computes a checksum whenever the operation supports one; with a streaming
    /// (non in-memory) body it sends aws-chunked bodies with a signed CRC32 trailer.
    pub fn client_checksums_when_supported(&self) -> Client {
        self.client_with(ACCESS_KEY, SECRET_KEY, RequestChecksumCalculation::WhenSupported)
    }

    /// A client signing with arbitrary credentials (for the auth tests).
    pub fn client_with_keys(&self, access_key: &str, secret_key: &str) -> Client {
        self.client_with(access_key, secret_key, RequestChecksumCalculation::WhenRequired)
    }

    pub fn client_with(&self, access_key: &str, secret_key: &str, checksums: RequestChecksumCalculation) -> Client {
        let creds = Credentials::new(access_key, secret_key, None, None, "meridian-tests");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.s3_url())
            .credentials_provider(creds)
            .force_path_style(true)
            .request_checksum_calculation(checksums)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // Every server answer is asserted as it comes: no silent retries.
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build();
        Client::from_conf(conf)
    }
}

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// A bucket name unique in this test run: `<prefix>-<pid>-<counter>-<nanos>`, valid per S3 rules.
pub fn unique_bucket(prefix: &str) -> String {
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").subsec_nanos();
    let mut name = format!("{prefix}-{}-{n}-{nanos:x}", std::process::id());
    name.make_ascii_lowercase();
    name.truncate(63);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// Creates a bucket with a unique name and returns the name.
pub async fn create_bucket(client: &Client, prefix: &str) -> String {
    let bucket = unique_bucket(prefix);
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {}", DisplayErrorContext(&e)));
    bucket
}

/// Decodes `%XX` escapes and (as boto3's `unquote_plus` does) `+` as a space.
/// Panics on malformed escapes or invalid UTF-8.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = s.get(i + 1..i + 3).unwrap_or_else(|| panic!("truncated %-escape in {s:?}"));
                out.push(u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("bad %-escape %{h} in {s:?}")));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| panic!("url-decoded {s:?} is not UTF-8"))
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and `/` if `keep_slash`),
/// as SigV4 and `x-amz-copy-source` want it.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What the server answered to a failed request.
#[derive(Debug, Clone)]
pub struct ServiceErr {
    /// HTTP status.
    pub status: u16,
    /// The S3 error code (`NoSuchKey`, ...).
    pub code: Option<String>,
    /// The S3 error message (failure messages show it; a few tests check its wording).
    pub message: Option<String>,
}

/// Extracts status and S3 error code of a service error; panics (with the whole error) if the
/// request failed without an HTTP answer (connection error, timeout, client-side refusal...).
pub fn service_err<E>(err: &SdkError<E, HttpResponse>) -> ServiceErr
where
    E: ProvideErrorMetadata + std::error::Error + Debug + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => ServiceErr {
            status: ctx.raw().status().as_u16(),
            code: ctx.err().code().map(str::to_owned),
            message: ctx.err().message().map(str::to_owned),
        },
        other => panic!("expected an HTTP error answer from the server, got: {}", DisplayErrorContext(other)),
    }
}

/// Asserts that `result` failed with this HTTP status and (if `code` is Some) this S3 error code.
#[track_caller]
pub fn expect_err<T: Debug, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
    code: Option<&str>,
    what: &str,
) -> ServiceErr
where
    E: ProvideErrorMetadata + std::error::Error + Debug + 'static,
{
    match result {
        Ok(v) => panic!("{what}: expected HTTP {status} {code:?}, but the request succeeded: {v:?}"),
        Err(e) => {
            let se = service_err(&e);
            assert_eq!(se.status, status, "{what}: expected HTTP {status} {code:?}, got {se:?}");
            if let Some(code) = code {
                assert_eq!(se.code.as_deref(), Some(code), "{what}: expected error code {code}, got {se:?}");
            }
            se
        }
    }
}

/// Asserts that `result` failed with one of the codes in `codes` (any status in 400..500).
#[track_caller]
pub fn expect_err_code_in<T: Debug, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    codes: &[&str],
    what: &str,
) -> ServiceErr
where
    E: ProvideErrorMetadata + std::error::Error + Debug + 'static,
{
    match result {
        Ok(v) => panic!("{what}: expected one of {codes:?}, but the request succeeded: {v:?}"),
        Err(e) => {
            let se = service_err(&e);
            assert!(
                se.code.as_deref().is_some_and(|c| codes.contains(&c)),
                "{what}: expected an error code in {codes:?}, got {se:?}"
            );
            assert!((400..500).contains(&se.status), "{what}: expected a 4xx status, got {se:?}");
            se
        }
    }
}

/// Unwraps an SDK result with the full error context in the panic message.
#[track_caller]
pub fn ok<T, E>(result: Result<T, SdkError<E, HttpResponse>>, what: &str) -> T
where
    E: std::error::Error + 'static,
{
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {}", DisplayErrorContext(&e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Object helpers

pub async fn put(client: &Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let out = ok(
        client.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await,
        &format!("PutObject {bucket}/{key}"),
    );
    out.e_tag().unwrap_or_default().to_owned()
}

/// Uploads `parts` as one multipart object (every part but the last must be at least 5 MiB).
pub async fn put_multipart(client: &Client, bucket: &str, key: &str, parts: &[&[u8]]) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let upload = ok(client.create_multipart_upload().bucket(bucket).key(key).send().await, "CreateMultipartUpload");
    let id = upload.upload_id().expect("upload id");
    let mut done = Vec::new();
    for (n, bytes) in (1..).zip(parts) {
        let part = client.upload_part().bucket(bucket).key(key).upload_id(id).part_number(n);
        let out = ok(part.body(ByteStream::from(bytes.to_vec())).send().await, &format!("UploadPart {n}"));
        done.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_owned)).build());
    }
    let body = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
    ok(
        client.complete_multipart_upload().bucket(bucket).key(key).upload_id(id).multipart_upload(body).send().await,
        "CompleteMultipartUpload",
    );
}

pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = ok(client.get_object().bucket(bucket).key(key).send().await, &format!("GetObject {bucket}/{key}"));
    out.body.collect().await.unwrap_or_else(|e| panic!("reading the body of {bucket}/{key}: {e}")).into_bytes().to_vec()
}

/// All keys of a bucket (ListObjectsV2 paging, no delimiter), in listing order.
pub async fn list_all_keys(client: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    for _page in 0..10_000 {
        let out = ok(
            client.list_objects_v2().bucket(bucket).set_continuation_token(token.clone()).send().await,
            &format!("ListObjectsV2 {bucket}"),
        );
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        if out.is_truncated() == Some(true) {
            token =
                Some(out.next_continuation_token().expect("IsTruncated=true without NextContinuationToken").to_owned());
        } else {
            return keys;
        }
    }
    panic!("ListObjectsV2 {bucket}: more than 10000 pages");
}
