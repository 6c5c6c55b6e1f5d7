//! Upgrades: today's binary opening data dirs written by an older release (fixtures under
//! `node/tests/fixtures/<commit>/`, made by `scripts/make-fixtures`), one file per release; and
//! a rolling upgrade under writes from the previous release's protocol and format (`rolling`).

mod a01dacd;
mod rolling;
