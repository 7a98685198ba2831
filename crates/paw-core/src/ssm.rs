//! What paw needs from SSM Parameter Store, as a trait: channels published where launch templates
//! (`resolve:ssm:NAME`) and Terraform read them. paw-aws implements it on the AWS SDK.

use async_trait::async_trait;

use crate::error::Result;

#[async_trait]
pub trait Ssm: Send + Sync {
    /// Parameter Store where a copy is (`ec2::Place`): another region, or another account's (with
    /// the distribution block's credentials for it).
    fn at(&self, place: &crate::ec2::Place) -> Box<dyn Ssm>;

    /// Sets the parameter to the AMI id, as DataType `aws:ec2:image` (AWS then checks that the
    /// AMI exists), overwriting its value; its history keeps the old ones.
    async fn put_image_parameter(&self, name: &str, ami_id: &str) -> Result<()>;

    /// The parameter's value (GetParameter), None when there is no such parameter.
    async fn parameter_value(&self, name: &str) -> Result<Option<String>>;
}
