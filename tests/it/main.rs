//! Integration tests: the real `opm` binary, the real `cue` CLI at the
//! version linked into opm, and (for registry tests) a real OCI registry on
//! loopback. One test crate, so everything links once.

mod kube_server;
mod registry_server;
mod support;

mod build;
mod cli;
mod deliver;
mod deps;
mod deps_diff;
mod faults;
mod ffi;
mod graph;
mod install;
mod integrity;
mod layers;
mod parity;
mod publish;
mod readme;
mod registries;
mod results;
mod safety;
mod seams;
mod signatures;
mod static_binary;
mod trust;
mod vet_corpus;
