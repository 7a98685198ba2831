//! The `"lifecycle"` block: a retention policy, in workflow_param.json and per step.

use super::*;

/// A retention policy (`paw lifecycle`): in workflow_param.json for every step, and in a
/// step_param.json for that step, key by key over the workflow's. Ages count from the image's
/// creation, in days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecyclePolicy {
    /// Each step's newest available images kept whatever their age (1 or more).
    #[schemars(range(min = 1))]
    pub keep: Option<u64>,
    /// EC2's deprecation (hidden from describe-images but for its owner; still launchable).
    pub deprecate_after_days: Option<u64>,
    /// DisableImage: no new launches; the catalog says `disabled`.
    pub disable_after_days: Option<u64>,
    /// Deregistered, its record kept as `deregistered`.
    pub delete_after_days: Option<u64>,
    /// With delete: the snapshots too.
    pub delete_snapshots: Option<bool>,
    /// An image launched this recently (EC2's lastLaunchedTime) is kept as it is.
    pub protect_launched_within_days: Option<u64>,
    /// The actions taken on an image all the same when something uses it (or who does is not
    /// known), e.g. `["deprecate"]`; by default none: an image in use is kept.
    pub retire_in_use: Option<RetireInUse>,
}

/// An action of the policy's that retires an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Retiring {
    Deprecate,
    Disable,
    Delete,
}

/// `"retire_in_use"`: which of the retiring actions an image in use gets all the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(from = "Vec<Retiring>", into = "Vec<Retiring>")]
#[schemars(with = "Vec<Retiring>")]
pub struct RetireInUse {
    pub deprecate: bool,
    pub disable: bool,
    pub delete: bool,
}

impl RetireInUse {
    pub fn allows(&self, action: Retiring) -> bool {
        match action {
            Retiring::Deprecate => self.deprecate,
            Retiring::Disable => self.disable,
            Retiring::Delete => self.delete,
        }
    }
}

impl From<Vec<Retiring>> for RetireInUse {
    fn from(actions: Vec<Retiring>) -> RetireInUse {
        RetireInUse {
            deprecate: actions.contains(&Retiring::Deprecate),
            disable: actions.contains(&Retiring::Disable),
            delete: actions.contains(&Retiring::Delete),
        }
    }
}

impl From<RetireInUse> for Vec<Retiring> {
    fn from(allowed: RetireInUse) -> Vec<Retiring> {
        [Retiring::Deprecate, Retiring::Disable, Retiring::Delete]
            .into_iter()
            .filter(|one| allowed.allows(*one))
            .collect()
    }
}

pub const LIFECYCLE: &str = "lifecycle";

impl LifecyclePolicy {
    pub(super) fn of(file: &JsonFile) -> Result<LifecyclePolicy> {
        let Some(value) = file.object.get(LIFECYCLE).filter(|value| !value.is_null()) else {
            return Ok(LifecyclePolicy::default());
        };
        let wrong = |what: String| {
            file.key_error(LIFECYCLE, format!("\"{LIFECYCLE}\" {what}")).help(
                "write e.g. \"lifecycle\": {\"keep\": 3, \"deprecate_after_days\": 30, \"disable_after_days\": 90, \
                 \"delete_after_days\": 180, \"delete_snapshots\": true, \"protect_launched_within_days\": 14, \"retire_in_use\": [\"deprecate\"]}",
            )
        };
        let policy: LifecyclePolicy =
            serde_json::from_value(value.clone()).map_err(|err| wrong(format!("is not a policy: {err}")))?;
        policy.check().map_err(wrong)?;
        Ok(policy)
    }

    /// This policy with `step`'s keys over it; the result is checked again, at the step's file.
    pub fn with_step(&self, step: &StepParam) -> Result<LifecyclePolicy> {
        let own = step.lifecycle;
        let merged = LifecyclePolicy {
            keep: own.keep.or(self.keep),
            deprecate_after_days: own.deprecate_after_days.or(self.deprecate_after_days),
            disable_after_days: own.disable_after_days.or(self.disable_after_days),
            delete_after_days: own.delete_after_days.or(self.delete_after_days),
            delete_snapshots: own.delete_snapshots.or(self.delete_snapshots),
            protect_launched_within_days: own.protect_launched_within_days.or(self.protect_launched_within_days),
            retire_in_use: own.retire_in_use.or(self.retire_in_use),
        };
        merged.check().map_err(|what| {
            step.json()
                .key_error(LIFECYCLE, format!("with workflow_param.json's \"{LIFECYCLE}\", this step's {what}"))
                .help("an image is deprecated, then disabled, then deleted: the days must not go down")
        })?;
        Ok(merged)
    }

    /// Whether it says to do anything at all.
    pub fn is_empty(&self) -> bool {
        self.deprecate_after_days.is_none() && self.disable_after_days.is_none() && self.delete_after_days.is_none()
    }

    /// `keep` of at least 1, and deprecate, disable and delete in that order.
    fn check(&self) -> std::result::Result<(), String> {
        if self.keep == Some(0) {
            return Err("has \"keep\": 0, which would leave a step without an image".into());
        }
        let steps = [
            ("deprecate_after_days", self.deprecate_after_days),
            ("disable_after_days", self.disable_after_days),
            ("delete_after_days", self.delete_after_days),
        ];
        let set: Vec<(&str, u64)> = steps.iter().filter_map(|(name, days)| Some((*name, (*days)?))).collect();
        for pair in set.windows(2) {
            let ((earlier, before), (later, after)) = (pair[0], pair[1]);
            if after < before {
                return Err(format!("has \"{later}\": {after}, before \"{earlier}\": {before}"));
            }
        }
        Ok(())
    }
}
