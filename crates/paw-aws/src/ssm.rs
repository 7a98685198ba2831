//! SSM Parameter Store on the AWS SDK for Rust: paw-core's `Ssm` trait.

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use paw_core::Result;
use paw_core::ec2::Place;
use paw_core::ssm::Ssm;

use crate::accounts::SharedReach;
use crate::aws_error;

pub struct AwsSsm {
    client: Client,
    /// The build account's configuration, and the way into other accounts (distribution).
    home: aws_config::SdkConfig,
    reach: SharedReach,
}

impl AwsSsm {
    /// Parameter Store with `config`, which reaches other accounts through `reach`.
    pub fn reaching(config: &aws_config::SdkConfig, reach: SharedReach) -> AwsSsm {
        AwsSsm { client: Client::new(config), home: config.clone(), reach }
    }
}

#[async_trait]
impl Ssm for AwsSsm {
    fn at(&self, place: &Place) -> Box<dyn Ssm> {
        let config = match &place.account {
            Some(account) => self.reach.config(&self.home, account, &place.region),
            None => self.home.to_builder().region(aws_config::Region::new(place.region.clone())).build(),
        };
        Box::new(AwsSsm { client: Client::new(&config), home: self.home.clone(), reach: self.reach.clone() })
    }

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

    async fn parameter_value(&self, name: &str) -> Result<Option<String>> {
        match self.client.get_parameter().name(name).send().await {
            Ok(output) => Ok(output.parameter.and_then(|parameter| parameter.value)),
            Err(err) if err.as_service_error().is_some_and(|err| err.is_parameter_not_found()) => Ok(None),
            Err(err) => Err(aws_error("ssm:GetParameter", err)),
        }
    }
}
