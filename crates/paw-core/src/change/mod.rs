//! Every change to an image in AWS and the catalog, planned whole, then applied. The operations
//! (`ops`) and the build (`engine`) both change images through here, so it sits below both: the
//! plans they share (delete, copy, share, distribute) live here too.
//!
//! A command reads what it decides from (an inventory, in batched reads), then decides a [`Plan`]:
//! typed [`Action`]s and the [`Refusal`]s that stop it. Deciding is pure, so it is unit-tested
//! directly. The plan is shown (`--dry-run`, `--json`), then [`Executor::apply`] carries it out:
//! it refuses the whole plan before the first action when anything stops it, so a refusal
//! changes nothing. Each action is idempotent and leaves the catalog telling the truth about what
//! it did (a copy deregistered is a copy the record no longer lists), so a plan that stopped partway
//! (an error, a kill, an answer lost) is finished by running the command again: it plans from what
//! the last run left, and an action already done is done again as a no-op.

mod action;
pub mod copy;
pub mod delete;
pub mod distribute;
mod executor;
mod plan;
pub mod share;
pub mod usage;

pub use action::{Action, ChannelMove, CopyOrder};
pub use delete::{DeleteRequest, delete_image};
pub use executor::Executor;
pub use plan::{Plan, Refusal};
