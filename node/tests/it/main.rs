//! The integration tests of Meridian: real `meridian` processes on loopback (and the stand-in
//! Auth service, and a headless browser), driven with `aws-sdk-s3`, reqwest and the CLI.
//!
//! One test program, one module per area, so the harness compiles once and the S3 tests share
//! one node. Run all of it with `cargo test --release -p meridian-node --test it`, or one area
//! or file by its module path: `cargo test --release -p meridian-node --test it security::keys`.

mod harness;

mod admin;
mod browser;
mod chaos;
mod cli;
mod cluster;
mod config;
mod crash;
mod geo;
mod s3;
mod security;
mod upgrade;
