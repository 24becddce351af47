//! A safe, typed API over go-shim, which links cuelang.org/go.
//!
//! Every operation is a JSON request and a JSON response; this module turns
//! them into Rust types. Nothing outside `src/cue/` sees a raw pointer.

mod ffi;
pub mod interrupt;

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

/// Where the shim remembers CUE's parses of dependency module files, and
/// what tells this binary's parses from another's (go-shim/memo.go).
static MEMO: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();

/// Has the shim remember its parses of dependency module files in `dir`,
/// keyed with `salt` (the binary's identity). Costs nothing until the
/// first request: a command that never calls CUE never starts it.
pub fn remember_parses_in(dir: &std::path::Path, salt: &str) {
    let _ = MEMO.set(serde_json::json!({ "dir": dir, "salt": salt }));
}

fn call<Req: Serialize, Res: DeserializeOwned>(op: &str, request: &Req) -> Result<Res, Error> {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        if let Some(memo) = MEMO.get() {
            ffi::call("memo.configure", &serde_json::to_vec(memo).unwrap_or_default());
        }
    });
    let internal = |message: String| Error { kind: ErrorKind::Internal, message, errors: vec![] };
    let body = serde_json::to_vec(request).map_err(|e| internal(format!("encoding {op} request: {e}")))?;
    let raw = ffi::call(op, &body);
    let response: Response<Res> = serde_json::from_slice(&raw).map_err(|e| internal(format!("decoding {op} response: {e}")))?;
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
/// writes, with `deps` (module path with major, version) added. Rejects an
/// invalid module path with CUE's reason.
pub fn init_module_file(module: &str, source_kind: Option<&str>, deps: &[(&str, &str)]) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Init {
        content: String,
    }
    let deps: std::collections::BTreeMap<_, _> = deps.iter().copied().collect();
    let request = serde_json::json!({ "module": module, "source_kind": source_kind.unwrap_or(""), "deps": deps });
    call::<_, Init>("modfile.init", &request).map(|r| r.content)
}

/// The package at `dir` as `cue export` renders it, as JSON (its
/// dependencies in the cache).
pub fn export(dir: &Path, cwd: &Path, cache_dir: &Path) -> Result<serde_json::Value, Error> {
    call("package.export", &serde_json::json!({ "dir": dir, "cwd": cwd, "cache_dir": cache_dir }))
}

/// The concrete string at `path` (e.g. `module.metadata.version`) in the
/// package at `dir`, its dependencies in the cache; None when the package
/// does not evaluate or the value is not a concrete string.
pub fn lookup_string(dir: &Path, cache_dir: &Path, path: &str) -> Result<Option<String>, Error> {
    #[derive(Deserialize)]
    struct Found {
        found: bool,
        value: String,
    }
    let found: Found = call("package.lookup", &serde_json::json!({ "dir": dir, "cache_dir": cache_dir, "path": path }))?;
    Ok(found.found.then_some(found.value))
}

/// Checks a module path as cue does: with its major version
/// (`example.com/x@v1`) or without (`example.com/x`, a prefix). The error
/// is cue's reason (`invalid path element ".."`, ...).
pub fn check_module_path(path: &str) -> Result<(), Error> {
    call::<_, serde_json::Value>("module.check", &serde_json::json!({ "path": path })).map(drop)
}

/// Makes the shim panic, to prove that a Go panic comes back as an error
/// and the process carries on. Used by tests only.
#[doc(hidden)]
pub fn selftest_panic() -> Result<(), Error> {
    call::<_, serde_json::Value>("selftest.panic", &serde_json::json!({})).map(|_| ())
}

/// A module file as CUE parses it: the one model opm has of module.cue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleFile {
    /// The module path with its major version, e.g. `example.com/app@v0`.
    pub module: String,
    pub language: String,
    #[serde(default)]
    pub source_kind: Option<String>,
    /// Sorted as cue sorts them (path, then version).
    pub deps: Vec<Dep>,
    /// Explicit default major versions by base path, the module's own included.
    #[serde(default)]
    pub defaults: std::collections::BTreeMap<String, String>,
}

/// One dependency of a module file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dep {
    /// The module path with its major version.
    pub path: String,
    #[serde(rename = "v")]
    pub version: String,
    #[serde(default)]
    pub default: bool,
    /// A local directory that replaces the module (cue.mod/local-module.cue).
    #[serde(default)]
    pub replace_with: String,
}

/// Parses the module file of the module at `root` strictly, as cue does,
/// with cue.mod/local-module.cue applied.
pub fn load_module_file(root: &Path) -> Result<ModuleFile, Error> {
    call("modfile.load", &serde_json::json!({ "root": root }))
}

/// Parses a module file: `strict` as cue reads a dependency's, else as it
/// reads the main module's.
pub fn parse_module_file(data: &str, filename: &str, strict: bool) -> Result<ModuleFile, Error> {
    call("modfile.parse", &serde_json::json!({ "data": data, "filename": filename, "strict": strict }))
}

/// Parses the module file of a dependency, as cue reads it (strictly),
/// remembered by digest where [`remember_parses_in`] says; a remembered
/// parse counts only if it declares `module` (path with its major).
pub fn parse_dependency_file(data: &str, filename: &str, module: &str) -> Result<ModuleFile, Error> {
    call("modfile.parse", &serde_json::json!({ "data": data, "filename": filename, "strict": true, "module": module }))
}

/// The module (with its major version) a module file declares, the rest
/// of it unread: whose module a download is.
pub fn declared_module(data: &str, filename: &str) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Declared {
        module: String,
    }
    let declared: Declared = call("modfile.parse", &serde_json::json!({ "data": data, "filename": filename, "declared": true }))?;
    Ok(declared.module)
}

/// The two views `cue mod tidy` resolves: module.cue (read leniently) and
/// the main-module view of cue.mod/local-module.cue, with module.cue's own
/// replaceWith entries folded in (None when no replacement is left).
#[derive(Debug, Clone, Deserialize)]
pub struct TidyViews {
    pub module: ModuleFile,
    pub local: Option<ModuleFile>,
    /// Whether cue.mod/local-module.cue exists.
    pub local_exists: bool,
}

pub fn tidy_views(root: &Path) -> Result<TidyViews, Error> {
    call("modfile.views", &serde_json::json!({ "root": root }))
}

/// cue.mod/local-module.cue with `deps`, as cue's tidy writes it next to
/// the module.cue text `module` (what equals module.cue is left out).
pub fn format_local_module_file(module: &str, deps: &[Dep]) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Formatted {
        content: String,
    }
    call::<_, Formatted>("modfile.local", &serde_json::json!({ "module": module, "deps": deps })).map(|f| f.content)
}

#[derive(Serialize)]
struct ZipRequest<'a> {
    module: &'a str,
    version: &'a str,
    dir: &'a Path,
    zip: &'a Path,
}

/// Checks a module zip with CUE's rules and extracts it into `dir`, which
/// must be absent or empty.
pub fn unzip(module: &str, version: &str, zip: &Path, dir: &Path) -> Result<(), Error> {
    call::<_, serde_json::Value>("zip.unzip", &ZipRequest { module, version, dir, zip }).map(|_| ())
}

/// The files of an extracted module `dir` that differ from its zip:
/// changed, missing, or not in the zip.
pub fn zip_differences(module: &str, version: &str, zip: &Path, dir: &Path) -> Result<Vec<String>, Error> {
    call("zip.compare", &ZipRequest { module, version, dir, zip })
}

/// What `opm mod build` and `opm bundle build` ask of CUE.
#[derive(Debug, Clone, Serialize)]
pub struct RenderRequest<'a> {
    /// The package directory (absolute).
    pub dir: &'a Path,
    pub cwd: &'a Path,
    pub cache_dir: &'a Path,
    pub tags: &'a [String],
    pub kind: ReleaseKind,
    /// The release name; empty means the module's `metadata.name`.
    pub name: &'a str,
    pub namespace: &'a str,
    /// Values files (.cue, .yaml, .json), unified in order.
    pub values_files: &'a [std::path::PathBuf],
    pub encoding: Encoding,
}

/// How rendered objects are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Multi-document YAML, as `cue export --out yaml` writes each object
    Yaml,
    /// A JSON list of the objects
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseKind {
    Module,
    Bundle,
}

/// One rendered Kubernetes object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// YAML exactly as `cue export --out yaml` writes the object, or pretty
    /// JSON indented as an element of a top-level list.
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rendered {
    pub package: String,
    /// The release name used.
    pub name: String,
    pub objects: Vec<Object>,
    /// The release's modules, as their metadata names them.
    #[serde(default)]
    pub modules: Vec<ReleaseModule>,
}

/// A module of a release: its name (the `app.kubernetes.io/part-of` label
/// of its objects), where it comes from (its metadata.apiVersion, usually
/// the CUE module path) and its version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseModule {
    pub name: String,
    pub api_version: String,
    pub version: String,
}

/// Evaluates the release of a module or bundle and returns its objects in
/// the order CUE produced them.
pub fn render(request: &RenderRequest<'_>) -> Result<Rendered, Error> {
    call("render", request)
}

/// Where a module version lives in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// `host` or `host:port`.
    pub host: String,
    pub repository: String,
    /// Empty when no version was asked for.
    pub tag: String,
    pub insecure: bool,
}

/// Routes module versions to registry locations with CUE's own resolver,
/// for a CUE_REGISTRY value (empty: cue's default registry). `modules` are
/// (module path with major version, version or "") pairs. None: the
/// configuration routes that module to no registry (`none`).
pub fn resolve(registry: &str, modules: &[(&str, &str)]) -> Result<Vec<Option<Location>>, Error> {
    #[derive(Deserialize)]
    struct Route {
        #[serde(default)]
        none: bool,
        #[serde(default)]
        host: String,
        #[serde(default)]
        repository: String,
        #[serde(default)]
        tag: String,
        #[serde(default)]
        insecure: bool,
    }
    let modules: Vec<_> = modules.iter().map(|(module, version)| serde_json::json!({ "module": module, "version": version })).collect();
    let routes: Vec<Route> = call("registry.resolve", &serde_json::json!({ "registry": registry, "modules": modules }))?;
    Ok(routes.into_iter().map(|r| (!r.none).then_some(Location { host: r.host, repository: r.repository, tag: r.tag, insecure: r.insecure })).collect())
}

/// One file to pack: its path in the zip and on disk.
#[derive(Debug, Clone, Serialize)]
pub struct PackFile {
    pub path: String,
    pub abs: std::path::PathBuf,
}

/// The commit a git-sourced module is published from.
#[derive(Debug, Clone, Serialize)]
pub struct Vcs {
    #[serde(rename = "type")]
    pub kind: String,
    pub commit: String,
    /// Unix seconds.
    pub commit_time: i64,
}

/// What to pack: `files`, as `module@version`, into `zip`.
#[derive(Debug, Clone, Serialize)]
pub struct PackRequest<'a> {
    pub module: &'a str,
    pub version: &'a str,
    pub zip: &'a Path,
    /// In zip order: the module's files as `files::module_files` walks
    /// them, or a VCS source's tracked files.
    pub files: &'a [PackFile],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcs: Option<Vcs>,
}

/// A content descriptor in an OCI manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// A packed module: its zip (written to the requested path), module file
/// and the manifest bytes exactly as `cue mod publish` pushes them.
#[derive(Debug, Clone, Deserialize)]
pub struct Packed {
    pub config: Blob,
    pub zip: Blob,
    pub module_file: Blob,
    pub module_file_data: String,
    pub manifest: String,
    pub manifest_digest: String,
    pub files: usize,
}

/// Builds and checks a module's zip and manifest with CUE's own code.
pub fn pack(request: &PackRequest<'_>) -> Result<Packed, Error> {
    call("module.pack", request)
}

/// One dependency as module.cue records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepEntry {
    pub path: String,
    #[serde(rename = "v")]
    pub version: String,
    pub default: bool,
}

/// module.cue with its deps replaced, formatted as `cue mod tidy` writes it.
pub fn update_module_file(data: &str, filename: &str, deps: &[DepEntry]) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Updated {
        content: String,
    }
    call::<_, Updated>("modfile.update", &serde_json::json!({ "data": data, "filename": filename, "deps": deps })).map(|u| u.content)
}

/// The canonical imports of the main module's CUE sources (see
/// `files::cue_sources`), as `cue mod tidy` collects them (sorted,
/// deduplicated; files marked @ignore() left out).
pub fn main_imports(files: &[std::path::PathBuf]) -> Result<Vec<String>, Error> {
    call("imports.main", &serde_json::json!({ "files": files }))
}

/// What the files of one package import.
#[derive(Debug, Clone, Deserialize)]
pub struct PackageImports {
    pub included: usize,
    pub excluded: usize,
    pub imports: Vec<String>,
}

/// Reads the package `qualifier` in `dir` as cue's module loader does.
pub fn package_imports(dir: &Path, qualifier: &str, main: bool) -> Result<PackageImports, Error> {
    call("imports.package", &serde_json::json!({ "dir": dir, "qualifier": qualifier, "main": main }))
}

/// One import declaration of a file: its path and the byte range of the
/// quoted literal.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportSpec {
    pub path: String,
    pub start: usize,
    pub end: usize,
}

/// The import declarations of a CUE file, found by CUE's parser.
pub fn import_specs(file: &Path) -> Result<Vec<ImportSpec>, Error> {
    call("imports.specs", &serde_json::json!({ "file": file }))
}
