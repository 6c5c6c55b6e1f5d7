//! The web listener's JSON API and pages: files, history, sign-in, the OpenAPI document, pages,
//! shares.

mod files;
mod history;
mod identity;
mod openapi;
mod pages;
mod shares;
mod versions;
