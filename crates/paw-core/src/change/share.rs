//! `paw images share`: launch permission on every copy of the step's AMI, in every region, and
//! create-volume permission on their snapshots (for accounts: EC2 has no organization-wide
//! snapshot permission). Planned from who may launch each copy now, so a second run does nothing.

use serde::Serialize;

use super::{Action, Executor, Plan};
use crate::catalog::ImageRecord;
use crate::ec2::{Ec2, LaunchPermissions, Place, ec2_in};
use crate::error::{Error, ErrorKind, Result};

/// Who gets (or, with `remove`, loses) the permissions.
#[derive(Debug, Clone, Default)]
pub struct ShareRequest {
    pub accounts: Vec<String>,
    pub organization_arns: Vec<String>,
    pub remove: bool,
}

impl ShareRequest {
    /// Refuses a request that names no one, or an account id that is not one.
    pub fn check(&self) -> Result<()> {
        if self.accounts.is_empty() && self.organization_arns.is_empty() {
            return Err(Error::new(ErrorKind::Usage, "no one to share with")
                .help("name accounts with --account ID (12 digits), or an organization with --org-arn ARN"));
        }
        if let Some(bad) =
            self.accounts.iter().find(|account| account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::new(ErrorKind::Usage, format!("\"{bad}\" is not an AWS account id"))
                .help("an account id is 12 digits, e.g. 123456789012"));
        }
        Ok(())
    }
}

/// One copy as EC2 has it: its snapshots and who may launch it; None when it is gone.
#[derive(Debug, Clone)]
pub struct Held {
    pub place: Place,
    pub ami_id: String,
    pub now: Option<(Vec<String>, LaunchPermissions)>,
}

/// Reads each copy of the record's image (`ec2` is its region's) where it is.
pub async fn gather(ec2: &dyn Ec2, record: &ImageRecord) -> Result<Vec<Held>> {
    let mut held = Vec::new();
    for (key, ami_id) in record.every_copy() {
        let regional = ec2_in(ec2, &record.region, &key);
        let now = match regional.describe_image(&ami_id).await? {
            Some(image) => Some((image.snapshot_ids, regional.launch_permissions(&ami_id).await?)),
            None => None,
        };
        held.push(Held { place: Place::parse(&key), ami_id, now });
    }
    Ok(held)
}

/// A share action per copy that lacks a grant asked for (or, removing, still has one). A copy
/// gone from EC2 refuses the plan.
pub fn decide(held: &[Held], request: &ShareRequest) -> Plan {
    let mut plan = Plan::default();
    for Held { place, ami_id, now } in held {
        let Some((_, permissions)) = now else {
            plan.refuse(
                format!("{ami_id}, the copy in {place}, is gone from EC2"),
                "`paw images show STEP` lists the copies the catalog knows; `paw distribute STEP` or \
                 `paw images copy` makes them again",
            );
            continue;
        };
        let to_change = |asked: &[String], granted: &[String]| -> Vec<String> {
            asked.iter().filter(|one| granted.contains(one) == request.remove).cloned().collect()
        };
        let accounts = to_change(&request.accounts, &permissions.accounts);
        let organization_arns = to_change(&request.organization_arns, &permissions.organization_arns);
        if accounts.is_empty() && organization_arns.is_empty() {
            continue;
        }
        plan.actions.push(Action::Share {
            place: place.clone(),
            ami_id: ami_id.clone(),
            accounts,
            organization_arns,
            remove: request.remove,
        });
    }
    plan
}

/// What became of one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shared {
    pub region: String,
    pub ami_id: String,
    pub snapshot_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Applies the plan, each copy on its own: one that fails is reported, and the others still
/// complete.
pub async fn apply(executor: &Executor<'_>, held: &[Held], plan: &Plan) -> Result<Vec<Shared>> {
    let outcomes = executor.apply_each(plan).await?;
    Ok(held
        .iter()
        .map(|Held { place, ami_id, now }| {
            let error = plan.actions.iter().zip(&outcomes).find_map(|(action, outcome)| match action {
                Action::Share { place: at, .. } if at == place => outcome.as_ref().err().map(ToString::to_string),
                _ => None,
            });
            let snapshot_ids = now.as_ref().map(|(snapshots, _)| snapshots.clone()).unwrap_or_default();
            Shared { region: place.key(), ami_id: ami_id.clone(), snapshot_ids, error }
        })
        .collect())
}

/// Launch permission on one AMI (`regional` is its region's), and create-volume permission on its
/// snapshots for the accounts. The snapshots' permission is changed first, either way: the
/// image's is what a plan reads, so it is written last.
pub async fn grant(
    regional: &dyn Ec2,
    ami_id: &str,
    accounts: &[String],
    organization_arns: &[String],
    remove: bool,
) -> Result<()> {
    if !accounts.is_empty() {
        let snapshots = regional.describe_image(ami_id).await?.map(|image| image.snapshot_ids).unwrap_or_default();
        for snapshot in &snapshots {
            regional.set_create_volume_permission(snapshot, accounts, remove).await?;
        }
    }
    regional.set_launch_permission(ami_id, accounts, organization_arns, remove).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(place: &str, ami_id: &str, accounts: &[&str]) -> Held {
        let permissions = LaunchPermissions {
            accounts: accounts.iter().map(ToString::to_string).collect(),
            organization_arns: Vec::new(),
        };
        Held { place: Place::parse(place), ami_id: ami_id.into(), now: Some((vec!["snap-1".into()], permissions)) }
    }

    #[test]
    fn only_what_is_missing_is_granted_and_only_what_is_there_withdrawn() {
        let copies = [held("us-east-1", "ami-1", &["111111111111"]), held("eu-west-1", "ami-2", &[])];
        let mut request = ShareRequest { accounts: vec!["111111111111".into()], ..ShareRequest::default() };
        let plan = decide(&copies, &request);
        let places: Vec<String> = plan.actions.iter().map(|action| action.describe().1).collect();
        assert_eq!(places, ["eu-west-1"], "us-east-1 has the grant already");

        request.remove = true;
        let plan = decide(&copies, &request);
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(plan.actions[0].describe(), ("unshare", "us-east-1".into(), "ami-1 from 111111111111".into()));

        let gone = Held { now: None, ..held("eu-west-1", "ami-2", &[]) };
        let refused = decide(&[gone], &request).check().unwrap_err();
        assert!(refused.message.contains("ami-2, the copy in eu-west-1, is gone from EC2"), "{refused}");
    }
}
