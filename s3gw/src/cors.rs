//! Bucket CORS: Put/Get/DeleteBucketCors, and how a browser's cross-origin request is judged by
//! the bucket's rules (the S3 listener answers preflights and adds the response headers with
//! [`Gateway::cors_preflight`] and [`Gateway::cors_for_request`]).
//!
//! A rule matches when the request's `Origin` matches one of its AllowedOrigins (each may hold
//! one `*`, matching any run of characters), its method (for a preflight, the
//! `Access-Control-Request-Method`) is one of its AllowedMethods, and (for a preflight) every
//! header in `Access-Control-Request-Headers` matches one of its AllowedHeaders (again one `*`
//! each, case-insensitive). The first matching rule answers, as with S3.
//!
//! Rules are read from this node's own state, without a read index: a preflight is anonymous,
//! frequent and cached by browsers; a rule changed through another node applies here once this
//! node has applied it (milliseconds).

use http::{HeaderMap, HeaderValue};
use meridian_raft::{BucketCors, Command, CorsRule};
use s3s::dto::{
    CORSConfiguration, CORSRule, DeleteBucketCorsInput, DeleteBucketCorsOutput, GetBucketCorsInput,
    GetBucketCorsOutput, PutBucketCorsInput, PutBucketCorsOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error;
use crate::gateway::Gateway;

/// Most rules one configuration may hold, as S3 allows.
const MAX_RULES: usize = 100;

/// Most bytes of text (ids, origins, methods, headers) one configuration may hold: every
/// preflight walks the rules, so their size is bounded whatever the XML limit is.
const MAX_CONFIG_TEXT: usize = 64 * 1024;

/// The methods a rule may allow (S3's list).
const METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];

/// The headers a cross-origin request gets from the rule that allowed it, or a preflight's
/// answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsAnswer {
    /// `Access-Control-Allow-Origin`: `*` for a rule that allows any origin, else the request's.
    allow_origin: String,
    /// `Access-Control-Allow-Methods`: the rule's methods.
    allow_methods: String,
    /// `Access-Control-Allow-Headers` (preflight only): the headers the browser asked for.
    allow_headers: Option<String>,
    /// `Access-Control-Expose-Headers`: the rule's ExposeHeaders.
    expose_headers: Option<String>,
    /// `Access-Control-Max-Age`: the rule's MaxAgeSeconds.
    max_age: Option<i32>,
}

impl CorsAnswer {
    /// Writes the answer's headers (and `Vary`, since the answer depends on the request's
    /// origin and preflight headers: a shared cache must not hand it to another origin).
    pub fn write(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("access-control-allow-origin", &self.allow_origin);
        set("access-control-allow-methods", &self.allow_methods);
        if let Some(allowed) = &self.allow_headers {
            set("access-control-allow-headers", allowed);
        }
        if let Some(exposed) = &self.expose_headers {
            set("access-control-expose-headers", exposed);
        }
        if let Some(age) = self.max_age {
            set("access-control-max-age", &age.to_string());
        }
        set("vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
    }
}

/// Why a preflight was refused (the message of its 403 AccessForbidden, S3's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightRefusal {
    /// The bucket has no CORS configuration (or does not exist).
    NotEnabled,
    /// No rule allows this origin, method and headers.
    NotAllowed,
}

impl PreflightRefusal {
    /// The message S3 answers with.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotEnabled => "CORSResponse: CORS is not enabled for this bucket.",
            Self::NotAllowed => {
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of \
                 Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers \
                 are not whitelisted by the resource's CORS spec."
            }
        }
    }
}

/// Whether `value` matches `pattern`, which holds at most one `*` (validated when stored).
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.get(..head.len()).is_some_and(|v| eq(head, v))
                && value.get(value.len() - tail.len()..).is_some_and(|v| eq(tail, v))
        }
    }
}

/// Whether `rule` allows `origin` to use `method`, asking to send `headers` (lower-cased names).
fn allows(rule: &CorsRule, origin: &str, method: &str, headers: &[String]) -> bool {
    rule.allowed_origins.iter().any(|o| wildcard_match(o, origin, false))
        && rule.allowed_methods.iter().any(|m| m == method)
        && headers.iter().all(|h| rule.allowed_headers.iter().any(|a| wildcard_match(a, h, true)))
}

/// The answer of the rule that allowed a request.
fn answer(rule: &CorsRule, origin: &str, asked_headers: Option<&str>) -> CorsAnswer {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    CorsAnswer {
        allow_origin: if any_origin { "*".to_owned() } else { origin.to_owned() },
        allow_methods: rule.allowed_methods.join(", "),
        allow_headers: asked_headers.filter(|h| !h.trim().is_empty()).map(str::to_owned),
        expose_headers: (!rule.expose_headers.is_empty()).then(|| rule.expose_headers.join(", ")),
        max_age: rule.max_age_seconds,
    }
}

/// The header names of an `Access-Control-Request-Headers` value, lower-cased.
fn requested_headers(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
}

/// A client's configuration as stored, or why S3 refuses it (MalformedXML, InvalidRequest).
fn validated(config: CORSConfiguration) -> S3Result<BucketCors> {
    if config.cors_rules.is_empty() {
        return Err(s3_error!(MalformedXML, "a CORS configuration needs at least one CORSRule"));
    }
    if config.cors_rules.len() > MAX_RULES {
        return Err(s3_error!(InvalidRequest, "a CORS configuration may hold at most {MAX_RULES} rules"));
    }
    let mut text = 0usize;
    let mut rules = Vec::with_capacity(config.cors_rules.len());
    for rule in config.cors_rules {
        let CORSRule { allowed_headers, allowed_methods, allowed_origins, expose_headers, id, max_age_seconds } = rule;
        if allowed_methods.is_empty() || allowed_origins.is_empty() {
            return Err(s3_error!(MalformedXML, "every CORSRule needs an AllowedMethod and an AllowedOrigin"));
        }
        if let Some(method) = allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(s3_error!(
                InvalidRequest,
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            ));
        }
        if let Some(origin) = allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
            return Err(s3_error!(InvalidRequest, "AllowedOrigin \"{origin}\" can not have more than one wildcard."));
        }
        let allowed_headers = allowed_headers.unwrap_or_default();
        if let Some(header) = allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
            return Err(s3_error!(InvalidRequest, "AllowedHeader \"{header}\" can not have more than one wildcard."));
        }
        let expose_headers = expose_headers.unwrap_or_default();
        if let Some(header) = expose_headers.iter().find(|h| h.contains('*') || HeaderValue::from_str(h).is_err()) {
            return Err(s3_error!(InvalidRequest, "ExposeHeader \"{header}\" is not a header name."));
        }
        let strings = allowed_headers.iter().chain(&allowed_methods).chain(&allowed_origins).chain(&expose_headers);
        text += strings.map(String::len).sum::<usize>() + id.as_ref().map_or(0, String::len);
        if text > MAX_CONFIG_TEXT {
            return Err(s3_error!(
                EntityTooLarge,
                "a CORS configuration may hold at most {MAX_CONFIG_TEXT} bytes of text"
            ));
        }
        rules.push(CorsRule {
            id,
            allowed_origins,
            allowed_methods,
            allowed_headers: allowed_headers.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            expose_headers,
            max_age_seconds: max_age_seconds.map(|age| age.max(0)),
        });
    }
    Ok(BucketCors { rules })
}

impl Gateway {
    pub(crate) async fn put_bucket_cors_op(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        let cors = validated(input.cors_configuration)?;
        self.require_edge_format()?;
        let rules = cors.rules.len();
        self.commit_as(origin, Command::PutBucketCors { bucket: input.bucket.clone(), cors }).await?;
        tracing::info!(bucket = %input.bucket, rules, "bucket CORS configuration set");
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    pub(crate) async fn get_bucket_cors_op(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = &req.input.bucket;
        self.bucket(bucket).await?;
        let Some(cors) = self.meta.bucket_cors(bucket).map_err(error::store)? else {
            return Err(s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist"));
        };
        let rules = cors
            .rules
            .into_iter()
            .map(|r| CORSRule {
                allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
                allowed_methods: r.allowed_methods,
                allowed_origins: r.allowed_origins,
                expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
                id: r.id,
                max_age_seconds: r.max_age_seconds,
            })
            .collect();
        Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules) }))
    }

    pub(crate) async fn delete_bucket_cors_op(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let origin = self.origin_of(&req);
        let bucket = req.input.bucket;
        self.require_edge_format()?;
        self.commit_as(origin, Command::DeleteBucketCors { bucket: bucket.clone() }).await?;
        tracing::info!(bucket = %bucket, "bucket CORS configuration removed");
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }

    /// This node's copy of a bucket's rules; a store failure counts as none (logged): CORS
    /// then refuses, which fails closed.
    fn local_cors(&self, bucket: &str) -> Option<BucketCors> {
        self.meta.bucket_cors(bucket).unwrap_or_else(|e| {
            tracing::error!(bucket, error = %e, "bucket CORS configuration unreadable");
            None
        })
    }

    /// The answer to a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
    /// on `bucket`, from its rules.
    pub fn cors_preflight(
        &self,
        bucket: &str,
        origin: &str,
        method: &str,
        request_headers: Option<&str>,
    ) -> Result<CorsAnswer, PreflightRefusal> {
        let cors = self.local_cors(bucket).ok_or(PreflightRefusal::NotEnabled)?;
        let asked = requested_headers(request_headers);
        let rule = cors.rules.iter().find(|r| allows(r, origin, method, &asked)).ok_or(PreflightRefusal::NotAllowed)?;
        Ok(answer(rule, origin, request_headers))
    }

    /// The CORS headers of the response to a cross-origin request (`Origin` set) on `bucket`,
    /// if a rule allows it; none otherwise (the browser then hides the response from the script).
    pub fn cors_for_request(&self, bucket: &str, origin: &str, method: &str) -> Option<CorsAnswer> {
        let cors = self.local_cors(bucket)?;
        // A HEAD is judged as the GET it is the head of only if the rule says HEAD, as in S3.
        cors.rules.iter().find(|r| allows(r, origin, method, &[])).map(|rule| answer(rule, origin, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CORSRule {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        CORSRule {
            allowed_headers: Some(strings(headers)),
            allowed_methods: strings(methods),
            allowed_origins: strings(origins),
            expose_headers: Some(vec!["ETag".into()]),
            id: None,
            max_age_seconds: Some(300),
        }
    }

    fn config(rules: Vec<CORSRule>) -> S3Result<BucketCors> {
        validated(CORSConfiguration { cors_rules: rules })
    }

    #[test]
    fn one_wildcard_matches_any_run_of_characters() {
        assert!(wildcard_match("https://*.example.com", "https://films.example.com", false));
        assert!(wildcard_match("https://*.example.com", "https://a.b.example.com", false));
        assert!(!wildcard_match("https://*.example.com", "https://example.com", false), "the dot is literal");
        assert!(!wildcard_match("https://*.example.com", "https://evil.com/.example.com.evil", false));
        assert!(!wildcard_match("https://*.example.com", "http://films.example.com", false));
        assert!(wildcard_match("*", "null", false));
        assert!(!wildcard_match("https://a.example.com", "https://A.example.com", false), "origins are exact");
        assert!(wildcard_match("x-amz-*", "X-Amz-Date", true), "headers are not");
        assert!(!wildcard_match("ab*ba", "aba", false), "head and tail may not overlap");
    }

    #[test]
    fn the_first_rule_that_allows_origin_method_and_headers_answers() {
        let cors = config(vec![
            rule(&["https://panel.example.com"], &["PUT"], &["content-type"]),
            rule(&["*"], &["GET"], &[]),
        ])
        .expect("valid");
        let origin = "https://panel.example.com";
        let put = cors.rules.iter().find(|r| allows(r, origin, "PUT", &["content-type".into()])).expect("rule 1");
        let a = answer(put, origin, Some("Content-Type"));
        assert_eq!(a.allow_origin, origin);
        assert_eq!(a.allow_headers.as_deref(), Some("Content-Type"));
        assert!(!cors.rules.iter().any(|r| allows(r, origin, "PUT", &["x-evil".into()])), "a header no rule allows");
        assert!(!cors.rules.iter().any(|r| allows(r, "https://evil.com", "PUT", &[])), "another origin may not PUT");
        let get = cors.rules.iter().find(|r| allows(r, "https://evil.com", "GET", &[])).expect("rule 2");
        assert_eq!(answer(get, "https://evil.com", None).allow_origin, "*", "an any-origin rule answers *");
        assert!(!cors.rules.iter().any(|r| allows(r, origin, "DELETE", &[])));
    }

    #[test]
    fn configurations_s3_refuses_are_refused() {
        let code = |r: S3Result<BucketCors>| r.map(drop).map_err(|e| e.code().as_str().to_owned());
        assert_eq!(code(config(vec![])), Err("MalformedXML".into()));
        assert_eq!(code(config(vec![rule(&["*"], &["PATCH"], &[])])), Err("InvalidRequest".into()));
        assert_eq!(code(config(vec![rule(&["https://*.*.com"], &["GET"], &[])])), Err("InvalidRequest".into()));
        assert_eq!(code(config(vec![rule(&["*"], &["GET"], &["x-*-*"])])), Err("InvalidRequest".into()));
        assert_eq!(code(config(vec![rule(&[], &["GET"], &[])])), Err("MalformedXML".into()));
        let many = (0..=MAX_RULES).map(|_| rule(&["*"], &["GET"], &[])).collect();
        assert_eq!(code(config(many)), Err("InvalidRequest".into()));
        let long = "o".repeat(MAX_CONFIG_TEXT + 1);
        assert_eq!(code(config(vec![rule(&[&long], &["GET"], &[])])), Err("EntityTooLarge".into()));
        let mut bad_expose = rule(&["*"], &["GET"], &[]);
        bad_expose.expose_headers = Some(vec!["x\nInjected: 1".into()]);
        assert_eq!(code(config(vec![bad_expose])), Err("InvalidRequest".into()));
        assert!(config(vec![rule(&["https://*.example.com"], &["GET", "PUT"], &["*"])]).is_ok());
    }

    #[test]
    fn an_answer_writes_its_headers_and_vary() {
        let mut headers = HeaderMap::new();
        let a = CorsAnswer {
            allow_origin: "https://a.example.com".into(),
            allow_methods: "GET, PUT".into(),
            allow_headers: Some("content-type".into()),
            expose_headers: Some("ETag".into()),
            max_age: Some(60),
        };
        a.write(&mut headers);
        assert_eq!(headers["access-control-allow-origin"], "https://a.example.com");
        assert_eq!(headers["access-control-allow-methods"], "GET, PUT");
        assert_eq!(headers["access-control-max-age"], "60");
        assert!(headers["vary"].to_str().is_ok_and(|v| v.contains("Origin")));
        assert!(!headers.contains_key("access-control-allow-credentials"), "never credentials");
    }
}
