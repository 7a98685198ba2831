//! `paw base-ami update`: moves workflow_param.json to the newest AMI of its `root_base_ami_filter`,
//! editing only the two values (comments, key order and spacing stay).

use serde::Serialize;

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
    let Some(query) = &param.root_base_ami_filter else {
        return Err(Error::new(ErrorKind::Usage, "workflow_param.json has no \"root_base_ami_filter\"")
            .in_file(&param.path)
            .help(
                "add one, e.g. \"root_base_ami_filter\": {\"name\": \"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*\", \
                 \"owners\": [\"099720109477\"], \"architecture\": \"x86_64\"}",
            ));
    };
    let newest = ec2.find_base_amis(query).await?.into_iter().next().ok_or_else(|| {
        Error::new(
            ErrorKind::Usage,
            format!(
                "no available AMI matches root_base_ami_filter (name \"{}\", owners {:?})",
                query.name_pattern, query.owners
            ),
        )
        .at(param.json().key_location("root_base_ami_filter"))
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
        // Written beside it, then renamed over it: never half a file.
        let staged = param.path.with_extension("json.paw-new");
        std::fs::write(&staged, text).map_err(|err| Error::io(&staged, "write", err))?;
        std::fs::rename(&staged, &param.path).map_err(|err| Error::io(&param.path, "replace", err))?;
    }
    Ok(update)
}
