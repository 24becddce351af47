//! Integration tests: the real `opm` binary, the real `cue` CLI at the
//! version linked into opm, and (for registry tests) a real OCI registry on
//! loopback. One test crate, so everything links once.

mod support;

mod cli;
mod ffi;
mod vet_corpus;
