//! S3 Object Lock as the state machine stores and judges it: a bucket's lock configuration
//! (lock enabled, default retention) and each locked version's retention and legal hold.
//!
//! New in format 2, in tables of their own (`ol/`, `lv/`, `lu/`), so no record of the previous
//! release changes shape. Whether a version may be deleted, or its retention changed, is decided
//! here from the stored lock and a time carried by the command (set by the proposer), never a
//! clock read while applying: every replica decides alike.

use serde::{Deserialize, Serialize};

use crate::codec::Record;
use crate::model::UnixMillis;

/// Milliseconds in a day, for default retention periods.
const DAY_MILLIS: i64 = 24 * 3600 * 1000;

/// How strictly a retention protects a version (S3's `ObjectLockRetentionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionMode {
    /// Shortened or removed only with `x-amz-bypass-governance-retention` by a key allowed to.
    Governance,
    /// Never shortened or removed by anyone until it expires; only extended.
    Compliance,
}

/// A version's retention: until when, and how strictly, it may not be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The mode.
    pub mode: RetentionMode,
    /// The end of the retention (`x-amz-object-lock-retain-until-date`), milliseconds since
    /// the epoch.
    pub until: UnixMillis,
}

/// The period of a bucket's default retention, as S3 states it (days or years, never both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionPeriod {
    /// A number of days.
    Days(u32),
    /// A number of years (counted as 365 days, as S3 does).
    Years(u32),
}

impl RetentionPeriod {
    /// The period's length in milliseconds.
    #[must_use]
    pub fn millis(self) -> i64 {
        match self {
            Self::Days(days) => i64::from(days) * DAY_MILLIS,
            Self::Years(years) => i64::from(years) * 365 * DAY_MILLIS,
        }
    }
}

/// A bucket's default retention: applied to every new version written without a retention of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// The mode given to new versions.
    pub mode: RetentionMode,
    /// How long from the version's write.
    pub period: RetentionPeriod,
}

/// A bucket's Object Lock configuration (`ol/`): present means lock is enabled, which cannot be
/// undone (as on S3), and keeps the bucket's versioning enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketObjectLock {
    /// The default retention of new versions, if any.
    pub default_retention: Option<DefaultRetention>,
}

/// The lock of one version (`lv/`), or the lock a multipart upload will give the version its
/// completion writes (`lu/`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionLock {
    /// The retention, if any (an expired one protects nothing but is still reported).
    pub retention: Option<Retention>,
    /// Whether a legal hold is on: protects the version whatever its retention says.
    pub legal_hold: bool,
}

impl VersionLock {
    /// Whether the version may not be deleted at `now`; `bypass_governance` is the request's
    /// bypass header, granted only to keys allowed to use it.
    #[must_use]
    pub fn protects(&self, now: UnixMillis, bypass_governance: bool) -> bool {
        if self.legal_hold {
            return true;
        }
        match self.retention {
            Some(Retention { until, .. }) if until <= now => false,
            Some(Retention { mode: RetentionMode::Compliance, .. }) => true,
            Some(Retention { mode: RetentionMode::Governance, .. }) => !bypass_governance,
            None => false,
        }
    }

    /// Whether a lock holds nothing worth storing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.retention.is_none() && !self.legal_hold
    }
}

/// Whether a version's retention may go from `current` to `new` at `now`: extending (same mode,
/// a later or equal date; or GOVERNANCE to COMPLIANCE) is always allowed; an expired retention
/// may be replaced by anything; shortening, removing or weakening GOVERNANCE needs the bypass;
/// COMPLIANCE is never shortened, removed or weakened.
#[must_use]
pub fn retention_change_allowed(
    current: Option<Retention>,
    new: Option<Retention>,
    now: UnixMillis,
    bypass_governance: bool,
) -> bool {
    let Some(current) = current else { return true };
    if current.until <= now {
        return true;
    }
    let extends = match new {
        None => false,
        Some(new) => new.until >= current.until && (new.mode == current.mode || new.mode == RetentionMode::Compliance),
    };
    extends || (current.mode == RetentionMode::Governance && bypass_governance)
}

impl Record for BucketObjectLock {
    const NAME: &'static str = "bucket object lock configuration";
    /// New in format 2 with one shape only: the default `migrate` reads it in any format, and
    /// gateways propose it only once the cluster writes format 2.
    const FORMAT: u16 = 2;
}

impl Record for VersionLock {
    const NAME: &'static str = "object version lock";
    /// New in format 2, like [`BucketObjectLock`].
    const FORMAT: u16 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOV: RetentionMode = RetentionMode::Governance;
    const COMP: RetentionMode = RetentionMode::Compliance;

    fn r(mode: RetentionMode, until: UnixMillis) -> Option<Retention> {
        Some(Retention { mode, until })
    }

    #[test]
    fn compliance_is_only_extended_and_governance_needs_the_bypass() {
        let now = 100;
        assert!(retention_change_allowed(r(COMP, 200), r(COMP, 300), now, false), "extend");
        assert!(!retention_change_allowed(r(COMP, 200), r(COMP, 150), now, true), "shorten, even bypassing");
        assert!(!retention_change_allowed(r(COMP, 200), None, now, true), "remove, even bypassing");
        assert!(!retention_change_allowed(r(COMP, 200), r(GOV, 300), now, true), "weaken, even bypassing");
        assert!(retention_change_allowed(r(COMP, 50), None, now, false), "expired: anything goes");
        assert!(retention_change_allowed(r(GOV, 200), r(GOV, 300), now, false), "extend");
        assert!(retention_change_allowed(r(GOV, 200), r(COMP, 200), now, false), "strengthen");
        assert!(!retention_change_allowed(r(GOV, 200), r(GOV, 150), now, false), "shorten without bypass");
        assert!(retention_change_allowed(r(GOV, 200), r(GOV, 150), now, true), "shorten with bypass");
        assert!(!retention_change_allowed(r(GOV, 200), None, now, false), "remove without bypass");
        assert!(retention_change_allowed(r(GOV, 200), None, now, true), "remove with bypass");
        assert!(retention_change_allowed(None, r(GOV, 1), now, false), "nothing before");
    }

    #[test]
    fn a_lock_protects_until_its_date_or_while_held() {
        let lock = |retention, legal_hold| VersionLock { retention, legal_hold };
        assert!(lock(r(COMP, 200), false).protects(199, true));
        assert!(!lock(r(COMP, 200), false).protects(200, false), "expired at its date");
        assert!(lock(r(GOV, 200), false).protects(100, false));
        assert!(!lock(r(GOV, 200), false).protects(100, true), "bypassed");
        assert!(lock(None, true).protects(i64::MAX, true), "a legal hold is never bypassed");
        assert!(lock(r(GOV, 1), true).protects(100, true));
        assert!(!VersionLock::default().protects(0, false));
        assert_eq!(RetentionPeriod::Days(1).millis(), DAY_MILLIS);
        assert_eq!(RetentionPeriod::Years(1).millis(), 365 * DAY_MILLIS);
    }
}
