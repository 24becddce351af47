use clap::CommandFactory;
use clap_complete::Shell;

const EXAMPLES: &str = "\
Examples:
  mkdir -p ~/.local/share/bash-completion/completions
  opm completion bash > ~/.local/share/bash-completion/completions/opm
  mkdir -p ~/.zfunc && opm completion zsh > ~/.zfunc/_opm   # fpath=(~/.zfunc $fpath) in ~/.zshrc
  mkdir -p ~/.config/fish/completions
  opm completion fish > ~/.config/fish/completions/opm.fish";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The shell to generate completions for
    shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "opm", &mut script);
    crate::ui::write_stdout(&String::from_utf8_lossy(&script))
}
