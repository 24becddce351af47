//! opm, the command-line tool of the Open Platform Model.
//!
//! `cli` parses and runs commands; `cue` is the safe API over the linked
//! cuelang.org/go; `module` and `cache` own files on disk; `ui` owns output.

pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod cue;
pub mod deps;
pub mod error;
pub mod module;
pub mod registry;
pub mod resolve;
pub mod ui;
