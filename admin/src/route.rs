//! Geo routing on the web listener: where the caller is, which node should serve it, and
//! `GET /api/v1/route`, the explanation of that choice.
//!
//! The routing routes (`/api/v1/route`, `/api/v1/uploads`, `/api/v1/files/...`) all need an
//! authenticated caller ([`ApiCaller`]): they reveal where objects are and hand out presigned
//! URLs. Such a caller may name the client it asks for (`ip=`): the cinema's services ask on
//! behalf of viewers whose requests they received. A signed-in person may not (`downloads`,
//! `uploads` ignore it for them): their own address is what routing and the history see.
//! Without it, the caller's own address is used: the socket peer, or the address in
//! `[geo] forwarded_header` when the peer is a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use meridian_geo::{
    AddressSource, Candidate, ClientAddress, ClientLocator, ClientPosition, Decision, GeoPoint, LoadBoard, Operation,
    PlanSettings, TrustedProxies, plan,
};
use meridian_raft::model::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::presign::SystemKey;
use crate::{ApiCaller, ApiError, WebState};

/// A node the web API can route to.
#[derive(Debug, Clone)]
pub struct Site {
    /// Raft node id.
    pub id: u64,
    /// Region name (also the SigV4 region of presigned URLs).
    pub region: String,
    /// The region's coordinates.
    pub position: GeoPoint,
    /// `http://host:port` clients use to reach its S3 listener.
    pub s3_endpoint: String,
}

/// How presigned URLs are made.
#[derive(Debug, Clone)]
pub struct PresignSettings {
    /// Validity of every URL handed out.
    pub expiry: Duration,
    /// Uploads larger than this get a multipart plan instead of one PUT URL.
    pub multipart_threshold: u64,
    /// Part size of multipart plans (raised when the object would need more than 10 000 parts).
    pub part_size: u64,
    /// The key used when the caller has none of its own (service tokens).
    pub system_key: Option<SystemKey>,
}

/// Everything the routing API needs, built by the node from `cluster.toml`.
#[derive(Debug)]
pub struct Routing {
    /// Client address to position.
    pub locator: ClientLocator,
    /// Load and health of every node, filled by the node's load poller.
    pub board: Arc<LoadBoard>,
    /// The configured regions.
    pub sites: Vec<Site>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Planner tunables.
    pub settings: PlanSettings,
    /// How the URLs handed out are presigned: validity, multipart plan, the system key.
    pub presign: PresignSettings,
    /// Client for calls to other nodes' S3 listeners (starting multipart uploads).
    pub http: reqwest::Client,
}

/// Where the client is, and how that was found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Located {
    /// The address and its source.
    pub(crate) address: ClientAddress,
    /// The position and its source.
    pub(crate) position: ClientPosition,
}

/// The routing state, or 503 when this node was started without it.
pub(crate) fn routing(state: &WebState) -> Result<&Arc<Routing>, ApiError> {
    state.routing.as_ref().ok_or_else(|| ApiError::unavailable("geo routing is not configured on this node"))
}

/// The client of a request: `given` (an `ip=` of an authenticated caller), else the peer or the
/// address a trusted proxy forwarded.
pub(crate) fn locate(
    routing: &Routing,
    peer: SocketAddr,
    headers: &HeaderMap,
    given: Option<&str>,
) -> Result<Located, ApiError> {
    let address = match given.filter(|g| !g.is_empty()) {
        Some(text) => ClientAddress { ip: given_ip(text)?, source: AddressSource::Given, peer: peer.ip(), note: None },
        None => {
            let lines =
                |name: &str| -> Vec<&str> { headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect() };
            routing.trusted_proxies.client_address(peer.ip(), &lines("forwarded"), &lines("x-forwarded-for"))
        }
    };
    let position = routing.locator.locate(address.ip);
    Ok(Located { address, position })
}

/// The address a caller named (`ip=`, `client_ip`): an IPv4 or IPv6 address, canonical
/// (IPv4-mapped IPv6 as IPv4); anything else is a 400 that quotes it (escaped, bounded).
fn given_ip(text: &str) -> Result<IpAddr, ApiError> {
    text.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()).map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        ApiError::bad_request(format!("ip {shown:?} is not an IP address"))
    })
}

/// The current version of an object, catching up with the leader before calling it missing (a
/// file uploaded through another region a moment ago may not be applied here yet).
pub(crate) async fn object(state: &WebState, bucket: &str, key: &str) -> Result<ObjectMeta, ApiError> {
    let found = state.meta.read_confirmed(|m| m.object(bucket, key)).await;
    found
        .map_err(|e| ApiError::read("the object", &e))?
        .ok_or_else(|| ApiError::not_found(format!("no object {key:?} in bucket {bucket:?}")))
}

/// Plans `op` for `client`; `object` is the object to download (its holders matter).
pub(crate) fn decide(
    state: &WebState,
    routing: &Routing,
    op: Operation,
    client: &ClientPosition,
    object: Option<&ObjectMeta>,
) -> Decision {
    let now = Instant::now();
    let members: Vec<u64> = state.meta.member_ids();
    let candidates: Vec<Candidate> = routing
        .sites
        .iter()
        .filter(|site| members.contains(&site.id))
        .map(|site| Candidate {
            id: site.id,
            region: site.region.clone(),
            position: site.position,
            view: routing.board.view(site.id, now),
            // Inline objects ride in the log entry: every node that applied it holds them.
            holds: object.is_some_and(|o| o.inline.is_some() || o.holders.contains_key(&site.id)),
        })
        .collect();
    let decision = plan(op, client.point, &candidates, &routing.settings, &mut |n| rand::random_range(0..n.max(1)));
    state.metrics.count_route(op, decision.outcome);
    tracing::debug!(
        op = op.label(),
        client = %client.ip,
        chosen = decision.chosen_region.as_deref().unwrap_or("-"),
        outcome = decision.outcome.label(),
        "routed"
    );
    decision
}

/// The chosen site of a decision, or 503 when no node can serve.
pub(crate) fn chosen<'a>(routing: &'a Routing, decision: &Decision) -> Result<&'a Site, ApiError> {
    decision
        .chosen
        .and_then(|id| routing.sites.iter().find(|s| s.id == id))
        .ok_or_else(|| ApiError::unavailable(format!("no node can serve this request: {}", decision.reason)))
}

/// The key to presign with: the caller's own access key, else the system key.
pub(crate) fn signing_key(
    state: &WebState,
    routing: &Routing,
    caller: &ApiCaller,
) -> Result<(String, String), ApiError> {
    if let ApiCaller::AccessKey(id) = caller
        && let Some(key) = state.meta.access_key(id).map_err(|e| ApiError::internal("reading the key store", &e))?
    {
        return Ok((key.id, key.secret));
    }
    routing
        .presign
        .system_key
        .as_ref()
        .map(|k| (k.id.clone(), k.secret.clone()))
        .ok_or_else(|| ApiError::unavailable("no key to presign with: the system key is not configured"))
}

/// The chosen node as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ChosenNode {
    /// Raft node id.
    pub(crate) id: u64,
    /// Region name.
    pub(crate) region: String,
    /// Its S3 endpoint.
    pub(crate) s3_endpoint: String,
}

impl From<&Site> for ChosenNode {
    fn from(site: &Site) -> Self {
        Self { id: site.id, region: site.region.clone(), s3_endpoint: site.s3_endpoint.clone() }
    }
}

/// Query of `GET /api/v1/route`.
#[derive(Debug, Deserialize)]
pub(crate) struct RouteQuery {
    /// `get` (download) or `put` (upload).
    op: String,
    /// Bucket (required for `get`).
    bucket: Option<String>,
    /// Key (required for `get`).
    key: Option<String>,
    /// The client's address; the caller's own when absent.
    ip: Option<String>,
}

/// The body of `GET /api/v1/route`.
#[derive(Debug, Serialize)]
pub(crate) struct RouteAnswer {
    /// Where the client is.
    client: Located,
    /// The chosen node, if any.
    chosen: Option<ChosenNode>,
    /// The decision with every candidate.
    decision: Decision,
    /// The object's holders (downloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    holders: Option<Vec<u64>>,
}

/// `GET /api/v1/route?op=get|put&bucket=B&key=K&ip=ADDR`: the routing decision, explained.
pub(crate) async fn route(
    State(state): State<WebState>,
    _caller: ApiCaller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<RouteQuery>,
) -> Result<Json<RouteAnswer>, ApiError> {
    let routing = routing(&state)?;
    let op = match query.op.as_str() {
        "get" => Operation::Get,
        "put" => Operation::Put,
        other => return Err(ApiError::bad_request(format!("op must be get or put, not {other:?}"))),
    };
    let client = locate(routing, peer, &headers, query.ip.as_deref())?;
    let object = match op {
        Operation::Get => {
            let (Some(bucket), Some(key)) = (query.bucket.as_deref(), query.key.as_deref()) else {
                return Err(ApiError::bad_request("op=get needs bucket and key"));
            };
            Some(object(&state, bucket, key).await?)
        }
        Operation::Put => None,
    };
    let decision = decide(&state, routing, op, &client.position, object.as_ref());
    let chosen = decision.chosen.and_then(|id| routing.sites.iter().find(|s| s.id == id)).map(ChosenNode::from);
    let holders = object.as_ref().map(|o| {
        if o.inline.is_some() {
            routing.sites.iter().map(|s| s.id).collect()
        } else {
            o.holders.keys().copied().collect()
        }
    });
    Ok(Json(RouteAnswer { client, chosen, decision, holders }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn given_addresses_are_canonical_or_refused() {
        assert_eq!(given_ip(" 192.0.2.7 ").ok(), Some(IpAddr::from([192, 0, 2, 7])));
        assert_eq!(given_ip("::ffff:192.0.2.7").ok(), Some(IpAddr::from([192, 0, 2, 7])));
        let refused = given_ip("192.0.2.7, 10.0.0.1").err().map(|e| e.status);
        assert_eq!(refused, Some(axum::http::StatusCode::BAD_REQUEST));
    }

    proptest! {
        /// Any `ip=` text is either an address or a 400 with a bounded message; never a panic.
        #[test]
        fn any_given_ip_is_parsed_safely(text in prop_oneof![any::<String>(), any::<IpAddr>().prop_map(|i| i.to_string())]) {
            match given_ip(&text) {
                Ok(ip) => prop_assert_eq!(ip, text.trim().parse::<IpAddr>().map(|i| i.to_canonical()).expect("parsed")),
                Err(e) => {
                    prop_assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
                    prop_assert!(e.message.len() < 64 * 12 + 40, "{}", e.message.len());
                }
            }
        }
    }
}
