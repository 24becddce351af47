//! Semantic versions exactly as cue compares them (golang.org/x/mod/semver),
//! the one implementation opm uses:
//! a leading `v`, shorthands `v1` and `v1.2` valid, build metadata ignored.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    prerelease: &'a str, // with its leading '-', or ""
    short: bool,         // v1 or v1.2
}

fn parse(v: &str) -> Option<Parsed<'_>> {
    let rest = v.strip_prefix('v')?;
    let (major, rest) = number(rest)?;
    let Some(rest) = rest.strip_prefix('.') else {
        return rest.is_empty().then_some(Parsed { major, minor: "0", patch: "0", prerelease: "", short: true });
    };
    let (minor, rest) = number(rest)?;
    let Some(rest) = rest.strip_prefix('.') else {
        return rest.is_empty().then_some(Parsed { major, minor, patch: "0", prerelease: "", short: true });
    };
    let (patch, mut rest) = number(rest)?;
    let mut prerelease = "";
    if rest.starts_with('-') {
        let end = rest.find('+').unwrap_or(rest.len());
        prerelease = &rest[..end];
        if !identifiers(&prerelease[1..], true) {
            return None;
        }
        rest = &rest[end..];
    }
    if let Some(build) = rest.strip_prefix('+') {
        if !identifiers(build, false) {
            return None;
        }
        rest = "";
    }
    rest.is_empty().then_some(Parsed { major, minor, patch, prerelease, short: false })
}

/// Decimal digits without a leading zero (but "0").
fn number(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = &s[..end];
    (!n.is_empty() && (n == "0" || !n.starts_with('0'))).then_some((n, &s[end..]))
}

fn identifiers(s: &str, prerelease: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(prerelease && id.len() > 1 && id.bytes().all(|b| b.is_ascii_digit()) && id.starts_with('0'))
    })
}

pub fn is_valid(v: &str) -> bool {
    parse(v).is_some()
}

/// `vX.Y.Z[-pre]`: valid, complete, without build metadata.
pub fn is_canonical(v: &str) -> bool {
    parse(v).is_some_and(|p| !p.short) && !v.contains('+')
}

/// `v1` for `v1.2.3`; "" when invalid.
pub fn major(v: &str) -> &str {
    match parse(v) {
        Some(p) => &v[..1 + p.major.len()],
        None => "",
    }
}

/// `v1.2` for `v1.2.3`; "" when invalid.
pub fn major_minor(v: &str) -> &str {
    match parse(v) {
        Some(p) if !p.short || v.contains('.') => &v[..1 + p.major.len() + 1 + p.minor.len()],
        _ => "",
    }
}

/// Which part of the version an update from `from` to `to` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    Major,
    Minor,
    Patch,
}

pub fn change(from: &str, to: &str) -> Bump {
    if major(from) != major(to) {
        Bump::Major
    } else if major_minor(from) != major_minor(to) {
        Bump::Minor
    } else {
        Bump::Patch
    }
}

pub fn is_prerelease(v: &str) -> bool {
    parse(v).is_some_and(|p| !p.prerelease.is_empty())
}

/// cue's order: invalid versions are below every valid one (and equal).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => {
            num(x.major, y.major).then_with(|| num(x.minor, y.minor)).then_with(|| num(x.patch, y.patch)).then_with(|| prerelease(x.prerelease, y.prerelease))
        }
    }
}

/// Sorts by `compare`, ties by the strings (semver.Sort).
pub fn sort(versions: &mut [String]) {
    versions.sort_by(|a, b| compare(a, b).then_with(|| a.cmp(b)));
}

/// The highest release, else the highest prerelease (cue's "latest").
pub fn latest(versions: &[String]) -> Option<&String> {
    let best = |stable: bool| versions.iter().filter(|v| is_valid(v) && (!stable || !is_prerelease(v))).max_by(|a, b| compare(a, b));
    best(true).or_else(|| best(false))
}

fn num(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (mut xs, mut ys) = (a[1..].split('.'), b[1..].split('.'));
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
                let order = match (numeric(x), numeric(y)) {
                    (true, true) => num(x, y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_go_semver() {
        for ok in ["v1", "v1.2", "v1.2.3", "v0.0.0", "v1.2.3-rc.1", "v1.2.3-0a", "v1.2.3+meta", "v1.2.3-a.b+c.d"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["1.2.3", "v01.2.3", "v1.02.3", "v1.2.3-01", "v1.2-rc", "v1.2.3-", "v1.2.3+", "latest", "v", "v1.2.3.4"] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_canonical("v1.2.3-rc.1") && !is_canonical("v1.2") && !is_canonical("v1.2.3+b"));
        assert_eq!(major("v12.3.4"), "v12");
        assert_eq!(major_minor("v12.3.4-rc.1"), "v12.3");
        assert_eq!(change("v1.0.0", "v1.0.1"), Bump::Patch);
        assert_eq!(change("v1.0.0", "v1.1.0"), Bump::Minor);
        assert_eq!(change("v1.2.0", "v2.0.0"), Bump::Major);
    }

    #[test]
    fn ordering_follows_go_semver() {
        let mut v: Vec<String> = ["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v1.2.0-rc.10", "v1.2.0-rc.2", "v1.2.0-beta", "v1.2.0-1", "v2.0.0", "bad"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort(&mut v);
        assert_eq!(v, ["bad", "v1.2.0-1", "v1.2.0-beta", "v1.2.0-rc.1", "v1.2.0-rc.2", "v1.2.0-rc.10", "v1.2.0", "v1.10.0", "v2.0.0"]);
        assert_eq!(compare("v1.2.3+a", "v1.2.3+b"), Ordering::Equal);
        let l = |xs: &[&str]| latest(&xs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).cloned();
        assert_eq!(l(&["v1.0.0", "v1.1.0-rc.1"]).as_deref(), Some("v1.0.0"));
        assert_eq!(l(&["v1.1.0-rc.1", "v1.1.0-rc.2"]).as_deref(), Some("v1.1.0-rc.2"));
        assert_eq!(l(&[]), None);
    }
}
