//! The engine on fakes: an EC2 in memory, a packer that makes its AMI there (or fails, or is
//! interrupted, as a test says), and an in-memory catalog. The end-to-end tests run the same
//! engine against the emulator with the real packer.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::pipeline::{Next, Stage, StageId, StepRun, run_stages};
use super::services::Services;
use super::*;
use crate::catalog::conformance::sample_record;
use crate::catalog::dead_runs_lock;
use crate::catalog::{
    BuildJournal, Catalog, ChannelEntry, Channels, ImageRecord, ImageStatus, InFlight, Line, Recorded, Records,
    SqliteCatalog,
};
use crate::ec2::{BaseAmiQuery, Ec2, Image, ImageState};
use crate::packer::{BuildOutput, BuildRequest, Packer};
use crate::plan;
use crate::run_lock::RunLock;
use crate::workflow::Workflow;

const REGION: &str = "us-east-1";
/// Statements written unsigned.
static UNSIGNED: crate::provenance::Attester<'static> = crate::provenance::Attester::none();
const ROOT_AMI: &str = "ami-785db401";

#[derive(Default)]
struct FakeEc2 {
    images: Mutex<BTreeMap<String, Image>>,
    made: AtomicUsize,
    /// DescribeImages fails, as a throttled or unanswered call does.
    lookups_fail: std::sync::atomic::AtomicBool,
    /// "deregister ami-…" and "tag ami-…", in order.
    calls: Mutex<Vec<String>>,
}

impl FakeEc2 {
    fn with_root() -> FakeEc2 {
        let ec2 = FakeEc2::default();
        ec2.insert(ROOT_AMI, "ubuntu/root");
        ec2
    }

    fn insert(&self, id: &str, name: &str) -> Image {
        let image = Image {
            id: id.to_string(),
            name: name.to_string(),
            state: ImageState::Available,
            creation_date: chrono::Utc::now().to_rfc3339(),
            deprecation_time: None,
            last_launched_time: None,
            deregistration_protected: false,
            snapshot_ids: vec![format!("snap-{id}")],
            tags: Vec::new(),
            data: serde_json::Value::Null,
        };
        self.images.lock().unwrap().insert(id.to_string(), image.clone());
        image
    }

    fn make(&self, name: &str) -> Image {
        let id = format!("ami-{:017}", self.made.fetch_add(1, Ordering::SeqCst) + 1);
        self.insert(&id, name)
    }

    fn has(&self, id: &str) -> bool {
        self.images.lock().unwrap().contains_key(id)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn lookup(&self) -> Result<()> {
        if self.lookups_fail.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Aws, "DescribeImages: RequestLimitExceeded (throttled)"));
        }
        Ok(())
    }
}

#[async_trait]
impl Ec2 for FakeEc2 {
    fn in_region(&self, _: &str) -> Box<dyn Ec2> {
        unimplemented!("the engine's unit tests build in one region")
    }

    fn in_account(&self, _: &str, _: &str) -> Box<dyn Ec2> {
        unimplemented!("the engine's unit tests build in one account")
    }

    async fn region_names(&self) -> Result<Vec<String>> {
        Ok(vec![REGION.to_string()])
    }

    async fn copy_image(&self, _: &str, _: &str, _: &str, _: Option<&str>) -> Result<String> {
        unimplemented!("the engine's unit tests build in one region")
    }

    async fn set_launch_permission(&self, _: &str, _: &[String], _: &[String], _: bool) -> Result<()> {
        unimplemented!("the engine's unit tests share nothing")
    }

    async fn set_create_volume_permission(&self, _: &str, _: &[String], _: bool) -> Result<()> {
        unimplemented!("the engine's unit tests share nothing")
    }

    /// The engine's images are shared with no one.
    async fn launch_permissions(&self, _: &str) -> Result<crate::ec2::LaunchPermissions> {
        Ok(crate::ec2::LaunchPermissions::default())
    }

    async fn describe_image(&self, image_id: &str) -> Result<Option<Image>> {
        self.lookup()?;
        Ok(self.images.lock().unwrap().get(image_id).cloned())
    }

    async fn describe_images(&self, image_ids: &[String]) -> Result<Vec<Image>> {
        let images = self.images.lock().unwrap();
        Ok(image_ids.iter().filter_map(|id| images.get(id).cloned()).collect())
    }

    async fn deprecate_image(&self, _: &str, _: &str) -> Result<()> {
        unimplemented!("the engine's unit tests deprecate nothing")
    }

    async fn set_deregistration_protection(&self, _: &str, _: bool) -> Result<()> {
        unimplemented!("the engine's unit tests set no channel")
    }

    async fn images_named(&self, name: &str) -> Result<Vec<Image>> {
        self.lookup()?;
        Ok(self.images.lock().unwrap().values().filter(|image| image.name == name).cloned().collect())
    }

    async fn find_base_amis(&self, _: &BaseAmiQuery) -> Result<Vec<Image>> {
        Ok(Vec::new())
    }

    async fn create_tags(&self, resource_ids: &[String], _: &[(String, String)]) -> Result<()> {
        self.calls.lock().unwrap().push(format!("tag {}", resource_ids[0]));
        Ok(())
    }

    async fn deregister_image(&self, image_id: &str, _: &[String]) -> Result<()> {
        self.calls.lock().unwrap().push(format!("deregister {image_id}"));
        self.images.lock().unwrap().remove(image_id);
        Ok(())
    }

    async fn instance_state(&self, _: &str) -> Result<Option<crate::ec2::InstanceState>> {
        Ok(Some(crate::ec2::InstanceState::Stopped))
    }

    async fn delete_tags(&self, resource_ids: &[String], _: &[&str]) -> Result<()> {
        self.calls.lock().unwrap().push(format!("untag {}", resource_ids[0]));
        Ok(())
    }

    async fn disable_image(&self, image_id: &str) -> Result<()> {
        self.calls.lock().unwrap().push(format!("disable {image_id}"));
        Ok(())
    }

    async fn enable_image(&self, image_id: &str) -> Result<()> {
        self.calls.lock().unwrap().push(format!("enable {image_id}"));
        Ok(())
    }

    async fn terminate_instance(&self, instance_id: &str) -> Result<bool> {
        self.calls.lock().unwrap().push(format!("terminate {instance_id}"));
        Ok(true)
    }

    async fn delete_key_pair(&self, name: &str) -> Result<bool> {
        self.calls.lock().unwrap().push(format!("delete key pair {name}"));
        Ok(true)
    }

    async fn delete_security_group(&self, name: &str) -> Result<bool> {
        self.calls.lock().unwrap().push(format!("delete security group {name}"));
        Ok(true)
    }

    async fn create_image(&self, _: &str, name: &str, _: &[(String, String)]) -> Result<String> {
        Ok(self.make(name).id)
    }

    async fn wait_until_available(&self, image_id: &str, _: std::time::Duration) -> Result<Image> {
        Ok(self.describe_image(image_id).await?.expect("the image exists"))
    }

    /// Nothing uses the engine's images.
    async fn image_references(&self, _: &[String]) -> Result<Vec<crate::ec2::ImageReference>> {
        Ok(Vec::new())
    }

    async fn create_usage_report(&self, _: &str, _: &[String]) -> Result<String> {
        unimplemented!("the engine's unit tests share nothing")
    }

    async fn usage_report_state(&self, _: &str) -> Result<crate::ec2::ReportState> {
        unimplemented!("the engine's unit tests share nothing")
    }

    async fn usage_report_entries(&self, _: &str) -> Result<Vec<crate::ec2::AccountUse>> {
        unimplemented!("the engine's unit tests share nothing")
    }

    async fn delete_usage_report(&self, _: &str) -> Result<()> {
        unimplemented!("the engine's unit tests share nothing")
    }
}

/// What the fake packer does for a step.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Build,
    /// Makes the AMI, then fails (as a failing post-processor does).
    FailAfterAmi,
    /// Makes the AMI while the user presses Ctrl-C: reports it, and fails as interrupted.
    InterruptedAfterAmi,
    /// `packer validate` fails.
    Invalid,
    /// Makes the AMI and reports it; from then on EC2's look-ups by name fail (throttling).
    BuildThenLookupsFail,
    /// Fails as when AWS has no capacity for the instance type, on its first build only, or always.
    NoCapacityOnce,
    NoCapacity,
}

/// The options of the tests: one job, two retries, at once.
const RETRIES: BuildOptions = BuildOptions {
    dry_run: false,
    packer_debug: false,
    force: false,
    delete_snapshots: false,
    jobs: 1,
    retries: 2,
    retry_delay: std::time::Duration::ZERO,
    keep_failed: false,
};

struct FakePacker<'a> {
    ec2: &'a FakeEc2,
    cancel: &'a CancellationToken,
    behaviour: HashMap<&'static str, Behaviour>,
    builds: Mutex<Vec<String>>,
    /// A record another paw writes while this packer builds.
    recorded_meanwhile: Option<(&'a dyn Catalog, crate::catalog::ImageRecord)>,
}

impl<'a> FakePacker<'a> {
    fn new(ec2: &'a FakeEc2, cancel: &'a CancellationToken, behaviour: &[(&'static str, Behaviour)]) -> Self {
        FakePacker {
            ec2,
            cancel,
            behaviour: behaviour.iter().copied().collect(),
            builds: Mutex::new(Vec::new()),
            recorded_meanwhile: None,
        }
    }

    fn behaviour(&self, step_dir: &Path) -> Behaviour {
        let step = step_dir.file_name().unwrap().to_string_lossy();
        self.behaviour.get(step.as_ref()).copied().unwrap_or(Behaviour::Build)
    }
}

/// The AMI name the rendered variables give packer.
fn output_ami_name(step_dir: &Path) -> String {
    let step = step_dir.file_name().unwrap().to_string_lossy();
    let vars = std::fs::read_to_string(step_dir.join(format!("{step}.pkrvars.hcl"))).unwrap();
    let line = vars.lines().find(|line| line.starts_with("output_ami_name")).unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

#[async_trait]
impl Packer for FakePacker<'_> {
    fn build_command(&self, _: &[PathBuf], _: &[(String, String)], _: bool) -> String {
        "packer build .".into()
    }

    async fn version_text(&self) -> Result<String> {
        Ok("1.6.6".into())
    }

    async fn validate(&self, step_dir: &Path, _: &[PathBuf], _: bool) -> Result<()> {
        match self.behaviour(step_dir) {
            Behaviour::Invalid => Err(Error::new(ErrorKind::Validation, "packer validate failed").in_file(step_dir)),
            _ => Ok(()),
        }
    }

    async fn build(
        &self,
        request: &BuildRequest<'_>,
        _: &(dyn for<'l> Fn(&'l str) + Send + Sync),
        _: &CancellationToken,
    ) -> Result<BuildOutput> {
        let behaviour = self.behaviour(request.step_dir);
        let step = request.step_dir.file_name().unwrap().to_string_lossy().to_string();
        let builds_before = self.builds.lock().unwrap().iter().filter(|built| **built == step).count();
        self.builds.lock().unwrap().push(step);
        let image = self.ec2.make(&output_ami_name(request.step_dir));
        if let Some((catalog, record)) = &self.recorded_meanwhile {
            catalog.record(record).await?;
        }
        let amis = vec![(REGION.to_string(), image.id)];
        let no_capacity = || Error::new(ErrorKind::Packer, "packer build failed (exit status: 1)");
        let (failure, transient) = match behaviour {
            Behaviour::NoCapacityOnce if builds_before == 0 => (Some(no_capacity()), Some("no capacity")),
            Behaviour::NoCapacity => (Some(no_capacity()), Some("no capacity")),
            _ => (None, None),
        };
        if failure.is_some() {
            return Ok(BuildOutput { amis, failure, transient });
        }
        let failure = match behaviour {
            Behaviour::Build | Behaviour::Invalid | Behaviour::NoCapacityOnce | Behaviour::NoCapacity => None,
            Behaviour::BuildThenLookupsFail => {
                self.ec2.lookups_fail.store(true, Ordering::SeqCst);
                None
            }
            Behaviour::FailAfterAmi => Some(Error::new(ErrorKind::Packer, "packer build failed (exit status: 1)")),
            Behaviour::InterruptedAfterAmi => {
                self.cancel.cancel();
                Some(Error::new(ErrorKind::Interrupted, "interrupted; packer cleaned up and stopped"))
            }
        };
        Ok(BuildOutput { amis, failure, transient: None })
    }
}

/// Remembers the events that tell the order of things: stages, cleanups, outcomes, waits.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>, tokio::sync::Notify);

impl Reporter for Recorder {
    fn event(&self, event: Event<'_>) {
        let line = match event {
            Event::Stage { step, stage } => format!("{step}: {stage}"),
            Event::CleanedUp { step, what } => format!("{step}: cleanup {what}"),
            Event::Failed { step, .. } => format!("{step}: failed"),
            Event::Skipped { step, reason } => format!("{step}: skipped ({reason})"),
            Event::Built { step, .. } => format!("{step}: built"),
            Event::Waiting { step, .. } => format!("{step}: waiting"),
            Event::Notice { step, what } => format!("{step}: notice {what}"),
            _ => return,
        };
        self.0.lock().unwrap().push(line);
        self.1.notify_waiters();
    }
}

impl Recorder {
    fn lines(&self, step: &str) -> Vec<String> {
        let prefix = format!("{step}: ");
        self.0.lock().unwrap().iter().filter_map(|line| line.strip_prefix(&prefix).map(str::to_string)).collect()
    }

    /// Returns once the step has had the event (`line` as `lines` gives it).
    async fn reached(&self, step: &str, line: &str) {
        loop {
            let notified = self.1.notified();
            if self.lines(step).iter().any(|seen| seen == line) {
                return;
            }
            notified.await;
        }
    }
}

fn copy_example(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    for entry in walk(&from) {
        let target = to.join(entry.strip_prefix(&from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, target).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if entry.is_dir() && name != ".paw" {
            files.extend(walk(&entry));
        } else if entry.is_file() && (name.starts_with('.') || !name.ends_with(".hcl")) {
            files.push(entry);
        }
    }
    files
}

/// The SQLite catalog, whose conditional writes can lose their answers: the write is carried out,
/// the answer does not come back, and the SDK's retry (here: the same call again) finds the item.
struct LosingAnswers {
    inner: SqliteCatalog,
    lose: std::sync::atomic::AtomicBool,
}

impl LosingAnswers {
    fn losing(&self) -> bool {
        self.lose.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Records for LosingAnswers {
    fn uri(&self) -> String {
        self.inner.uri()
    }
    async fn get(&self, workflow_id: &str, step_id: &str) -> Result<Option<ImageRecord>> {
        self.inner.get(workflow_id, step_id).await
    }
    async fn list_workflow(&self, workflow_id: &str) -> Result<Vec<ImageRecord>> {
        self.inner.list_workflow(workflow_id).await
    }
    async fn list_step(&self, step_id: &str) -> Result<Vec<ImageRecord>> {
        self.inner.list_step(step_id).await
    }
    async fn list_name(&self, name: &str) -> Result<Vec<ImageRecord>> {
        self.inner.list_name(name).await
    }
    async fn set_line(&self, workflow_id: &str, step_id: &str, line: &Line) -> Result<()> {
        self.inner.set_line(workflow_id, step_id, line).await
    }
    async fn find_by_fingerprint(&self, fingerprint: &str) -> Result<Vec<ImageRecord>> {
        self.inner.find_by_fingerprint(fingerprint).await
    }
    async fn try_record(&self, record: &ImageRecord) -> Result<Recorded> {
        let first = self.inner.try_record(record).await?;
        if self.losing() { self.inner.try_record(record).await } else { Ok(first) }
    }
    async fn find_by_ami(&self, ami_id: &str) -> Result<Vec<ImageRecord>> {
        self.inner.find_by_ami(ami_id).await
    }
    async fn find_by_base(&self, base_ami_id: &str) -> Result<Vec<ImageRecord>> {
        self.inner.find_by_base(base_ami_id).await
    }
    async fn set_status(
        &self,
        workflow_id: &str,
        step_id: &str,
        status: ImageStatus,
        revocation: Option<(&str, &str)>,
    ) -> Result<()> {
        self.inner.set_status(workflow_id, step_id, status, revocation).await
    }
    async fn set_copies(&self, workflow_id: &str, step_id: &str, copies: &BTreeMap<String, String>) -> Result<()> {
        self.inner.set_copies(workflow_id, step_id, copies).await
    }
    async fn set_provenance(&self, workflow_id: &str, step_id: &str, envelope: &str, sbom: Option<&str>) -> Result<()> {
        self.inner.set_provenance(workflow_id, step_id, envelope, sbom).await
    }
    async fn set_copy_provenance(
        &self,
        workflow_id: &str,
        step_id: &str,
        statements: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.inner.set_copy_provenance(workflow_id, step_id, statements).await
    }
    async fn add_test_run(
        &self,
        workflow_id: &str,
        step_id: &str,
        run: &crate::catalog::TestRun,
        status: Option<ImageStatus>,
    ) -> Result<()> {
        self.inner.add_test_run(workflow_id, step_id, run, status).await
    }
    async fn add_override(&self, workflow_id: &str, step_id: &str, entry: &crate::catalog::Override) -> Result<()> {
        self.inner.add_override(workflow_id, step_id, entry).await
    }
    async fn step_ids(&self) -> Result<Option<Vec<String>>> {
        self.inner.step_ids().await
    }
}

#[async_trait]
impl BuildJournal for LosingAnswers {
    async fn begin_build(&self, entry: &InFlight) -> Result<Option<InFlight>> {
        let first = self.inner.begin_build(entry).await?;
        if self.losing() { self.inner.begin_build(entry).await } else { Ok(first) }
    }
    async fn renew_build(&self, entry: &InFlight) -> Result<bool> {
        self.inner.renew_build(entry).await
    }
    async fn end_build(&self, entry: &InFlight) -> Result<()> {
        self.inner.end_build(entry).await
    }
    async fn builds_in_flight(&self, workflow_id: &str) -> Result<Vec<InFlight>> {
        self.inner.builds_in_flight(workflow_id).await
    }
}

#[async_trait]
impl Channels for LosingAnswers {
    async fn add_channel_entry(&self, entry: &ChannelEntry) -> Result<bool> {
        let first = self.inner.add_channel_entry(entry).await?;
        if self.losing() { self.inner.add_channel_entry(entry).await } else { Ok(first) }
    }
    async fn channel_entries(&self) -> Result<Vec<ChannelEntry>> {
        self.inner.channel_entries().await
    }
    async fn channel_history(&self, line: &Line, channel: &str, step_id: &str) -> Result<Vec<ChannelEntry>> {
        self.inner.channel_history(line, channel, step_id).await
    }
}

#[async_trait]
impl Catalog for LosingAnswers {
    async fn schema(&self) -> Result<String> {
        self.inner.schema().await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    workflow: Workflow,
    catalog: LosingAnswers,
    ec2: FakeEc2,
    cancel: CancellationToken,
    reporter: Recorder,
}

impl Fixture {
    fn new(example: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        copy_example(example, dir.path());
        let workflow = Workflow::load(dir.path()).unwrap();
        Fixture {
            _dir: dir,
            workflow,
            catalog: LosingAnswers { inner: SqliteCatalog::stand_in("sqlite:test").unwrap(), lose: Default::default() },
            ec2: FakeEc2::with_root(),
            cancel: CancellationToken::new(),
            reporter: Recorder::default(),
        }
    }

    fn cx(&self) -> Services<'_> {
        Services {
            workflow: &self.workflow,
            region: REGION,
            ec2: &self.ec2,
            catalog: &self.catalog,
            reporter: &self.reporter,
            cancel: &self.cancel,
            attester: &UNSIGNED,
        }
    }

    async fn plan(&self) -> Vec<PlannedStep<'_>> {
        let steps: Vec<&Step> = self.workflow.steps().iter().collect();
        plan::plan(&self.workflow, &self.catalog, REGION, &steps, &plan::Rebuild::Nothing).await.unwrap()
    }

    async fn build(&self, packer: &FakePacker<'_>, force: bool) -> Result<Vec<(String, String)>> {
        let plan = self.plan().await;
        let engine = Engine { cx: self.cx(), packer, packer_env: Vec::new(), lease_ttl: 60 };
        let options = BuildOptions { force, jobs: 2, ..RETRIES };
        let outcomes = engine.run(&plan, options).await?;
        Ok(outcomes.into_iter().map(|step| (step.step_id, step.outcome.name().to_string())).collect())
    }

    async fn ami_of(&self, step: &str) -> String {
        self.catalog.get(&self.workflow.param.workflow_id, step).await.unwrap().unwrap().ami_id
    }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A stage that notes when it runs and when it is cleaned up, and fails when told to.
struct Noting<'a> {
    /// What the log calls it (a stage's id is its kind, and these are all of one).
    name: &'static str,
    fails: bool,
    log: &'a Mutex<Vec<String>>,
}

#[async_trait]
impl<'a> Stage<StepRun<'a>> for Noting<'_> {
    fn id(&self) -> StageId {
        StageId::DryRun
    }

    async fn run(&self, _: &Services<'_>, _: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        self.log.lock().unwrap().push(format!("run {}", self.name));
        if self.fails { Err(Error::new(ErrorKind::Packer, "it failed").into()) } else { Ok(Next::Continue) }
    }

    async fn cleanup(&self, _: &Services<'_>, _: &mut StepRun<'a>) -> Vec<LeftAmi> {
        self.log.lock().unwrap().push(format!("cleanup {}", self.name));
        Vec::new()
    }
}

#[tokio::test]
async fn stages_that_ran_are_cleaned_up_in_reverse_order_when_done_on_failure_and_on_interrupt() {
    let fixture = Fixture::new("chain");
    let step = fixture.workflow.step("step1").unwrap();
    let log = Mutex::new(Vec::new());
    let fingerprint = crate::fingerprint::fingerprint(&fixture.workflow, step, ROOT_AMI).await.unwrap();
    let mut run = StepRun::new(&fixture.workflow, step, AmiRef::placeholder("x"), fingerprint);
    // Done: each stage's cleanup runs all the same (a lease is released, a lock let go).
    let [a, b] = ["a", "b"].map(|name| Noting { name, fails: false, log: &log });
    assert!(matches!(run_stages(&fixture.cx(), &[&a, &b], &mut run).await, Ok(Next::Continue)));
    assert_eq!(*log.lock().unwrap(), ["run a", "run b", "cleanup b", "cleanup a"]);

    log.lock().unwrap().clear();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|name| Noting { name, fails: name == "c", log: &log });
    let failure = run_stages(&fixture.cx(), &[&a, &b, &c, &d], &mut run).await.unwrap_err();
    assert_eq!(failure.error.message, "it failed");
    assert_eq!(*log.lock().unwrap(), ["run a", "run b", "run c", "cleanup c", "cleanup b", "cleanup a"]);

    // An interrupt between stages: the next one does not start; those that ran are undone.
    log.lock().unwrap().clear();
    let interrupt = Interrupt(&fixture.cancel);
    let b = Noting { name: "b", fails: false, log: &log };
    let failure = run_stages(&fixture.cx(), &[&a, &interrupt, &b], &mut run).await.unwrap_err();
    assert_eq!(failure.error.kind, ErrorKind::Interrupted);
    assert_eq!(*log.lock().unwrap(), ["run a", "cleanup a"]);
}

/// A stage during which the user presses Ctrl-C.
struct Interrupt<'a>(&'a CancellationToken);

#[async_trait]
impl<'a> Stage<StepRun<'a>> for Interrupt<'_> {
    fn id(&self) -> StageId {
        StageId::DryRun
    }

    async fn run(&self, _: &Services<'_>, _: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        self.0.cancel();
        Ok(Next::Continue)
    }
}

/// Every conditional write of the build (the lease, the record) is carried out but its answer is
/// lost, and the retry finds the item: paw knows its own writes, builds each step once, keeps every
/// AMI, and leaves no lease behind.
#[tokio::test]
async fn writes_whose_answers_were_lost_are_known_as_paws_own() {
    let fixture = Fixture::new("chain");
    fixture.catalog.lose.store(true, Ordering::SeqCst);
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    let outcomes = fixture.build(&packer, false).await.unwrap();
    assert_eq!(outcomes, pairs(&[("step1", "built"), ("step2", "built"), ("step3", "built")]));
    assert!(fixture.ec2.calls().iter().all(|call| !call.starts_with("deregister")), "{:?}", fixture.ec2.calls());
    for step in ["step1", "step2", "step3"] {
        assert!(fixture.ec2.has(&fixture.ami_of(step).await));
    }
    let workflow_id = &fixture.workflow.param.workflow_id;
    assert!(fixture.catalog.builds_in_flight(workflow_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_ami_that_cannot_be_recorded_is_deregistered_after_the_later_stages_ran() {
    let fixture = Fixture::new("chain");
    let plan = fixture.plan().await;
    // Something else records step1 while this paw builds it (leases keep other paws out).
    let workflow_id = &fixture.workflow.param.workflow_id;
    let mut packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    let other = sample_record(workflow_id, "step1", "ami-other", "2026-01-01T00:00:00.000000+0000");
    packer.recorded_meanwhile = Some((&fixture.catalog, other));
    let engine = Engine { cx: fixture.cx(), packer: &packer, packer_env: Vec::new(), lease_ttl: 60 };
    let outcomes = engine.run(&plan, RETRIES).await.unwrap();
    let Outcome::Failed { error, amis } = &outcomes[0].outcome else { panic!("{:?}", outcomes[0].outcome) };
    assert!(error.message.contains("already has AMI ami-other"), "{error}");
    let made = &amis[0].ami_id;
    assert!(amis[0].fate.starts_with("deregistered"), "{amis:?}");
    assert!(!fixture.ec2.has(made));
    let lines = fixture.reporter.lines("step1");
    let recording = lines.iter().position(|line| line == "recording").unwrap();
    assert_eq!(lines[recording + 1], format!("cleanup {made}: deregistered, snapshots deleted: snap-{made}"));
    // The step's tags, then the record that failed (nothing attested), then undone.
    assert_eq!(fixture.ec2.calls(), [format!("tag {made}"), format!("deregister {made}")]);
    assert_eq!(outcomes[1].outcome.name(), "skipped");
}

/// The AMI is this run's as soon as packer reports it: a look-up that fails after packer (a
/// throttled DescribeImages) deregisters it instead of leaving it in EC2 unknown to the catalog.
#[tokio::test]
async fn an_ami_packer_reported_is_deregistered_when_the_check_after_packer_fails() {
    let fixture = Fixture::new("chain");
    let plan = fixture.plan().await;
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[("step1", Behaviour::BuildThenLookupsFail)]);
    let engine = Engine { cx: fixture.cx(), packer: &packer, packer_env: Vec::new(), lease_ttl: 60 };
    let outcomes = engine.run(&plan, RETRIES).await.unwrap();
    let Outcome::Failed { error, amis } = &outcomes[0].outcome else { panic!("{:?}", outcomes[0].outcome) };
    assert!(error.message.contains("RequestLimitExceeded"), "{error}");
    let [left] = amis.as_slice() else { panic!("{amis:?}") };
    assert!(left.fate.starts_with("deregistered"), "{amis:?}");
    assert!(!fixture.ec2.has(&left.ami_id));
    assert_eq!(fixture.ec2.calls(), [format!("deregister {}", left.ami_id)]);
    assert_eq!(outcomes[1].outcome.name(), "skipped");
}

/// packer failed for a passing cause: the attempt is cleaned up (its AMI deregistered), and the
/// step is built again; the outcome says which attempt built it.
#[tokio::test]
async fn a_step_that_failed_for_a_passing_cause_is_built_again() {
    let fixture = Fixture::new("chain");
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[("step1", Behaviour::NoCapacityOnce)]);
    let plan = fixture.plan().await;
    let engine = Engine { cx: fixture.cx(), packer: &packer, packer_env: Vec::new(), lease_ttl: 60 };
    let outcomes = engine.run(&plan, RETRIES).await.unwrap();
    let Outcome::Built { attempt, .. } = &outcomes[0].outcome else { panic!("{:?}", outcomes[0].outcome) };
    assert_eq!(*attempt, 2);
    assert_eq!(*packer.builds.lock().unwrap(), ["step1", "step1", "step2", "step3"]);
    let calls = fixture.ec2.calls();
    assert_eq!(calls.iter().filter(|call| call.starts_with("deregister")).count(), 1, "{calls:?}");
    assert!(fixture.reporter.lines("step1").iter().any(|line| line.contains("attempt 2 of 3")));
    assert!(fixture.catalog.builds_in_flight(&fixture.workflow.param.workflow_id).await.unwrap().is_empty());
}

/// The retries end, and the failure tells what every attempt's AMI became; a failure whose cause
/// lasts is not retried at all.
#[tokio::test]
async fn retries_end_and_lasting_failures_are_not_retried() {
    let fixture = Fixture::new("fanout");
    let behaviour = [("web", Behaviour::NoCapacity), ("worker", Behaviour::FailAfterAmi)];
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &behaviour);
    let plan = fixture.plan().await;
    let engine = Engine { cx: fixture.cx(), packer: &packer, packer_env: Vec::new(), lease_ttl: 60 };
    let outcomes = engine.run(&plan, RETRIES).await.unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|step| step.outcome.name() == "failed").collect();
    assert_eq!(failed.len(), 2, "{outcomes:?}");
    let web = outcomes.iter().find(|step| step.step_id == "web").unwrap();
    let Outcome::Failed { amis, .. } = &web.outcome else { panic!("{:?}", web.outcome) };
    assert_eq!(amis.len(), 3, "each attempt's AMI: {amis:?}");
    assert!(amis.iter().all(|left| left.fate.starts_with("deregistered") && !fixture.ec2.has(&left.ami_id)));
    let builds = packer.builds.lock().unwrap().clone();
    assert_eq!(builds.iter().filter(|step| *step == "web").count(), 3, "{builds:?}");
    assert_eq!(builds.iter().filter(|step| *step == "worker").count(), 1, "{builds:?}");
}

#[tokio::test]
async fn a_failed_step_skips_its_descendants_and_the_other_branches_carry_on() {
    let fixture = Fixture::new("fanout");
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[("web", Behaviour::FailAfterAmi)]);
    let outcomes = fixture.build(&packer, false).await.unwrap();
    assert_eq!(outcomes, pairs(&[("base", "built"), ("runtime", "built"), ("web", "failed"), ("worker", "built")]));
    // The failed build's AMI is gone; every AMI left is recorded.
    let recorded: Vec<String> = {
        let mut ids = Vec::new();
        for step in ["base", "runtime", "worker"] {
            ids.push(fixture.ami_of(step).await);
        }
        ids
    };
    let in_ec2: Vec<String> =
        fixture.ec2.images.lock().unwrap().keys().filter(|id| id.as_str() != ROOT_AMI).cloned().collect();
    assert_eq!(in_ec2.len(), 3);
    assert!(in_ec2.iter().all(|id| recorded.contains(id)));

    let fixture = Fixture::new("chain");
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[("step2", Behaviour::FailAfterAmi)]);
    let outcomes = fixture.build(&packer, false).await.unwrap();
    assert_eq!(outcomes, pairs(&[("step1", "built"), ("step2", "failed"), ("step3", "skipped")]));
    assert_eq!(fixture.reporter.lines("step3"), ["validating", "skipped (step2 did not finish)"]);
}

#[tokio::test]
async fn an_interrupt_deregisters_what_packer_made_and_starts_nothing_more() {
    let fixture = Fixture::new("chain");
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[("step2", Behaviour::InterruptedAfterAmi)]);
    let outcomes = fixture.build(&packer, false).await.unwrap();
    assert_eq!(outcomes, pairs(&[("step1", "built"), ("step2", "failed"), ("step3", "skipped")]));
    assert_eq!(fixture.reporter.lines("step3"), ["validating", "skipped (interrupted)"]);
    let images = fixture.ec2.images.lock().unwrap().len();
    assert_eq!(images, 2, "the root and step1's AMI");
    assert_eq!(*packer.builds.lock().unwrap(), ["step1", "step2"]);
}

#[tokio::test]
async fn force_replaces_a_changed_step_and_rebuilds_its_descendants() {
    let fixture = Fixture::new("chain");
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    fixture.build(&packer, false).await.unwrap();
    let (old2, old3) = (fixture.ami_of("step2").await, fixture.ami_of("step3").await);
    let step2 = fixture.workflow.step("step2").unwrap();
    std::fs::write(step2.dir.join("notes.txt"), "a new input").unwrap();

    let refused = check_replacements(&fixture.workflow, &fixture.plan().await, &RETRIES);
    assert_eq!(refused.unwrap_err().kind, ErrorKind::Usage);
    let outcomes = fixture.build(&packer, true).await.unwrap();
    assert_eq!(outcomes, pairs(&[("step1", "up-to-date"), ("step2", "built"), ("step3", "built")]));
    assert!(!fixture.ec2.has(&old2) && !fixture.ec2.has(&old3));
    assert_ne!(fixture.ami_of("step2").await, old2);
}

#[tokio::test]
async fn a_step_that_does_not_validate_stops_the_run_before_any_build() {
    let fixture = Fixture::new("chain");
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[("step3", Behaviour::Invalid)]);
    let err = fixture.build(&packer, false).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    assert!(err.to_string().contains("step3: packer validate failed"), "{err}");
    assert!(packer.builds.lock().unwrap().is_empty());
    assert_eq!(fixture.ec2.images.lock().unwrap().len(), 1, "only the root AMI");
}

/// A journal entry for step1 of the fixture's workflow, of a run on this machine with this lock.
fn held_entry(fixture: &Fixture, lock: &Path) -> crate::catalog::InFlight {
    crate::catalog::InFlight {
        workflow_id: fixture.workflow.param.workflow_id.clone(),
        step_id: "step1".into(),
        run_id: format!("run-of-{}", lock.display()),
        host: crate::catalog::this_host(),
        pid: 1,
        lock_path: Some(lock.to_path_buf()),
        since: crate::catalog::now_create_at(),
        expires_at: i64::MAX,
        ami_name: crate::ami::output_ami_name(&fixture.workflow, fixture.workflow.step("step1").unwrap()),
        source_ami_id: ROOT_AMI.into(),
        source_ami_name: "ubuntu/root".into(),
        build: None,
        resources: crate::packer::PackerResources {
            instances: vec!["i-left".into()],
            key_pairs: vec!["packer_key".into()],
            security_groups: vec!["packer_group".into()],
            copy_regions: Vec::new(),
        },
    }
}

/// A run that died after packer made step1's AMI: the next build adopts that AMI (its inputs still
/// match), cleans up packer's resources, and does not build step1 again.
#[tokio::test]
async fn a_dead_runs_ami_is_adopted_when_its_inputs_still_match() {
    let fixture = Fixture::new("chain");
    let step1 = fixture.workflow.step("step1").unwrap();
    let lock = dead_runs_lock("adopted");
    let mut entry = held_entry(&fixture, &lock);
    let fingerprint = crate::fingerprint::fingerprint(&fixture.workflow, step1, ROOT_AMI).await.unwrap();
    entry.build = Some(crate::catalog::PackerRun {
        started_at: (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339(),
        fingerprint: Some(fingerprint.digest.clone()),
        log_path: fixture.workflow.state_dir().join("no-such.log"),
    });
    assert_eq!(fixture.catalog.begin_build(&entry).await.unwrap(), None);
    let left = fixture.ec2.make(&entry.ami_name);

    let found = recover::recover(&fixture.cx()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].stale.as_ref().unwrap().ends_with("is gone"), "{found:?}");
    assert_eq!(
        fixture.ec2.calls(),
        [
            "terminate i-left",
            "delete key pair packer_key",
            "delete security group packer_group",
            &format!("tag {}", left.id),
            &format!("tag {}", left.id)
        ]
    );
    let record = fixture.catalog.get(&entry.workflow_id, "step1").await.unwrap().unwrap();
    assert_eq!((record.ami_id.as_str(), record.fingerprint.as_ref()), (left.id.as_str(), Some(&fingerprint.digest)));
    let statement = crate::provenance::Envelope::parse(record.provenance.as_deref().unwrap()).unwrap().statement();
    assert_eq!(
        crate::provenance::parent_of(&statement.unwrap()),
        Some((ROOT_AMI.to_string(), None)),
        "adopted, sealed"
    );
    assert!(fixture.catalog.builds_in_flight(&entry.workflow_id).await.unwrap().is_empty());

    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    let outcomes = fixture.build(&packer, false).await.unwrap();
    assert_eq!(outcomes, pairs(&[("step1", "up-to-date"), ("step2", "built"), ("step3", "built")]));
}

/// The dead run's AMI was made from inputs that have changed since: it goes, with its snapshots.
#[tokio::test]
async fn a_dead_runs_ami_is_deregistered_when_the_inputs_changed() {
    let fixture = Fixture::new("chain");
    let lock = dead_runs_lock("deregistered");
    let mut entry = held_entry(&fixture, &lock);
    entry.build = Some(crate::catalog::PackerRun {
        started_at: (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339(),
        fingerprint: Some("an-older-fingerprint".into()),
        log_path: fixture.workflow.state_dir().join("no-such.log"),
    });
    fixture.catalog.begin_build(&entry).await.unwrap();
    let left = fixture.ec2.make(&entry.ami_name);
    recover::recover(&fixture.cx()).await.unwrap();
    assert!(!fixture.ec2.has(&left.id));
    assert_eq!(fixture.catalog.get(&entry.workflow_id, "step1").await.unwrap(), None);
    assert!(!lock.exists(), "the dead run's lock file goes once it is settled");
}

/// A live run holds step1: this build waits for it, then uses the AMI it recorded; a run still at
/// work is never settled.
#[tokio::test]
async fn a_held_step_is_waited_for_and_then_used() {
    let fixture = Fixture::new("chain");
    let lock = RunLock::take("waited-for").unwrap();
    let entry = held_entry(&fixture, lock.path());
    fixture.catalog.begin_build(&entry).await.unwrap();
    let found = recover::recover(&fixture.cx()).await.unwrap();
    assert!(found[0].stale.is_none());
    assert!(fixture.ec2.calls().is_empty(), "a live run's resources are left alone");

    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    let holder = async {
        fixture.reporter.reached("step1", "waiting").await;
        let image = fixture.ec2.make(&entry.ami_name);
        let mut record = sample_record(&entry.workflow_id, "step1", &image.id, &crate::catalog::now_create_at());
        let step1 = fixture.workflow.step("step1").unwrap();
        record.fingerprint =
            Some(crate::fingerprint::fingerprint(&fixture.workflow, step1, ROOT_AMI).await.unwrap().digest);
        fixture.catalog.record(&record).await.unwrap();
        fixture.catalog.end_build(&entry).await.unwrap();
        image.id
    };
    let (outcomes, built_by_holder) = tokio::join!(fixture.build(&packer, false), holder);
    let outcomes = outcomes.unwrap();
    assert_eq!(outcomes[0], ("step1".to_string(), "up-to-date".to_string()));
    assert_eq!(*packer.builds.lock().unwrap(), ["step2", "step3"]);
    assert_eq!(fixture.ami_of("step1").await, built_by_holder);
    lock.release();
}

/// Ctrl-C while waiting for another run's step: the wait ends at once, as interrupted, and the
/// other run's entry is left as it is.
#[tokio::test]
async fn an_interrupt_ends_the_wait_for_a_held_step() {
    let fixture = Fixture::new("chain");
    let lock = RunLock::take("interrupted-wait").unwrap();
    let entry = held_entry(&fixture, lock.path());
    fixture.catalog.begin_build(&entry).await.unwrap();
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    let interrupt = async {
        fixture.reporter.reached("step1", "waiting").await;
        fixture.cancel.cancel();
    };
    let (outcomes, ()) = tokio::join!(fixture.build(&packer, false), interrupt);
    assert_eq!(outcomes.unwrap(), pairs(&[("step1", "failed"), ("step2", "skipped"), ("step3", "skipped")]));
    assert!(packer.builds.lock().unwrap().is_empty());
    assert_eq!(fixture.catalog.builds_in_flight(&entry.workflow_id).await.unwrap(), [entry]);
    lock.release();
}

/// A signer whose key service is down.
struct DownSigner;

#[async_trait]
impl crate::provenance::Signer for DownSigner {
    fn key_id(&self) -> String {
        "arn:aws:kms:us-east-1:123456789012:key/down".into()
    }
    async fn sign(&self, _: &[u8]) -> Result<Vec<u8>> {
        Err(Error::new(ErrorKind::Aws, "kms:Sign failed: the service is unavailable"))
    }
    async fn public_key(&self) -> Result<crate::provenance::PublicKey> {
        Err(Error::new(ErrorKind::Aws, "kms:GetPublicKey failed"))
    }
}

/// A statement that cannot be signed fails its step after the image was recorded: the image is
/// withdrawn (deregistered, its record says so), and nothing is built on it.
#[tokio::test]
async fn an_image_whose_statement_cannot_be_signed_is_withdrawn() {
    let fixture = Fixture::new("chain");
    let plan = fixture.plan().await;
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    let attester = crate::provenance::Attester { signer: Some(&DownSigner), ..crate::provenance::Attester::none() };
    let cx = Services { attester: &attester, ..fixture.cx() };
    let engine = Engine { cx, packer: &packer, packer_env: Vec::new(), lease_ttl: 60 };
    let outcomes = engine.run(&plan, RETRIES).await.unwrap();
    let Outcome::Failed { error, amis } = &outcomes[0].outcome else { panic!("{:?}", outcomes[0].outcome) };
    assert!(error.message.contains("kms:Sign failed"), "{error}");
    assert!(amis[0].fate.starts_with("deregistered"), "{amis:?}");
    assert!(!fixture.ec2.has(&amis[0].ami_id));
    let record = fixture.catalog.get(&fixture.workflow.param.workflow_id, "step1").await.unwrap().unwrap();
    assert_eq!((record.status, record.provenance), (ImageStatus::Deregistered, None));
    assert_eq!(outcomes[1].outcome.name(), "skipped");
}

/// A built image's statement names its parent's by digest, and the packer that made it.
#[tokio::test]
async fn a_built_image_s_statement_names_its_parent_s_and_its_packer() {
    let fixture = Fixture::new("chain");
    let packer = FakePacker::new(&fixture.ec2, &fixture.cancel, &[]);
    fixture.build(&packer, false).await.unwrap();
    let workflow_id = &fixture.workflow.param.workflow_id;
    let step1 = fixture.catalog.get(workflow_id, "step1").await.unwrap().unwrap();
    let step2 = fixture.catalog.get(workflow_id, "step2").await.unwrap().unwrap();
    let envelope = crate::provenance::Envelope::parse(step2.provenance.as_deref().unwrap()).unwrap();
    let statement = envelope.statement().unwrap();
    let parent_digest = crate::provenance::sha256_hex(step1.provenance.as_deref().unwrap().as_bytes());
    assert_eq!(crate::provenance::parent_of(&statement), Some((step1.ami_id.clone(), Some(parent_digest))));
    let dependencies = statement.pointer("/predicate/buildDefinition/resolvedDependencies").unwrap();
    let uris: Vec<&str> = dependencies.as_array().unwrap().iter().filter_map(|dep| dep["uri"].as_str()).collect();
    assert!(uris.contains(&"pkg:generic/packer@1.6.6"), "{uris:?}");
    assert_eq!(statement.pointer("/predicate/runDetails/byproducts").unwrap(), &serde_json::json!([]), "no tests");
}
