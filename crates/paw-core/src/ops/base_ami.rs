//! `paw base-ami update`: moves workflow_param.json to the newest AMI of its `root_base_ami_filter`,
//! editing only the two values (comments, key order and spacing stay).

use serde::Serialize;

use crate::config::{ROOT_BASE_AMI, ROOT_BASE_AMI_FILTER, ROOT_BASE_AMI_FILTER_EXAMPLE};
use crate::ec2::Ec2;
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::Workflow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseAmiUpdate {
    pub old_id: String,
    pub old_name: String,
    pub new_id: String,
    pub new_name: String,
    /// False when the file already names the newest AMI.
    pub changed: bool,
    pub dry_run: bool,
}

pub async fn update(workflow: &Workflow, ec2: &dyn Ec2, dry_run: bool) -> Result<BaseAmiUpdate> {
    let param = &workflow.param;
    if let Some(followed) = &param.followed_base {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("the root base AMI follows {}: paw reads it at each run, there is nothing to update", followed.source),
        )
        .at(param.json().key_location(ROOT_BASE_AMI))
        .help("to pin the base in a commit instead, replace root_base_ami with root_base_ami_id, root_base_ami_name and root_base_ami_filter"));
    }
    let Some(query) = &param.root_base_ami_filter else {
        return Err(Error::new(ErrorKind::Usage, format!("workflow_param.json has no \"{ROOT_BASE_AMI_FILTER}\""))
            .in_file(&param.path)
            .help(format!("add one, e.g. \"{ROOT_BASE_AMI_FILTER}\": {ROOT_BASE_AMI_FILTER_EXAMPLE}")));
    };
    let newest = ec2.find_base_amis(query).await?.into_iter().next().ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            format!(
                "no available AMI matches root_base_ami_filter (name \"{}\", owners {})",
                query.name_pattern,
                query.owners.join(", ")
            ),
        )
        .at(param.json().key_location(ROOT_BASE_AMI_FILTER))
        .help("`paw base-ami find --name PATTERN --owner ACCOUNT` shows what matches")
    })?;
    let update = BaseAmiUpdate {
        old_id: param.root_base_ami_id.clone(),
        old_name: param.root_base_ami_name.clone(),
        changed: newest.id != param.root_base_ami_id,
        new_id: newest.id,
        new_name: newest.name,
        dry_run,
    };
    if update.changed && !dry_run {
        let text = param
            .json()
            .with_string_values(&[("root_base_ami_id", &update.new_id), ("root_base_ami_name", &update.new_name)])?;
        crate::files::write_whole(&param.path, text.as_bytes(), None)
            .map_err(|err| Error::io(&param.path, "write", err))?;
    }
    Ok(update)
}
