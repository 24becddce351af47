//! Exit codes and the error type that carries one.
//!
//! Any failure that a user can act on is a [`Failure`]: one line with the
//! cause and, where there is one, the fix. Everything else exits 1.

use std::fmt;

/// opm's documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
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
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
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
    Failure {
        exit,
        message: message.into(),
        diagnostics: Vec::new(),
    }
    .into()
}

/// The exit code for any error: a [`Failure`]'s own, else 1.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map_or(Exit::General, |f| f.exit)
}

impl From<crate::cue::Error> for Failure {
    fn from(err: crate::cue::Error) -> Self {
        use crate::cue::ErrorKind;
        let exit = match err.kind {
            ErrorKind::Invalid => Exit::Invalid,
            ErrorKind::Usage | ErrorKind::Io | ErrorKind::Internal => Exit::General,
        };
        Failure {
            exit,
            message: err.message,
            diagnostics: err.errors,
        }
    }
}

impl Failure {
    /// Replaces the message with a summary such as "3 errors in ./app",
    /// keeping the diagnostics.
    pub fn summarize(mut self, place: &str) -> Self {
        if !self.diagnostics.is_empty() {
            let n = self.diagnostics.len();
            self.message = format!("{n} error{} in {place}", if n == 1 { "" } else { "s" });
        }
        self
    }
}
