//! The command tree. Each command lives in its own file: its flags, an
//! options struct for ops/, and the printing of the result. This file
//! wires them together and maps every kind of error to its exit code.

mod cache;
mod completion;
mod config_show;
mod deliver;
mod exit;
mod log;
mod man;
mod mod_build;
mod mod_deps;
mod mod_graph;
mod mod_init;
mod mod_mirror;
mod mod_publish;
mod mod_sign;
mod mod_update;
mod mod_verify;
mod mod_vet;
mod registry_check;
mod version;

use crate::context::Context;
use crate::cue::ReleaseKind;
use crate::error::Kind;
use crate::registry;
use clap::{CommandFactory, FromArgMatches as _, Parser, Subcommand};
pub use exit::{exit_code, kind_of, Exit, Reported};

const AFTER_HELP: &str = "\
Examples:
  opm mod init example.com/hello@v0   Create a module in the current directory
  opm mod vet                         Validate every package of the module
  opm mod build -f prod.yaml          Render the module's Kubernetes manifests
  opm bundle build ./stack            Render every module of a bundle
  opm mod publish v0.1.0              Vet and push the module to its registry
  opm mod get example.com/lib@v1.2.3  Add a dependency at an exact version
  opm mod update --check              In CI: exit 6 when updates exist
  opm diff && opm apply               Show, then apply the release to the cluster
  opm registry check --push           Routing, credentials and a live probe of each registry
  opm version --json                  Versions of opm, CUE and Go

Exit codes: 0 ok, 1 usage or other error, 2 CUE validation failed,
3 registry unreachable, 4 authentication or permission, 5 not found,
6 --check found work to do (updates available, module not tidy),
7 a dependency's content differs from cue.mod/opm.sum,
8 a module version fails the signature policy (config `verify:`).";

/// opm: CUE modules for the Open Platform Model, with cue's exact behaviour.
#[derive(Debug, Parser)]
#[command(name = "opm", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Never use the network: the CUE cache is the registry (also OPM_OFFLINE=1)
    #[arg(long, global = true)]
    offline: bool,
    /// Run as if opm was started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    directory: Option<std::path::PathBuf>,
    /// Print only results and errors, no status lines
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say what is happening: each registry request (what, where, outcome,
    /// time, retries) and where credentials come from (never the secret)
    #[arg(short, long, global = true)]
    verbose: bool,
    /// When to colour the output (NO_COLOR is honoured with auto)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
    /// The most a command may spend on registries, credential helpers and
    /// clusters, waits included (also OPM_TIMEOUT): 90s, 10m; default 2m
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Settings every command shares, from the flags and the environment.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub offline: bool,
    pub limits: registry::Limits,
}

impl Global {
    /// The command's one [`Context`] (`routing`: one the command line gave,
    /// instead of the environment's).
    pub fn context(self, routing: Option<crate::config::Routing>) -> Context {
        if let Some((dir, id)) = crate::context::opm_cache_dir().zip(crate::context::binary_identity()) {
            crate::cue::remember_parses_in(&dir.join(crate::context::PARSES_DIR), id);
        }
        Context::new(self.offline, self.limits, routing, Some(Box::new(show_progress)))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with CUE modules: init, vet, build, publish, get, tidy, update
    #[command(subcommand, after_help = MOD_EXAMPLES)]
    Mod(ModCommand),
    /// Work with bundles, releases of several modules: vet, build
    #[command(subcommand, after_help = mod_build::BUNDLE_BUILD_EXAMPLES)]
    Bundle(BundleCommand),
    /// Apply a module or bundle release to a cluster: prune, record, wait
    #[command(after_help = deliver::APPLY_EXAMPLES)]
    Apply(deliver::ApplyArgs),
    /// Show what `opm apply` would change in the cluster (exit 6 if anything)
    #[command(after_help = deliver::DIFF_EXAMPLES)]
    Diff(deliver::DiffArgs),
    /// Show a release in the cluster: revision, modules, health and drift
    #[command(after_help = deliver::STATUS_EXAMPLES)]
    Status(deliver::ReleaseArgs),
    /// Apply an earlier revision of a release again
    #[command(after_help = deliver::ROLLBACK_EXAMPLES)]
    Rollback(deliver::RollbackArgs),
    /// Delete a release's objects and its inventory from the cluster
    #[command(after_help = deliver::DELETE_EXAMPLES)]
    Delete(deliver::DeleteArgs),
    /// The CUE cache: list, verify, remove what no project uses
    #[command(subcommand, after_help = cache::EXAMPLES)]
    Cache(cache::Command),
    /// Show the registry configuration in effect
    #[command(subcommand, after_help = "Examples:\n  opm config show\n  opm config show --json")]
    Config(ConfigCommand),
    /// Check registries: routing, credentials, and a live probe
    #[command(subcommand, after_help = registry_check::EXAMPLES)]
    Registry(RegistryCommand),
    /// Print the versions of opm, the linked CUE and Go
    Version(version::Args),
    /// Print a shell completion script
    Completion(completion::Args),
    /// Write a manual page for every command into a directory (make install)
    #[command(hide = true)]
    Man(man::Args),
}

#[derive(Debug, Subcommand)]
enum ModCommand {
    /// Create a new module: cue.mod/module.cue and a first package
    Init(mod_init::Args),
    /// Validate every package of a module, as `cue vet` does
    Vet(mod_vet::Args),
    /// Render the module's release to Kubernetes manifests
    #[command(after_help = mod_build::BUILD_EXAMPLES)]
    Build(mod_build::BuildArgs),
    /// Vet the module and push it to an OCI registry in CUE's module format
    Publish(mod_publish::Args),
    /// Sign a published version in cosign's format
    Sign(mod_sign::Args),
    /// Copy module versions (and with --deps their graphs) to another registry
    Mirror(mod_mirror::Args),
    /// Add or change dependencies at exact versions, as `cue mod get` does
    Get(mod_deps::GetArgs),
    /// Add missing and remove unused dependencies, as `cue mod tidy` does
    Tidy(mod_deps::TidyArgs),
    /// Show newer releases of the dependencies and apply them
    Update(mod_update::Args),
    /// Check the dependencies against cue.mod/opm.sum
    Verify(mod_verify::Args),
    /// Fill the cache with the module's whole graph (module.cue unchanged)
    Download(mod_graph::DownloadArgs),
    /// Print the resolved module graph
    Graph(mod_graph::GraphArgs),
    /// Say why a module is in the graph, and what sets its version
    Why(mod_graph::WhyArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the registry routing: config.yaml translated for CUE
    Show(config_show::Args),
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// For each routing prefix: where it goes, which credentials, a live probe
    Check(registry_check::Args),
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Check a bundle release: values against #spec, every module compiles
    #[command(after_help = mod_build::BUNDLE_VET_EXAMPLES)]
    Vet(mod_build::VetArgs),
    /// Render every module of a bundle release to Kubernetes manifests
    #[command(after_help = mod_build::BUNDLE_BUILD_EXAMPLES)]
    Build(mod_build::BuildArgs),
}

const MOD_EXAMPLES: &str = "\
Examples:
  opm mod init example.com/app@v0         A new OPM module
  opm mod vet --concrete                  Validate, as `cue vet -c ./...`
  opm mod build -f prod.yaml              Kubernetes manifests
  opm mod publish v0.1.0                  Vet and push to the registry
  opm mod get example.com/lib@v1.2.3      Add a dependency
  opm mod update --check && opm mod tidy --check   CI checks (exit 6)";

/// `30d`, `12h`, `90m`, `45s`, compounds such as `1h30m` or `2d12h`, or `0`,
/// in seconds. A number without a unit (other than 0) is refused.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration: write a number and a unit (s, m, h, d), such as 30d, 12h, 90m, 45s or 1h30m");
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let (mut total, mut rest) = (0u64, s);
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let scale = match rest[digits..].chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86400,
            _ => return Err(bad()),
        };
        total = n.checked_mul(scale).and_then(|d| total.checked_add(d)).ok_or_else(|| format!("{s:?} is too long a duration"))?;
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

/// A transfer's progress as a bar on stderr (drawn only on a terminal).
fn show_progress(what: &str, unit: crate::context::Unit) -> registry::Progress {
    let bar = match unit {
        crate::context::Unit::Bytes => crate::ui::progress_bytes(0, what),
        crate::context::Unit::Items => crate::ui::progress_count(0, what),
    };
    registry::Progress::watched(
        0,
        Box::new(move |event| match event {
            registry::Event::Moved { position, length } => {
                bar.set_length(length);
                bar.set_position(position);
            }
            registry::Event::Done => bar.finish_and_clear(),
        }),
    )
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    // clap exits 2 on a bad command line; 2 means "CUE validation failed"
    // here, so usage errors exit 1 as the README says.
    let parsed = Cli::command().try_get_matches().and_then(|mut matches| {
        // `mod get`: the command's name, for the command's span.
        let (mut name, mut m) = (Vec::new(), &matches);
        while let Some((word, sub)) = m.subcommand() {
            name.push(word.to_string());
            m = sub;
        }
        Cli::from_arg_matches_mut(&mut matches).map(|cli| (cli, name.join(" ")))
    });
    let (cli, name) = match parsed {
        Ok(parsed) => parsed,
        // --help and --version: a reader that went away is no error.
        Err(e) if !e.use_stderr() => {
            return match e.print() {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
                _ => Ok(()),
            };
        }
        Err(e) => {
            // `opm build`: the command lives under `opm mod`.
            let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
            if let (clap::error::ErrorKind::InvalidSubcommand, Some(first)) = (e.kind(), args.first()) {
                if Cli::command().find_subcommand("mod").is_some_and(|m| m.find_subcommand(first).is_some()) {
                    crate::ui::print_error(&format!("unrecognized subcommand '{first}': did you mean 'opm mod {first}'?"));
                    return Err(Reported(Exit::General).into());
                }
            }
            // With --json a script reads the failure as JSON, like any other.
            if std::env::args().any(|a| a == "--json") {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
                return Err(crate::error::fail(Kind::Other, format!("{first} (see 'opm --help')")));
            }
            let _ = e.print();
            return Err(Reported(Exit::General).into());
        }
    };
    let color = match cli.color {
        ColorChoice::Auto => crate::ui::Color::Auto,
        ColorChoice::Always => crate::ui::Color::Always,
        ColorChoice::Never => crate::ui::Color::Never,
    };
    crate::ui::configure(color, cli.quiet, cli.verbose);
    log::install(cli.verbose);
    let _command = tracing::info_span!("command", name).entered();
    if let Some(dir) = &cli.directory {
        std::env::set_current_dir(dir).map_err(|e| crate::error::fail(Kind::Other, format!("cannot change to directory {} (-C): {e}", dir.display())))?;
    }
    let budget = match (cli.timeout, std::env::var("OPM_TIMEOUT").ok().filter(|v| !v.is_empty())) {
        (Some(secs), _) => secs,
        (None, Some(v)) => parse_duration(&v).map_err(|why| crate::error::fail(Kind::Other, format!("OPM_TIMEOUT: {why}")))?,
        (None, None) => registry::DEFAULT_BUDGET.as_secs(),
    };
    let request = match std::env::var("OPM_REQUEST_TIMEOUT").ok().filter(|v| !v.is_empty()) {
        Some(v) => parse_duration(&v).map_err(|why| crate::error::fail(Kind::Other, format!("OPM_REQUEST_TIMEOUT: {why}")))?,
        None => registry::DEFAULT_REQUEST_TIMEOUT.as_secs(),
    };
    let limits = registry::Limits::new(std::time::Duration::from_secs(budget.max(1)), std::time::Duration::from_secs(request.max(1)));
    let env_offline = std::env::var("OPM_OFFLINE").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    let g = Global { offline: cli.offline || env_offline, limits };
    match cli.command {
        Command::Mod(ModCommand::Init(args)) => mod_init::run(args),
        Command::Mod(ModCommand::Vet(args)) => mod_vet::run(args, g),
        Command::Mod(ModCommand::Build(args)) => mod_build::build(ReleaseKind::Module, args, g),
        Command::Mod(ModCommand::Publish(args)) => mod_publish::run(args, g),
        Command::Mod(ModCommand::Sign(args)) => mod_sign::run(args, g),
        Command::Mod(ModCommand::Mirror(args)) => mod_mirror::run(args, g),
        Command::Mod(ModCommand::Get(args)) => mod_deps::get(args, g),
        Command::Mod(ModCommand::Tidy(args)) => mod_deps::tidy(args, g),
        Command::Mod(ModCommand::Update(args)) => mod_update::run(args, g),
        Command::Mod(ModCommand::Verify(args)) => mod_verify::run(args, g),
        Command::Mod(ModCommand::Download(args)) => mod_graph::download(args, g),
        Command::Mod(ModCommand::Graph(args)) => mod_graph::graph(args, g),
        Command::Mod(ModCommand::Why(args)) => mod_graph::why(args, g),
        Command::Bundle(BundleCommand::Vet(args)) => mod_build::vet(ReleaseKind::Bundle, args, g),
        Command::Bundle(BundleCommand::Build(args)) => mod_build::build(ReleaseKind::Bundle, args, g),
        Command::Apply(args) => deliver::apply(args, g),
        Command::Diff(args) => deliver::diff(args, g),
        Command::Status(args) => deliver::status(args, g),
        Command::Rollback(args) => deliver::rollback(args, g),
        Command::Delete(args) => deliver::delete(args, g),
        Command::Config(ConfigCommand::Show(args)) => config_show::run(args, g),
        Command::Registry(RegistryCommand::Check(args)) => registry_check::run(args, g),
        Command::Cache(command) => cache::run(command, g),
        Command::Version(args) => version::run(args),
        Command::Completion(args) => completion::run(args),
        Command::Man(args) => man::run(args),
    }
}

/// A failure whose result `--json` printed already: with JSON, only its
/// exit code is left to give.
pub(crate) fn after_json(json: bool, err: anyhow::Error) -> anyhow::Error {
    if json {
        Reported(exit_code(&err)).into()
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_take_units_and_compounds() {
        for (text, secs) in [("0", 0), ("90s", 90), ("90m", 5400), ("1h30m", 5400), ("2d", 172_800), ("2d12h", 216_000)] {
            assert_eq!(super::parse_duration(text), Ok(secs), "{text}");
        }
        for bad in ["1", "", "h", "1x", "1h30", "-1s", "1.5h"] {
            let err = super::parse_duration(bad).unwrap_err();
            assert!(err.contains("1h30m"), "{bad}: the accepted forms are named: {err}");
        }
    }
}
