//! Today's binary on the data dirs of a three-region cluster of release `a01dacd`
//! (`node/tests/fixtures/a01dacd/`, see its README): every object, tag, metadata entry, user,
//! access key, share link, event and pending pull of the manifest must still be there, the node
//! that missed the last two writes must pull them, and a new write must reach all three.
//!
//! The Raft membership in the log records each node's addresses (`RegionNode`: internal, S3,
//! web), and nodes dial each other at the *recorded* internal address, not the config's. So the
//! new nodes bind the fixture's recorded ports; when one is taken on this machine the test says
//! so loudly and does not run (a changed address would need a membership change, which is not
//! what this test is about).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::harness::cluster::TestCluster;
use crate::harness::devauth::{DevAuth, free_auth_addr};
use crate::harness::*;

/// Bound of every wait for replication or a pull.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/a01dacd")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The recorded S3, web and internal address of each region, in manifest order.
fn recorded_addrs(manifest: &Value) -> Vec<(String, [SocketAddr; 3])> {
    manifest["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| {
            let addr = |f: &str| s(&r[f]).parse::<SocketAddr>().unwrap_or_else(|e| panic!("{f} of {r}: {e}"));
            (s(&r["name"]).to_owned(), [addr("s3"), addr("web"), addr("internal")])
        })
        .collect()
}

/// Today's config for the fixture: its old config (no `[tls]`), the stand-in Auth on `auth`,
/// absolute data dirs, and a `[tls]` section (today's binary requires one).
fn todays_config(old: &str, manifest: &Value, auth: SocketAddr, data_dirs: &[PathBuf], names: &[&str]) -> String {
    let old_auth = s(&manifest["auth_url"]);
    let mut config = old.replace(old_auth, &format!("http://{auth}"));
    for (i, name) in names.iter().enumerate() {
        config =
            config.replace(&format!("data_dir = \"data/{name}\""), &format!("data_dir = '{}'", data_dirs[i].display()));
    }
    let cluster = "meridian-fixture";
    config.push('\n');
    config.push_str(&crate::harness::tls::tls_section(cluster, names));
    config
}

/// `GET path` on a web listener with an access key as HTTP Basic: (status, JSON or null).
async fn get_with_key(web: &str, path: &str, key: (&str, &str)) -> (u16, Value) {
    let resp = http_client()
        .get(format!("{web}{path}"))
        .basic_auth(key.0, Some(key.1))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The node ids holding `bucket/key`, as `node` sees it.
async fn holders(node: &TestNode, bucket: &str, key: &str, dev: (&str, &str)) -> Vec<u64> {
    // Slashes encoded too: a client URL library would resolve the `..` of `a/../b` otherwise.
    let path = format!("/api/v1/objects/{bucket}/{}/placement", uri_encode(key, false));
    let (status, body) = get_with_key(&node.web_url(), &path, dev).await;
    assert_eq!(status, 200, "placement of {bucket}/{key}: {body}");
    let mut ids: Vec<u64> =
        body["holders"].as_array().expect("holders").iter().map(|h| h["node_id"].as_u64().expect("id")).collect();
    ids.sort_unstable();
    ids
}

/// Waits (bounded) until all three nodes hold `bucket/key`.
async fn wait_held_by_all(node: &TestNode, bucket: &str, key: &str, dev: (&str, &str)) {
    let deadline = std::time::Instant::now() + PULL_TIMEOUT;
    loop {
        let ids = holders(node, bucket, key, dev).await;
        if ids == [1, 2, 3] {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{bucket}/{key} held by {ids:?} after {PULL_TIMEOUT:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Every retained event, walking JSON pages.
async fn all_events(node: &TestNode, dev: (&str, &str)) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = "0".to_owned();
    for _ in 0..10_000 {
        let (status, page) =
            get_with_key(&node.web_url(), &format!("/api/v1/events?after={after}&limit=1000"), dev).await;
        assert_eq!(status, 200, "events: {page}");
        let events = page["events"].as_array().expect("events").clone();
        if events.is_empty() {
            return out;
        }
        after = s(&page["next"]).to_owned();
        out.extend(events);
    }
    panic!("too many event pages");
}

/// Checks one object of the manifest through `client` (bytes, tags, metadata).
async fn check_object(client: &Client, obj: &Value, region: &str) {
    let (bucket, key) = (s(&obj["bucket"]), s(&obj["key"]));
    let got = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{region}: GET {bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    let metadata = got.metadata().cloned().unwrap_or_default();
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(bytes.len() as u64, obj["size"].as_u64().expect("size"), "{region}: size of {bucket}/{key}");
    assert_eq!(md5_hex(&bytes), s(&obj["md5"]), "{region}: MD5 of {bucket}/{key}");
    for (k, v) in obj["metadata"].as_object().expect("metadata") {
        assert_eq!(metadata.get(k).map(String::as_str), Some(s(v)), "{region}: metadata {k} of {bucket}/{key}");
    }
    let tags = client.get_object_tagging().bucket(bucket).key(key).send().await.expect("tagging");
    let mut got_tags: Vec<(String, String)> =
        tags.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    got_tags.sort();
    let mut want: Vec<(String, String)> =
        obj["tags"].as_object().expect("tags").iter().map(|(k, v)| (k.clone(), s(v).to_owned())).collect();
    want.sort();
    assert_eq!(got_tags, want, "{region}: tags of {bucket}/{key}");
}

/// Follows a share link's 302 to its presigned URL: the bytes.
async fn follow(resp: reqwest::Response, what: &str) -> Vec<u8> {
    assert_eq!(resp.status().as_u16(), 302, "{what}");
    let location = resp.headers()[LOCATION].to_str().expect("location").to_owned();
    http_client().get(location).send().await.expect("presigned GET").bytes().await.expect("body").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn todays_binary_serves_and_replicates_a01dacd_data() {
    let dir = fixture_dir();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest")).expect("JSON");
    let old_config = std::fs::read_to_string(dir.join("config.toml")).expect("config.toml");
    let regions = recorded_addrs(&manifest);
    let busy: Vec<String> = regions
        .iter()
        .flat_map(|(name, addrs)| addrs.iter().map(move |a| (name, a)))
        .filter(|(_, a)| TcpListener::bind(a).is_err())
        .map(|(name, a)| format!("{a} ({name})"))
        .collect();
    if !busy.is_empty() {
        eprintln!(
            "\n***** SKIPPED upgrade::a01dacd: the fixture's recorded addresses {busy:?} are taken on this \
             machine; the Raft membership in the fixture names them, so the nodes must bind them *****\n"
        );
        return;
    }
    let dev = (s(&manifest["dev_key"]["access_key_id"]), s(&manifest["dev_key"]["secret_access_key"]));

    // Unpack once; each node's data dir is moved in from here.
    let unpacked = tempfile::Builder::new().prefix("meridian-fixture-").tempdir().expect("temp dir");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(dir.join("data.tar.gz"))
        .arg("-C")
        .arg(unpacked.path())
        .status()
        .expect("run tar");
    assert!(status.success(), "unpacking data.tar.gz");

    // The stand-in Auth (today's) on a config of its own: only its [auth] matters to it.
    let auth_addr = free_auth_addr();
    let config_dir = tempfile::tempdir().expect("temp dir");
    let auth_config = config_dir.path().join("auth.toml");
    let names: Vec<&str> = regions.iter().map(|(n, _)| n.as_str()).collect();
    let placeholder: Vec<PathBuf> = names.iter().map(|n| config_dir.path().join(n)).collect();
    std::fs::write(&auth_config, todays_config(&old_config, &manifest, auth_addr, &placeholder, &names))
        .expect("write the stand-in's config");
    let devauth = DevAuth::start(&auth_config, false).await;

    let started = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
    let spec: [(&str, [SocketAddr; 3]); 3] = [0, 1, 2].map(|i| (names[i], regions[i].1));
    let cluster = TestCluster::start_prepared(
        spec,
        |i, data_dir| {
            std::fs::rename(unpacked.path().join("data").join(names[i]), data_dir).expect("move the data dir in");
        },
        |dirs| todays_config(&old_config, &manifest, auth_addr, dirs, &names),
    )
    .await;
    let _logs = cluster.nodes.iter().map(TestNode::log_on_panic).collect::<Vec<_>>();

    // Every object through every region: bytes, tags, metadata.
    let objects = manifest["objects"].as_array().expect("objects");
    for (i, node) in cluster.nodes.iter().enumerate() {
        let client = node.client_with_keys(dev.0, dev.1);
        for obj in objects {
            check_object(&client, obj, names[i]).await;
        }
    }

    // The node stopped before the last two writes pulls them.
    let pending = &manifest["pending_pull"];
    assert_eq!(s(&pending["region"]), names[1], "the fixture's missing node");
    for obj in pending["objects"].as_array().expect("pending objects") {
        wait_held_by_all(cluster.node(0), s(&obj["bucket"]), s(&obj["key"]), dev).await;
    }
    let pulled = std::fs::read_to_string(cluster.node(1).log_path()).expect("virginia's log");
    assert!(
        pulled.matches("replica pulled and reported").count() >= 2,
        "virginia pulled the two objects it missed itself (its log)"
    );
    for obj in objects {
        let ids = holders(cluster.node(1), s(&obj["bucket"]), s(&obj["key"]), dev).await;
        assert_eq!(ids, [1, 2, 3], "{}/{} on every node", obj["bucket"], obj["key"]);
    }

    // The events of the old cluster, all of them (new ones, such as the pulls, come after).
    let events = all_events(cluster.node(2), dev).await;
    let old_events = events.iter().filter(|e| e["time_ms"].as_u64().expect("time_ms") < started).count();
    assert_eq!(old_events as u64, manifest["events"].as_u64().expect("events"), "the old cluster's events");

    // The key of `meridian key create` signs requests: it reads and writes.
    let created = &manifest["created_key"];
    let keyed = cluster.node(2).client_with_keys(s(&created["access_key_id"]), s(&created["secret_access_key"]));
    let listed = keyed.list_objects_v2().bucket("keyed").send().await.expect("list with the created key");
    assert_eq!(listed.contents().len(), 1, "the created key's bucket");
    keyed
        .put_object()
        .bucket("keyed")
        .key("after-upgrade.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .expect("PUT with the created key");

    // The users, and alice signs in.
    let alice = devauth.access_token(&cluster.node(0).web_url(), "alice", "alice-password").await;
    let (status, users) = web_api(cluster.node(1), reqwest::Method::GET, "/api/v1/users", &alice, None).await;
    assert_eq!(status, 200, "{users}");
    let ids = |list: &Value| {
        let mut v: Vec<(String, String)> = list
            .as_array()
            .expect("users")
            .iter()
            .map(|u| (s(&u["id"]).to_owned(), s(&u["login"]).to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&users["users"]), ids(&manifest["users"]), "the user list");
    let (status, shares) = web_api(cluster.node(2), reqwest::Method::GET, "/api/v1/shares", &alice, None).await;
    assert_eq!(status, 200, "{shares}");
    assert_eq!(shares["shares"].as_array().map(Vec::len), Some(3), "alice's shares: {shares}");

    let bob = devauth.access_token(&cluster.node(2).web_url(), "bob", "bob-password").await;
    let (status, mine) =
        web_api(cluster.node(2), reqwest::Method::GET, "/api/v1/shares?with_me=true", &bob, None).await;
    assert_eq!(status, 200, "{mine}");
    let with_bob: Vec<&str> = mine["shares"].as_array().expect("shares").iter().map(|x| s(&x["id"])).collect();
    assert_eq!(with_bob, [s(&manifest["shares"]["user"]["id"])], "the share naming bob");

    // The share links: the plain one downloads at once, the password one after its form.
    let shared = objects
        .iter()
        .find(|o| s(&o["bucket"]) == s(&manifest["shares"]["public"]["bucket"]) && s(&o["key"]) == "notes/first.txt")
        .expect("the shared object in the manifest");
    let browser = browser_from(std::net::Ipv4Addr::new(127, 0, 0, 1));
    let public = s(&manifest["shares"]["public"]["url"]);
    let web = cluster.node(1).web_url();
    let resp = browser.get(format!("{web}{public}")).send().await.expect("GET public link");
    assert_eq!(md5_hex(&follow(resp, "the public link").await), s(&shared["md5"]), "bytes of the public link");
    let link = s(&manifest["shares"]["password"]["url"]);
    let page = browser.get(format!("{web}{link}")).send().await.expect("GET password link");
    assert_eq!(page.status().as_u16(), 200, "the password link's page");
    let cookie = page.headers()[SET_COOKIE].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let html = page.text().await.expect("html");
    let csrf = crate::harness::pages::field(&html, "csrf").expect("csrf field");
    let wrong = browser
        .post(format!("{web}{link}"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("password", "not-it")])
        .send()
        .await
        .expect("POST wrong password");
    assert_eq!(wrong.status().as_u16(), 401, "a wrong password");
    let password = s(&manifest["shares"]["password"]["password"]);
    let right = browser
        .post(format!("{web}{link}"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("password", password)])
        .send()
        .await
        .expect("POST password");
    assert_eq!(md5_hex(&follow(right, "the password link").await), s(&shared["md5"]), "bytes of the password link");

    // A new write replicates to all three.
    let data = random_bytes(0xA01D, 150 * 1024);
    let writer = cluster.node(1).client_with_keys(dev.0, dev.1);
    put(&writer, "fixtures", "after-upgrade/new.bin", &data).await;
    wait_held_by_all(cluster.node(0), "fixtures", "after-upgrade/new.bin", dev).await;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let got = get_bytes(&node.client_with_keys(dev.0, dev.1), "fixtures", "after-upgrade/new.bin").await;
        assert_eq!(md5_hex(&got), md5_hex(&data), "{}: the new object", names[i]);
    }
}
