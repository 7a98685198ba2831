//! Operations on images outside a build, each in its own module: delete, from-instance, lineage,
//! status (staleness), test (image tests), prune (retention), lifecycle (policies), revoke and
//! restore, channels, base-ami update, copy and share across regions and accounts, distribute
//! (copies in other accounts). Each acts on an image's copies in every region and account.

pub mod base_ami;
pub mod channel;
pub mod copy;
pub mod delete;
pub mod distribute;
mod from_instance;
pub mod lifecycle;
pub mod lineage;
pub mod prune;
pub mod report;
pub mod revoke;
pub mod share;
pub mod status;
pub mod test;

pub use delete::{DeleteRequest, delete_image};
pub use from_instance::image_from_instance;
