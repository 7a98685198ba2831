//! The `paw` command line: arguments → one context → one library call → one report.

mod ci;
mod cli;
mod commands;
mod context;
mod events;
mod install;
mod output;
mod signals;
mod webhook;

fn main() {
    std::process::exit(commands::run(cli::parse()));
}
