//! paw's AWS side: region and credential resolution, EC2 and DynamoDB, on the AWS SDK for Rust.

pub mod region;
