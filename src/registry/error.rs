//! What can go wrong with a registry, as kinds that callers branch on
//! (never on exit codes or message text).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The module, version, tag, blob or repository does not exist.
    NotFound,
    /// The registry wants credentials, or rejected the ones given.
    Unauthorized,
    /// The credentials are valid but lack permission.
    Denied,
    /// Credentials could not be read (Docker config, credential helper).
    Credentials,
    /// No connection, a timeout, an untrusted certificate.
    Unreachable,
    /// 429 after every retry.
    RateLimited,
    /// What arrived is not what was asked for: a digest mismatch, an
    /// artifact that is not a CUE module.
    Corrupt,
    /// The version exists with other content (versions are immutable).
    Conflict,
    /// The registry sent more than opm accepts (a manifest over 4 MiB, a
    /// tag list that never ends).
    Limit,
    /// Any other answer.
    Other,
}

/// A registry failure: its kind and one line for a person.
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

/// The kind of the registry error behind `err`, if a registry failed.
pub fn kind_of(err: &anyhow::Error) -> Option<ErrorKind> {
    err.chain().find_map(|e| e.downcast_ref::<Error>()).map(|e| e.kind)
}
