//! Bucket policies, the documented subset (docs/s3-compatibility.md): what a policy may say,
//! and what it says about one request.
//!
//! A policy is JSON: `Version` (`2012-10-17` or `2008-10-17`), an optional `Id`, and
//! `Statement` (one or a list). A statement has an optional `Sid`, `Effect` `Allow` or `Deny`,
//! `Principal` `"*"` or `{"AWS": ...}` / `{"CanonicalUser": ...}` naming access key ids or
//! canonical ids (`"*"` again for everyone), `Action` among `s3:GetObject`, `s3:ListBucket`,
//! `s3:PutObject`, `s3:DeleteObject` and `s3:*`, `Resource` `arn:aws:s3:::BUCKET` or
//! `arn:aws:s3:::BUCKET/PATTERN` (`*` any run of characters, `?` one), and an optional
//! `Condition` of `IpAddress` / `NotIpAddress` on `aws:SourceIp` (CIDR blocks). Anything else
//! (NotPrincipal, NotAction, other actions or conditions, another bucket's ARN) is refused as
//! MalformedPolicy naming it: a policy is never stored with parts that would be ignored, since
//! an owner who wrote a Deny that is not enforced believes something false.
//!
//! Evaluation as in S3: an explicit Deny that matches wins; otherwise an Allow that matches
//! grants; otherwise the policy has no say (the owner's rights and the ACLs decide).

use std::net::IpAddr;

use serde_json::Value;

/// Largest policy document S3 takes (20 KiB).
pub(crate) const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Most statements one policy may hold: every anonymous request walks them.
const MAX_STATEMENTS: usize = 100;

/// Why a policy is refused: the message of its MalformedPolicy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(String);

/// The operations a policy can speak about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyAction {
    /// `s3:GetObject`: GET and HEAD of an object.
    GetObject,
    /// `s3:ListBucket`: listing the bucket (and HEAD of it).
    ListBucket,
    /// `s3:PutObject`: writing an object (single, copy, multipart).
    PutObject,
    /// `s3:DeleteObject`: deleting an object.
    DeleteObject,
}

impl PolicyAction {
    /// Whether the action is on objects (`arn:aws:s3:::bucket/key`) rather than the bucket.
    fn on_objects(self) -> bool {
        !matches!(self, Self::ListBucket)
    }

    /// The action an S3 operation needs, if it is one a policy can grant or deny.
    pub(crate) fn of_operation(op: &str) -> Option<Self> {
        match op {
            "GetObject" | "HeadObject" => Some(Self::GetObject),
            "ListObjects" | "ListObjectsV2" | "HeadBucket" => Some(Self::ListBucket),
            "PutObject"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload" => Some(Self::PutObject),
            "DeleteObject" => Some(Self::DeleteObject),
            _ => None,
        }
    }
}

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    /// Everyone, signed or not.
    Everyone,
    /// These access key ids and canonical ids.
    Named(Vec<String>),
}

/// A condition a statement holds under.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// The client's address is in one of the blocks (`IpAddress`).
    SourceIpIn(Vec<Cidr>),
    /// The client's address is in none of the blocks (`NotIpAddress`).
    SourceIpNotIn(Vec<Cidr>),
}

/// An address block (`192.0.2.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    /// The network address.
    addr: IpAddr,
    /// The prefix length.
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?),
            None => {
                let addr = text.parse::<IpAddr>().ok()?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 client counts as its IPv4 address).
    fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a.to_canonical() {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let (net, net_len) = bits(self.addr);
        let (client, client_len) = bits(ip);
        if net_len != client_len {
            return false;
        }
        let prefix = u32::from(self.prefix);
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        net & mask == client & mask
    }

    /// Whether the block is narrow enough for S3 to call a policy limited to it non-public:
    /// IPv4 /8 or longer, IPv6 /32 or longer.
    fn narrow(&self) -> bool {
        self.prefix >= if self.addr.to_canonical().is_ipv4() { 8 } else { 32 }
    }
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    /// Deny (true) or Allow.
    deny: bool,
    /// Who it is about.
    principals: Principals,
    /// The actions; empty never happens (refused), `None` inside means `s3:*`.
    actions: Vec<Option<PolicyAction>>,
    /// Resource patterns after `arn:aws:s3:::`: `bucket` or `bucket/pattern`.
    resources: Vec<String>,
    /// Conditions, all of which must hold.
    conditions: Vec<Condition>,
}

/// A request as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyRequest<'a> {
    /// The ids the caller goes by (its access key id and canonical id); empty: anonymous.
    pub(crate) ids: &'a [&'a str],
    /// What it does.
    pub(crate) action: PolicyAction,
    /// The bucket.
    pub(crate) bucket: &'a str,
    /// The object key, for object actions.
    pub(crate) key: Option<&'a str>,
    /// The client's address, as the listener saw it.
    pub(crate) client: Option<IpAddr>,
}

/// What a policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyVerdict {
    /// An explicit Deny matched.
    Deny,
    /// An Allow matched (and no Deny). `public`: only statements S3 calls public matched
    /// (RestrictPublicBuckets ignores those).
    Allow {
        /// Whether every matching Allow is public.
        public: bool,
    },
    /// No statement matched.
    Silent,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BucketPolicy {
    /// Its statements.
    statements: Vec<Statement>,
}

/// One string or a list of them, as policies allow for most fields.
fn strings(value: &Value, field: &str) -> Result<Vec<String>, Malformed> {
    let bad = || Malformed(format!("{field} must be a string or a list of strings"));
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(bad)).collect()
        }
        _ => Err(bad()),
    }
}

/// Whether `value` matches `pattern`, where `*` is any run of characters and `?` one.
fn glob(pattern: &[u8], value: &[u8]) -> bool {
    // Iterative with one backtrack point: linear in practice, never exponential.
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, v));
                p += 1;
            }
            Some(&c) if c == b'?' || c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl BucketPolicy {
    /// Parses and validates the policy of `bucket`; `known_principal` says whether a name is an
    /// access key id or canonical id of this cluster (S3 refuses a policy naming nobody).
    pub(crate) fn parse(text: &str, bucket: &str, known_principal: &dyn Fn(&str) -> bool) -> Result<Self, Malformed> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(Malformed(format!("Policies must be at most {MAX_POLICY_BYTES} bytes")));
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| Malformed(format!("Policies must be valid JSON: {e}")))?;
        let Value::Object(doc) = doc else { return Err(Malformed("A policy must be a JSON object".into())) };
        for (field, value) in &doc {
            match field.as_str() {
                "Version" => {
                    if !matches!(value.as_str(), Some("2012-10-17" | "2008-10-17")) {
                        return Err(Malformed("The policy Version must be 2012-10-17 or 2008-10-17".into()));
                    }
                }
                "Id" if value.is_string() => {}
                "Statement" => {}
                other => return Err(Malformed(format!("Unsupported policy element {other}"))),
            }
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(Malformed("Missing required field Statement".into())),
        };
        if statements.is_empty() || statements.len() > MAX_STATEMENTS {
            return Err(Malformed(format!("A policy must have 1 to {MAX_STATEMENTS} statements")));
        }
        let statements = statements
            .into_iter()
            .map(|s| Self::statement(s, bucket, known_principal))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    fn statement(value: &Value, bucket: &str, known: &dyn Fn(&str) -> bool) -> Result<Statement, Malformed> {
        let Value::Object(fields) = value else { return Err(Malformed("A statement must be a JSON object".into())) };
        for field in fields.keys() {
            if !["Sid", "Effect", "Principal", "Action", "Resource", "Condition"].contains(&field.as_str()) {
                return Err(Malformed(format!("Unsupported statement element {field}")));
            }
        }
        let deny = match fields.get("Effect").and_then(Value::as_str) {
            Some("Allow") => false,
            Some("Deny") => true,
            _ => return Err(Malformed("Effect must be Allow or Deny".into())),
        };
        let principals = match fields.get("Principal") {
            Some(Value::String(s)) if s == "*" => Principals::Everyone,
            Some(Value::Object(kinds)) if !kinds.is_empty() => {
                let mut names = Vec::new();
                for (kind, value) in kinds {
                    if kind != "AWS" && kind != "CanonicalUser" {
                        return Err(Malformed(format!("Unsupported principal type {kind}")));
                    }
                    names.extend(strings(value, "Principal")?);
                }
                if names.iter().any(|n| n == "*") {
                    Principals::Everyone
                } else {
                    if let Some(unknown) = names.iter().find(|n| !known(n)) {
                        return Err(Malformed(format!(
                            "Invalid principal in policy: {unknown} is no access key id or canonical id here"
                        )));
                    }
                    Principals::Named(names)
                }
            }
            _ => return Err(Malformed("Principal must be \"*\" or {\"AWS\": [ids]}".into())),
        };
        let actions = strings(fields.get("Action").unwrap_or(&Value::Null), "Action")?
            .iter()
            .map(|a| match a.to_ascii_lowercase().as_str() {
                "s3:*" => Ok(None),
                "s3:getobject" => Ok(Some(PolicyAction::GetObject)),
                "s3:listbucket" => Ok(Some(PolicyAction::ListBucket)),
                "s3:putobject" => Ok(Some(PolicyAction::PutObject)),
                "s3:deleteobject" => Ok(Some(PolicyAction::DeleteObject)),
                _ => Err(Malformed(format!("Unsupported action {a}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut resources = Vec::new();
        for resource in strings(fields.get("Resource").unwrap_or(&Value::Null), "Resource")? {
            let Some(rest) = resource.strip_prefix("arn:aws:s3:::") else {
                return Err(Malformed(format!("Unsupported resource {resource}")));
            };
            let named_bucket = rest.split_once('/').map_or(rest, |(b, _)| b);
            if named_bucket != bucket {
                return Err(Malformed(format!("Policy has invalid resource {resource}: not this bucket")));
            }
            resources.push(rest.to_owned());
        }
        // S3 refuses an action none of the statement's resources can be the target of.
        for action in actions.iter().flatten() {
            if !resources.iter().any(|r| r.contains('/') == action.on_objects()) {
                return Err(Malformed("Action does not apply to any resource(s) in statement".into()));
            }
        }
        let mut conditions = Vec::new();
        match fields.get("Condition") {
            None => {}
            Some(Value::Object(operators)) => {
                for (operator, keys) in operators {
                    let Value::Object(keys) = keys else {
                        return Err(Malformed(format!("Condition {operator} must map keys to values")));
                    };
                    for (key, value) in keys {
                        if !key.eq_ignore_ascii_case("aws:SourceIp") {
                            return Err(Malformed(format!("Unsupported condition key {key}")));
                        }
                        let blocks = strings(value, "aws:SourceIp")?
                            .iter()
                            .map(|b| Cidr::parse(b).ok_or_else(|| Malformed(format!("Invalid IP address block {b}"))))
                            .collect::<Result<Vec<_>, _>>()?;
                        conditions.push(match operator.as_str() {
                            "IpAddress" => Condition::SourceIpIn(blocks),
                            "NotIpAddress" => Condition::SourceIpNotIn(blocks),
                            other => return Err(Malformed(format!("Unsupported condition operator {other}"))),
                        });
                    }
                }
            }
            Some(_) => return Err(Malformed("Condition must be a JSON object".into())),
        }
        Ok(Statement { deny, principals, actions, resources, conditions })
    }

    /// Whether S3 would call the policy public: an Allow for everyone not limited to narrow
    /// address blocks.
    pub(crate) fn is_public(&self) -> bool {
        self.statements.iter().any(|s| !s.deny && s.public())
    }

    /// What the policy says about `request`.
    pub(crate) fn evaluate(&self, request: &PolicyRequest<'_>) -> PolicyVerdict {
        let mut allowed: Option<bool> = None;
        for statement in self.statements.iter().filter(|s| s.matches(request)) {
            if statement.deny {
                return PolicyVerdict::Deny;
            }
            allowed = Some(allowed.unwrap_or(true) && statement.public());
        }
        match allowed {
            Some(public) => PolicyVerdict::Allow { public },
            None => PolicyVerdict::Silent,
        }
    }
}

impl Statement {
    fn public(&self) -> bool {
        self.principals == Principals::Everyone
            && !self.conditions.iter().any(|c| matches!(c, Condition::SourceIpIn(b) if b.iter().all(Cidr::narrow)))
    }

    fn matches(&self, request: &PolicyRequest<'_>) -> bool {
        let principal = match &self.principals {
            Principals::Everyone => true,
            Principals::Named(names) => names.iter().any(|n| request.ids.contains(&n.as_str())),
        };
        let action = self.actions.iter().any(|a| a.is_none_or(|a| a == request.action));
        let target = match (request.action.on_objects(), request.key) {
            (true, Some(key)) => format!("{}/{key}", request.bucket),
            _ => request.bucket.to_owned(),
        };
        let resource = self.resources.iter().any(|r| glob(r.as_bytes(), target.as_bytes()));
        let conditions = self.conditions.iter().all(|c| match (c, request.client) {
            (Condition::SourceIpIn(blocks), Some(ip)) => blocks.iter().any(|b| b.contains(ip)),
            (Condition::SourceIpNotIn(blocks), Some(ip)) => !blocks.iter().any(|b| b.contains(ip)),
            // No known address: an IpAddress cannot hold; a NotIpAddress is not taken for
            // granted either (fail closed for Allow; a Deny then does not match, but every
            // S3 request has an address, so this is only the case of internal callers).
            (_, None) => false,
        });
        principal && action && resource && conditions
    }
}

impl crate::gateway::Gateway {
    /// The bucket's policy, parsed; `None` without one. A stored policy that no longer parses
    /// (a principal deleted since) is read leniently: its principals are not checked again.
    pub(crate) fn bucket_policy(&self, bucket: &str, text: Option<&str>) -> Option<BucketPolicy> {
        let text = text?;
        match BucketPolicy::parse(text, bucket, &|_| true) {
            Ok(policy) => Some(policy),
            Err(e) => {
                // Every stored policy was validated; this is damage. Fail closed: no grants.
                tracing::error!(bucket, error = %e, "stored bucket policy unreadable");
                Some(BucketPolicy { statements: vec![deny_everything(bucket)] })
            }
        }
    }

    /// Whether `name` is an access key id or canonical id a policy may name.
    fn known_principal(&self, name: &str) -> bool {
        self.known_canonical_id(name) || self.meta.access_key(name).is_ok_and(|k| k.is_some())
    }

    pub(crate) async fn put_bucket_policy_op(
        &self,
        req: s3s::S3Request<s3s::dto::PutBucketPolicyInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutBucketPolicyOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        self.bucket(&input.bucket).await?;
        let policy = BucketPolicy::parse(&input.policy, &input.bucket, &|n| self.known_principal(n))
            .map_err(|e| s3s::s3_error!(MalformedPolicy, "{e}"))?;
        let access = self.bucket_access(&input.bucket)?;
        if policy.is_public() && access.public_access_block.is_some_and(|b| b.block_public_policy) {
            tracing::info!(bucket = %input.bucket, "public policy refused: the bucket blocks public policies");
            return Err(s3s::s3_error!(AccessDenied, "The bucket's public access block refuses public policies"));
        }
        self.require_edge_format()?;
        let change = meridian_raft::BucketAccessChange::Policy(Some(input.policy));
        let command = meridian_raft::Command::SetBucketAccess { bucket: input.bucket.clone(), change };
        self.commit_as(origin, command).await?;
        tracing::info!(bucket = %input.bucket, statements = policy.statements.len(), public = policy.is_public(), "bucket policy set");
        Ok(s3s::S3Response::new(s3s::dto::PutBucketPolicyOutput {}))
    }

    pub(crate) async fn get_bucket_policy_op(
        &self,
        req: s3s::S3Request<s3s::dto::GetBucketPolicyInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetBucketPolicyOutput>> {
        self.bucket(&req.input.bucket).await?;
        let Some(policy) = self.bucket_access(&req.input.bucket)?.policy else {
            return Err(s3s::s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"));
        };
        Ok(s3s::S3Response::new(s3s::dto::GetBucketPolicyOutput { policy: Some(policy) }))
    }

    pub(crate) async fn delete_bucket_policy_op(
        &self,
        req: s3s::S3Request<s3s::dto::DeleteBucketPolicyInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteBucketPolicyOutput>> {
        let origin = self.origin_of(&req);
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        self.require_edge_format()?;
        let change = meridian_raft::BucketAccessChange::Policy(None);
        self.commit_as(origin, meridian_raft::Command::SetBucketAccess { bucket: bucket.clone(), change }).await?;
        tracing::info!(bucket = %bucket, "bucket policy removed");
        Ok(s3s::S3Response::new(s3s::dto::DeleteBucketPolicyOutput {}))
    }

    pub(crate) async fn get_bucket_policy_status_op(
        &self,
        req: s3s::S3Request<s3s::dto::GetBucketPolicyStatusInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetBucketPolicyStatusOutput>> {
        let bucket = &req.input.bucket;
        self.bucket(bucket).await?;
        let access = self.bucket_access(bucket)?;
        let Some(policy) = self.bucket_policy(bucket, access.policy.as_deref()) else {
            return Err(s3s::s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"));
        };
        Ok(s3s::S3Response::new(s3s::dto::GetBucketPolicyStatusOutput {
            policy_status: Some(s3s::dto::PolicyStatus { is_public: Some(policy.is_public()) }),
        }))
    }
}

/// A statement denying everyone everything on `bucket` (a damaged stored policy's stand-in).
fn deny_everything(bucket: &str) -> Statement {
    Statement {
        deny: true,
        principals: Principals::Everyone,
        actions: vec![None],
        resources: vec![bucket.to_owned(), format!("{bucket}/*")],
        conditions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BucketPolicy, Malformed> {
        BucketPolicy::parse(text, "films", &|n| n == "AKIDREADER" || n == "u-bob")
    }

    fn request<'a>(ids: &'a [&'a str], action: PolicyAction, key: Option<&'a str>, ip: &str) -> PolicyRequest<'a> {
        PolicyRequest { ids, action, bucket: "films", key, client: ip.parse().ok() }
    }

    const CINEMA: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"public","Effect":"Allow","Principal":"*","Action":"s3:GetObject",
         "Resource":["arn:aws:s3:::films/posters/*","arn:aws:s3:::films/trailers/*"]},
        {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::films/posters/draft-*"},
        {"Effect":"Allow","Principal":{"AWS":["AKIDREADER"]},"Action":["s3:ListBucket"],"Resource":"arn:aws:s3:::films",
         "Condition":{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}}]}"#;

    #[test]
    fn allow_deny_principals_resources_and_addresses() {
        let p = parse(CINEMA).expect("valid");
        let anon: &[&str] = &[];
        let get = PolicyAction::GetObject;
        assert_eq!(
            p.evaluate(&request(anon, get, Some("posters/a.jpg"), "198.51.100.1")),
            PolicyVerdict::Allow { public: true }
        );
        assert_eq!(p.evaluate(&request(anon, get, Some("films/secret.mkv"), "198.51.100.1")), PolicyVerdict::Silent);
        assert_eq!(p.evaluate(&request(anon, get, Some("posters/draft-1.jpg"), "198.51.100.1")), PolicyVerdict::Deny);
        assert_eq!(
            p.evaluate(&request(anon, PolicyAction::PutObject, Some("posters/a"), "1.1.1.1")),
            PolicyVerdict::Silent
        );
        let list = PolicyAction::ListBucket;
        assert_eq!(
            p.evaluate(&request(&["AKIDREADER"], list, None, "192.0.2.7")),
            PolicyVerdict::Allow { public: false }
        );
        assert_eq!(
            p.evaluate(&request(&["AKIDREADER"], list, None, "::ffff:192.0.2.7")),
            PolicyVerdict::Allow { public: false }
        );
        assert_eq!(p.evaluate(&request(&["AKIDREADER"], list, None, "192.0.3.7")), PolicyVerdict::Silent);
        assert_eq!(p.evaluate(&request(&["AKIDOTHER"], list, None, "192.0.2.7")), PolicyVerdict::Silent);
        assert!(p.is_public());
    }

    #[test]
    fn globs_match_runs_and_single_characters_without_blowing_up() {
        assert!(glob(b"films/posters/*", b"films/posters/a/b.jpg"));
        assert!(!glob(b"films/posters/*", b"films/poster"));
        assert!(glob(b"films/?.jpg", b"films/a.jpg") && !glob(b"films/?.jpg", b"films/ab.jpg"));
        assert!(glob(b"films/*a*b*c*", b"films/xxaxxbxxc"));
        let long = "a".repeat(5000);
        assert!(!glob(format!("films/{}", "*a".repeat(50) + "b").as_bytes(), format!("films/{long}").as_bytes()));
    }

    #[test]
    fn anything_outside_the_subset_is_named_and_refused() {
        let statement = |body: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#);
        let base = r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::films/*""#;
        let refused = [
            (statement(&format!("{{{base},\"NotAction\":\"s3:PutObject\"}}")), "NotAction"),
            (
                statement(
                    r#"{"Effect":"Allow","NotPrincipal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::films/*"}"#,
                ),
                "NotPrincipal",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObjectAcl","Resource":"arn:aws:s3:::films/*"}"#,
                ),
                "s3:GetObjectAcl",
            ),
            (
                statement(r#"{"Effect":"Allow","Principal":"*","Action":"s3:Get*","Resource":"arn:aws:s3:::films/*"}"#),
                "s3:Get*",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}"#,
                ),
                "other",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::films"}"#,
                ),
                "Action does not apply",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::films/*"}"#,
                ),
                "Service",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":{"AWS":"AKIDNOBODY"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::films/*"}"#,
                ),
                "AKIDNOBODY",
            ),
            (
                statement(&format!("{{{base},\"Condition\":{{\"StringLike\":{{\"aws:Referer\":\"x\"}}}}}}")),
                "aws:Referer",
            ),
            (
                statement(&format!(
                    "{{{base},\"Condition\":{{\"IpAddressIfExists\":{{\"aws:SourceIp\":\"1.2.3.4\"}}}}}}"
                )),
                "IpAddressIfExists",
            ),
            (
                statement(&format!("{{{base},\"Condition\":{{\"IpAddress\":{{\"aws:SourceIp\":\"1.2.3.4/33\"}}}}}}")),
                "1.2.3.4/33",
            ),
            (
                statement(
                    r#"{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::films/*"}"#,
                ),
                "Effect",
            ),
            (r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned(), "statements"),
            (r#"{"Version":"2020-01-01","Statement":[]}"#.to_owned(), "Version"),
            ("not json".to_owned(), "JSON"),
            (format!("{{\"Id\":\"{}\"}}", "x".repeat(MAX_POLICY_BYTES)), "bytes"),
        ];
        for (text, named) in refused {
            let message = parse(&text).expect_err(&text).0;
            assert!(message.contains(named), "{message} should name {named}");
        }
        assert!(parse(&statement(&format!("{{{base}}}"))).is_ok());
    }

    #[test]
    fn narrow_address_blocks_make_an_everyone_allow_non_public() {
        let with = |cidr: &str| {
            format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"s3:*","Resource":"arn:aws:s3:::films/*","Condition":{{"IpAddress":{{"aws:SourceIp":"{cidr}"}}}}}}}}"#
            )
        };
        assert!(!parse(&with("10.0.0.0/8")).expect("valid").is_public());
        assert!(parse(&with("0.0.0.0/0")).expect("valid").is_public());
        assert!(parse(&with("::/0")).expect("valid").is_public());
    }
}
