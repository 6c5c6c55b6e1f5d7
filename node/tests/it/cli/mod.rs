//! The `meridian` command line against a running node.

mod keys;
