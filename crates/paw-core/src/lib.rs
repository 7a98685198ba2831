//! paw's core: workflow folders, templates, the step graph, packer, the catalog and the build engine.
//! No AWS SDK in here: EC2 and the catalog are reached through traits.

pub mod catalog;
#[cfg(any(test, feature = "conformance"))]
pub mod catalog_conformance;
pub mod config;
pub mod ec2;
pub mod engine;
pub mod error;
pub mod fingerprint;
pub mod json;
pub mod limits;
pub mod packer;
pub mod plan;
pub mod render;
pub mod scaffold;
pub mod workflow;

pub use error::{Error, ErrorKind, Location, Result};
