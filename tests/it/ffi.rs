//! The FFI boundary: Go panics become errors, and memory does not leak
//! across many calls.

use crate::support::*;
use opm::cue;

#[test]
fn a_go_panic_becomes_an_internal_error_and_the_process_carries_on() {
    let err = cue::selftest_panic().expect_err("the shim must report the panic");
    assert_eq!(err.kind, cue::ErrorKind::Internal);
    assert!(err.message.contains("panic"), "{}", err.message);
    // The shim still answers afterwards.
    assert!(cue::version().is_ok());
    assert!(cue::selftest_panic().is_err());
}

/// Resident set size of this process in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// 10,000 vet calls in one process, half of them failing with errors that
/// carry positions: RSS must level off, not grow with the number of calls.
#[test]
fn ten_thousand_vet_calls_do_not_grow_memory_without_bound() {
    let cache = tempdir();
    let valid = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package a\n#S: {n: int}\nv: #S & {n: 1}\n")]);
    let invalid = module(&[("cue.mod/module.cue", MODULE_CUE), ("a.cue", "package a\nx: 1\nx: 2\ny: string & 3\n")]);
    let vet = |dir: &std::path::Path| cue::vet(&cue::VetRequest { dir, cwd: dir, cache_dir: cache.path(), concrete: true, tags: &[] }).expect("vet runs");
    assert!(vet(valid.path()).errors.is_empty());
    assert_eq!(vet(invalid.path()).errors.len(), 2);

    let mut samples = Vec::new();
    for i in 1..=10_000 {
        let report = vet(if i % 2 == 0 { valid.path() } else { invalid.path() });
        assert_eq!(report.errors.len(), if i % 2 == 0 { 0 } else { 2 });
        if i % 2_000 == 0 {
            samples.push(rss_bytes());
        }
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!("RSS after each 2,000 vet calls (MiB): {:?}", samples.iter().map(|&b| format!("{:.1}", mib(b))).collect::<Vec<_>>());
    // After the first 2,000 calls the Go heap and allocator have warmed up;
    // the next 8,000 calls may not add more than 32 MiB (a leak of one
    // response per call, ~300 bytes, would be fine; a leaked load is not).
    let growth = samples.last().unwrap().saturating_sub(samples[0]);
    assert!(growth < 32 << 20, "RSS grew by {:.1} MiB over 8,000 calls: {samples:?}", mib(growth));
}
