//! The S3 listener: s3s over hyper, alone at the root so SigV4's canonical path is the
//! request path and no route shadows a bucket name.

use std::sync::Arc;
use std::time::Duration;

use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use meridian_admin::metrics::{S3Metrics, S3Op};
use meridian_s3gw::{AccessPolicy, ClientAddr, Gateway, KeyStoreAuth, MAX_UNSIZED_BODY, UnsizedBody};

use super::{ConnLimits, WatchedBody, request_id};
use crate::load::MeteredBody;
use crate::shutdown::Shutdown;

/// How long in-flight S3 requests may take to finish once the node is stopping.
const DRAIN: Duration = Duration::from_secs(20);

/// SDKs that add `aws-chunked` to a user's own encoding send two `Content-Encoding` lines,
/// which s3s refuses as a duplicate header. HTTP allows joining them with a comma (no space:
/// that is also how SigV4 canonicalizes repeated headers, so the signature still matches); the gateway
/// then drops `aws-chunked` before storing.
fn merge_repeated_content_encoding(headers: &mut http::HeaderMap) {
    let values: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if values.len() > 1
        && let Ok(joined) = http::HeaderValue::from_str(&values.join(","))
    {
        headers.insert(http::header::CONTENT_ENCODING, joined);
    }
}

/// True for a request that asks for `100 Continue` but has an empty body. hyper answers such a
/// request with the final response directly (there is no body to continue), which RFC 9110
/// allows; botocore (aws-cli, boto3) then keeps a stale response state on that connection and
/// misreads the NEXT response on it, stalling until its read timeout. Closing the connection
/// after these rare requests (empty files) keeps every client correct.
fn expects_continue_without_body(headers: &http::HeaderMap) -> bool {
    let expects = headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let empty = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) == Some("0");
    expects && empty
}

/// Lets a PutObject whose body comes without a length (`Transfer-Encoding: chunked`, no
/// `Content-Length`, an unsigned payload: `curl -T -`, streaming uploaders) be stored whole:
/// s3s refuses such a body with 411 before looking at it, so the listener gives s3s the
/// largest length a PUT may have and marks the request ([`UnsizedBody`]); the gateway then
/// counts the real bytes, up to that bound. Nothing is read before s3s has authenticated the
/// request. A payload signed by its SHA-256 (s3s checks it against the length), aws-chunked
/// bodies (they declare their length) and UploadPart are left as they were.
fn mark_unsized_put(request: &mut hyper::Request<WatchedBody>) {
    let headers = request.headers();
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let unsigned_payload = headers.get("x-amz-content-sha256").is_none_or(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD");
    let part_or_copy = request.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("uploadId=")))
        || headers.contains_key("x-amz-copy-source");
    if request.method() != http::Method::PUT
        || headers.contains_key(http::header::CONTENT_LENGTH)
        || headers.contains_key("x-amz-decoded-content-length")
        || !chunked
        || !unsigned_payload
        || part_or_copy
    {
        return;
    }
    request.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(MAX_UNSIZED_BODY));
    request.extensions_mut().insert(UnsizedBody);
}

/// HEAD of one part (`?partNumber=N`) answers 206 with its `Content-Range`, as GET does and
/// as AWS answers; s3s sends every successful HeadObject as 200, whatever the gateway says.
fn partial_head(is_head: bool, response: &mut http::Response<s3s::Body>) {
    if is_head
        && response.status() == http::StatusCode::OK
        && response.headers().contains_key(http::header::CONTENT_RANGE)
    {
        *response.status_mut() = http::StatusCode::PARTIAL_CONTENT;
    }
}

/// Who and what a request names besides its path: the settings the listener reads them with.
pub(crate) struct S3Addressing {
    /// `[cluster] s3_domain`: buckets are also addressed as `BUCKET.DOMAIN` (virtual-hosted).
    pub(crate) domain: Option<String>,
    /// `[s3] trusted_proxies`: whose `X-Forwarded-For` names the client (see [`client_of`]).
    pub(crate) trusted_proxies: meridian_geo::TrustedProxies,
}

/// The client of a request from `peer`: the peer itself, unless it is one of `[s3]
/// trusted_proxies`, whose `X-Forwarded-For` names the client (the right-most hop that is not
/// itself trusted; see [`meridian_geo::TrustedProxies`]). Anyone else's header is ignored, or
/// anyone could pass an `aws:SourceIp` condition by writing an address into it.
fn client_of(
    trusted: &meridian_geo::TrustedProxies,
    peer: std::net::IpAddr,
    headers: &http::HeaderMap,
) -> std::net::IpAddr {
    let lines: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    let found = trusted.client_address(peer, &[], &lines);
    if let Some(note) = &found.note {
        tracing::debug!(%peer, note = %note, "X-Forwarded-For not used");
    }
    found.ip
}

/// Serves S3 until shutdown, then lets in-flight requests finish. Every request is counted in
/// `metrics` (in flight until its response body is done, bytes, latency, status).
pub(crate) async fn serve(
    listener: TcpListener,
    limits: ConnLimits,
    tls: super::tls::ListenerTls,
    gateway: Gateway,
    addressing: S3Addressing,
    metrics: Arc<S3Metrics>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let S3Addressing { domain, trusted_proxies } = addressing;
    let trusted_proxies = Arc::new(trusted_proxies);
    let meta = gateway.meta().clone();
    // Bucket CORS rules are read per request, outside s3s.
    let cors_gateway = gateway.clone();
    let cors_domain = domain.clone();
    let access = AccessPolicy::new(&gateway);
    let mut builder = S3ServiceBuilder::new(gateway);
    builder.set_auth(KeyStoreAuth::new(meta));
    builder.set_access(access);
    if let Some(domain) = domain {
        builder.set_host(s3s::host::SingleDomain::new(&domain)?);
    }
    let service = builder.build();

    super::serve("s3", listener, limits, tls, shutdown, DRAIN, move |peer| {
        let (service, metrics, trusted_proxies) = (service.clone(), metrics.clone(), trusted_proxies.clone());
        let (cors_gateway, cors_domain) = (cors_gateway.clone(), cors_domain.clone());
        hyper::service::service_fn(move |mut request: hyper::Request<WatchedBody>| {
            merge_repeated_content_encoding(request.headers_mut());
            // The gateway records where writes come from (the history's client address), and
            // bucket policies judge `aws:SourceIp` by it.
            let client = client_of(&trusted_proxies, peer.ip(), request.headers());
            request.extensions_mut().insert(ClientAddr(client));
            let cors =
                super::cors::classify(request.method(), request.uri(), request.headers(), cors_domain.as_deref());
            let close_after = expects_continue_without_body(request.headers());
            let op = S3Op::classify(request.method(), request.uri().path(), request.uri().query());
            let content_length = request
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            // Dropped with the response body (or here, on an error): the request is over.
            let mut guard = metrics.start(op, content_length);
            mark_unsized_put(&mut request);
            let request_id = request_id::new_id();
            let preflight = match &cors {
                super::cors::Cors::Preflight => {
                    Some(super::cors::preflight(request.headers()).map(|()| s3s::Body::empty()))
                }
                super::cors::Cors::BucketPreflight { bucket } => {
                    Some(super::cors::bucket_preflight(&cors_gateway, bucket, request.headers(), &request_id))
                }
                _ => None,
            };
            // Refused here rather than by s3s, which takes any expiry up to 136 years and has
            // no AWS error code for a malformed one.
            let expiry_problem = meridian_s3gw::presigned_expiry_problem(request.uri().query());
            // A store that met a storage error takes no more entries: nothing it would answer
            // can be trusted until it is reopened (`store_recovery`), whatever the read mode.
            let store_failed = cors_gateway.meta().storage_failure();
            let is_head = request.method() == http::Method::HEAD;
            let (service, cors_gateway) = (service.clone(), cors_gateway.clone());
            async move {
                let mut response = match (preflight, expiry_problem) {
                    (Some(answer), _) => answer,
                    // The error itself is in the node's log (it is not XML-safe text).
                    (None, _) if store_failed.is_some() => request_id::error_response(
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "this node's metadata store stopped after a storage error (a full data dir?) and is \
                         reopened once the data dir has room again; other nodes still serve",
                        &request_id,
                    ),
                    (None, Some(problem)) => request_id::error_response(
                        http::StatusCode::BAD_REQUEST,
                        "AuthorizationQueryParametersError",
                        problem,
                        &request_id,
                    ),
                    (None, None) => service.call(request.map(s3s::Body::http_body)).await?,
                };
                partial_head(is_head, &mut response);
                super::post_policy::as_aws_condition_failure(&mut response);
                request_id::stamp(&mut response, &request_id);
                if response.status().is_server_error() {
                    tracing::warn!(request_id = %request_id, status = response.status().as_u16(), "S3 request failed");
                } else {
                    tracing::debug!(request_id = %request_id, status = response.status().as_u16(), "S3 request answered");
                }
                match &cors {
                    super::cors::Cors::Simple => super::cors::allow(response.headers_mut()),
                    super::cors::Cors::BucketRequest { bucket, origin, method } => {
                        if let Some(answer) = cors_gateway.cors_for_request(bucket, origin, method) {
                            answer.write(response.headers_mut());
                        }
                    }
                    _ => {}
                }
                guard.responded(response.status().as_u16());
                if close_after {
                    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                Ok::<_, s3s::HttpError>(response.map(|body| MeteredBody::new(body, guard)))
            }
        })
    })
    .await;
    Ok(())
}
