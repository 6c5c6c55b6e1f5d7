//! `GET /api/v1/openapi.json` against a real node: it is served as JSON, it is an OpenAPI 3.1
//! document, and every operation it documents is routed by the node (the other direction,
//! every route documented, is a unit test of the admin crate, which reads the router).

use crate::harness;

use harness::{TestNode, http_client};
use serde_json::Value;

/// Sample values for the path parameters of the document.
fn fill(path: &str) -> String {
    path.replace("{bucket}", "openapi-check")
        .replace("{key}", "some/key.bin")
        .replace("{id}", "0123456789abcdef")
        .replace("{token}", "not-a-token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_and_every_documented_operation_is_routed() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let http = http_client();
    let resp = http.get(format!("{}/api/v1/openapi.json", node.web_url())).send().await.expect("GET openapi.json");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let doc: Value = resp.json().await.expect("the document is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"].as_object().expect("securitySchemes");
    for scheme in ["userBearer", "userCookie", "accessKey", "serviceToken"] {
        assert!(schemes.contains_key(scheme), "security scheme {scheme}");
    }

    // The control: what the router answers for a path it does not route.
    let resp = http.get(format!("{}/api/v1/no-such-route", node.web_url())).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 404);
    let fallback = resp.text().await.expect("body");
    assert!(fallback.contains("no route /api/v1/no-such-route"), "the router's own 404 names no route: {fallback}");
    // The fallback's answer, whatever the path: a documented path answered this way is not routed.
    let unrouted = |body: &[u8]| String::from_utf8_lossy(body).contains("\"no route ");

    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 19, "every route is there: {}", paths.len());
    let mut checked = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().expect("path item").iter().filter(|(m, _)| *m != "parameters") {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let url = format!("{}{}", node.web_url(), fill(path));
            // No credentials and no body: what answers is the route's own refusal (401, 400,
            // 404 with a body...), never the router's bare 404 or a 405.
            let resp = http.request(method.clone(), &url).send().await.expect("request");
            let status = resp.status().as_u16();
            let body = resp.bytes().await.expect("body");
            assert_ne!(status, 405, "{method} {path} is documented but the node routes no such method");
            assert!(
                !(status == 404 && unrouted(&body)),
                "{method} {path} is documented but the node routes no such path"
            );
            checked += 1;
        }
    }
    assert!(checked >= 22, "every operation was tried: {checked}");
}
