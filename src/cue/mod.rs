//! A safe, typed API over go-shim, which links cuelang.org/go.
//!
//! Every operation is a JSON request and a JSON response; this module turns
//! them into Rust types. Nothing outside `src/cue/` sees a raw pointer.

mod ffi;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A place in a CUE file. `file` is relative to the module root (slash
/// separated) when the file lies inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

/// One CUE error: its text as `cue` prints it, and every position it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub message: String,
    pub positions: Vec<Position>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// CUE rejected the input (syntax, conflicts, imports).
    Invalid,
    /// The request does not apply (bad module path and the like).
    Usage,
    /// A file could not be read.
    Io,
    /// A bug in the shim, including a recovered Go panic.
    Internal,
}

/// A failed shim operation.
#[derive(Debug, Clone, Deserialize)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default)]
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[derive(Deserialize)]
struct Response<T> {
    ok: Option<T>,
    error: Option<Error>,
}

fn call<Req: Serialize, Res: DeserializeOwned>(op: &str, request: &Req) -> Result<Res, Error> {
    let internal = |message: String| Error {
        kind: ErrorKind::Internal,
        message,
        errors: vec![],
    };
    let body =
        serde_json::to_vec(request).map_err(|e| internal(format!("encoding {op} request: {e}")))?;
    let raw = ffi::call(op, &body);
    let response: Response<Res> = serde_json::from_slice(&raw)
        .map_err(|e| internal(format!("decoding {op} response: {e}")))?;
    match (response.ok, response.error) {
        (_, Some(err)) => Err(err),
        (Some(ok), None) => Ok(ok),
        (None, None) => Err(internal(format!("{op}: empty response from the CUE shim"))),
    }
}

/// Versions compiled into the binary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The cuelang.org/go module version linked in.
    pub cue_version: String,
    /// The Go toolchain that built the shim.
    pub go_version: String,
    /// The CUE language version new modules declare.
    pub language_version: String,
}

pub fn version() -> Result<VersionInfo, Error> {
    call("version", &serde_json::json!({}))
}

/// What `opm mod vet` asks of CUE.
#[derive(Debug, Clone, Serialize)]
pub struct VetRequest<'a> {
    /// The module root (absolute).
    pub dir: &'a Path,
    /// Directory that error messages are relative to, as in `cue`.
    pub cwd: &'a Path,
    /// The CUE cache that dependencies are read from (never the network).
    pub cache_dir: &'a Path,
    pub concrete: bool,
    /// `key=value` tag injections (`-t`).
    pub tags: &'a [String],
}

/// The outcome of vetting a module: the packages loaded and every error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VetReport {
    pub packages: Vec<String>,
    pub errors: Vec<Diagnostic>,
}

/// Loads every package of a module and validates it as `cue vet` does.
pub fn vet(request: &VetRequest<'_>) -> Result<VetReport, Error> {
    call("vet", request)
}

/// The `cue.mod/module.cue` text that `cue mod init --source KIND MODULE`
/// writes. Rejects an invalid module path with CUE's reason.
pub fn init_module_file(module: &str, source_kind: Option<&str>) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Init {
        content: String,
    }
    let request = serde_json::json!({ "module": module, "source_kind": source_kind.unwrap_or("") });
    call::<_, Init>("modfile.init", &request).map(|r| r.content)
}

/// Makes the shim panic, to prove that a Go panic comes back as an error
/// and the process carries on. Used by tests only.
#[doc(hidden)]
pub fn selftest_panic() -> Result<(), Error> {
    call::<_, serde_json::Value>("selftest.panic", &serde_json::json!({})).map(|_| ())
}
