//! A bucket's CORS configuration (PutBucketCors), as the state machine stores it: the rules a
//! browser's cross-origin requests to the bucket are judged by. New in format 2, in a table of
//! its own (`cors/`), so no record of the previous release changes shape.

use serde::{Deserialize, Serialize};

use crate::codec::Record;

/// One CORS rule of a bucket, as S3's `CORSRule` holds it. The gateway validates a rule before
/// it is proposed (methods, at most one `*` per origin); the stored value is what it accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// The rule's `ID`, returned by GetBucketCors as given.
    pub id: Option<String>,
    /// Origins the rule applies to; each may hold one `*` that matches any run of characters.
    pub allowed_origins: Vec<String>,
    /// Methods the rule allows (`GET`, `PUT`, `POST`, `DELETE`, `HEAD`).
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for; each may hold one `*`.
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read (`Access-Control-Expose-Headers`).
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight's answer (`Access-Control-Max-Age`).
    pub max_age_seconds: Option<i32>,
}

/// A bucket's CORS configuration: its rules, in the order given (the first match wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCors {
    /// The rules.
    pub rules: Vec<CorsRule>,
}

impl Record for BucketCors {
    const NAME: &'static str = "bucket CORS configuration";
    /// New in format 2. It has had one shape only, so the default `migrate` reads it in any
    /// format; gateways propose it only once the cluster writes format 2.
    const FORMAT: u16 = 2;
}
