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
use crate::error::{fail, Kind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The key of the catch-all entry.
pub const CATCH_ALL: &str = "*";
/// cue's registry when the configuration names none.
pub const DEFAULT_REGISTRY: &str = "registry.cue.works";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// `PREFIX: URL` or `PREFIX: {url: URL, insecure: BOOL}`.
    #[serde(default)]
    registries: UniqueMap,
    /// `PREFIX: {keys: [PATH, ...]}`: the signature policy.
    #[serde(default)]
    verify: UniqueMap,
}

/// A YAML mapping whose keys must be unique: serde's maps would keep the
/// last of two equal keys without a word, and which one a person meant
/// cannot be known.
#[derive(Debug, Default)]
struct UniqueMap(Vec<(String, serde_yaml::Value)>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = UniqueMap;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping of module prefixes")
            }
            fn visit_unit<E>(self) -> Result<UniqueMap, E> {
                Ok(UniqueMap::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap, A::Error> {
                let mut out: Vec<(String, serde_yaml::Value)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_yaml::Value>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("{DUPLICATE}{key:?}")));
                    }
                    out.push((key, value));
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(Entries)
    }
}

const DUPLICATE: &str = "a second entry for ";

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
pub enum Origin {
    /// The CUE_REGISTRY environment variable.
    Environment,
    File {
        path: PathBuf,
    },
    /// Neither: cue's default registry.
    Default,
    /// A command's flag (mirror's `--from` and `--to`).
    CommandLine,
}

/// The routing in effect: a CUE_REGISTRY value and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Routing {
    pub source: Origin,
    /// The CUE registry configuration ("" means cue's default registry).
    pub cue_registry: String,
}

impl Routing {
    /// The routing for this process: CUE_REGISTRY, else the config file,
    /// else cue's default.
    pub fn load() -> anyhow::Result<Routing> {
        if let Some(value) = std::env::var_os("CUE_REGISTRY").filter(|v| !v.is_empty()) {
            let value = value.to_string_lossy().into_owned();
            refuse_userinfo(&value, "CUE_REGISTRY")?;
            return Ok(Routing { source: Origin::Environment, cue_registry: value });
        }
        let path = config_path();
        match read(&path)? {
            Some(text) => Ok(Routing { cue_registry: translate(&text, &path)?, source: Origin::File { path } }),
            None => Ok(Routing { source: Origin::Default, cue_registry: String::new() }),
        }
    }

    /// The configuration cue applies: the one given, else cue's default
    /// registry.
    pub fn effective(&self) -> &str {
        if self.cue_registry.is_empty() {
            DEFAULT_REGISTRY
        } else {
            &self.cue_registry
        }
    }

    /// The entries of the configuration in effect, as (prefix, registry);
    /// a registry with no prefix gets [`CATCH_ALL`]. The configuration was
    /// checked by CUE's own parser when it was loaded (`translate`, or
    /// resolving with it).
    pub fn routes(&self) -> Vec<(String, String)> {
        self.effective()
            .split(',')
            .filter(|e| !e.is_empty())
            .map(|e| match e.split_once('=') {
                Some((prefix, registry)) => (prefix.to_string(), registry.to_string()),
                None => (CATCH_ALL.to_string(), e.to_string()),
            })
            .collect()
    }

    /// The registry location of a module version (version "" for the
    /// repository only), as cue resolves it; None when the configuration
    /// routes it to no registry (`none`).
    pub fn resolve(&self, module: &str, version: &str) -> anyhow::Result<Option<cue::Location>> {
        let mut locations = cue::resolve(&self.cue_registry, &[(module, version)]).map_err(crate::error::Failure::from)?;
        Ok(locations.remove(0))
    }
}

/// Refuses a CUE registry configuration given on the command line or in
/// the environment (`what` names it) that carries userinfo. No registry
/// address of cue's grammar has an `@`: one is a user name or password,
/// which is never repeated (nor passed to CUE, whose errors would quote it).
pub fn refuse_userinfo(value: &str, what: &str) -> anyhow::Result<()> {
    if value.contains('@') {
        return Err(fail(
            Kind::Other,
            format!(
                "{what} carries a user name or password (an `@` in a registry address): remove it; \
                 opm and cue take credentials from the Docker config (docker login HOST)"
            ),
        ));
    }
    Ok(())
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
    let line_of = |prefix: &str| key_line(text, "registries", prefix);
    let invalid = |line: Option<usize>, why: String| invalid(path, line, why);

    let mut entries = Vec::new();
    for (prefix, entry) in file.registries.0 {
        let check_url = |url: &str| {
            if url.contains('@') {
                return Err(invalid(
                    line_of(&prefix),
                    format!("registries.{prefix}: the URL carries a user name and password: remove them, and put credentials in the Docker config instead (docker login HOST)"),
                ));
            }
            if !is_registry_url(url) {
                return Err(invalid(
                    line_of(&prefix),
                    format!("registries.{prefix}: {url:?} is not one registry address: write [http://|https://]HOST[:PORT][/PATH]"),
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
        check_url(&registry.url)?;
        entries.push((prefix, registry));
    }
    // Longest prefix first; the catch-all ("*", or no prefix) last.
    entries.sort_by_key(|(prefix, _)| (prefix == CATCH_ALL, std::cmp::Reverse(prefix.len()), prefix.clone()));
    let mut parts = Vec::new();
    for (prefix, registry) in &entries {
        let part = cue_entry(prefix, registry);
        if let Err(e) = cue::resolve(&part, &[]) {
            return Err(invalid(line_of(prefix), format!("registries.{prefix:?}: {}", e.message)));
        }
        parts.push(part);
    }
    Ok(parts.join(","))
}

/// Whether `url` is one registry address, `[http://|https://]HOST[:PORT][/PATH]`
/// (optionally `+insecure` or `+secure`, as in CUE_REGISTRY): nothing that
/// could carry a second entry (`,`, `=`), userinfo or a query.
fn is_registry_url(url: &str) -> bool {
    let url = url.trim();
    let url = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).unwrap_or(url);
    let url = url.strip_suffix("+insecure").or_else(|| url.strip_suffix("+secure")).unwrap_or(url);
    let url = url.trim_end_matches('/');
    let (authority, path) = url.split_once('/').unwrap_or((url, ""));
    let (host_ok, port) = match authority.strip_prefix('[').and_then(|a| a.split_once(']')) {
        Some((v6, port)) => {
            (!v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.'), port.strip_prefix(':').or(port.is_empty().then_some("")))
        }
        None => {
            let (host, port) = authority.split_once(':').map_or((authority, Some("")), |(h, p)| (h, Some(p).filter(|p| !p.is_empty())));
            (!host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'), port)
        }
    };
    let port_ok = port.is_some_and(|p| p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    let path_ok = path.split('/').all(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)));
    host_ok && port_ok && (path.is_empty() || path_ok)
}

/// The line of `key` in the top-level `section` of the config file: the
/// first line below `section:` whose key (quoted or not) it is.
fn key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let start = text.lines().position(|l| l.trim_end().strip_prefix(section).is_some_and(|r| r.starts_with(':')))?;
    let is_key = |l: &str| {
        let l = l.trim_start();
        [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")].iter().any(|k| l.starts_with(k.as_str()))
    };
    text.lines().enumerate().skip(start + 1).take_while(|(_, l)| l.starts_with([' ', '\t']) || l.trim().is_empty()).find(|(_, l)| is_key(l)).map(|(i, _)| i + 1)
}

fn invalid(path: &Path, line: Option<usize>, why: String) -> anyhow::Error {
    let at = line.map_or(String::new(), |l| format!(" line {l}"));
    fail(Kind::Other, format!("invalid registry configuration {}{at}: {why}", path.display()))
}

/// The largest config file opm reads, and its deepest nesting: a real one
/// is a few hundred bytes and four levels deep.
const MAX_CONFIG: u64 = 256 << 10;
const MAX_DEPTH: usize = 32;

/// The config file's text; None when there is none (a file OPM_CONFIG
/// names must exist: ignoring it would send every module elsewhere).
fn read(path: &Path) -> anyhow::Result<Option<String>> {
    let Some(data) = crate::files::read_regular(path, MAX_CONFIG, "the configuration")? else {
        if std::env::var_os("OPM_CONFIG").is_some_and(|p| !p.is_empty()) {
            return Err(fail(
                Kind::Other,
                format!("OPM_CONFIG names {}, which does not exist: create it, or unset OPM_CONFIG to use ~/.opm/config.yaml", path.display()),
            ));
        }
        return Ok(None);
    };
    String::from_utf8(data).map(Some).map_err(|_| invalid(path, None, "the file is not UTF-8 text".into()))
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
        return Ok(File { registries: UniqueMap::default(), verify: UniqueMap::default() });
    }
    serde_yaml::from_str(text).map_err(|e| {
        let why = e.to_string();
        // serde_yaml appends " at line L column C"; the line is said once.
        let why = why.split(" at line ").next().unwrap_or(&why).to_string();
        // A duplicate key: the line of its second entry.
        let line = match why.split_once(DUPLICATE) {
            Some((_, key)) => {
                let key = key.trim_matches('"');
                let entries = |l: &&str| l.trim_start().trim_start_matches(['"', '\'']).starts_with(key) && l.contains(':');
                text.lines().enumerate().filter(|(_, l)| entries(l)).nth(1).map(|(i, _)| i + 1)
            }
            None => e.location().map(|l| l.line()),
        };
        invalid(path, line, format!("{why}: each key once"))
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
    for (prefix, entry) in parse(&text, &path)?.verify.0 {
        let bad = |why: String| {
            invalid(&path, key_line(&text, "verify", &prefix), format!("verify.{prefix:?}: {why} (write `keys: [PATH, ...]`, cosign public key files)"))
        };
        let entry: Entry = serde_yaml::from_value(entry).map_err(|e| bad(e.to_string()))?;
        if entry.keys.is_empty() {
            return Err(bad("no keys".into()));
        }
        // The grammar of `registries:` prefixes: "*", or a module path
        // without its major, as cue checks one.
        if prefix != CATCH_ALL {
            if prefix.contains('@') {
                return Err(bad("a prefix is a module path or the start of one, without a major version, or \"*\" for every module".into()));
            }
            if let Err(e) = cue::check_module_path(&prefix) {
                return Err(bad(format!("{}: a prefix is a module path or the start of one, or \"*\" for every module", e.message)));
            }
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
    fn userinfo_is_refused_unrepeated() {
        let text = "registries:\n  example.com: http://u:PW@127.0.0.1:5000\n";
        let err = translate(text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.contains("carries a user name and password") && !err.contains("PW"), "{err}");
    }

    #[test]
    fn a_url_is_one_registry_address() {
        for ok in ["localhost:5000", "http://127.0.0.1:5000", "https://r.example.com/a/b", "h.example/x+insecure", "[::1]:5000", "r.example.com/"] {
            assert!(is_registry_url(ok), "{ok}");
        }
        for bad in ["127.0.0.1:1,opmodel.dev=evil:1", "h:x", "h/A", "h//x", "h?x", "h x", "", ":5000", "h:123456", "h/x y"] {
            assert!(!is_registry_url(bad), "{bad}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_their_second_line() {
        let text = "registries:\n  example.com: a.example:1\n  other.org: b.example\n  example.com: c.example:2\n";
        let err = translate(text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("invalid registry configuration c.yaml line 4:") && err.contains("example.com"), "{err}");
    }

    #[test]
    fn an_empty_file_means_cues_default() {
        assert_eq!(translate("", Path::new("c.yaml")).unwrap(), "");
        assert_eq!(translate("registries: {}\n", Path::new("c.yaml")).unwrap(), "");
    }
}
