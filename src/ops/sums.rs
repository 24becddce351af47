//! `cue.mod/opm.sum`: the content of every dependency, pinned. One line a
//! module version, sorted as cue sorts them:
//!
//! ```text
//! example.com/lib@v1 v1.2.0 sha256:<manifest digest> sha256:<zip digest>
//! ```
//!
//! The manifest digest is what the version's tag pointed to when opm first
//! fetched it, the zip digest its content. Every later fetch must bring the
//! same (cache::Pins); get, tidy and update write the file with module.cue.

use crate::cache::{Digests, Pins};
use crate::error::{fail, Kind};
use crate::module::{semver, ModuleVersion};
use std::path::Path;

/// Relative path of the sums file inside a module root.
pub const SUMS_FILE: &str = "cue.mod/opm.sum";

/// The pins of the sums file at `path`; none when there is no file.
pub fn read(path: &Path) -> anyhow::Result<Option<Pins>> {
    // A line is about 200 bytes: 16 MiB is some 80,000 dependencies.
    let Some(data) = crate::files::read_regular(path, 16 << 20, "the sums file")? else { return Ok(None) };
    let text = String::from_utf8(data).map_err(|_| fail(Kind::Other, format!("{} is not UTF-8 text: delete it and run 'opm mod tidy'", path.display())))?;
    parse(&text)
        .map(Some)
        .map_err(|(line, why)| fail(Kind::Other, format!("{} line {line}: {why}: fix the line or delete the file and run 'opm mod tidy'", path.display())))
}

fn parse(text: &str) -> Result<Pins, (usize, String)> {
    let mut pins = Pins::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [module, version, manifest, zip] = fields.as_slice() else {
            return Err((i + 1, "expected MODULE@MAJOR VERSION MANIFEST-DIGEST ZIP-DIGEST".into()));
        };
        let digest = |d: &str| d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !module.contains('@') || !semver::is_canonical(version) || !digest(manifest) || !digest(zip) {
            return Err((i + 1, format!("{line:?} is not MODULE@MAJOR VERSION sha256:... sha256:...")));
        }
        if pins.keys().any(|mv| mv.module() == *module) {
            return Err((i + 1, format!("a second line for {module}: a module has one line; which one is right cannot be known")));
        }
        let mv = ModuleVersion::of(module.to_string(), version.to_string());
        pins.insert(mv, Digests { manifest: manifest.to_string(), zip: zip.to_string() });
    }
    Ok(pins)
}

/// The file's text: sorted, one line each, stable across runs.
pub fn format(pins: &[(ModuleVersion, Digests)]) -> String {
    let mut lines: Vec<&(ModuleVersion, Digests)> = pins.iter().collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    lines.iter().map(|(mv, d)| format!("{} {} {} {}\n", mv.module(), mv.version(), d.manifest, d.zip)).collect()
}

/// What differs between the sums file and module.cue's dependencies.
pub fn stale(pins: &Pins, roots: &[ModuleVersion]) -> Vec<String> {
    let mut out: Vec<String> = roots.iter().filter(|r| !pins.contains_key(*r)).map(|r| format!("lacks {r}")).collect();
    out.extend(pins.keys().filter(|p| !roots.contains(p)).map(|p| format!("still lists {p}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_round_trip_sorted() {
        let d = |c: char| Digests { manifest: format!("sha256:{}", c.to_string().repeat(64)), zip: format!("sha256:{}", "0".repeat(64)) };
        let pins = vec![
            (ModuleVersion::new("b.test/b", "v1.10.0"), d('a')),
            (ModuleVersion::new("a.test/a", "v0.1.0"), d('b')),
            (ModuleVersion::new("b.test/b", "v2.2.0"), d('c')),
        ];
        let text = format(&pins);
        assert!(text.starts_with("a.test/a@v0 v0.1.0 sha256:bbbb"), "{text}");
        assert!(text.find("b@v1 v1.10.0").unwrap() < text.find("b@v2 v2.2.0").unwrap(), "{text}");
        let back = parse(&text).unwrap();
        let again: Vec<_> = back.into_iter().collect();
        assert_eq!(format(&again), text);
        assert!(parse("x v1 sha256:00 sha256:00\n").is_err());
        let twice = format!("{text}{}", text.lines().next().unwrap());
        assert_eq!(parse(&twice).unwrap_err().0, 4, "the second line of a module is refused");
    }
}
