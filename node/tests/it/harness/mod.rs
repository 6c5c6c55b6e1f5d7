//! The shared harness of the integration tests: real `meridian` processes on loopback in
//! temporary directories, and clients for them. One module per job; the items most tests use
//! are re-exported here, so a test says `use crate::harness::*;`.

pub mod cli;
pub mod cluster;
pub mod data;
pub mod delay;
pub mod devauth;
pub mod events;
pub mod faketime;
pub mod internal_tls;
pub mod netns;
pub mod node;
pub mod pages;
pub mod placement;
pub mod process;
pub mod relay;
pub mod s3;
pub mod sigv4;
pub mod support;
pub mod tls;
pub mod webdriver;

pub use data::*;
pub use node::*;
pub use s3::*;
pub use support::*;
