//! opm's documented exit codes, and the one place kinds become codes.

use crate::cluster;
use crate::error::{Failure, Kind};
use crate::registry::{self, ErrorKind};
use crate::resolve::tidy;
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

/// The kind of any error: a [`Failure`]'s own, a registry error's by its
/// kind, a tidy check's `Outdated`, anything else `Other`.
pub fn kind_of(err: &anyhow::Error) -> Kind {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.kind;
        }
        if let Some(e) = cause.downcast_ref::<registry::Error>() {
            return match e.kind {
                ErrorKind::NotFound => Kind::NotFound,
                ErrorKind::Unauthorized | ErrorKind::Denied | ErrorKind::Credentials => Kind::Auth,
                // Rate limiting, like a registry that is down, passes.
                ErrorKind::Unreachable | ErrorKind::RateLimited => Kind::Unreachable,
                ErrorKind::Corrupt | ErrorKind::Conflict | ErrorKind::Limit | ErrorKind::Other => Kind::Other,
            };
        }
        if let Some(e) = cause.downcast_ref::<cluster::Error>() {
            return match e.kind {
                cluster::ErrorKind::Unreachable => Kind::Unreachable,
                cluster::ErrorKind::Unauthorized | cluster::ErrorKind::Forbidden => Kind::Auth,
                cluster::ErrorKind::NotFound => Kind::NotFound,
                cluster::ErrorKind::Invalid => Kind::Invalid,
                cluster::ErrorKind::Conflict | cluster::ErrorKind::Timeout | cluster::ErrorKind::Config | cluster::ErrorKind::Other => Kind::Other,
            };
        }
        if cause.is::<tidy::Untidy>() {
            return Kind::Outdated;
        }
    }
    Kind::Other
}

/// The exit code of any error, the one place where kinds become codes
/// (an outcome reported already keeps its own; a reader of the output
/// that went away is no failure).
pub fn exit_code(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(r) = cause.downcast_ref::<Reported>() {
            return r.0;
        }
        if cause.is::<crate::ui::ReaderGone>() {
            return Exit::Success;
        }
    }
    match kind_of(err) {
        Kind::Other => Exit::General,
        Kind::Invalid => Exit::Invalid,
        Kind::Unreachable => Exit::Unreachable,
        Kind::Auth => Exit::Auth,
        Kind::NotFound => Exit::NotFound,
        Kind::Outdated => Exit::Outdated,
        Kind::Integrity => Exit::Integrity,
        Kind::Untrusted => Exit::Untrusted,
    }
}
