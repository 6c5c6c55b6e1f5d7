//! Attacks on credentials, listeners (TLS included), presigned URLs and the web listener, replayed.

mod acl;
mod keys;
mod listeners;
mod presign;
mod tls;
mod web;
