//! paw's core, in the order data flows: workflow folders and their params (`config`, `workflow`,
//! `json`), what moves under them from outside (`upstream`), what each step's AMI is (`ami`,
//! `source`), its templates (`render`), its inputs
//! (`fingerprint`), what to do (`plan`), doing it (`build`, with `packer`), the images afterwards
//! (`ops`), and where they are recorded (`catalog`). No AWS SDK in here: EC2 and the catalog are
//! reached through traits.

pub mod ami;
pub mod blocking;
pub mod catalog;
pub mod change;
pub mod config;
pub mod ec2;
pub mod engine;
pub mod error;
pub mod files;
pub mod fingerprint;
pub mod import;
pub mod json;
pub mod notify;
pub mod ops;
pub mod packer;
pub mod plan;
pub mod process;
pub mod provenance;
pub mod render;
pub mod run_lock;
pub mod sbom;
pub mod scaffold;
pub mod source;
pub mod ssm;
pub mod upstream;
pub mod workflow;

pub use error::{Error, ErrorKind, Location, Result};

/// A count and its noun, singular for one: "1 step", "3 steps".
pub fn plural(count: usize, one: &str, many: &str) -> String {
    if count == 1 { format!("1 {one}") } else { format!("{count} {many}") }
}
