//! Exit codes and the error a person reads.
//!
//! Any failure that a user can act on is a [`Failure`]: one line with the
//! cause and, where there is one, the fix. Registry and CUE errors carry
//! kinds of their own; `cli::exit_code` maps every kind to its code in one
//! place.

use std::fmt;

/// opm's documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// Usage errors and anything not listed below.
    General = 1,
    /// CUE validation failed: the module or values are invalid.
    Invalid = 2,
    /// A registry could not be reached.
    Unreachable = 3,
    /// A registry rejected the credentials or denied access.
    Auth = 4,
    /// A module, version or repository does not exist.
    NotFound = 5,
    /// `--check` found work to do: updates available, module not tidy.
    Outdated = 6,
    /// A module's content differs from what cue.mod/opm.sum records.
    Integrity = 7,
    /// A module version fails the signature policy (config `verify:`).
    Untrusted = 8,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind of failure, as `--json` errors name it.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::General => "error",
            Exit::Invalid => "invalid",
            Exit::Unreachable => "unreachable",
            Exit::Auth => "auth",
            Exit::NotFound => "not-found",
            Exit::Outdated => "outdated",
            Exit::Integrity => "integrity",
            Exit::Untrusted => "untrusted",
        }
    }
}

/// An error meant for the person at the terminal.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    /// CUE errors behind the failure, printed before the message as `cue`
    /// prints them. Their file names are absolute.
    pub diagnostics: Vec<crate::cue::Diagnostic>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Builds an `anyhow::Error` that exits with `exit`.
pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    Failure { exit, message: message.into(), diagnostics: Vec::new() }.into()
}

/// An outcome that has been reported already (or needs no report): the
/// process ends with its code and prints nothing more. A closed stdout
/// (`opm mod build | head`) is one.
#[derive(Debug)]
pub struct Reported(pub Exit);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reported (exit {})", self.0.code())
    }
}

impl std::error::Error for Reported {}

impl From<crate::cue::Error> for Failure {
    fn from(err: crate::cue::Error) -> Self {
        use crate::cue::ErrorKind;
        let exit = match err.kind {
            ErrorKind::Invalid => Exit::Invalid,
            ErrorKind::Usage | ErrorKind::Io | ErrorKind::Internal => Exit::General,
        };
        Failure { exit, message: err.message, diagnostics: err.errors }
    }
}

impl Failure {
    /// Replaces the message with a summary such as "3 errors in ./app",
    /// keeping the diagnostics.
    pub fn summarize(mut self, place: &str) -> Self {
        if !self.diagnostics.is_empty() {
            self.message = format!("{} in {place}", count(self.diagnostics.len(), "error"));
        }
        self
    }
}

/// The exit code a [`Failure`] in the chain of `err` carries.
pub fn exit_of(err: &anyhow::Error) -> Option<Exit> {
    err.chain().find_map(|c| c.downcast_ref::<Failure>()).map(|f| f.exit)
}

/// `1 error`, `3 errors`, `2 dependencies`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        return format!("{n} {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_read_as_english() {
        assert_eq!(super::count(1, "dependency"), "1 dependency");
        assert_eq!(super::count(2, "dependency"), "2 dependencies");
        assert_eq!(super::count(0, "error"), "0 errors");
        assert_eq!(super::count(3, "key"), "3 keys");
    }
}
