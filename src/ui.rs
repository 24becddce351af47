//! Everything opm prints for people: colours (never with NO_COLOR or off a
//! terminal), error lines and CUE diagnostics, and `--json` output.

use crate::cue::Diagnostic;
use crate::error::{fail, Kind};
use crate::files::display_path;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// When to colour: `--color auto|always|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

static COLOR: AtomicU8 = AtomicU8::new(0);
static QUIET: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// The output settings of this process, set once from the command line.
pub fn configure(color: Color, quiet: bool, verbose: bool) {
    COLOR.store(color as u8, Ordering::Relaxed);
    QUIET.store(quiet, Ordering::Relaxed);
    VERBOSE.store(verbose, Ordering::Relaxed);
}

pub fn is_verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// A line of detail for `--verbose`: registry requests, credential sources.
pub fn verbose(message: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("{} {message}", paint("2", "opm:"));
    }
}

/// Whether stderr gets ANSI colours: `--color always`, or `auto` (the
/// default) on a terminal with NO_COLOR unset.
pub fn color_stderr() -> bool {
    match COLOR.load(Ordering::Relaxed) {
        x if x == Color::Always as u8 => true,
        x if x == Color::Never as u8 => false,
        _ => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal(),
    }
}

fn paint(code: &str, text: &str) -> String {
    if color_stderr() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `error: MESSAGE`, the one line every failure ends with.
pub fn print_error(message: &str) {
    eprintln!("{} {message}", paint("1;31", "error:"));
}

/// A success or status line on stderr, so stdout stays for data; none
/// with `--quiet`.
pub fn print_status(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{message}");
    }
}

/// Prints CUE diagnostics exactly as the `cue` CLI does: the message, and
/// when it has positions a colon and one indented `file:line:col` each,
/// paths relative to `cwd`. `root` is what position files are relative to.
pub fn print_diagnostics(diagnostics: &[Diagnostic], root: &Path, cwd: &Path) {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.message);
        if d.positions.is_empty() {
            out.push('\n');
            continue;
        }
        out.push_str(":\n");
        for p in &d.positions {
            let file = if p.file.is_empty() {
                String::new()
            } else {
                let abs = root.join(&p.file);
                in_cache(&abs).unwrap_or_else(|| display_path(cwd, &abs))
            };
            match (p.line, file.is_empty()) {
                (0, _) => out.push_str(&format!("    {file}\n")),
                (_, true) => out.push_str(&format!("    {}:{}\n", p.line, p.column)),
                (_, false) => out.push_str(&format!("    {file}:{}:{}\n", p.line, p.column)),
            }
        }
    }
    eprint!("{out}");
}

/// A file of a module in the CUE cache as `module@version:file`
/// (`opmodel.dev/core@v0.1.0:release.cue`) rather than a path into it.
fn in_cache(path: &Path) -> Option<String> {
    let text = path.to_string_lossy();
    let (_, rest) = text.split_once("/mod/extract/")?;
    let at = rest.find('@')?;
    let slash = at + rest[at..].find('/')?;
    Some(format!("{}:{}", &rest[..slash], &rest[slash + 1..]))
}

/// Asks a yes/no question on the terminal and reads a whole line (Enter
/// required, so nothing typed leaks into the shell); only `y` or `yes`
/// mean yes. Nothing about the terminal is changed, so there is nothing to
/// restore when the user presses Ctrl-C.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    drop(err);
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line)? == 0 {
        eprintln!();
        return Ok(false);
    }
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// A secret typed on the terminal without echo (a key's password); None
/// when there is no terminal to ask on.
pub fn secret(prompt: &str) -> anyhow::Result<Option<String>> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    rpassword::prompt_password(prompt).map(Some).map_err(|e| fail(Kind::Other, format!("cannot read the password from the terminal: {e}")))
}

/// Writes `value` as pretty JSON on stdout, for scripts.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    write_stdout(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// The reader of stdout went away: the command ends quietly, with success.
#[derive(Debug)]
pub struct ReaderGone;

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader of the output went away")
    }
}

impl std::error::Error for ReaderGone {}

/// Writes to stdout. A reader that went away (`opm mod build | head`) ends
/// the command quietly; any other failure is an error, never a panic.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ReaderGone.into()),
        Err(e) => Err(crate::error::fail(crate::error::Kind::Other, format!("cannot write the output: {e}"))),
    }
}

/// A spinner with a message on stderr while work of unknown length runs
/// (resolving, listing versions); drawn only on a terminal. Clears itself
/// when dropped.
pub struct Spinner(indicatif::ProgressBar);

pub fn spinner(message: &str) -> Spinner {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("a valid spinner template"));
    bar.set_message(message.to_string());
    bar.tick(); // drawn at once, however short the work
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Spinner(bar)
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A progress bar of bytes on stderr, drawn only when stderr is a terminal.
pub fn progress_bytes(total: u64, message: &str) -> indicatif::ProgressBar {
    progress(total, message, "{msg} [{bar:30}] {bytes}/{total_bytes}")
}

/// A progress bar counting items on stderr, drawn only on a terminal.
pub fn progress_count(total: u64, message: &str) -> indicatif::ProgressBar {
    progress(total, message, "{msg} [{bar:30}] {pos}/{len}")
}

fn progress(total: u64, message: &str, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(template).expect("a valid progress template").progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}
