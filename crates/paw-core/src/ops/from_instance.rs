//! The seed's manual path: a step's AMI made from a stopped instance, with the step's name and
//! tags, recorded as soon as it exists (so that it is never lost), then waited for and its
//! snapshots tagged. It shares the build's stages where the two do the same thing.

use std::time::Duration;

use async_trait::async_trait;

use crate::ami;
use crate::catalog::ImageRecord;
use crate::ec2::InstanceState;
use crate::engine::Services;
use crate::engine::events::{LeftAmi, StepFailure};
use crate::engine::image_tests::OnFailure;
use crate::engine::pipeline::{Finished, ImageRun, Next, Stage, StageId, StepRun};
use crate::engine::recording::{Attest, Record, step_tags};
use crate::engine::stages::{self, NameFree, run_pipeline};
use crate::error::{Error, ErrorKind, Result};
use crate::source;
use crate::workflow::Step;

pub async fn image_from_instance(
    cx: &Services<'_>,
    step: &Step,
    instance_id: &str,
    wait: Option<Duration>,
) -> Result<ImageRecord> {
    let source = source::recorded_source(cx.workflow, cx.catalog, step).await?;
    // The inputs' fingerprint is recorded so that a later change of a template step's inputs shows.
    let fingerprint = crate::fingerprint::fingerprint(cx.workflow, step, &source.id).await?;
    let mut run = StepRun::new(cx.workflow, step, source, fingerprint);
    run.from_instance = Some(instance_id.to_string());
    let stopped = InstanceStopped { instance_id };
    let create = CreateImage { instance_id };
    let tag_snapshots = TagSnapshots { wait };
    let before: [&dyn Stage<StepRun<'_>>; 4] = [&Limits, &stopped, &NameFree, &create];
    // ... then the AMI found in EC2, then:
    let attest = Attest { on_failure: OnFailure::Deregister };
    let after: [&dyn Stage<ImageRun<'_>>; 3] = [&Record, &tag_snapshots, &attest];
    let finished = run_pipeline(cx, &before, &after, run).await.map_err(|StepFailure { error, amis, .. }| {
        let fates: Vec<String> = amis.iter().map(|left| format!("{}: {}", left.ami_id, left.fate)).collect();
        if fates.is_empty() { *error } else { error.details(fates.join("\n")) }
    })?;
    let recorded = match finished {
        Finished::Built(made) => made.run.recorded,
        Finished::BuiltMeanwhile(_) => None,
    };
    recorded.ok_or_else(|| Error::bug("the AMI from the instance was made but not recorded"))
}

/// EC2's limits on the step's AMI name and tags.
struct Limits;

#[async_trait]
impl<'a> Stage<StepRun<'a>> for Limits {
    fn id(&self) -> StageId {
        StageId::CheckLimits
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        ami::check_limits(cx.workflow, run.step, &run.source)?;
        Ok(Next::Continue)
    }
}

struct InstanceStopped<'a> {
    instance_id: &'a str,
}

#[async_trait]
impl<'a> Stage<StepRun<'a>> for InstanceStopped<'_> {
    fn id(&self) -> StageId {
        StageId::CheckInstance
    }

    async fn run(&self, cx: &Services<'_>, _run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let instance_id = self.instance_id;
        match cx.ec2.instance_state(instance_id).await? {
            Some(InstanceState::Stopped) => Ok(Next::Continue),
            None => Err(Error::new(ErrorKind::Usage, format!("there is no instance {instance_id} in {}", cx.region))
                .help("check the instance id and the region")
                .into()),
            Some(state) => Err(Error::new(ErrorKind::Usage, format!("instance {instance_id} is {state}, not stopped"))
                .help(format!(
                    "stop it first: `aws ec2 stop-instances --instance-ids {instance_id}`, then run this again"
                ))
                .into()),
        }
    }
}

/// CreateImage with the step's name and tags. Not recorded, not kept: an AMI nobody can find is a
/// cost nobody sees.
struct CreateImage<'a> {
    instance_id: &'a str,
}

#[async_trait]
impl<'a> Stage<StepRun<'a>> for CreateImage<'_> {
    fn id(&self) -> StageId {
        StageId::CreateImage
    }

    async fn run(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Result<Next, StepFailure> {
        let tags = step_tags(cx, run);
        let ami_id = cx.ec2.create_image(self.instance_id, &run.ami_name, &tags).await?;
        // This run's from here on, whatever the look-up says: cleanup deregisters it unless recorded.
        run.made.push((cx.region.to_string(), ami_id));
        Ok(Next::Continue)
    }

    async fn cleanup(&self, cx: &Services<'_>, run: &mut StepRun<'a>) -> Vec<LeftAmi> {
        stages::undo_unrecorded(cx, run).await
    }
}

/// Once the AMI is available (at most `wait`), its snapshots get the step's tags; without a
/// wait, they stay untagged.
struct TagSnapshots {
    wait: Option<Duration>,
}

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for TagSnapshots {
    fn id(&self) -> StageId {
        StageId::WaitForImage
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let Some(timeout) = self.wait else { return Ok(Next::Continue) };
        let image = cx.ec2.wait_until_available(&made.image.id, timeout).await?;
        if !image.snapshot_ids.is_empty() {
            cx.ec2.create_tags(&image.snapshot_ids, &step_tags(cx, &made.run)).await?;
        }
        Ok(Next::Continue)
    }
}
