//! The `paw` command line: arguments → a validated configuration → one library call.

mod cli;
mod commands;
mod output;

fn main() {
    std::process::exit(commands::run(cli::parse()));
}
