//! Differential test: every module of tests/corpus/vet goes through the real
//! `cue vet` and through `opm mod vet`, in both modes; validity and the set
//! of reported error positions must be the same, and so must the messages.

use crate::support::*;
use std::collections::BTreeSet;
use std::path::Path;

/// `file.cue:line:col` positions in a tool's error output, `./` removed.
fn positions(text: &str) -> BTreeSet<String> {
    text.split_whitespace()
        .map(|w| w.trim_end_matches([':', ',', ')']).trim_start_matches('('))
        .filter_map(|w| {
            let mut parts = w.rsplitn(3, ':');
            let (col, line, file) = (parts.next()?, parts.next()?, parts.next()?);
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (file.ends_with(".cue") && numeric(line) && numeric(col)).then(|| w.trim_start_matches("./").to_string())
        })
        .collect()
}

/// The error messages themselves: cue's unindented lines, without opm's
/// closing summary (`ok: ...`, `error: N errors in ROOT`).
fn messages(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.starts_with(char::is_whitespace) && !l.starts_with("error: ") && !l.starts_with("ok: ")).map(|l| l.replace("./", "")).collect()
}

struct Outcome {
    valid: bool,
    positions: BTreeSet<String>,
    text: String,
}

fn cue_vet(dir: &Path, concrete: bool) -> Outcome {
    let cache = tempdir();
    let flag = if concrete { "-c" } else { "-c=false" };
    let out = run(cue(cache.path()).args(["vet", flag, "./..."]).current_dir(dir));
    let text = stderr(&out);
    Outcome { valid: out.status.success(), positions: positions(&text), text }
}

fn opm_vet(dir: &Path, concrete: bool) -> Outcome {
    let cache = tempdir();
    let mut cmd = opm(cache.path());
    cmd.args(["mod", "vet"]).current_dir(dir);
    if concrete {
        cmd.arg("--concrete");
    }
    let out = run(&mut cmd);
    let text = stderr(&out);
    assert!(matches!(out.status.code(), Some(0) | Some(2)), "opm mod vet in {} exited {:?}, expected 0 or 2:\n{text}", dir.display(), out.status.code());
    assert!(!text.contains("goroutine") && !text.contains("panicked"), "{text}");
    Outcome { valid: out.status.success(), positions: positions(&text), text }
}

#[test]
fn opm_mod_vet_agrees_with_cue_vet_on_the_corpus() {
    let corpus = repo_dir().join("tests/corpus/vet");
    let mut cases: Vec<_> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("cue.mod/module.cue").is_file()).collect();
    cases.sort();
    assert!(cases.len() >= 20, "the corpus must hold at least 20 modules, found {}", cases.len());

    let mut mismatches = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for case in &cases {
        for concrete in [false, true] {
            let theirs = cue_vet(case, concrete);
            let ours = opm_vet(case, concrete);
            if theirs.valid {
                valid += 1
            } else {
                invalid += 1
            }
            if theirs.valid != ours.valid || theirs.positions != ours.positions || messages(&theirs.text) != messages(&ours.text) {
                mismatches.push(format!(
                    "{} ({}):\n  cue: valid={} {:?}\n{}\n  opm: valid={} {:?}\n{}",
                    case.file_name().unwrap().to_string_lossy(),
                    if concrete { "--concrete" } else { "default" },
                    theirs.valid,
                    theirs.positions,
                    theirs.text,
                    ours.valid,
                    ours.positions,
                    ours.text,
                ));
            }
        }
    }
    eprintln!("vet corpus: {} modules, {valid} valid and {invalid} invalid runs", cases.len());
    assert!(valid >= 8 && invalid >= 10, "the corpus needs both kinds: {valid} valid, {invalid} invalid runs");
    assert!(mismatches.is_empty(), "opm and cue disagree:\n{}", mismatches.join("\n"));
}

#[test]
fn positions_are_parsed_from_cue_style_output() {
    let text = "x: conflicting values 1 and 2:\n    ./a.cue:2:4\n    ./sub/b.cue:10:12\nexpected '}', found 'EOF' (and 1 more errors) a.cue:3:1:\n";
    let found: Vec<_> = positions(text).into_iter().collect();
    assert_eq!(found, ["a.cue:2:4", "a.cue:3:1", "sub/b.cue:10:12"]);
}
