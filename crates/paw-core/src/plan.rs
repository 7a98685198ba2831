//! The plan: per step, in build order, whether its AMI is up to date, can be reused from another
//! workflow, or must be built, and why. Planning reads the catalog and the step folders; it changes
//! nothing and needs neither packer nor EC2.

use std::collections::HashMap;

use crate::ami::AmiRef;
use crate::catalog::{Catalog, ImageRecord, ImageStatus, Line, Standing, Verdict, own_record};
use crate::error::{Error, ErrorKind, Result};
use crate::fingerprint::{self, Fingerprint};
use crate::source::{base_moved, recorded_source, root_source};
use crate::workflow::{Step, Workflow};

#[derive(Debug, Clone)]
pub enum Action {
    /// This workflow already has an available AMI with this fingerprint.
    UpToDate { record: ImageRecord },
    /// Another workflow has an available AMI with this fingerprint: record it for this one too.
    Reuse { record: ImageRecord },
    /// Build it: `reason` says why; `replaces` is this workflow's AMI of the step, made from other
    /// inputs, which only `--force` may deregister.
    Build { reason: String, replaces: Option<ImageRecord> },
    /// A manual step (no templates/) without an AMI yet: a person makes it from an instance.
    Manual,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::UpToDate { .. } => "up-to-date",
            Action::Reuse { .. } => "reuse",
            Action::Build { .. } => "build",
            Action::Manual => "manual",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Action::UpToDate { record } if record.from_instance.is_some() || record.fingerprint.is_none() => {
                let instance = record.from_instance.as_deref().unwrap_or("an instance");
                format!("{} was made from {instance}", record.ami_id)
            }
            Action::UpToDate { record } => format!("{} has this fingerprint", record.ami_id),
            Action::Reuse { record } => {
                format!("{} of workflow {} has this fingerprint", record.ami_id, record.workflow_id)
            }
            Action::Build { reason, .. } => reason.clone(),
            Action::Manual => {
                "a manual step: make its AMI with `paw images from-instance STEP --instance-id ID`".into()
            }
        }
    }
}

const WAITS_FOR_MANUAL: &str = "waits for the manual step";

/// Why a step `--rebuild` names is built.
pub const REBUILD_REASON: &str = "rebuilt on purpose (--rebuild), though its inputs match";

/// The steps built although their inputs match (`--rebuild`: to pick up the OS's updates), and so
/// their descendants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Rebuild {
    #[default]
    Nothing,
    /// `--rebuild` naming no step: every step.
    Every,
    Steps(Vec<String>),
}

impl Rebuild {
    /// `--rebuild STEP...` as clap gives it: absent, empty (every step) or the steps named.
    pub fn from_arg(steps: Option<Vec<String>>) -> Rebuild {
        match steps {
            None => Rebuild::Nothing,
            Some(steps) if steps.is_empty() => Rebuild::Every,
            Some(steps) => Rebuild::Steps(steps),
        }
    }

    /// Refuses a step the workflow does not have, one outside the steps to build (`selected`),
    /// and a manual one (paw does not make its AMI).
    pub fn check(&self, workflow: &Workflow, selected: &[&Step]) -> Result<()> {
        let Rebuild::Steps(ids) = self else { return Ok(()) };
        for step in workflow.select(ids)? {
            if !selected.iter().any(|chosen| chosen.id == step.id) {
                let chosen: Vec<&str> = selected.iter().map(|chosen| chosen.id.as_str()).collect();
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("--rebuild {}: the step is not among those to build ({})", step.id, chosen.join(", ")),
                )
                .help(format!("name {} among the steps too, or name no steps", step.id)));
            }
            if step.manual {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("--rebuild {}: a manual step's AMI is made from an instance, not built", step.id),
                )
                .help(format!("make a new one with `paw images from-instance {} --instance-id ID`", step.id)));
            }
        }
        Ok(())
    }

    fn wants(&self, step: &Step) -> bool {
        match self {
            Rebuild::Nothing => false,
            Rebuild::Every => !step.manual,
            Rebuild::Steps(ids) => ids.contains(&step.id),
        }
    }
}

/// Why a step waits: the manual step above it has no AMI yet. The plan and the build say it in
/// these words, and the build's summary finds the waiting steps by them.
pub fn waits_for_manual_step(manual_step: &str) -> String {
    format!("{WAITS_FOR_MANUAL} {manual_step}")
}

#[derive(Debug, Clone)]
pub struct PlannedStep<'a> {
    pub step: &'a Step,
    pub action: Action,
    /// The source AMI, unless the parent is rebuilt in this run (then it is known only after).
    pub source: Option<AmiRef>,
    /// The fingerprint, when the source AMI is known.
    pub fingerprint: Option<Fingerprint>,
    /// What the tests of an up-to-date image say, when worth saying (`tests_note`).
    pub tests_note: Option<String>,
}

impl PlannedStep<'_> {
    /// As `paw plan --json` and the `run_started` event list it, of `variant`'s workflow.
    pub fn json(&self, variant: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "step_id": self.step.id,
            "variant": variant,
            "action": self.action.name(),
            "reason": self.reason(),
            "fingerprint": self.fingerprint.as_ref().map(|fingerprint| &fingerprint.digest),
            "source_ami_id": self.source.as_ref().map(|source| &source.id),
        })
    }

    /// Why the step gets its action, and what its image's tests say.
    pub fn reason(&self) -> String {
        match &self.tests_note {
            Some(note) => format!("{}; {note}", self.action.reason()),
            None => self.action.reason(),
        }
    }
}

/// For an up-to-date (or reused) image of a step with tests: untested (the build tests it), or
/// tested by other tests than the step's now (the build runs them again; nothing is rebuilt).
fn tests_note(step: &Step, action: &Action) -> Result<Option<String>> {
    // A reused image passed its tests (`decide`), perhaps other tests than the step's now.
    let (Action::UpToDate { record } | Action::Reuse { record }) = action else { return Ok(None) };
    if step.image_tests()?.is_empty() {
        return Ok(None);
    }
    let digest = fingerprint::tests_digest(step)?.unwrap_or_default();
    Ok(match record.tests.last() {
        None => Some("untested: the build runs its tests before its children use it".into()),
        Some(run) if run.tests_digest != digest => {
            Some("its tests changed since they last ran: the build runs them again".to_string())
        }
        Some(_) => None,
    })
}

/// The steps a run is asked for (`ids`; every step when empty), in build order, and `rebuild`
/// checked against them.
pub fn select<'a>(workflow: &'a Workflow, ids: &[String], rebuild: &Rebuild) -> Result<Vec<&'a Step>> {
    let steps = workflow.select(ids)?;
    rebuild.check(workflow, &steps)?;
    Ok(steps)
}

/// Plans the steps (in build order; `select`ed).
pub async fn plan<'a>(
    workflow: &'a Workflow,
    catalog: &dyn Catalog,
    region: &str,
    steps: &[&'a Step],
    rebuild: &Rebuild,
) -> Result<Vec<PlannedStep<'a>>> {
    let mut planned: Vec<PlannedStep<'a>> = Vec::with_capacity(steps.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    for step in steps {
        // A revoked image is still the step's (it holds the AMI name) but never up to date.
        let existing =
            own_record(catalog, workflow, &step.id).await?.filter(|record| record.status != ImageStatus::Deregistered);
        let parent_action = step.parent.as_deref().and_then(|parent| index.get(parent)).map(|at| &planned[*at].action);
        if step.manual {
            // A person made its AMI: it stays up to date for as long as it is available.
            let available = existing.filter(|record| record.status == ImageStatus::Available);
            let action = available.map_or(Action::Manual, |record| Action::UpToDate { record });
            index.insert(&step.id, planned.len());
            let tests_note = tests_note(step, &action)?;
            planned.push(PlannedStep { step, action, source: None, fingerprint: None, tests_note });
            continue;
        }
        let source = match (&step.parent, parent_action) {
            (None, _) => Some(root_source(workflow)),
            (Some(_), Some(Action::Build { .. } | Action::Manual)) => None,
            (Some(_), Some(Action::UpToDate { record } | Action::Reuse { record })) => Some(record.as_source()),
            (Some(_), None) => Some(recorded_source(workflow, catalog, step).await?),
        };
        let (action, fingerprint) = match &source {
            None => {
                let parent = step.parent.as_deref().unwrap_or_default();
                let reason = match parent_action {
                    Some(Action::Manual) => waits_for_manual_step(parent),
                    _ => format!("the parent step {parent} is rebuilt"),
                };
                (Action::Build { reason, replaces: existing }, None)
            }
            Some(source) => {
                let fingerprint = fingerprint::fingerprint(workflow, step, &source.id).await?;
                let action = if rebuild.wants(step) {
                    Action::Build { reason: REBUILD_REASON.into(), replaces: existing }
                } else {
                    decide(catalog, workflow, region, step, &fingerprint, existing).await?
                };
                (action, Some(fingerprint))
            }
        };
        index.insert(&step.id, planned.len());
        let tests_note = tests_note(step, &action)?;
        planned.push(PlannedStep { step, action, source, fingerprint, tests_note });
    }
    Ok(planned)
}

async fn decide(
    catalog: &dyn Catalog,
    workflow: &Workflow,
    region: &str,
    step: &Step,
    fingerprint: &Fingerprint,
    existing: Option<ImageRecord>,
) -> Result<Action> {
    if let Some(record) = existing {
        // Revoked, disabled or failed: never up to date (a deregistered one is not the step's).
        let standing = record.standing();
        if standing != Standing::Available {
            return Ok(Action::Build { reason: standing.to_string(), replaces: Some(record) });
        }
        if fingerprint.matches(record.fingerprint.as_deref()) {
            return Ok(Action::UpToDate { record });
        }
        let reason = match &record.fingerprint_inputs {
            Some(_) => changed_reason(workflow, step, fingerprint, &record, &record.ami_id),
            None => format!("{} has no recorded fingerprint to compare with", record.ami_id),
        };
        return Ok(Action::Build { reason, replaces: Some(record) });
    }
    // An AMI made by hand from an instance is this workflow's own: its inputs do not make it.
    let mut candidates = catalog.find_by_fingerprint(&fingerprint.digest).await?;
    if let Some(v1_digest) = &fingerprint.v1_digest {
        candidates.extend(catalog.find_by_fingerprint(v1_digest).await?);
    }
    // A step with tests reuses only an image that passed them.
    let tested = !step.image_tests()?.is_empty();
    let reusable = candidates.into_iter().find(|record| {
        record.status == ImageStatus::Available
            && record.region == region
            && record.workflow_id != workflow.param.workflow_id
            && record.from_instance.is_none()
            && (!tested || record.verdict() == Verdict::Passed)
    });
    if let Some(record) = reusable {
        return Ok(Action::Reuse { record });
    }
    // Say what changed since the newest AMI of this step in the line, if there is one.
    let previous = catalog.list_line(&Line::of(workflow), &step.id).await?;
    let previous = previous.into_iter().find(|record| record.fingerprint_inputs.is_some());
    let reason = match previous {
        Some(record) => {
            if fingerprint.changed_since(record.fingerprint_inputs.as_ref().expect("found with inputs")).is_empty() {
                // Same inputs, but that image is not there to use.
                let failed = match record.verdict() {
                    Verdict::Failed => " after it failed its tests",
                    _ => "",
                };
                format!("{} of workflow {} is {}{failed}", record.ami_id, record.workflow_id, record.status.as_str())
            } else {
                let since = format!("{} of workflow {}", record.ami_id, record.workflow_id);
                changed_reason(workflow, step, fingerprint, &record, &since)
            }
        }
        None => "no AMI yet".into(),
    };
    Ok(Action::Build { reason, replaces: None })
}

/// Which inputs changed since an image (`since`; its `record` has inputs); a first step's moved
/// base is said first, in its own words (`base_moved`).
fn changed_reason(
    workflow: &Workflow,
    step: &Step,
    fingerprint: &Fingerprint,
    record: &ImageRecord,
    since: &str,
) -> String {
    let inputs = record.fingerprint_inputs.as_ref().expect("a record with inputs");
    let mut changed = fingerprint.changed_since(inputs);
    let built_on = inputs.get(fingerprint::SOURCE_AMI_INPUT);
    let moved = built_on.filter(|_| step.parent.is_none()).and_then(|built_on| base_moved(workflow, built_on));
    let (Some(moved), Some(built_on)) = (moved, built_on) else {
        return format!("changed since {since}: {}", changed.join(", "));
    };
    changed.retain(|input| input != fingerprint::SOURCE_AMI_INPUT);
    // A followed base's id and name count among workflow_param.json's keys: the same keys with
    // the old base is no other change.
    if workflow.param.followed_base.is_some() {
        let mut before = workflow.param.clone();
        before.follow(built_on.clone(), record.root_base_ami_name.clone());
        if inputs.get(fingerprint::WORKFLOW_PARAM_INPUT) == Some(&fingerprint::workflow_param_input(&before)) {
            changed.retain(|input| input != fingerprint::WORKFLOW_PARAM_INPUT);
        }
    }
    if changed.is_empty() { moved } else { format!("{moved}; changed since {since}: {}", changed.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::conformance::sample_record;
    use crate::catalog::{Records, SqliteCatalog};
    use crate::config::{STEP_PARAM_FILE, WORKFLOW_PARAM_FILE};

    /// a -> b, with templates; the workflow id is `id`.
    fn write_workflow(root: &std::path::Path, id: &str) {
        std::fs::write(
            root.join(WORKFLOW_PARAM_FILE),
            format!(r#"{{"workflow_id": "{id}", "root_base_ami_id": "ami-root", "root_base_ami_name": "root"}}"#),
        )
        .unwrap();
        for (step, parent) in [("a", "null"), ("b", "\"a\"")] {
            std::fs::create_dir_all(root.join(step).join("templates")).unwrap();
            std::fs::write(
                root.join(step).join(STEP_PARAM_FILE),
                format!(r#"{{"step_id": "{step}", "previous_step_id": {parent}}}"#),
            )
            .unwrap();
            std::fs::write(root.join(step).join("templates/.pkr.hcl"), "build {}").unwrap();
        }
    }

    async fn actions(workflow: &Workflow, catalog: &dyn Catalog) -> Vec<(String, String)> {
        actions_rebuilding(workflow, catalog, &Rebuild::Nothing).await
    }

    async fn actions_rebuilding(
        workflow: &Workflow,
        catalog: &dyn Catalog,
        rebuild: &Rebuild,
    ) -> Vec<(String, String)> {
        let steps: Vec<&Step> = workflow.steps().iter().collect();
        plan(workflow, catalog, "us-east-1", &steps, rebuild)
            .await
            .unwrap()
            .iter()
            .map(|planned| (planned.action.name().to_string(), planned.action.reason()))
            .collect()
    }

    /// Records what a build of every planned step would have recorded.
    async fn record_all(workflow: &Workflow, catalog: &dyn Catalog) {
        let steps: Vec<&Step> = workflow.steps().iter().collect();
        let mut source = "ami-root".to_string();
        for step in steps {
            let fingerprint = fingerprint::fingerprint(workflow, step, &source).await.unwrap();
            let ami = format!("ami-{}-{}", workflow.param.workflow_id, step.id);
            let mut record =
                sample_record(&workflow.param.workflow_id, &step.id, &ami, &crate::catalog::now_create_at());
            record.workflow_name = Some(workflow.name.clone());
            record.fingerprint = Some(fingerprint.digest);
            record.fingerprint_inputs = Some(fingerprint.inputs);
            catalog.record(&record).await.unwrap();
            source = ami;
        }
    }

    #[tokio::test]
    async fn build_then_up_to_date_then_reuse_then_partial_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        write_workflow(dir.path(), "w1");
        let catalog = SqliteCatalog::stand_in("sqlite:test").unwrap();
        let workflow = Workflow::load(dir.path()).unwrap();
        let got = actions(&workflow, &catalog).await;
        assert_eq!(
            got,
            [("build".into(), "no AMI yet".into()), ("build".into(), "the parent step a is rebuilt".into())]
        );

        record_all(&workflow, &catalog).await;
        let got = actions(&workflow, &catalog).await;
        assert_eq!(got[0], ("up-to-date".to_string(), "ami-w1-a has this fingerprint".to_string()));
        assert_eq!(got[1].0, "up-to-date");

        write_workflow(dir.path(), "w2");
        let workflow = Workflow::load(dir.path()).unwrap();
        let got = actions(&workflow, &catalog).await;
        assert_eq!(got[0], ("reuse".to_string(), "ami-w1-a of workflow w1 has this fingerprint".to_string()));
        assert_eq!(got[1], ("reuse".to_string(), "ami-w1-b of workflow w1 has this fingerprint".to_string()));

        std::fs::write(dir.path().join("b/templates/.pkr.hcl"), "build { }").unwrap();
        let got = actions(&workflow, &catalog).await;
        assert_eq!(got[0].0, "reuse");
        assert_eq!(
            got[1],
            ("build".to_string(), "changed since ami-w1-b of workflow w1: templates/.pkr.hcl".to_string())
        );

        // Under the first workflow's id the same change would replace its AMI.
        write_workflow(dir.path(), "w1");
        std::fs::write(dir.path().join("b/templates/.pkr.hcl"), "build { }").unwrap();
        let workflow = Workflow::load(dir.path()).unwrap();
        let steps: Vec<&Step> = workflow.steps().iter().collect();
        let planned = plan(&workflow, &catalog, "us-east-1", &steps, &Rebuild::Nothing).await.unwrap();
        assert_eq!(planned[0].action.name(), "up-to-date");
        assert!(
            matches!(&planned[1].action, Action::Build { replaces: Some(record), .. } if record.ami_id == "ami-w1-b")
        );
        // AMIs of another region are never reused.
        write_workflow(dir.path(), "w3");
        let workflow = Workflow::load(dir.path()).unwrap();
        let steps: Vec<&Step> = workflow.steps().iter().collect();
        let planned = plan(&workflow, &catalog, "eu-west-1", &steps, &Rebuild::Nothing).await.unwrap();
        assert_eq!(planned[0].action.name(), "build");
    }

    /// A followed base that moved: the first step says so in those words, its child is rebuilt
    /// under it, and an unread base is never planned from.
    #[tokio::test]
    async fn a_moved_base_is_named_and_rebuilds_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        write_workflow(dir.path(), "w1");
        let catalog = SqliteCatalog::stand_in("sqlite:test").unwrap();
        record_all(&Workflow::load(dir.path()).unwrap(), &catalog).await;
        std::fs::write(
            dir.path().join(WORKFLOW_PARAM_FILE),
            r#"{"workflow_id": "w1", "root_base_ami": {"ssm_parameter": "/base/current"}}"#,
        )
        .unwrap();
        let mut workflow = Workflow::load(dir.path()).unwrap();
        let steps: Vec<&Step> = workflow.steps().iter().collect();
        let err = plan(&workflow, &catalog, "us-east-1", &steps, &Rebuild::Nothing).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal, "{err:?}");

        workflow.param.follow("ami-root".into(), "root".into());
        assert_eq!(actions(&workflow, &catalog).await[0].0, "up-to-date", "the same base, read from a parameter");
        workflow.param.follow("ami-new".into(), "root-2".into());
        let got = actions(&workflow, &catalog).await;
        assert_eq!(got[0].1, "base moved: ami-root → ami-new (the SSM parameter /base/current)");
        assert_eq!(got[1], ("build".into(), "the parent step a is rebuilt".into()));
        std::fs::write(dir.path().join("a/templates/.pkr.hcl"), "build { }").unwrap();
        let got = actions(&workflow, &catalog).await;
        assert_eq!(
            got[0].1,
            "base moved: ami-root → ami-new (the SSM parameter /base/current); changed since ami-w1-a: templates/.pkr.hcl"
        );
    }

    /// A step with tests reuses only an image that passed them; a kept image that failed is never
    /// up to date; an untested one is, and the plan says it will be tested.
    #[tokio::test]
    async fn tests_decide_reuse_and_up_to_date() {
        use crate::catalog::conformance::sample_test_run;
        let dir = tempfile::tempdir().unwrap();
        write_workflow(dir.path(), "w1");
        let catalog = SqliteCatalog::stand_in("sqlite:test").unwrap();
        let workflow = Workflow::load(dir.path()).unwrap();
        record_all(&workflow, &catalog).await;
        std::fs::create_dir_all(dir.path().join("a/tests")).unwrap();
        std::fs::write(dir.path().join("a/tests/check"), "exit 0").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let executable = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path().join("a/tests/check"), executable).unwrap();
        let workflow = Workflow::load(dir.path()).unwrap();
        let steps: Vec<&Step> = workflow.steps().iter().collect();
        let planned = plan(&workflow, &catalog, "us-east-1", &steps, &Rebuild::Nothing).await.unwrap();
        assert_eq!(planned[0].action.name(), "up-to-date", "tests are no input of the image");
        assert!(planned[0].reason().ends_with("; untested: the build runs its tests before its children use it"));

        // Another workflow: a is untested, so it is built, not reused.
        write_workflow(dir.path(), "w2");
        let other = Workflow::load(dir.path()).unwrap();
        let got = actions(&other, &catalog).await;
        assert_eq!(got[0].0, "build", "{got:?}");
        let mut passed = sample_test_run("check", true);
        passed.tests_digest = crate::fingerprint::tests_digest(other.step("a").unwrap()).unwrap().unwrap();
        catalog.add_test_run("w1", "a", &passed, None).await.unwrap();
        assert_eq!(actions(&other, &catalog).await[0].0, "reuse");
        assert_eq!(planned_reason(&workflow, &catalog).await, "ami-w1-a has this fingerprint");

        catalog.add_test_run("w1", "a", &sample_test_run("check", false), Some(ImageStatus::Failed)).await.unwrap();
        assert_eq!(actions(&other, &catalog).await[0].0, "build");
        write_workflow(dir.path(), "w1");
        let got = actions(&workflow, &catalog).await;
        assert_eq!(got[0], ("build".into(), "failed its test check (log: /logs/check.log)".into()));
    }

    async fn planned_reason(workflow: &Workflow, catalog: &dyn Catalog) -> String {
        let steps: Vec<&Step> = workflow.steps().iter().collect();
        plan(workflow, catalog, "us-east-1", &steps, &Rebuild::Nothing).await.unwrap()[0].reason()
    }

    #[tokio::test]
    async fn a_rebuild_builds_the_steps_named_though_their_inputs_match_and_their_descendants() {
        let dir = tempfile::tempdir().unwrap();
        write_workflow(dir.path(), "w1");
        let catalog = SqliteCatalog::stand_in("sqlite:test").unwrap();
        let workflow = Workflow::load(dir.path()).unwrap();
        record_all(&workflow, &catalog).await;
        write_workflow(dir.path(), "w2");
        let workflow = Workflow::load(dir.path()).unwrap();
        let rebuilt = (String::from("build"), String::from(REBUILD_REASON));
        let parent = (String::from("build"), String::from("the parent step a is rebuilt"));
        let got = actions_rebuilding(&workflow, &catalog, &Rebuild::Steps(vec!["a".into()])).await;
        assert_eq!(got, [rebuilt.clone(), parent]);
        let got = actions_rebuilding(&workflow, &catalog, &Rebuild::Steps(vec!["b".into()])).await;
        assert_eq!(got[0].0, "reuse");
        assert_eq!(got[1], rebuilt);
        assert_eq!(Rebuild::from_arg(Some(vec![])), Rebuild::Every);
        assert_eq!(Rebuild::from_arg(None), Rebuild::Nothing);
        let unknown = select(&workflow, &[], &Rebuild::Steps(vec!["zz".into()]));
        assert!(unknown.unwrap_err().message.contains("zz"));
        let outside = select(&workflow, &["b".into()], &Rebuild::Steps(vec!["a".into()]));
        assert_eq!(outside.unwrap_err().message, "--rebuild a: the step is not among those to build (b)");
    }

    #[tokio::test]
    async fn tags_change_no_fingerprint_and_first_fingerprints_stay_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        write_workflow(dir.path(), "w1");
        let param_path = dir.path().join(WORKFLOW_PARAM_FILE);
        let with = |extra: &str| {
            let text = std::fs::read_to_string(&param_path).unwrap();
            std::fs::write(&param_path, text.replacen('{', &format!("{{{extra}, "), 1)).unwrap();
            Workflow::load(dir.path()).unwrap()
        };
        let catalog = SqliteCatalog::stand_in("sqlite:test").unwrap();
        let workflow = with(r#""aws_tags": {"team": "a"}, "build_note": "x""#);
        let first = fingerprint::fingerprint(&workflow, &workflow.steps()[0], "ami-root").await.unwrap();
        assert!(first.v1_digest.is_some(), "the first fingerprints counted aws_tags");
        // An image paw 0.1 recorded, whose fingerprint counted aws_tags: up to date, not rebuilt.
        record_all(&workflow, &catalog).await;
        let recorded = catalog.get("w1", "a").await.unwrap().unwrap();
        let mut v1 = recorded.clone();
        v1.fingerprint = first.v1_digest.clone();
        catalog.set_status("w1", "a", ImageStatus::Deregistered, None).await.unwrap();
        catalog.record(&ImageRecord { ami_id: "ami-v1".into(), ..v1 }).await.unwrap();
        let got = actions(&workflow, &catalog).await;
        assert_eq!(got[0], ("up-to-date".to_string(), "ami-v1 has this fingerprint".to_string()));

        // A cost tag, and a key fingerprint_ignore names, change nothing; another key does.
        let workflow = with(r#""aws_tags": {"team": "a", "cost": "1"}"#);
        assert_eq!(actions(&workflow, &catalog).await[0].0, "up-to-date");
        let workflow = with(r#""fingerprint_ignore": ["build_note"], "build_note": "y""#);
        assert_eq!(actions(&workflow, &catalog).await[0].0, "up-to-date");
        let workflow = with(r#""packages": ["curl"]"#);
        assert_eq!(actions(&workflow, &catalog).await[0].1, "changed since ami-v1: workflow_param.json");
    }

    #[tokio::test]
    async fn a_workflow_id_of_another_name_is_refused_and_reuse_crosses_names() {
        let dir = tempfile::tempdir().unwrap();
        write_workflow(dir.path(), "w1");
        let catalog = SqliteCatalog::stand_in("sqlite:test").unwrap();
        let team_a = Workflow::load(dir.path()).unwrap();
        record_all(&team_a, &catalog).await;
        let param_path = dir.path().join(WORKFLOW_PARAM_FILE);
        let text = std::fs::read_to_string(&param_path).unwrap();
        std::fs::write(&param_path, text.replacen('{', r#"{"name": "team-b", "#, 1)).unwrap();
        let team_b = Workflow::load(dir.path()).unwrap();
        let steps: Vec<&Step> = team_b.steps().iter().collect();
        let err = plan(&team_b, &catalog, "us-east-1", &steps, &Rebuild::Nothing).await.unwrap_err();
        assert!(err.message.starts_with(&format!("the workflow id \"w1\" is {}'s", team_a.name)), "{}", err.message);
        write_workflow(dir.path(), "w2");
        let text = std::fs::read_to_string(&param_path).unwrap();
        std::fs::write(&param_path, text.replacen('{', r#"{"name": "team-b", "#, 1)).unwrap();
        let team_b = Workflow::load(dir.path()).unwrap();
        let got = actions(&team_b, &catalog).await;
        assert_eq!(got[0], ("reuse".to_string(), "ami-w1-a of workflow w1 has this fingerprint".to_string()));
    }
}
