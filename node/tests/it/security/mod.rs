//! Attacks on credentials, listeners, presigned URLs and the web listener, replayed.

mod keys;
mod listeners;
mod presign;
mod web;
