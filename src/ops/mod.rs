//! One function per command, over a [`Workspace`]: what the command does,
//! with no argument parsing and no printing of results (cli/ does both).

pub mod cache;
pub mod deliver;
pub mod deps;
pub mod graph;
pub mod init;
pub mod mirror;
pub mod publish;
pub mod registry_check;
pub mod render;
pub mod results;
pub mod sign;
mod source;
pub mod sums;
pub mod update;
pub mod verify;
pub mod vet;
mod workspace;

pub use source::CacheSource;
pub use workspace::{MainFile, Workspace};
