//! Where a recorded image stands, from its record alone, in one wording: `plan` (why a step is
//! rebuilt), `status`, the report, `resolve` and a child step's source all say it so. Whether an
//! available image is also stale, its step's inputs and parent decide (`ops::status`).

use super::{ImageRecord, ImageStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Available,
    /// It failed its tests and was kept: which test, with its log, and why it failed.
    Failed {
        test: String,
        why: Option<String>,
    },
    Revoked {
        reason: String,
    },
    /// The lifecycle policy disabled it.
    Disabled,
    /// Gone from EC2; the test it failed, when that is why.
    Deregistered {
        failed_test: Option<String>,
    },
}

impl Standing {
    pub fn of(record: &ImageRecord) -> Standing {
        let failure = || record.tests.last().and_then(|run| run.failure());
        match record.status {
            ImageStatus::Available => Standing::Available,
            ImageStatus::Failed => {
                Standing::Failed { test: record.failed_test(), why: failure().and_then(|test| test.reason.clone()) }
            }
            ImageStatus::Revoked => {
                Standing::Revoked { reason: record.revoked_reason.clone().unwrap_or_else(|| "no reason given".into()) }
            }
            ImageStatus::Disabled => Standing::Disabled,
            ImageStatus::Deregistered => {
                Standing::Deregistered { failed_test: failure().is_some().then(|| record.failed_test()) }
            }
        }
    }

    /// The one-word form, as the record's status: `available`, `failed`, `revoked`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Standing::Available => "available",
            Standing::Failed { .. } => "failed",
            Standing::Revoked { .. } => "revoked",
            Standing::Disabled => "disabled",
            Standing::Deregistered { .. } => "deregistered",
        }
    }
}

/// Why it stands so, as a phrase: `revoked: CVE-2026-1 in libssl`, `disabled by the lifecycle
/// policy`, `failed its test image-env (log: …)`, `deregistered after it failed its test …`.
impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Standing::Available => f.write_str("available"),
            Standing::Failed { test, .. } => write!(f, "failed its test {test}"),
            Standing::Revoked { reason } => write!(f, "revoked: {reason}"),
            Standing::Disabled => f.write_str("disabled by the lifecycle policy"),
            Standing::Deregistered { failed_test: None } => f.write_str("deregistered"),
            Standing::Deregistered { failed_test: Some(test) } => {
                write!(f, "deregistered after it failed its test {test}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;

    #[test]
    fn each_status_has_one_wording() {
        let mut record = sample_record("w", "s", "ami-1", "2026-01-01T00:00:00.000000+0000");
        assert_eq!(record.standing(), Standing::Available);
        record.status = ImageStatus::Revoked;
        record.revoked_reason = Some("CVE-2026-1".into());
        assert_eq!(record.standing().to_string(), "revoked: CVE-2026-1");
        record.status = ImageStatus::Disabled;
        assert_eq!(record.standing().to_string(), "disabled by the lifecycle policy");
        record.status = ImageStatus::Deregistered;
        assert_eq!((record.standing().name(), record.standing().to_string()), ("deregistered", "deregistered".into()));
    }
}
