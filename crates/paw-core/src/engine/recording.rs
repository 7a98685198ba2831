//! The stages that make an AMI the step's: its tags, then its record. A build runs them after
//! packer, `from-instance` after CreateImage, and `paw recover` on the AMI a dead run made.

use async_trait::async_trait;

use super::events::StepFailure;
use super::pipeline::{ImageRun, Next, Stage, StageId, StepRun};
use super::services::Services;
use crate::catalog::ImageRecord;
use crate::{ami, provenance};

/// The step's tags, and the fingerprint, on the AMI and every one of its snapshots; and the
/// lifecycle policy's deprecation time on the AMI and its copies.
pub struct TagImage;

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for TagImage {
    fn id(&self) -> StageId {
        StageId::TagImage
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let tags = step_tags(cx, &made.run);
        cx.ec2.create_tags(&made.image.ids_with_snapshots(), &tags).await?;
        // The record describes the image as it is now, without asking EC2 again.
        made.image.add_tags(&tags);
        // Copies get the same tags where they are (CopyImage and ami_regions do not copy them).
        for (region, copy) in &made.copies {
            cx.ec2
                .in_region(region)
                .create_tags(&copy.ids_with_snapshots(), &tags)
                .await
                .map_err(|err| err.in_region(region))?;
        }
        // The lifecycle policy's deprecation, set now in EC2 for the image and its copies: EC2
        // hides it when the time comes, whether or not paw runs then.
        let policy = cx.workflow.param.lifecycle.with_step(&made.run.step.param)?;
        if let Some(days) = policy.deprecate_after_days {
            // EC2 takes a time in the future.
            let at = chrono::Utc::now() + chrono::Duration::days(days as i64) + chrono::Duration::minutes(1);
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            cx.ec2.deprecate_image(&made.image.id, &at).await?;
            for (region, copy) in &made.copies {
                cx.ec2.in_region(region).deprecate_image(&copy.id, &at).await.map_err(|err| err.in_region(region))?;
            }
        }
        Ok(Next::Continue)
    }
}

/// The tags of the step's AMI and its snapshots: the step's, and its inputs' fingerprint.
pub fn step_tags(cx: &Services<'_>, run: &StepRun<'_>) -> Vec<(String, String)> {
    let mut tags = ami::ami_tags(cx.workflow, run.step, &run.source);
    ami::set_tag(&mut tags, ami::FINGERPRINT_TAG, &run.fingerprint.digest);
    tags
}

/// The AMI in the catalog; from here on it is kept.
pub struct Record;

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for Record {
    fn id(&self) -> StageId {
        StageId::Record
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let run = &made.run;
        let mut record = ImageRecord::of_image(cx.workflow, run.step, &run.source, cx.region, &made.image);
        record.fingerprint = Some(run.fingerprint.digest.clone());
        record.fingerprint_inputs = Some(run.fingerprint.inputs.clone());
        record.from_instance = run.from_instance.clone();
        record.copies = made.copies.iter().map(|(region, copy)| (region.clone(), copy.id.clone())).collect();
        // What went into it, sealed (signed when a signer is set; a signer that fails fails the
        // step before anything uses the image), and its digest on the AMI and its snapshots.
        let envelope = seal(cx, made).await?;
        let digest = crate::provenance::sha256_hex(envelope.as_bytes());
        cx.ec2.create_tags(&made.image.ids_with_snapshots(), &[(ami::PROVENANCE_TAG.into(), digest)]).await?;
        record.provenance = Some(envelope);
        cx.catalog.record(&record).await?;
        made.run.recorded = Some(record);
        Ok(Next::Continue)
    }
}

/// The image's statement in its envelope, as text: its parent named by the digest of the parent's
/// envelope, when the parent has one.
async fn seal(cx: &Services<'_>, made: &ImageRun<'_>) -> crate::error::Result<String> {
    let run = &made.run;
    let parents = cx.catalog.find_by_ami(&run.source.id).await?;
    let parent_envelope = parents.iter().find_map(|record| record.provenance.as_deref());
    let finished_on = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let statement = provenance::statement(&provenance::Made {
        identity: provenance::ImageIdentity::of(&made.image, cx.region),
        workflow: cx.workflow,
        step: run.step,
        parent: (&run.source.id, parent_envelope.map(|envelope| provenance::sha256_hex(envelope.as_bytes()))),
        fingerprint: Some(&run.fingerprint),
        from_instance: run.from_instance.as_deref(),
        builder_id: crate::catalog::who(),
        started_on: made.image.creation_date.clone(),
        finished_on,
    });
    Ok(provenance::Envelope::seal(&statement, cx.signer).await?.to_text())
}
