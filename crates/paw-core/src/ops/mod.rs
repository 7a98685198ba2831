//! Operations on images outside a build: each in its own module (delete, from-instance; prune,
//! revoke and copy will live here too).

mod delete;
mod from_instance;

pub use delete::delete_image;
pub use from_instance::image_from_instance;
