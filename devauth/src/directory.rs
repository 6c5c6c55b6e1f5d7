//! The stand-in's users: an in-memory directory, seeded from a TOML file, changed by tests
//! through the `/dev/v1` endpoints.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::DevAuthError;

/// The built-in seed, the same file `--seed devauth/seed.toml` reads.
const BUILT_IN_SEED: &str = include_str!("../seed.toml");

/// One user as the seed file and the `/dev/v1/users` endpoint describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Stable user id: the `sub` of the user's tokens.
    pub id: String,
    /// What the person types to sign in.
    pub login: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// E-mail address.
    #[serde(default)]
    pub email: String,
    /// The password, in clear: this is a stand-in with public development passwords.
    pub password: String,
    /// Roles, e.g. `user` or `admin`.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The seed file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    /// `[[user]]` tables.
    #[serde(default)]
    user: Vec<SeedUser>,
}

/// Reads the seed file, or the built-in seed when `path` is `None`.
pub(crate) fn load_seed(path: Option<&Path>) -> Result<Vec<SeedUser>, DevAuthError> {
    let (name, text) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| DevAuthError::Seed { path: path.display().to_string(), message: e.to_string() })?;
            (path.display().to_string(), text)
        }
        None => ("built-in".to_owned(), BUILT_IN_SEED.to_owned()),
    };
    let file: SeedFile =
        toml::from_str(&text).map_err(|e| DevAuthError::Seed { path: name.clone(), message: e.to_string() })?;
    let mut logins = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for (i, user) in file.user.iter().enumerate() {
        if user.id.is_empty() || !ids.insert(user.id.clone()) {
            return Err(DevAuthError::Seed { path: name, message: format!("user[{i}].id is empty or used twice") });
        }
        if user.login.is_empty() || !logins.insert(user.login.clone()) {
            return Err(DevAuthError::Seed { path: name, message: format!("user[{i}].login is empty or used twice") });
        }
    }
    Ok(file.user)
}

/// The live user directory, shared by every request.
pub(crate) struct Directory {
    /// Users by id; a `BTreeMap` so the paginated list has a stable order.
    users: RwLock<BTreeMap<String, SeedUser>>,
}

/// Why a `/dev/v1` change was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    /// Another user already signs in with that login.
    #[error("login {0:?} belongs to another user")]
    LoginTaken(String),
}

impl Directory {
    pub(crate) fn new(seed: Vec<SeedUser>) -> Self {
        Self { users: RwLock::new(seed.into_iter().map(|u| (u.id.clone(), u)).collect()) }
    }

    /// Read access; a poisoned lock only means a handler panicked mid-read, the map is intact.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, SeedUser>> {
        self.users.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, SeedUser>> {
        self.users.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The user with this login and password. The password comparison is constant-time, and
    /// an unknown login costs the same comparison, so timing tells nothing about which exist.
    pub(crate) fn authenticate(&self, login: &str, password: &str) -> Option<SeedUser> {
        let users = self.read();
        let found = users.values().find(|u| u.login == login);
        let expected = found.map_or("", |u| u.password.as_str());
        let matches = bool::from(expected.as_bytes().ct_eq(password.as_bytes()));
        found.filter(|_| matches).cloned()
    }

    /// The user with this id, if it (still) exists.
    pub(crate) fn get(&self, id: &str) -> Option<SeedUser> {
        self.read().get(id).cloned()
    }

    /// Up to `limit` users whose id sorts after `after`, and whether more follow.
    pub(crate) fn page(&self, after: Option<&str>, limit: usize) -> (Vec<SeedUser>, bool) {
        let users = self.read();
        let mut iter = users
            .range::<str, _>((
                after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                std::ops::Bound::Unbounded,
            ))
            .map(|(_, u)| u.clone());
        let page: Vec<SeedUser> = iter.by_ref().take(limit).collect();
        let more = iter.next().is_some();
        (page, more)
    }

    /// Adds or replaces a user. Returns whether it was new.
    pub(crate) fn upsert(&self, user: SeedUser) -> Result<bool, ChangeError> {
        let mut users = self.write();
        if users.values().any(|u| u.login == user.login && u.id != user.id) {
            return Err(ChangeError::LoginTaken(user.login));
        }
        Ok(users.insert(user.id.clone(), user).is_none())
    }

    /// Removes a user. Returns whether it existed.
    pub(crate) fn remove(&self, id: &str) -> bool {
        self.write().remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_seed_has_two_users_and_an_admin() {
        let seed = load_seed(None).expect("built-in seed parses");
        let logins: Vec<&str> = seed.iter().map(|u| u.login.as_str()).collect();
        assert_eq!(logins, ["alice", "bob", "admin"]);
        assert!(seed[2].roles.iter().any(|r| r == "admin"));
    }

    #[test]
    fn pages_follow_id_order_and_say_when_more_follow() {
        let directory = Directory::new(load_seed(None).expect("seed"));
        let (first, more) = directory.page(None, 2);
        assert_eq!(first.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["u-admin", "u-alice"]);
        assert!(more);
        let (second, more) = directory.page(Some("u-alice"), 2);
        assert_eq!(second.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["u-bob"]);
        assert!(!more);
    }

    #[test]
    fn wrong_password_and_unknown_login_are_refused() {
        let directory = Directory::new(load_seed(None).expect("seed"));
        assert!(directory.authenticate("alice", "alice-password").is_some());
        assert!(directory.authenticate("alice", "bob-password").is_none());
        assert!(directory.authenticate("nobody", "").is_none());
    }
}
