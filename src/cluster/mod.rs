//! The cluster client: where a cluster is and how to reach it (the
//! kubeconfig, by kubectl's rules), requests to its apiserver (client.rs),
//! the vocabulary of objects and kinds (object.rs), readiness (health.rs),
//! the release inventory it keeps (inventory.rs) and the plan of an apply
//! (plan.rs). Everything but client.rs and kubeconfig/ is pure; the
//! calls are made by ops/deliver.

pub mod client;
pub mod error;
pub mod health;
pub mod inventory;
pub mod kubeconfig;
pub mod object;
pub mod plan;

pub use client::{Apply, Cluster};
pub use error::{Error, ErrorKind, Result};
