//! The stages that make an AMI the step's: its tags, its record, then (once tested) its statement.
//! A build runs them after packer, `from-instance` after CreateImage, and `paw recover` on the AMI
//! a dead run made.

use async_trait::async_trait;

use super::events::{LeftAmi, StepFailure};
use super::image_tests::{self, OnFailure};
use super::pipeline::{ImageRun, Next, Stage, StageId, StepRun};
use super::services::Services;
use crate::catalog::ImageRecord;
use crate::config::SBOM;
use crate::error::{Error, ErrorKind, Result};
use crate::sbom::Sbom;
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
        cx.catalog.record(&record).await?;
        made.run.recorded = Some(record);
        Ok(Next::Continue)
    }
}

/// The image's statement of what went into it (`provenance`), once it is tested: sealed (signed
/// when a signer is set), stored with the record and the SBOM it names, and its digest tagged on
/// the AMI and its snapshots. A statement that cannot be made or signed fails the step, and the
/// image is withdrawn as a failed test's is: unsigned is never silent.
pub struct Attest {
    pub on_failure: OnFailure,
}

#[async_trait]
impl<'a> Stage<ImageRun<'a>> for Attest {
    fn id(&self) -> StageId {
        StageId::Attest
    }

    async fn run(&self, cx: &Services<'_>, made: &mut ImageRun<'a>) -> Result<Next, StepFailure> {
        let Some(record) = made.run.recorded.clone() else {
            return Err(Error::bug(format!("step {}: an image is attested once recorded", made.run.step.id)).into());
        };
        let attested = async {
            let sbom = read_sbom(&made.run)?;
            let envelope = seal(cx, made, sbom.as_ref()).await?;
            provenance::tag_image(cx.ec2, &made.image, &envelope).await?;
            let sbom = sbom.map(|(_, text)| text);
            cx.catalog.set_provenance(&record.workflow_id, &record.step_id, &envelope, sbom.as_deref()).await?;
            // packer's own copies (`ami_regions`), each with a statement naming this one.
            let mut statements = std::collections::BTreeMap::new();
            for (region, copy) in &made.copies {
                let original = (&made.image, cx.region);
                let sealed = provenance::seal_copy((copy, region), original, &envelope, cx.attester).await?;
                let there = crate::ec2::ec2_in(cx.ec2, cx.region, region);
                provenance::tag_image(&*there, copy, &sealed).await.map_err(|err| err.in_region(region))?;
                statements.insert(region.clone(), sealed);
            }
            if !statements.is_empty() {
                cx.catalog.set_copy_provenance(&record.workflow_id, &record.step_id, &statements).await?;
            }
            Ok::<_, Error>((envelope, sbom, statements))
        };
        match attested.await {
            Ok((envelope, sbom, statements)) => {
                if let Some(recorded) = &mut made.run.recorded {
                    (recorded.provenance, recorded.sbom, recorded.copy_provenance) = (Some(envelope), sbom, statements);
                }
                Ok(Next::Continue)
            }
            Err(error) => {
                let fate = image_tests::withdraw(cx, &record, self.on_failure).await?;
                Err(StepFailure {
                    error: Box::new(error),
                    amis: vec![LeftAmi { ami_id: record.ami_id.clone(), fate }],
                    transient: None,
                })
            }
        }
    }
}

/// The SBOM the step's provisioners left in its folder (`"sbom"`), by its name there, when the
/// step names one and packer made the image: it must be this build's (written since packer
/// started) and JSON.
fn read_sbom(run: &StepRun<'_>) -> Result<Option<(String, String)>> {
    let (Some(name), Some((packer_started, _))) = (&run.step.param.sbom, &run.packer_started) else {
        return Ok(None);
    };
    let path = run.step.dir.join(name);
    let missing = || {
        Error::new(ErrorKind::Validation, format!("step {}: the build left no SBOM at {}", run.step.id, path.display()))
            .at(run.step.param.json().key_location(SBOM))
            .help("have a provisioner write it there (packer's `file` provisioner with direction = \"download\")")
    };
    let modified = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.modified().map_err(|err| Error::io(&path, "read the time of", err))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(err) => return Err(Error::io(&path, "read", err)),
    };
    if modified < *packer_started {
        return Err(missing().details(format!("{} is older than this build: an earlier build left it", path.display())));
    }
    let text = std::fs::read_to_string(&path).map_err(|err| Error::io(&path, "read", err))?;
    Sbom::parse(&text).map_err(|problem| {
        Error::new(ErrorKind::Validation, format!("step {}: the SBOM {}: {problem}", run.step.id, path.display()))
            .help("write SPDX 2.x JSON or CycloneDX JSON")
    })?;
    Ok(Some((name.clone(), text)))
}

/// The image's statement in its envelope, as text: its parent named by the digest of the parent's
/// envelope, when the parent has one; its test verdicts and SBOM among the byproducts.
async fn seal(cx: &Services<'_>, made: &ImageRun<'_>, sbom: Option<&(String, String)>) -> Result<String> {
    let run = &made.run;
    let parents = cx.catalog.find_by_ami(&run.source.id).await?;
    let parent_envelope = parents.iter().find_map(|record| record.provenance.as_deref());
    let mut byproducts: Vec<_> = made.tests.iter().map(provenance::tests_byproduct).collect();
    byproducts.extend(sbom.map(|(name, text)| provenance::sbom_byproduct(name, text.as_bytes())));
    let statement = provenance::statement(&provenance::Made {
        identity: provenance::ImageIdentity::of(&made.image, cx.region),
        workflow: cx.workflow,
        step: run.step,
        parent: (&run.source.id, parent_envelope.map(|envelope| provenance::sha256_hex(envelope.as_bytes()))),
        fingerprint: Some(&run.fingerprint),
        from_instance: run.from_instance.as_deref(),
        packer: run.packer_started.as_ref().map(|(_, version)| version.clone()),
        run_id: run.lease.as_ref().map(|lease| lease.run_id()),
        attester: cx.attester,
        started_on: made.image.creation_date.clone(),
        finished_on: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        byproducts,
    });
    Ok(provenance::Envelope::seal(&statement, cx.attester.signer).await?.to_text())
}
