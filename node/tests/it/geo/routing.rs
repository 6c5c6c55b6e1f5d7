//! Geo routing against three real nodes on loopback: Frankfurt and Amsterdam (365 km apart, one
//! near tier) and Singapore (far). Clients are told apart by their source address, bound to
//! 127.0.0.2 (Frankfurt), 127.0.0.3 (Amsterdam) and 127.0.0.4 (Singapore) through the CIDR map;
//! 127.0.0.5 and 127.0.0.6 are placed by two small GeoIP databases the test writes itself, one
//! in each record layout. 127.0.0.1 is a trusted proxy.
//!
//! Covered: uploads go to the client's own region (single PUT and multipart plans, presigned
//! with the caller's key or the system key); downloads go to the nearest holder; while it is
//! kept busy by slow downloads held open, the near-tier holder is chosen and the far idle one
//! never is; a killed node is never chosen and is chosen again once it is back; untrusted
//! `X-Forwarded-For` is ignored, a trusted one is used (`Forwarded` is not, by default); `/metrics`.

use crate::harness;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use harness::cluster::{ClusterOptions, TestCluster};
use harness::*;
use meridian_geo::mmdb_writer::{Layout, MmdbWriter, Record};
use meridian_geo::parse_cidr;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The test's regions, node `i` in region `i`.
const GEO_REGIONS: [(&str, f64, f64); 3] =
    [("frankfurt", 50.1109, 8.6821), ("amsterdam", 52.3676, 4.9041), ("singapore", 1.3521, 103.8198)];
/// Node indexes.
const FRA: usize = 0;
const AMS: usize = 1;
/// Client source addresses, by region.
const FRA_CLIENT: &str = "127.0.0.2";
const AMS_CLIENT: &str = "127.0.0.3";
const SIN_CLIENT: &str = "127.0.0.4";
/// Bearer token of the test's cinema service.
const TOKEN: &str = "geo-routing-test-service-token";
/// Load poll interval of the test cluster, ms.
const LOAD_INTERVAL_MS: u64 = 200;
/// Bound of every wait on the load exchange.
const LOAD_WAIT: Duration = Duration::from_secs(20);

/// The two tests each start a cluster and measure load: one at a time, so neither sees the
/// other's traffic on a two-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A cluster with geo routing configured, and the directory of its GeoIP databases.
struct Geo {
    cluster: TestCluster,
    _geoip: tempfile::TempDir,
}

/// Writes the two GeoIP databases and starts the cluster.
async fn start() -> Geo {
    let geoip = tempfile::Builder::new().prefix("meridian-geoip-").tempdir().expect("temp dir");
    // DB-IP's flat layout (IPv4-only, 28-bit records): 127.0.0.5 is in Kuala Lumpur.
    let flat = geoip.path().join("dbip-city-ipv4.mmdb");
    let mut w = MmdbWriter::new(Layout::Flat, 4, 28);
    w.insert(parse_cidr("127.0.0.5/32").expect("cidr"), Record::new(3.139, 101.6869, "Kuala Lumpur", "MY"));
    std::fs::write(&flat, w.build()).expect("write flat db");
    // GeoIP2 City layout (IPv6 tree, 24-bit records): 127.0.0.6 is in Rotterdam.
    let city = geoip.path().join("GeoIP2-City.mmdb");
    let mut w = MmdbWriter::new(Layout::GeoIp2City, 6, 24);
    w.insert(parse_cidr("127.0.0.6/32").expect("cidr"), Record::new(51.9244, 4.4777, "Rotterdam", "NL"));
    std::fs::write(&city, w.build()).expect("write city db");

    let extra_config = format!(
        r#"
[geo]
mmdb = ['{}', '{}']
trusted_proxies = ["127.0.0.1/32"]
near_tier_km = 1500
load_interval_ms = {LOAD_INTERVAL_MS}
presign_expiry_secs = 600
multipart_threshold_mib = 8
multipart_part_mib = 5

[[geo.cidr]]
cidr = "{FRA_CLIENT}/32"
region = "frankfurt"

[[geo.cidr]]
cidr = "{AMS_CLIENT}/32"
region = "amsterdam"

[[geo.cidr]]
cidr = "{SIN_CLIENT}/32"
region = "singapore"

[[api.service_token]]
name = "geo-tests"
sha256 = "{}"
"#,
        flat.display(),
        city.display(),
        sha256_hex(TOKEN.as_bytes())
    );
    let options = ClusterOptions { regions: GEO_REGIONS, extra_config, ..Default::default() };
    let cluster = TestCluster::start_with(options).await;
    let geo = Geo { cluster, _geoip: geoip };
    // Nodes that started after a peer's first poll are down in its board until the next one.
    wait_route(&geo, "every node up and ready in the load board", "127.0.0.1", &[("op", "put")], |a| {
        GEO_REGIONS.iter().all(|(region, ..)| {
            let c = candidate(a, region);
            c["health"] == "up" && c["load"]["ready"] == true
        })
    })
    .await;
    geo
}

/// An HTTP client whose connections come from `source`.
fn client_from(source: &str) -> reqwest::Client {
    let ip: IpAddr = source.parse().expect("source address");
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build client")
}

/// `GET /api/v1/route` on node `via`, as the service, from `http`'s source address.
async fn route(
    geo: &Geo,
    http: &reqwest::Client,
    via: usize,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Value {
    let mut request =
        http.get(format!("{}/api/v1/route", geo.cluster.node(via).web_url())).bearer_auth(TOKEN).query(query);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("GET /api/v1/route");
    let status = response.status();
    let body = response.text().await.expect("route body");
    assert_eq!(status, 200, "route {query:?}: {body}");
    serde_json::from_str(&body).expect("route JSON")
}

/// The chosen region of a route answer.
fn chosen(answer: &Value) -> &str {
    answer["chosen"]["region"].as_str().unwrap_or_else(|| panic!("no node chosen: {answer:#}"))
}

/// The candidate report of `region` in a route answer.
fn candidate<'a>(answer: &'a Value, region: &str) -> &'a Value {
    answer["decision"]["candidates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["region"] == region))
        .unwrap_or_else(|| panic!("no candidate {region}: {answer:#}"))
}

/// Polls the route of a download by `client` until `pred` holds (bounded); returns the answer.
async fn wait_route(
    geo: &Geo,
    what: &str,
    client: &str,
    query: &[(&str, &str)],
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let http = client_from(client);
    let deadline = Instant::now() + LOAD_WAIT;
    loop {
        let answer = route(geo, &http, FRA, query, &[]).await;
        if pred(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "{what}: not within {LOAD_WAIT:?}; last answer {answer:#}");
        tokio::time::sleep(POLL).await;
    }
}

/// `POST /api/v1/uploads` from `client` (as the service, or with the dev key as Basic).
async fn plan_upload(geo: &Geo, client: &str, bucket: &str, key: &str, size: usize, basic: bool) -> Value {
    let http = client_from(client);
    let request = http.post(format!("{}/api/v1/uploads", geo.cluster.node(FRA).web_url())).json(&serde_json::json!({
        "bucket": bucket, "key": key, "size": size, "content_type": "video/mp4",
    }));
    let request = if basic { request.basic_auth(ACCESS_KEY, Some(SECRET_KEY)) } else { request.bearer_auth(TOKEN) };
    let response = request.send().await.expect("POST /api/v1/uploads");
    let status = response.status();
    let body = response.text().await.expect("uploads body");
    assert_eq!(status, 200, "upload plan for {key}: {body}");
    serde_json::from_str(&body).expect("upload plan JSON")
}

/// Sends the bytes as a plan says (one PUT, or parts then complete), from `client`.
async fn upload_by_plan(client: &str, plan: &Value, data: &[u8]) {
    let http = client_from(client);
    if let Some(url) = plan["put"]["url"].as_str() {
        let response = http.put(url).header("content-type", "video/mp4").body(data.to_vec()).send().await.expect("PUT");
        let status = response.status();
        assert_eq!(status, 200, "presigned PUT: {}", response.text().await.unwrap_or_default());
        return;
    }
    let multipart = &plan["multipart"];
    let parts = multipart["parts"].as_array().expect("parts");
    let mut completion = String::from("<CompleteMultipartUpload>");
    let mut offset = 0usize;
    for part in parts {
        let size = usize::try_from(part["size"].as_u64().expect("part size")).expect("fits");
        let url = part["url"].as_str().expect("part url");
        let response = http.put(url).body(data[offset..offset + size].to_vec()).send().await.expect("PUT part");
        assert_eq!(
            response.status(),
            200,
            "part {}: {}",
            part["part_number"],
            response.text().await.unwrap_or_default()
        );
        let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).expect("part ETag").to_owned();
        completion
            .push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>", part["part_number"]));
        offset += size;
    }
    assert_eq!(offset, data.len(), "the parts cover the file");
    completion.push_str("</CompleteMultipartUpload>");
    let url = multipart["complete"]["url"].as_str().expect("complete url");
    let response = http.post(url).body(completion).send().await.expect("complete");
    let status = response.status();
    assert_eq!(status, 200, "complete: {}", response.text().await.unwrap_or_default());
}

/// A GET of `url` whose client reads the response head and then nothing: with a 4 KiB receive
/// buffer, the node's send buffer fills and the download stays in flight until the socket is
/// dropped.
async fn slow_download(url: &str) -> tokio::net::TcpStream {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("path"));
    let addr: SocketAddr = host.parse().expect("host:port");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.expect("send request");
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(
            Instant::now() < deadline && head.len() < 16 * 1024,
            "no response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "connection closed before the head");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "slow download answered {:?}", String::from_utf8_lossy(&head));
    stream
}

/// `GET /api/v1/files/...` as the service from `client`, JSON form.
async fn file_link(geo: &Geo, client: &str, bucket: &str, key: &str) -> Value {
    let http = client_from(client);
    let url = format!("{}/api/v1/files/{bucket}/{key}", geo.cluster.node(FRA).web_url());
    let response = http.get(url).bearer_auth(TOKEN).header("accept", "application/json").send().await.expect("files");
    assert_eq!(response.status(), 200);
    response.json().await.expect("file link JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_downloads_load_and_forwarding() {
    let _one = ONE_AT_A_TIME.lock().await;
    let geo = start().await;
    let c = &geo.cluster;
    let s3 = c.node(FRA).client();
    let bucket = create_bucket(&s3, "geo").await;

    // --- Uploads: every client gets its own region, by its source address alone.
    for (client, region, basic) in
        [(FRA_CLIENT, "frankfurt", false), (AMS_CLIENT, "amsterdam", true), (SIN_CLIENT, "singapore", false)]
    {
        let key = format!("small-{region}");
        let data = random_bytes(region.len() as u64, 100_000);
        let plan = plan_upload(&geo, client, &bucket, &key, data.len(), basic).await;
        assert_eq!(plan["node"]["region"], region, "upload from {client}: {plan:#}");
        assert_eq!(plan["client"]["position"]["source"]["kind"], "cidr", "{plan:#}");
        assert_eq!(plan["decision"]["outcome"], "nearest");
        let url = plan["put"]["url"].as_str().expect("single PUT for a small file");
        let expected_key = if basic { ACCESS_KEY.to_owned() } else { "MSYS".to_owned() };
        assert!(
            url.contains(&format!("X-Amz-Credential={expected_key}")),
            "signed with the caller's key or the system key: {url}"
        );
        let index = GEO_REGIONS.iter().position(|r| r.0 == region).expect("node of the region");
        assert!(url.starts_with(&c.node(index).s3_url()), "{url} is on {region}'s S3 listener");
        upload_by_plan(client, &plan, &data).await;
        assert_bytes_eq(&get_bytes(&s3, &bucket, &key).await, &data, "uploaded through the plan");
        // The receiving node is a holder (the others follow by replication).
        let answer =
            route(&geo, &client_from(client), FRA, &[("op", "get"), ("bucket", &bucket), ("key", &key)], &[]).await;
        let id = answer["chosen"]["id"].as_u64().expect("id");
        assert!(answer["holders"].as_array().expect("holders").iter().any(|h| h.as_u64() == Some(id)), "{answer:#}");
    }

    // --- GeoIP databases, both layouts; then the default region.
    let service = client_from("127.0.0.1");
    let answer = route(&geo, &service, FRA, &[("op", "put"), ("ip", "127.0.0.5")], &[]).await;
    assert_eq!(chosen(&answer), "singapore", "Kuala Lumpur is nearest to Singapore: {answer:#}");
    let source = &answer["client"]["position"]["source"];
    assert_eq!((source["kind"].as_str(), source["city"].as_str()), (Some("mmdb"), Some("Kuala Lumpur")), "{answer:#}");
    assert!(source["database"].as_str().is_some_and(|d| d.ends_with("dbip-city-ipv4.mmdb")), "{answer:#}");
    let answer = route(&geo, &service, FRA, &[("op", "put"), ("ip", "127.0.0.6")], &[]).await;
    assert_eq!(chosen(&answer), "amsterdam", "Rotterdam is nearest to Amsterdam: {answer:#}");
    assert_eq!(answer["client"]["position"]["source"]["country"], "NL");
    let answer = route(&geo, &service, FRA, &[("op", "put"), ("ip", "127.0.0.7")], &[]).await;
    assert_eq!(answer["client"]["position"]["source"]["kind"], "default", "{answer:#}");
    assert_eq!(chosen(&answer), "frankfurt");

    // --- Forwarding headers: believed from the trusted proxy only.
    let put = [("op", "put")];
    let answer = route(&geo, &service, FRA, &put, &[("x-forwarded-for", "6.6.6.6, 127.0.0.4")]).await;
    assert_eq!(
        (chosen(&answer), &answer["client"]["address"]["source"]),
        ("singapore", &Value::from("x_forwarded_for"))
    );
    // The proxy writes `X-Forwarded-For` (`[geo] forwarded_header`'s default): a `Forwarded`
    // header is the client's own and is ignored (security_web covers `forwarded_header`).
    let answer = route(&geo, &service, FRA, &put, &[("forwarded", "for=\"127.0.0.3:5555\";proto=https")]).await;
    assert_eq!(answer["client"]["address"]["source"], "peer", "{answer:#}");
    let untrusted = client_from(FRA_CLIENT);
    let answer = route(&geo, &untrusted, FRA, &put, &[("x-forwarded-for", "127.0.0.4")]).await;
    assert_eq!(chosen(&answer), "frankfurt", "a client cannot pick its node with X-Forwarded-For: {answer:#}");
    assert_eq!(answer["client"]["address"]["ip"], FRA_CLIENT);
    assert!(answer["client"]["address"]["note"].as_str().is_some_and(|n| n.contains("not a trusted proxy")));

    // --- A large file through a multipart plan from Frankfurt, then replicated everywhere.
    let film = random_bytes(42, 16 * MIB);
    let plan = plan_upload(&geo, FRA_CLIENT, &bucket, "film.mp4", film.len(), false).await;
    assert_eq!(plan["node"]["region"], "frankfurt");
    assert!(plan["put"].is_null(), "16 MiB is over the 8 MiB threshold: {plan:#}");
    assert_eq!(plan["multipart"]["parts"].as_array().map(Vec::len), Some(4), "5 MiB parts: {plan:#}");
    upload_by_plan(FRA_CLIENT, &plan, &film).await;
    let head = ok(s3.head_object().bucket(&bucket).key("film.mp4").send().await, "HEAD film");
    assert_eq!((head.content_length(), head.content_type()), (Some(film.len() as i64), Some("video/mp4")));
    let film_query = [("op", "get"), ("bucket", bucket.as_str()), ("key", "film.mp4")];
    wait_route(&geo, "film replicated to every region", FRA_CLIENT, &film_query, |a| {
        a["holders"].as_array().is_some_and(|h| h.len() == 3)
    })
    .await;

    // --- Downloads go to the nearest holder.
    for (client, region) in [(FRA_CLIENT, "frankfurt"), (AMS_CLIENT, "amsterdam"), (SIN_CLIENT, "singapore")] {
        let answer =
            wait_route(&geo, &format!("{client} idle -> {region}"), client, &film_query, |a| chosen(a) == region).await;
        assert_eq!(answer["decision"]["outcome"], "nearest_holder", "{answer:#}");
    }
    // The plain form is a redirect to the chosen node (checked while everything is idle).
    let redirect = client_from(FRA_CLIENT)
        .get(format!("{}/api/v1/files/{bucket}/film.mp4", c.node(FRA).web_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("files redirect");
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location").to_owned();
    assert!(location.starts_with(&c.node(FRA).s3_url()), "{location}");
    let link = file_link(&geo, FRA_CLIENT, &bucket, "film.mp4").await;
    assert_eq!(link["node"]["region"], "frankfurt", "{link:#}");
    let got = client_from(FRA_CLIENT).get(link["url"].as_str().expect("url")).send().await.expect("GET presigned");
    assert_eq!(got.status(), 200);
    assert_bytes_eq(&got.bytes().await.expect("body"), &film, "download through the link");
    let unauthenticated = client_from(FRA_CLIENT)
        .get(format!("{}/api/v1/files/{bucket}/film.mp4", c.node(FRA).web_url()))
        .send()
        .await
        .expect("files without credentials");
    assert_eq!(unauthenticated.status(), 401);

    // --- Keep Frankfurt busy with slow downloads: the Frankfurt client goes to Amsterdam (near
    // tier), never to Singapore, idle as it is.
    let fra_url = link["url"].as_str().expect("url").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(slow_download(&fra_url).await);
    }
    // Waits for the held downloads to show in Frankfurt's load too: the byte rate left by the
    // download above can tip the choice to Amsterdam on its own, a moment before they do.
    let answer = wait_route(&geo, "busy Frankfurt -> Amsterdam", FRA_CLIENT, &film_query, |a| {
        chosen(a) == "amsterdam" && candidate(a, "frankfurt")["load"]["in_flight"].as_u64() >= Some(3)
    })
    .await;
    assert_eq!(answer["decision"]["outcome"], "near_tier_alternative", "{answer:#}");
    assert!(candidate(&answer, "frankfurt")["load"]["in_flight"].as_u64() >= Some(3), "{answer:#}");
    assert_eq!(candidate(&answer, "singapore")["near_tier"], false);
    // Amsterdam busier still: back to Frankfurt, and still never the far, idle Singapore.
    let ams_link = file_link(&geo, AMS_CLIENT, &bucket, "film.mp4").await;
    assert_eq!(ams_link["node"]["region"], "amsterdam");
    for _ in 0..5 {
        held.push(slow_download(ams_link["url"].as_str().expect("url")).await);
    }
    let answer = wait_route(&geo, "both near busy", FRA_CLIENT, &film_query, |a| {
        candidate(a, "amsterdam")["load"]["in_flight"].as_u64() >= Some(5)
    })
    .await;
    assert_eq!(chosen(&answer), "frankfurt", "less loaded of the tier: {answer:#}");
    for _ in 0..10 {
        let answer = route(&geo, &client_from(FRA_CLIENT), FRA, &film_query, &[]).await;
        assert_ne!(chosen(&answer), "singapore", "a far holder is never chosen over near ones: {answer:#}");
    }
    // Singapore's own client still gets Singapore.
    let answer = route(&geo, &client_from(SIN_CLIENT), FRA, &film_query, &[]).await;
    assert_eq!(chosen(&answer), "singapore");
    drop(held);
    wait_route(&geo, "Frankfurt idle again", FRA_CLIENT, &film_query, |a| {
        chosen(a) == "frankfurt" && candidate(a, "frankfurt")["load"]["in_flight"] == 0
    })
    .await;

    // --- Metrics of the node that answered the routes and served the downloads.
    let text = c.node(FRA).metrics_text().await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    };
    assert!(value("meridian_s3_requests_total{op=\"get_object\",class=\"2xx\"}") >= 5.0);
    assert!(value("meridian_s3_sent_bytes_total{op=\"get_object\"}") >= film.len() as f64);
    assert!(value("meridian_s3_request_duration_seconds_count{op=\"multipart\"}") >= 5.0);
    assert!(value("meridian_route_decisions_total{op=\"get\",outcome=\"near_tier_alternative\"}") >= 1.0);
    assert!(value("meridian_route_decisions_total{op=\"put\",outcome=\"nearest\"}") >= 3.0);
    assert_eq!(value("meridian_peer_up{peer=\"3\",region=\"singapore\"}"), 1.0);
    assert!(value("meridian_raft_term") >= 1.0);
    assert!(value("meridian_replication_queue_length") >= 0.0);
    assert_eq!(value("meridian_s3_requests_in_flight{op=\"get_object\"}"), 0.0, "the held downloads ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_is_never_chosen_and_returns() {
    let _one = ONE_AT_A_TIME.lock().await;
    let geo = start().await;
    let c = &geo.cluster;
    let s3 = c.node(FRA).client();
    let bucket = create_bucket(&s3, "geo-kill").await;
    // Small enough to ride in the log: every node holds it at once.
    let data = random_bytes(7, 4096);
    s3.put_object().bucket(&bucket).key("poster.jpg").body(ByteStream::from(data.clone())).send().await.expect("PUT");
    let get = [("op", "get"), ("bucket", bucket.as_str()), ("key", "poster.jpg")];
    let put = [("op", "put")];
    wait_route(&geo, "Amsterdam client -> Amsterdam", AMS_CLIENT, &get, |a| chosen(a) == "amsterdam").await;

    c.node(AMS).kill9();
    let answer =
        wait_route(&geo, "Amsterdam seen down", AMS_CLIENT, &put, |a| candidate(a, "amsterdam")["health"] == "down")
            .await;
    assert_eq!(chosen(&answer), "frankfurt", "nearest healthy node: {answer:#}");
    let http = client_from(AMS_CLIENT);
    for _ in 0..10 {
        for query in [&put[..], &get[..]] {
            let answer = route(&geo, &http, FRA, query, &[]).await;
            assert_eq!(chosen(&answer), "frankfurt", "a dead node is never chosen: {answer:#}");
        }
    }
    let link = file_link(&geo, AMS_CLIENT, &bucket, "poster.jpg").await;
    assert_eq!(link["node"]["region"], "frankfurt");
    let body = http.get(link["url"].as_str().expect("url")).send().await.expect("GET").bytes().await.expect("body");
    assert_bytes_eq(&body, &data, "served by the fallback node");

    c.node(AMS).restart().await;
    let answer = wait_route(&geo, "Amsterdam chosen again", AMS_CLIENT, &put, |a| chosen(a) == "amsterdam").await;
    assert_eq!(candidate(&answer, "amsterdam")["health"], "up", "{answer:#}");
    wait_route(&geo, "Amsterdam serves downloads again", AMS_CLIENT, &get, |a| chosen(a) == "amsterdam").await;
}
