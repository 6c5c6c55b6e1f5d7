//! The `meridian` command line: against a running node, and `meridian doctor` against a host.

mod doctor;
mod keys;
mod status;
