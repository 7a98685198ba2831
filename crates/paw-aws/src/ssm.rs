//! SSM Parameter Store on the AWS SDK for Rust: paw-core's `Ssm` trait.

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use paw_core::Result;
use paw_core::ssm::Ssm;

use crate::aws_error;

pub struct AwsSsm {
    client: Client,
}

impl AwsSsm {
    pub fn new(config: &aws_config::SdkConfig) -> AwsSsm {
        AwsSsm { client: Client::new(config) }
    }
}

#[async_trait]
impl Ssm for AwsSsm {
    async fn put_image_parameter(&self, name: &str, ami_id: &str) -> Result<()> {
        self.client
            .put_parameter()
            .name(name)
            .value(ami_id)
            .r#type(ParameterType::String)
            .data_type("aws:ec2:image")
            .overwrite(true)
            .send()
            .await
            .map_err(|err| aws_error("ssm:PutParameter", err))?;
        Ok(())
    }
}
