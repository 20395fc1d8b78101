//! The in-memory directory (tests, embedding).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    AuthorizedKey, DirectoryAdmin, DirectoryLookup, DirectoryUser, MAX_KEYS_PER_USER, NewUser,
    UserUpdate, check_name, check_target,
};
use crate::error::CoreError;

#[derive(Default)]
struct State {
    users: BTreeMap<String, DirectoryUser>,
    grants: BTreeSet<(String, String)>,
}

/// Users and grants in memory.
#[derive(Default)]
pub struct MemoryDirectory {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDirectory").finish_non_exhaustive()
    }
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every write is one insert).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn dedup_sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

#[async_trait]
impl DirectoryLookup for MemoryDirectory {
    async fn user(&self, name: &str) -> Result<Option<DirectoryUser>, CoreError> {
        Ok(self.lock().users.get(name).cloned())
    }

    async fn targets_of_roles(&self, roles: &[String]) -> Result<Vec<String>, CoreError> {
        let state = self.lock();
        let targets = state
            .grants
            .iter()
            .filter(|(r, _)| roles.contains(r))
            .map(|(_, t)| t.clone())
            .collect();
        Ok(dedup_sorted(targets))
    }
}

#[async_trait]
impl DirectoryAdmin for MemoryDirectory {
    async fn users(&self) -> Result<Vec<DirectoryUser>, CoreError> {
        Ok(self.lock().users.values().cloned().collect())
    }

    async fn create_user(&self, user: &NewUser) -> Result<(), CoreError> {
        user.validate()?;
        let mut state = self.lock();
        if state.users.contains_key(user.name.as_str()) {
            return Err(CoreError::UserExists(user.name.to_string()));
        }
        let mut keys = user.keys.clone();
        keys.sort();
        keys.dedup_by(|a, b| a.key() == b.key());
        state.users.insert(
            user.name.to_string(),
            DirectoryUser {
                name: user.name.clone(),
                password: user.password.clone().into(),
                keys,
                totp: user.totp.clone().into(),
                roles: dedup_sorted(user.roles.clone()),
                disabled: false,
            },
        );
        Ok(())
    }

    async fn update_user(&self, name: &str, update: &UserUpdate) -> Result<(), CoreError> {
        update.validate()?;
        let mut state = self.lock();
        let user = state
            .users
            .get_mut(name)
            .ok_or_else(|| CoreError::UnknownUser(name.to_owned()))?;
        if let Some(p) = &update.password {
            user.password = p.clone().into();
        }
        if let Some(t) = &update.totp {
            user.totp = t.clone().into();
        }
        if let Some(r) = &update.roles {
            user.roles = dedup_sorted(r.clone());
        }
        if let Some(d) = update.disabled {
            user.disabled = d;
        }
        Ok(())
    }

    async fn delete_user(&self, name: &str) -> Result<bool, CoreError> {
        Ok(self.lock().users.remove(name).is_some())
    }

    async fn add_key(&self, name: &str, key: &AuthorizedKey) -> Result<(), CoreError> {
        let mut state = self.lock();
        let user = state
            .users
            .get_mut(name)
            .ok_or_else(|| CoreError::UnknownUser(name.to_owned()))?;
        if user.keys.iter().any(|k| k.key() == key.key()) {
            return Ok(());
        }
        if user.keys.len() >= MAX_KEYS_PER_USER {
            return Err(CoreError::InvalidInput {
                field: "key",
                reason: format!("user {name} already has {MAX_KEYS_PER_USER} keys"),
            });
        }
        user.keys.push(key.clone());
        user.keys.sort();
        Ok(())
    }

    async fn remove_key(&self, name: &str, key: &AuthorizedKey) -> Result<bool, CoreError> {
        let mut state = self.lock();
        let user = state
            .users
            .get_mut(name)
            .ok_or_else(|| CoreError::UnknownUser(name.to_owned()))?;
        let before = user.keys.len();
        user.keys.retain(|k| k.key() != key.key());
        Ok(user.keys.len() != before)
    }

    async fn grant(&self, role: &str, target: &str) -> Result<(), CoreError> {
        check_name("role", role)?;
        check_target(target)?;
        self.lock()
            .grants
            .insert((role.to_owned(), target.to_owned()));
        Ok(())
    }

    async fn revoke(&self, role: &str, target: &str) -> Result<bool, CoreError> {
        Ok(self
            .lock()
            .grants
            .remove(&(role.to_owned(), target.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        super::super::conformance::run(&super::MemoryDirectory::new()).await;
    }
}
