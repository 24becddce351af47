//! opm, the command-line tool of the Open Platform Model.
//!
//! Layers, each importing only those below it (README, "How it is built"):
//! `cli` parses arguments and prints; `ops` does one command over a
//! workspace; `resolve` is cue's dependency resolution over a `Source`;
//! `cache` is the CUE cache and the only fetcher; `registry` the only code
//! that knows CUE's OCI module format; `trust` checks cosign signatures;
//! `config`, `catalog`, `files`, `ui`
//! and `error` serve them; `cue` is the safe API over the linked CUE;
//! `module` is the vocabulary all of them share.
//!
//! Unsafe code lives in `cue` alone (the FFI and the signal handler the Go
//! runtime beside us requires).
#![deny(unsafe_code)]

pub mod cache;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
#[allow(unsafe_code)]
pub mod cue;
pub mod error;
pub mod fields;
pub mod files;
pub mod module;
pub mod ops;
pub mod process;
pub mod registry;
pub mod resolve;
pub mod trust;
pub mod ui;
