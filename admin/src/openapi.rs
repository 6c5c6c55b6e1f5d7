//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the web API.
//!
//! The document is hand-written (`admin/openapi.json`) and compiled into the binary: no code
//! generation, and what clients read is exactly what was reviewed. The tests below keep it
//! honest: every `/api/` route of [`crate::router`] must be in it (read from the router's source,
//! since axum cannot list its routes), and every `$ref` must resolve. `node/tests/it/admin/openapi.rs`
//! checks the other direction against a running node: every documented operation is routed.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

/// The document, as served.
pub(crate) const DOCUMENT: &str = include_str!("../openapi.json");

/// `GET /api/v1/openapi.json`. Public: it describes routes, not data.
pub(crate) async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "public, max-age=300")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::DOCUMENT;

    /// The router's source: the routes are read from it.
    const LIB: &str = include_str!("lib.rs");

    /// Route paths the router names by constant, with their values.
    const CONSTANTS: &[(&str, &str)] = &[("placement::ROUTE", crate::placement::ROUTE)];

    /// HTTP methods of axum's routing functions.
    const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options"];

    /// The text between the parenthesis at `open` and its partner.
    fn parenthesized(text: &str, open: usize) -> &str {
        let mut depth = 0usize;
        for (i, c) in text[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[open + 1..open + i];
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced parentheses in the router's source")
    }

    /// Every `(path, method)` that `router()` in lib.rs routes.
    fn router_routes() -> BTreeSet<(String, String)> {
        let start = LIB.find("pub fn router(").expect("lib.rs has `pub fn router(`");
        let body = &LIB[start..];
        let body = &body[..body.find(".with_state(").expect("router() ends with .with_state(")];
        let mut routes = BTreeSet::new();
        for (at, _) in body.match_indices(".route(") {
            let args = parenthesized(body, at + ".route".len());
            let (path, handlers) = args.split_once(',').expect(".route(PATH, HANDLERS)");
            let path = path.trim();
            let path = match path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                Some(literal) => literal.to_owned(),
                None => CONSTANTS
                    .iter()
                    .find(|(name, _)| *name == path)
                    .unwrap_or_else(|| panic!("route constant {path} unknown here: add it to CONSTANTS"))
                    .1
                    .to_owned(),
            };
            let mut found = false;
            for method in METHODS {
                let call = format!("{method}(");
                for (i, _) in handlers.match_indices(&call) {
                    let before = handlers[..i].chars().next_back();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        routes.insert((path.clone(), (*method).to_owned()));
                        found = true;
                    }
                }
            }
            assert!(found, "no method found for route {path}");
        }
        routes
    }

    /// Whether the documented `doc_path` is the router's `route` (a `{*wildcard}` takes the
    /// rest of the path, which the document may spell with more segments, e.g. `/placement`).
    fn same_path(route: &str, doc_path: &str) -> bool {
        match route.find("{*") {
            None => route == doc_path,
            Some(star) => doc_path.starts_with(&route[..star]) && doc_path[star..].starts_with('{'),
        }
    }

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    #[test]
    fn every_api_route_of_the_router_is_documented() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let routes = router_routes();
        let api: Vec<_> = routes.iter().filter(|(path, _)| path.starts_with("/api/")).collect();
        // A floor, so a router rewritten beyond what this reader understands fails loudly
        // instead of checking nothing.
        assert!(api.len() >= 19, "only {} API routes read from lib.rs: {api:?}", api.len());
        let missing: Vec<_> = api
            .iter()
            .filter(|(path, method)| !paths.iter().any(|(p, item)| same_path(path, p) && item.get(method).is_some()))
            .collect();
        assert!(missing.is_empty(), "routes missing from admin/openapi.json: {missing:?}");
        // Documented non-API routes must exist too (the other direction runs against a node).
        for (doc_path, item) in paths {
            for method in METHODS {
                if item.get(*method).is_some() {
                    assert!(
                        routes.iter().any(|(p, m)| m == method && same_path(p, doc_path)),
                        "{method} {doc_path} is documented but not routed"
                    );
                }
            }
        }
    }

    /// Collects every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_both_kinds_of_callers() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "openapi: {}", doc["openapi"]);
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string(), "info needs title and version");
        let schemes = doc["components"]["securitySchemes"].as_object().expect("securitySchemes");
        assert_eq!(schemes["userBearer"]["scheme"], "bearer");
        assert_eq!(schemes["userBearer"]["bearerFormat"], "JWT");
        assert_eq!(schemes["userCookie"]["in"], "cookie");
        assert_eq!(schemes["accessKey"]["scheme"], "basic");
        assert_eq!(schemes["serviceToken"]["scheme"], "bearer");
        let mut targets = Vec::new();
        refs(&doc, &mut targets);
        assert!(targets.len() > 50, "the document reuses its schemas");
        for target in targets {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{target}: only local refs"));
            assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
        }
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}: responses");
                assert!(op["operationId"].is_string(), "{method} {path}: operationId");
                for requirement in op["security"].as_array().unwrap_or_else(|| panic!("{method} {path}: security")) {
                    for name in requirement.as_object().expect("requirement").keys() {
                        assert!(schemes.contains_key(name), "{method} {path}: unknown scheme {name}");
                    }
                }
            }
        }
    }

    #[test]
    fn wildcards_match_longer_documented_paths() {
        assert!(same_path("/api/v1/files/{bucket}/{*key}", "/api/v1/files/{bucket}/{key}"));
        assert!(same_path(crate::placement::ROUTE, "/api/v1/objects/{bucket}/{key}/placement"));
        assert!(!same_path("/api/v1/files/{bucket}/{*key}", "/api/v1/files"));
        assert!(!same_path("/api/v1/shares/{id}", "/api/v1/shares"));
    }
}
