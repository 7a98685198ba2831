//! The command line, a stable contract: users, scripts and CI rely on these names.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "paw", version, about = "Build chains of AWS AMIs with Packer: render, validate, build, tag, record.")]
pub struct Cli {
    /// The workflow folder [default: the current folder if it holds workflow_param.json, else ./workflow]
    #[arg(short, long, global = true, value_name = "DIR")]
    pub workflow: Option<PathBuf>,

    /// Print data as JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the steps in build order: id, parent, folder, metadata.
    Steps,
    /// Render the steps' templates into their folders (all steps when none is named).
    Render {
        /// Step ids.
        steps: Vec<String>,
    },
    /// Render, check the HCL, then run `packer validate` (all steps when none is named).
    Validate {
        /// Step ids.
        steps: Vec<String>,
    },
    /// Create a new workflow folder with one step, in the seed's layout.
    Init {
        /// The folder to create; it must be new or empty.
        dir: PathBuf,
    },
}

pub fn parse() -> Cli {
    Cli::parse()
}
