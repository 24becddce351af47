//! What can go wrong with a cluster, as kinds that callers branch on
//! (cli/exit.rs maps them to exit codes, in one place).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection, a timeout, an untrusted certificate, a 5xx.
    Unreachable,
    /// The apiserver rejected the credentials (401), or none could be
    /// found or made (kubeconfig, exec plugin).
    Unauthorized,
    /// The credentials lack a permission (403).
    Forbidden,
    /// Another field manager owns a field (409 on apply).
    Conflict,
    /// The apiserver refused an object (422, 400): a bad field, an
    /// immutable field changed.
    Invalid,
    /// The object, kind or namespace does not exist.
    NotFound,
    /// A wait ran past `--timeout`.
    Timeout,
    /// The kubeconfig is unreadable or names what it does not hold.
    Config,
    /// Any other answer.
    Other,
}

/// A cluster failure: its kind and one line for a person.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
