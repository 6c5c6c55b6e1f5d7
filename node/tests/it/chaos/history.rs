//! What the workload did and saw: one [`Op`] per request, with its invocation and completion
//! instants and an outcome that says whether it may have taken effect. The checker reads only
//! this, so a history can be written by hand in its unit tests.

use std::collections::BTreeMap;
use std::fmt;

/// A value written by the workload. Every write writes a fresh one, so a read names the one
/// write it saw. `0` is never used.
pub(crate) type ValueId = u32;

/// The S3 request an [`Op`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// PutObject (a first write or an overwrite).
    Put,
    /// CreateMultipartUpload, UploadPart..., CompleteMultipartUpload: the write is the Complete.
    Multipart,
    /// DeleteObject (of a live key or an absent one: both write "absent").
    Delete,
    /// GetObject: the body names the value.
    Get,
    /// HeadObject: the ETag (and the value's user metadata) name the value.
    Head,
    /// ListObjectsV2 of the key space's prefix: every key's ETag names its value.
    List,
}

/// Whether an operation took effect, as far as its client can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Acknowledged: a write took effect, a read saw what [`Op::observed`] says.
    Ok,
    /// A definite refusal (a 4xx answer, a connection that was never made): no effect.
    Refused(String),
    /// No answer that says either way (timeout, reset, 5xx): a write may take effect at any
    /// time after its invocation, or never.
    Unknown(String),
}

/// What a read saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Observed {
    /// Not a read, or a read that failed.
    Nothing,
    /// One key: a value, or absent (NoSuchKey / 404).
    Value(Option<ValueId>),
    /// A listing: the value of every key it listed (keys of the space it did not list are absent).
    Listing(BTreeMap<String, ValueId>),
    /// Bytes, an ETag or a key the workload never wrote (a phantom or corrupt value).
    Garbage(String),
}

/// One request of the workload.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// Index in the history.
    pub(crate) id: usize,
    /// Which client made it (`usize::MAX`: the checker's own reads after healing).
    pub(crate) client: usize,
    /// The node index it went to.
    pub(crate) region: usize,
    /// The key (for a listing: the prefix).
    pub(crate) key: String,
    /// The request.
    pub(crate) kind: Kind,
    /// For a write, what it writes: a value, or `None` for a delete.
    pub(crate) wrote: Option<Option<ValueId>>,
    /// For a read, what it saw.
    pub(crate) observed: Observed,
    /// Monotonic microseconds since the run started, just before the request was sent.
    pub(crate) invoked_us: u64,
    /// Monotonic microseconds when its answer (or the failure) came back.
    pub(crate) completed_us: u64,
    /// Whether it took effect.
    pub(crate) outcome: Outcome,
    /// Whether it is one of the reads made after healing (the final state), for the report.
    pub(crate) after_heal: bool,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.client == usize::MAX { "checker".to_owned() } else { format!("client {}", self.client) };
        write!(
            f,
            "#{} {who} via node {} {:?} {} [{:.3}s..{:.3}s] ",
            self.id,
            self.region,
            self.kind,
            self.key,
            self.invoked_us as f64 / 1e6,
            self.completed_us as f64 / 1e6
        )?;
        match self.wrote {
            Some(Some(v)) => write!(f, "wrote v{v} ")?,
            Some(None) => write!(f, "wrote absent ")?,
            None => {}
        }
        match &self.observed {
            Observed::Nothing => {}
            Observed::Value(Some(v)) => write!(f, "saw v{v} ")?,
            Observed::Value(None) => write!(f, "saw absent ")?,
            Observed::Listing(l) => write!(f, "listed {l:?} ")?,
            Observed::Garbage(g) => write!(f, "saw garbage {g} ")?,
        }
        match &self.outcome {
            Outcome::Ok => write!(f, "ok"),
            Outcome::Refused(why) => write!(f, "refused ({why})"),
            Outcome::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// A fault the nemesis injected, for the report.
#[derive(Debug, Clone)]
pub(crate) struct FaultEvent {
    /// Monotonic microseconds when it was injected.
    pub(crate) at_us: u64,
    /// Monotonic microseconds when it was healed.
    pub(crate) healed_us: u64,
    /// What it was, e.g. "kill -9 node 1 (leader)".
    pub(crate) what: String,
}
