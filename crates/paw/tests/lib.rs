//! paw's integration tests: the real `paw` binary on workflows made in temporary folders.

mod bad_input;
mod harness;
mod offline;
