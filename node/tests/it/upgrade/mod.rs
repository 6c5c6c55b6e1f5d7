//! Upgrades: today's binary opening data dirs written by an older release (fixtures under
//! `node/tests/fixtures/<commit>/`, made by `scripts/make-fixtures`), one file per release.

mod a01dacd;
