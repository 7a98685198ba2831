//! Operations on images outside a build, each in its own module: from-instance, lineage, status
//! (staleness), test (image tests), prune (retention), lifecycle (policies), revoke and restore,
//! channels, base-ami update, verify (provenance). Each acts on an image's copies in every region and account. What the
//! build does to images too (delete, copy, share, distribute) is `change`'s, below both.

pub mod base_ami;
pub mod channel;
mod from_instance;
pub mod lifecycle;
pub mod lineage;
pub mod prune;
pub mod report;
pub mod revoke;
pub mod status;
pub mod test;
pub mod verify;

pub use from_instance::image_from_instance;
