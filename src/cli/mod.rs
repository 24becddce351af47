//! The command tree. Each command lives in its own file with its flags and
//! its `run`; this file only wires them together.

mod completion;
mod mod_init;
mod mod_vet;
mod version;

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Examples:
  opm mod init example.com/hello@v0   Create a module in the current directory
  opm mod vet                         Validate every package of the module
  opm version --json                  Versions of opm, CUE and Go

Exit codes: 0 ok, 1 usage or other error, 2 CUE validation failed,
3 registry unreachable, 4 authentication or permission, 5 not found.";

/// opm: CUE modules for the Open Platform Model, with cue's exact behaviour.
#[derive(Debug, Parser)]
#[command(name = "opm", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with CUE modules: init, vet
    #[command(subcommand)]
    Mod(ModCommand),
    /// Print the versions of opm, the linked CUE and Go
    Version(version::Args),
    /// Print a shell completion script
    Completion(completion::Args),
}

#[derive(Debug, Subcommand)]
enum ModCommand {
    /// Create a new module: cue.mod/module.cue and a first package
    Init(mod_init::Args),
    /// Validate every package of a module, as `cue vet` does
    Vet(mod_vet::Args),
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Mod(ModCommand::Init(args)) => mod_init::run(args),
        Command::Mod(ModCommand::Vet(args)) => mod_vet::run(args),
        Command::Version(args) => version::run(args),
        Command::Completion(args) => completion::run(args),
    }
}
