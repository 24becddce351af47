//! The error a person reads, and its kind.
//!
//! Any failure that a user can act on is a [`Failure`]: one line with the
//! cause and, where there is one, the fix, and its [`Kind`]. Registry and
//! CUE errors carry kinds of their own; `cli::exit_code` maps every kind
//! to its exit code, in one place.

use std::fmt;

/// What kind of failure an error is. Every layer says which; cli/ alone
/// turns kinds into exit codes (`cli::exit_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Usage errors and anything not listed below.
    Other,
    /// CUE validation failed: the module or values are invalid.
    Invalid,
    /// A registry could not be reached.
    Unreachable,
    /// A registry rejected the credentials or denied access.
    Auth,
    /// A module, version or repository does not exist.
    NotFound,
    /// `--check` found work to do: updates available, module not tidy.
    Outdated,
    /// A module's content differs from what cue.mod/opm.sum records.
    Integrity,
    /// A module version fails the signature policy (config `verify:`).
    Untrusted,
}

/// An error meant for the person at the terminal.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
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

/// Builds an `anyhow::Error` of `kind`.
pub fn fail(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    Failure { kind, message: message.into(), diagnostics: Vec::new() }.into()
}

impl From<crate::cue::Error> for Failure {
    fn from(err: crate::cue::Error) -> Self {
        use crate::cue::ErrorKind;
        let kind = match err.kind {
            ErrorKind::Invalid => Kind::Invalid,
            ErrorKind::Usage | ErrorKind::Io | ErrorKind::Internal => Kind::Other,
        };
        Failure { kind, message: err.message, diagnostics: err.errors }
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

/// The kind of the [`Failure`] in the chain of `err`, when there is one.
pub fn failure_kind(err: &anyhow::Error) -> Option<Kind> {
    err.chain().find_map(|c| c.downcast_ref::<Failure>()).map(|f| f.kind)
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
