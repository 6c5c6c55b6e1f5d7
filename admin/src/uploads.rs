//! `POST /api/v1/uploads`: where to upload a file, with presigned URLs for it.
//!
//! The answer names the nearest healthy node and its region. Up to `[geo]
//! multipart_threshold_mib` it carries one presigned PUT URL; above, a multipart plan: the
//! server starts the multipart upload on the chosen node itself (parts must go to the node that
//! started the upload), then hands out one presigned URL per part, and the URLs to complete or
//! abort it. Every URL expires after `[geo] presign_expiry_secs`.
//!
//! URLs for signed-in users and services are signed with the system key and name who they are
//! for ([`ACTOR_QUERY_PARAM`]), so the write is in the history under that user or service.

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use meridian_geo::{Decision, Operation};
use meridian_raft::{ACTOR_QUERY_PARAM, Actor};
use serde::{Deserialize, Serialize};

use crate::access::authorize_person;
use crate::files_api::Requester;
use crate::presign::Presign;
use crate::route::{ChosenNode, Located, Routing, Site, chosen, decide, locate, routing, signing_key};
use crate::{ApiCaller, ApiError, WebState};

/// Largest object S3 accepts.
const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Most parts of one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadRequest {
    /// Target bucket (must exist).
    bucket: String,
    /// Target key.
    key: String,
    /// Size of the file, bytes; decides between one PUT and a multipart plan.
    size: u64,
    /// `Content-Type` the object will have (signed into the URLs).
    content_type: Option<String>,
    /// The uploader's address, when the caller asks on its behalf.
    client_ip: Option<String>,
}

/// One presigned request.
#[derive(Debug, Serialize)]
pub(crate) struct SignedRequest {
    /// HTTP method to use.
    method: &'static str,
    /// The presigned URL.
    url: String,
}

/// One part of a multipart plan.
#[derive(Debug, Serialize)]
pub(crate) struct PartUrl {
    /// S3 part number (1-based).
    part_number: u64,
    /// Bytes of the file that go in this part.
    size: u64,
    /// Presigned `PUT` URL.
    url: String,
}

/// A multipart plan: upload every part (any order, in parallel), then `POST` the complete URL
/// with the `CompleteMultipartUpload` XML listing each part's ETag.
#[derive(Debug, Serialize)]
pub(crate) struct MultipartPlan {
    /// The upload id, already created on the chosen node.
    upload_id: String,
    /// Part size (the last part may be smaller).
    part_size: u64,
    /// One URL per part.
    parts: Vec<PartUrl>,
    /// `POST` with the part list to finish.
    complete: SignedRequest,
    /// `DELETE` to give up (parts are also removed after `[storage] multipart_max_age_secs`).
    abort: SignedRequest,
}

/// The answer.
#[derive(Debug, Serialize)]
pub(crate) struct UploadPlan {
    /// The node to upload to.
    node: ChosenNode,
    /// Seconds every URL stays valid.
    expires_in_secs: u64,
    /// Headers to send with the PUT, exactly as given, and no others that S3 stores: the content
    /// type when one was named (signed, like the body's size, which must be exactly `size`
    /// bytes). Parts carry none; their sizes are signed.
    headers: std::collections::BTreeMap<String, String>,
    /// One presigned PUT, for files up to the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    put: Option<SignedRequest>,
    /// The multipart plan, for larger files.
    #[serde(skip_serializing_if = "Option::is_none")]
    multipart: Option<MultipartPlan>,
    /// Where the uploader was placed.
    client: Located,
    /// Why that node.
    decision: Decision,
}

/// Presigns requests for one object on one node.
struct Signer<'a> {
    /// The node.
    site: &'a Site,
    /// Access key id.
    access_key: &'a str,
    /// The secret that signs the URLs (the caller's, or the system key's).
    secret_key: &'a str,
    /// The bucket the URLs name.
    bucket: &'a str,
    /// The object key the URLs name.
    key: &'a str,
    /// How long each URL stays valid, seconds (`X-Amz-Expires`).
    expires_secs: u64,
    /// The user or service the URLs are signed for, with the system key: named in each URL
    /// ([`ACTOR_QUERY_PARAM`], covered by the signature) so the history records them as the
    /// writer rather than the system key.
    acting_for: Option<Actor>,
}

impl Signer<'_> {
    /// A presigned URL for `method` with `query`, binding the `headers` the client must send.
    fn url(
        &self,
        method: &'static str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
    ) -> Result<String, ApiError> {
        let mut query = query.to_vec();
        if let Some(actor) = &self.acting_for {
            query.push((ACTOR_QUERY_PARAM, actor.to_string()));
        }
        Presign {
            method,
            endpoint: &self.site.s3_endpoint,
            region: &self.site.region,
            access_key: self.access_key,
            secret_key: self.secret_key,
            bucket: self.bucket,
            key: self.key,
            query: &query,
            headers,
            expires_secs: self.expires_secs,
            now: SystemTime::now(),
        }
        .url()
        .map_err(|e| ApiError::internal("presigning the upload", &e))
    }
}

/// `POST /api/v1/uploads`: for a service or key holder, or for a signed-in user into a bucket or
/// over a file they own, or over a file shared with them for writing (others: 404, as for a
/// missing bucket).
pub(crate) async fn create(
    State(state): State<WebState>,
    requester: Requester,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Result<Json<UploadRequest>, JsonRejection>,
) -> Result<Json<UploadPlan>, ApiError> {
    let Json(request) = request.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let routing = routing(&state)?;
    if request.key.is_empty() || request.key.len() > 1024 {
        return Err(ApiError::bad_request("key must be 1 to 1024 bytes"));
    }
    if request.size > MAX_OBJECT_SIZE {
        return Err(ApiError::bad_request(format!("size {} is over the 5 TiB limit of S3", request.size)));
    }
    // `client_ip` is for services asking on a viewer's behalf; a signed-in user is where they are.
    let given = crate::downloads::ip_of_viewer(&requester, request.client_ip.as_deref());
    // Who the URLs are for. Users and services have no S3 key: their URLs are signed with the
    // system key, naming them (`acting_for`); an access key holder's are signed with their key.
    let (caller, acting_for) = match requester {
        Requester::Machine(ApiCaller::Service(name)) => (ApiCaller::Service(name.clone()), Some(Actor::Service(name))),
        Requester::Machine(caller) => (caller, None),
        Requester::Person(user) => {
            authorize_person(&state.meta, &user, &request.bucket, &request.key, true)?;
            (ApiCaller::Service(user.actor()), Some(Actor::User(user.id)))
        }
    };
    let bucket = state.meta.read_confirmed(|m| m.bucket(&request.bucket)).await;
    if bucket.map_err(|e| ApiError::read("the bucket", &e))?.is_none() {
        return Err(ApiError::not_found(format!("no bucket {:?}", request.bucket)));
    }
    let client = locate(routing, peer, &headers, given.as_deref())?;
    let decision = decide(&state, routing, Operation::Put, &client.position, None);
    let site = chosen(routing, &decision)?;
    let (access_key, secret_key) = signing_key(&state, routing, &caller)?;
    let signer = Signer {
        site,
        access_key: &access_key,
        secret_key: &secret_key,
        bucket: &request.bucket,
        key: &request.key,
        expires_secs: routing.presign.expiry.as_secs(),
        acting_for: acting_for.filter(|_| routing.presign.system_key.as_ref().is_some_and(|k| k.id == access_key)),
    };
    // The URLs sign what this API promises: the size (the body must be exactly that long) and
    // the content type, if one was named; any other stored header is refused by the S3 listener.
    let content_type = request.content_type.clone();
    if content_type.as_ref().is_some_and(|t| t.is_empty() || t.len() > 256 || t.chars().any(char::is_control)) {
        return Err(ApiError::bad_request("content_type must be 1 to 256 printable characters"));
    }
    let type_header = content_type.iter().map(|t| ("content-type", t.clone()));
    let mut extra_headers = std::collections::BTreeMap::new();
    let (put, multipart) = if request.size <= routing.presign.multipart_threshold {
        extra_headers.extend(type_header.clone().map(|(name, value)| (name.to_owned(), value)));
        let signed: Vec<_> = std::iter::once(("content-length", request.size.to_string())).chain(type_header).collect();
        (Some(SignedRequest { method: "PUT", url: signer.url("PUT", &[], &signed)? }), None)
    } else {
        // The object's content type is fixed when the upload starts; parts carry none.
        (None, Some(multipart_plan(routing, &signer, request.size, content_type.as_deref()).await?))
    };
    tracing::info!(
        caller = %signer.acting_for.as_ref().map_or_else(|| caller.actor(), ToString::to_string),
        bucket = %request.bucket,
        key = %request.key,
        size = request.size,
        region = %site.region,
        multipart = multipart.is_some(),
        "upload planned"
    );
    Ok(Json(UploadPlan {
        node: ChosenNode::from(site),
        expires_in_secs: signer.expires_secs,
        headers: extra_headers,
        put,
        multipart,
        client,
        decision,
    }))
}

/// Starts a multipart upload on the chosen node and presigns its parts.
async fn multipart_plan(
    routing: &Routing,
    signer: &Signer<'_>,
    size: u64,
    content_type: Option<&str>,
) -> Result<MultipartPlan, ApiError> {
    let part_size = routing.presign.part_size.max(size.div_ceil(MAX_PARTS));
    let signed: Vec<_> = content_type.iter().map(|t| ("content-type", (*t).to_owned())).collect();
    let create_url = signer.url("POST", &[("uploads", String::new())], &signed)?;
    let mut create = routing.http.post(&create_url);
    if let Some(content_type) = content_type {
        create = create.header("content-type", content_type);
    }
    let unavailable = |e: &dyn std::fmt::Display| {
        ApiError::unavailable(format!("cannot start the upload on {}: {e}", signer.site.region))
    };
    let response = create.send().await.map_err(|e| unavailable(&e))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| unavailable(&e))?;
    if !status.is_success() {
        return Err(unavailable(&format!("{status}: {body}")));
    }
    let upload_id = xml_text(&body, "UploadId").ok_or_else(|| unavailable(&"no UploadId in the answer"))?;
    let mut parts = Vec::new();
    let mut offset = 0;
    let mut number = 1;
    while offset < size {
        let len = part_size.min(size - offset);
        let query = [("partNumber", number.to_string()), ("uploadId", upload_id.clone())];
        let signed = [("content-length", len.to_string())];
        parts.push(PartUrl { part_number: number, size: len, url: signer.url("PUT", &query, &signed)? });
        offset += len;
        number += 1;
    }
    let id = [("uploadId", upload_id.clone())];
    Ok(MultipartPlan {
        complete: SignedRequest { method: "POST", url: signer.url("POST", &id, &[])? },
        abort: SignedRequest { method: "DELETE", url: signer.url("DELETE", &id, &[])? },
        upload_id,
        part_size,
        parts,
    })
}

/// The text of the first `<tag>` element (S3's answers are flat enough for this).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::xml_text;

    #[test]
    fn upload_id_from_xml() {
        let xml = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>\
                   <UploadId>abc-123</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(xml_text(xml, "UploadId").as_deref(), Some("abc-123"));
        assert_eq!(xml_text(xml, "Missing"), None);
        assert_eq!(xml_text("<UploadId></UploadId>", "UploadId"), None);
    }
}
