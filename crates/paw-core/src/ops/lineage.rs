//! Lineage: an image's ancestry up to its root base AMI, and every image built on it, in any
//! workflow. The catalog holds each image's parent (`base_ami_id`); both walks are queries by AMI.

use std::collections::{HashSet, VecDeque};

use serde::Serialize;

use crate::catalog::{Catalog, ImageRecord, Line};
use crate::ec2::Ec2;
use crate::error::Result;

/// One image of a lineage. The root base AMI has no step and no workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageImage {
    pub ami_id: String,
    pub step_id: Option<String>,
    pub workflow_id: Option<String>,
    pub status: String,
    /// Its tests' latest verdict ("passed", "failed: boot"), when it was tested.
    pub tests: Option<String>,
    /// Its parent (in `--descendants` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ami_id: Option<String>,
}

impl LineageImage {
    fn of(record: &ImageRecord, with_base: bool) -> LineageImage {
        LineageImage {
            ami_id: record.ami_id.clone(),
            step_id: Some(record.step_id.clone()),
            workflow_id: Some(record.workflow_id.clone()),
            status: record.status.as_str().to_string(),
            tests: record.test_badge(),
            base_ami_id: with_base.then(|| record.base_ami_id.clone()),
        }
    }
}

/// The image, then its parent, and so on to the root base AMI (whose status EC2 tells). Of the
/// records of one AMI, the one of the child's workflow is shown, else the one that built it.
pub async fn ancestry(catalog: &dyn Catalog, ec2: &dyn Ec2, record: &ImageRecord) -> Result<Vec<LineageImage>> {
    let mut chain = vec![LineageImage::of(record, false)];
    let mut seen = HashSet::from([record.ami_id.clone()]);
    let (mut base, mut workflow) = (record.base_ami_id.clone(), record.workflow_id.clone());
    while seen.insert(base.clone()) {
        let records = catalog.find_by_ami(&base).await?;
        let parent = records
            .iter()
            .find(|parent| parent.workflow_id == workflow)
            .or_else(|| records.iter().find(|parent| parent.reused_from.is_none()))
            .or(records.first());
        let Some(parent) = parent else {
            let status = match ec2.describe_image(&base).await? {
                Some(image) => image.state.to_string(),
                None => "not in EC2".to_string(),
            };
            chain.push(LineageImage {
                ami_id: base,
                step_id: None,
                workflow_id: None,
                status,
                tests: None,
                base_ami_id: None,
            });
            break;
        };
        chain.push(LineageImage::of(parent, false));
        (base, workflow) = (parent.base_ami_id.clone(), parent.workflow_id.clone());
    }
    Ok(chain)
}

/// Every record of the line's images built on `ami_id`, directly or not, nearest first. The walk
/// goes through other lines' images, which are not listed: another team's images are theirs.
pub async fn descendants(catalog: &dyn Catalog, ami_id: &str, line: &Line) -> Result<Vec<ImageRecord>> {
    let mut found = Vec::new();
    let mut visited = HashSet::from([ami_id.to_string()]);
    let mut queue = VecDeque::from([ami_id.to_string()]);
    while let Some(parent) = queue.pop_front() {
        for child in catalog.find_by_base(&parent).await? {
            if visited.insert(child.ami_id.clone()) {
                queue.push_back(child.ami_id.clone());
            }
            if line.holds(&child) {
                found.push(child);
            }
        }
    }
    Ok(found)
}

/// `descendants`, as lineage entries.
pub async fn descendant_images(catalog: &dyn Catalog, ami_id: &str, line: &Line) -> Result<Vec<LineageImage>> {
    Ok(descendants(catalog, ami_id, line).await?.iter().map(|record| LineageImage::of(record, true)).collect())
}
