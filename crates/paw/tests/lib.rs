//! paw's integration tests: the real `paw` binary on workflows made in temporary folders.

mod aws;
mod bad_input;
mod book;
mod ci;
mod distribution;
mod dynamodb;
mod emulator;
mod faults;
mod first_contact;
mod harness;
mod image_tests;
mod incremental;
mod lifecycle;
mod lines;
mod offline;
mod packer_install;
mod packer_output;
mod plans;
mod policies;
mod recovery;
mod regions;
mod report;
mod schemas;
mod snapshots;
mod usage;
