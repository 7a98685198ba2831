//! Operations on images outside a build, each in its own module: delete, from-instance, lineage,
//! status (staleness), prune (retention), revoke and restore, channels, base-ami update.

pub mod base_ami;
pub mod channel;
mod delete;
mod from_instance;
pub mod lineage;
pub mod prune;
pub mod revoke;
pub mod status;

pub use delete::delete_image;
pub use from_instance::image_from_instance;
