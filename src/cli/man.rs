//! `opm man DIR` (hidden): the manual pages of every command, generated
//! from the same clap definitions as `--help`, for `make install` and
//! distribution packages: opm.1, opm-mod.1, opm-mod-get.1, ...

use clap::CommandFactory;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  opm man /usr/local/share/man/man1     One page per command
  man -l /usr/local/share/man/man1/opm-mod-get.1";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The directory to write the pages into (created when missing)
    dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    fs_err::create_dir_all(&args.dir)?;
    clap_mangen::generate_to(super::Cli::command(), &args.dir)
        .map_err(|e| crate::error::fail(crate::error::Kind::Other, format!("cannot write the manual pages into {}: {e}", args.dir.display())))?;
    Ok(())
}
