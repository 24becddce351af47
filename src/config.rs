//! Registry routing: `~/.opm/config.yaml` (or `$OPM_CONFIG`) translated to
//! a CUE registry configuration, so that CUE's own resolver routes modules.
//!
//! ```yaml
//! registries:
//!   opmodel.dev:
//!     url: registry.opm.dev
//!   company.internal:
//!     url: harbor.internal/modules
//!     insecure: true
//!   "*": localhost:5000        # the catch-all (else cue's default)
//! verify:                      # the signature policy (see trust.rs)
//!   company.internal:
//!     keys: [keys/platform.pub]
//! ```
//!
//! `CUE_REGISTRY` in the environment, when set, wins over the file's
//! routing (not over its policy).

use crate::cue;
use crate::error::{fail, Exit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The key of the catch-all entry.
pub const CATCH_ALL: &str = "*";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// `PREFIX: URL` or `PREFIX: {url: URL, insecure: BOOL}`.
    #[serde(default)]
    registries: BTreeMap<String, serde_yaml::Value>,
    /// `PREFIX: {keys: [PATH, ...]}`: the signature policy.
    #[serde(default)]
    verify: BTreeMap<String, serde_yaml::Value>,
}

/// A signature policy entry: every module under `prefix` must be signed by
/// one of `keys` (cosign public key files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRule {
    pub prefix: String,
    pub keys: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub url: String,
    /// Plain HTTP (true) or HTTPS (false); unset: cue's default, which is
    /// plain HTTP for localhost, 127.0.0.1 and [::1] only.
    #[serde(default)]
    pub insecure: Option<bool>,
}

/// Where the routing comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// The CUE_REGISTRY environment variable.
    Environment,
    File { path: PathBuf },
    /// Neither: cue's default registry.
    Default,
}

/// The routing in effect: a CUE_REGISTRY value and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Routing {
    pub source: Source,
    /// The CUE registry configuration ("" means cue's default registry).
    pub cue_registry: String,
}

impl Routing {
    /// The routing for this process: CUE_REGISTRY, else the config file,
    /// else cue's default.
    pub fn load() -> anyhow::Result<Routing> {
        if let Some(value) = std::env::var_os("CUE_REGISTRY").filter(|v| !v.is_empty()) {
            return Ok(Routing {
                source: Source::Environment,
                cue_registry: value.to_string_lossy().into_owned(),
            });
        }
        let path = config_path();
        match read(&path)? {
            Some(text) => Ok(Routing {
                cue_registry: translate(&text, &path)?,
                source: Source::File { path },
            }),
            None => Ok(Routing { source: Source::Default, cue_registry: String::new() }),
        }
    }

    /// The registry location of a module version (version "" for the
    /// repository only), as cue resolves it; None when the configuration
    /// routes it to no registry (`none`).
    pub fn resolve(&self, module: &str, version: &str) -> anyhow::Result<Option<cue::Location>> {
        let mut locations = cue::resolve(&self.cue_registry, &[(module, version)])
            .map_err(crate::error::Failure::from)?;
        Ok(locations.remove(0))
    }
}

/// `$OPM_CONFIG`, else `~/.opm/config.yaml`.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("OPM_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".opm/config.yaml")
}

/// Translates a config file to a CUE registry configuration: one
/// `prefix=host/repo[+insecure]` per entry, longest prefix first, the
/// catch-all last. Each entry is checked with CUE's own parser, and an
/// error names the file and line.
pub fn translate(text: &str, path: &Path) -> anyhow::Result<String> {
    let file = parse(text, path)?;
    let line_of = |prefix: &str| line_of(text, prefix);
    let invalid = |line: Option<usize>, why: String| invalid(path, line, why);

    let mut entries = Vec::new();
    for (prefix, entry) in file.registries {
        let refuse_userinfo = |url: &str| {
            let authority = url.split("://").last().unwrap_or(url).split('/').next().unwrap_or("");
            if authority.contains('@') {
                return Err(invalid(
                    line_of(&prefix),
                    format!("registries.{prefix}: the URL carries a user name and password: remove them, and put credentials in the Docker config instead (docker login HOST)"),
                ));
            }
            Ok(())
        };
        let registry = match entry {
            serde_yaml::Value::String(url) => Registry { url, insecure: None },
            other => serde_yaml::from_value::<Registry>(other).map_err(|e| {
                // The line of the field at fault (serde names it between
                // backticks: `uri`), below its prefix; else the prefix's.
                let why = e.to_string();
                let field = why.split('`').nth(1).unwrap_or("");
                let start = line_of(&prefix).unwrap_or(1);
                let at = (!field.is_empty())
                    .then(|| text.lines().enumerate().skip(start).find(|(_, l)| l.trim_start().starts_with(&format!("{field}:"))).map(|(i, _)| i + 1))
                    .flatten()
                    .or(Some(start));
                invalid(at, format!("registries.{prefix}: {why} (write `url: HOST[/PREFIX]` and optionally `insecure: true`)"))
            })?,
        };
        refuse_userinfo(&registry.url)?;
        entries.push((prefix, registry));
    }
    // Longest prefix first; the catch-all ("*", or no prefix) last.
    entries.sort_by_key(|(prefix, _)| (prefix == CATCH_ALL, std::cmp::Reverse(prefix.len()), prefix.clone()));
    let mut parts = Vec::new();
    for (prefix, registry) in &entries {
        let part = cue_entry(prefix, registry);
        if let Err(e) = cue::resolve(&part, &[]) {
            return Err(invalid(line_of(prefix), format!("registries.{prefix:?}: {}", redact(&e.message))));
        }
        parts.push(part);
    }
    Ok(parts.join(","))
}

/// `text` with the userinfo of every registry address masked
/// (`u:PW@host` -> `***@host`), for anything opm prints. An `@` followed by a
/// version (`example.com/x@v1`, `@vX.Y.Z`) is a module path's and stays.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut segment_start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, ',' | '=' | '"' | '\'' | ' ' | '(' | '\n' | '/' | '<' | '[') {
            out.push_str(&text[segment_start..=i]);
            segment_start = i + 1;
        } else if c == '@' {
            let rest = &text[i + 1..];
            // `@v1`, `@v0.2.0`, `@vX.Y.Z`: a module's version, not a host.
            let is_major = rest.starts_with('v') && rest[1..].starts_with(|d: char| d.is_ascii_digit() || d == 'X' || d == 'N');
            if is_major {
                out.push_str(&text[segment_start..=i]);
            } else {
                // Userinfo: masked.
                out.push_str("***@");
            }
            segment_start = i + 1;
        }
    }
    out.push_str(&text[segment_start..]);
    out
}

/// The config file's first line that mentions `what`.
fn line_of(text: &str, what: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(what)).map(|i| i + 1)
}

fn invalid(path: &Path, line: Option<usize>, why: String) -> anyhow::Error {
    let at = line.map_or(String::new(), |l| format!(" line {l}"));
    fail(Exit::General, format!("invalid registry configuration {}{at}: {why}", path.display()))
}

/// The largest config file opm reads, and its deepest nesting: a real one
/// is a few hundred bytes and four levels deep.
const MAX_CONFIG: u64 = 256 << 10;
const MAX_DEPTH: usize = 32;

/// The config file's text; None when there is none.
fn read(path: &Path) -> anyhow::Result<Option<String>> {
    let cannot = |e: std::io::Error| fail(Exit::General, format!("cannot read {}: {e}", path.display()));
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_CONFIG => {
            Err(invalid(path, None, format!("the file is {} KiB; a configuration is at most {} KiB", m.len() >> 10, MAX_CONFIG >> 10)))
        }
        Ok(_) => std::fs::read_to_string(path).map(Some).map_err(cannot),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cannot(e)),
    }
}

/// How deeply YAML text nests: indentation, `- ` items and brackets.
fn depth(text: &str) -> usize {
    let (mut deepest, mut brackets) = (0, 0usize);
    for line in text.lines() {
        let rest = line.trim_start();
        let mut items = 0;
        let mut tail = rest;
        while let Some(t) = tail.strip_prefix("- ") {
            items += 1;
            tail = t.trim_start();
        }
        for c in rest.chars() {
            match c {
                '[' | '{' => brackets += 1,
                ']' | '}' => brackets = brackets.saturating_sub(1),
                _ => {}
            }
            deepest = deepest.max(brackets);
        }
        deepest = deepest.max((line.len() - rest.len()) / 2 + items);
    }
    deepest
}

fn parse(text: &str, path: &Path) -> anyhow::Result<File> {
    if depth(text) > MAX_DEPTH {
        return Err(invalid(path, None, format!("it nests deeper than {MAX_DEPTH} levels; a configuration is a few levels deep")));
    }
    if text.trim().is_empty() {
        return Ok(File { registries: BTreeMap::new(), verify: BTreeMap::new() });
    }
    serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let why = e.to_string();
        // serde_yaml appends " at line L column C"; the line is said once.
        let why = why.split(" at line ").next().unwrap_or(&why).to_string();
        invalid(path, line, why)
    })
}

/// The signature policy of the config file (CUE_REGISTRY does not replace
/// it): one rule per module prefix, its key paths resolved (`~/` is the
/// home directory, a relative path is relative to the config file).
pub fn verify_rules() -> anyhow::Result<Vec<VerifyRule>> {
    let path = config_path();
    let Some(text) = read(&path)? else { return Ok(Vec::new()) };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        keys: Vec<String>,
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let mut rules = Vec::new();
    for (prefix, entry) in parse(&text, &path)?.verify {
        let bad = |why: String| invalid(&path, line_of(&text, &prefix), format!("verify.{prefix}: {why} (write `keys: [PATH, ...]`, cosign public key files)"));
        let entry: Entry = serde_yaml::from_value(entry).map_err(|e| bad(e.to_string()))?;
        if entry.keys.is_empty() {
            return Err(bad("no keys".into()));
        }
        if prefix.is_empty() || prefix.contains('@') || prefix.ends_with('/') {
            return Err(bad("a prefix is a module path or the start of one, without a major version".into()));
        }
        let keys = entry
            .keys
            .iter()
            .map(|k| match k.strip_prefix("~/") {
                Some(rest) => home.join(rest),
                None => base.join(k),
            })
            .collect();
        rules.push(VerifyRule { prefix, keys });
    }
    Ok(rules)
}

/// One CUE_REGISTRY entry. `http://` or `insecure: true` means plain HTTP
/// (`+insecure`), `https://` or `insecure: false` HTTPS (`+secure`).
fn cue_entry(prefix: &str, registry: &Registry) -> String {
    let mut url = registry.url.trim().trim_end_matches('/');
    let mut insecure = registry.insecure;
    if let Some(rest) = url.strip_prefix("http://") {
        url = rest;
        insecure = Some(true);
    } else if let Some(rest) = url.strip_prefix("https://") {
        url = rest;
        insecure = insecure.or(Some(false));
    }
    let suffix = match insecure {
        _ if url.ends_with("+insecure") || url.ends_with("+secure") => "",
        Some(true) => "+insecure",
        Some(false) => "+secure",
        None => "",
    };
    if prefix == CATCH_ALL {
        format!("{url}{suffix}")
    } else {
        format!("{prefix}={url}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_longest_prefix_first_and_catch_all_last() {
        let text = r#"
registries:
  "*": localhost:5000
  opmodel.dev:
    url: https://registry.opm.dev
  opmodel.dev/examples: ghcr.io/opm/examples
  company.internal:
    url: harbor.internal/modules
    insecure: true
  dev.local:
    url: http://127.0.0.1:5001
"#;
        let got = translate(text, Path::new("config.yaml")).unwrap();
        assert_eq!(
            got,
            "opmodel.dev/examples=ghcr.io/opm/examples,company.internal=harbor.internal/modules+insecure,\
             opmodel.dev=registry.opm.dev+secure,dev.local=127.0.0.1:5001+insecure,localhost:5000"
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        let text = "registries:\n  opmodel.dev:\n    insecure: true\n    uri: x\n";
        let err = translate(text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("invalid registry configuration c.yaml line 4:"), "the bad field's line: {err}");

        let text = "registries:\n  opmodel.dev: registry.opm.dev\n  Bad Prefix!: x\n";
        let err = translate(text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("Bad Prefix!"), "{err}");
    }

    #[test]
    fn userinfo_is_redacted_and_module_majors_stay() {
        assert_eq!(redact("example.com=u:PW@127.0.0.1:5000,x.org=h/p"), "example.com=***@127.0.0.1:5000,x.org=h/p");
        assert_eq!(redact("invalid registry \"u:PW@h:5000+insecure\""), "invalid registry \"***@h:5000+insecure\"");
        assert_eq!(redact("example.com/x@v1 and http://a:b@host/y"), "example.com/x@v1 and http://***@host/y");
        let text = "registries:\n  example.com: http://u:PW@127.0.0.1:5000\n";
        let err = translate(text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.contains("carries a user name and password") && !err.contains("PW"), "{err}");
    }

    #[test]
    fn an_empty_file_means_cues_default() {
        assert_eq!(translate("", Path::new("c.yaml")).unwrap(), "");
        assert_eq!(translate("registries: {}\n", Path::new("c.yaml")).unwrap(), "");
    }
}
