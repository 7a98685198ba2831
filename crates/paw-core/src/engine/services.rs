//! What every part of a build may use: the workflow, where it builds, and the services it talks
//! to. The bottom of the engine: the lease, the pipeline and the stages all take it.

use tokio_util::sync::CancellationToken;

use super::events::{Event, LeftAmi, Reporter};
use crate::catalog::Catalog;
use crate::change;
use crate::ec2::Ec2;
use crate::provenance::Attester;
use crate::workflow::Workflow;

/// What every stage may use: the workflow, where it builds, and the services it talks to (EC2,
/// the catalog, the reporter), with the run's cancel token. (The binary's `Context` builds it.)
pub struct Services<'a> {
    pub workflow: &'a Workflow,
    pub region: &'a str,
    pub ec2: &'a dyn Ec2,
    pub catalog: &'a dyn Catalog,
    pub reporter: &'a dyn Reporter,
    pub cancel: &'a CancellationToken,
    /// What writes each recorded image's statement, and signs it (`"provenance"`).
    pub attester: &'a Attester<'a>,
}

impl Services<'_> {
    /// The executor of the plans a build makes outside its stages (replacing an image, a failed test's).
    pub fn executor(&self) -> change::Executor<'_> {
        change::Executor::new(self.catalog, self.ec2, self.region, "paw build").attesting(self.attester)
    }

    /// Deregisters an AMI this run made but did not record, in its region, with its snapshots.
    pub async fn undo_image(&self, step_id: &str, region: &str, ami_id: &str) -> LeftAmi {
        let ec2 = crate::ec2::ec2_in(self.ec2, self.region, region);
        let snapshots = match ec2.describe_image(ami_id).await {
            Ok(Some(image)) => image.snapshot_ids,
            _ => Vec::new(),
        };
        let place = if region == self.region { String::new() } else { format!(" in {region}") };
        let fate = match ec2.deregister_image(ami_id, &snapshots).await {
            Ok(()) if snapshots.is_empty() => format!("deregistered{place}"),
            Ok(()) => format!("deregistered{place}, snapshots deleted: {}", snapshots.join(", ")),
            Err(err) => format!("could not be deregistered{place} ({err}); deregister it by hand"),
        };
        self.reporter.event(Event::CleanedUp { step: step_id, what: &format!("{ami_id}: {fate}") });
        LeftAmi { ami_id: ami_id.to_string(), fate }
    }
}
