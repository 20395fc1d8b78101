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
    windows: BTreeMap<i64, crate::access::StoredWindow>,
    next_window: i64,
    rules: BTreeMap<String, crate::access::ApprovalRule>,
    requests: BTreeMap<i64, crate::access::AccessRequest>,
    next_request: i64,
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

    async fn windows_of_roles(
        &self,
        roles: &[String],
    ) -> Result<Vec<crate::access::StoredWindow>, CoreError> {
        Ok(self
            .lock()
            .windows
            .values()
            .filter(|w| roles.contains(&w.role))
            .cloned()
            .collect())
    }

    async fn approval_rule(
        &self,
        target: &str,
    ) -> Result<Option<crate::access::ApprovalRule>, CoreError> {
        let state = self.lock();
        Ok(state
            .rules
            .get(target)
            .or_else(|| state.rules.get(super::ALL_TARGETS))
            .cloned())
    }

    async fn request_grants(
        &self,
        user: &str,
        now: crate::Timestamp,
    ) -> Result<Vec<String>, CoreError> {
        let targets = self
            .lock()
            .requests
            .values()
            .filter(|r| r.user == user && r.grants_at(now))
            .map(|r| r.target.clone())
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

    async fn windows(&self) -> Result<Vec<crate::access::StoredWindow>, CoreError> {
        let mut out: Vec<_> = self.lock().windows.values().cloned().collect();
        out.sort_by(|a, b| (&a.role, &a.target, a.id).cmp(&(&b.role, &b.target, b.id)));
        Ok(out)
    }

    async fn add_window(&self, window: &crate::access::NewWindow) -> Result<i64, CoreError> {
        check_name("role", &window.role)?;
        check_target(&window.target)?;
        let mut state = self.lock();
        if state.windows.len() >= crate::access::MAX_WINDOWS {
            return Err(CoreError::InvalidInput {
                field: "window",
                reason: format!(
                    "the directory already holds {} windows",
                    crate::access::MAX_WINDOWS
                ),
            });
        }
        state.next_window += 1;
        let id = state.next_window;
        state.windows.insert(
            id,
            crate::access::StoredWindow {
                id,
                role: window.role.clone(),
                target: window.target.clone(),
                window: window.window.clone(),
            },
        );
        Ok(id)
    }

    async fn remove_window(&self, id: i64) -> Result<bool, CoreError> {
        Ok(self.lock().windows.remove(&id).is_some())
    }

    async fn approval_rules(&self) -> Result<Vec<crate::access::ApprovalRule>, CoreError> {
        Ok(self.lock().rules.values().cloned().collect())
    }

    async fn set_approval_rule(&self, rule: &crate::access::ApprovalRule) -> Result<(), CoreError> {
        let rule =
            crate::access::ApprovalRule::new(&rule.target, &rule.approver_role, rule.approvals)?;
        let mut state = self.lock();
        if !state.rules.contains_key(&rule.target)
            && state.rules.len() >= crate::access::MAX_APPROVAL_RULES
        {
            return Err(CoreError::InvalidInput {
                field: "rule",
                reason: format!(
                    "the directory already holds {} approval rules",
                    crate::access::MAX_APPROVAL_RULES
                ),
            });
        }
        state.rules.insert(rule.target.clone(), rule);
        Ok(())
    }

    async fn remove_approval_rule(&self, target: &str) -> Result<bool, CoreError> {
        Ok(self.lock().rules.remove(target).is_some())
    }

    async fn create_access_request(
        &self,
        request: &crate::access::NewAccessRequest,
    ) -> Result<i64, CoreError> {
        request.validate()?;
        let mut state = self.lock();
        let pending = state
            .requests
            .values()
            .filter(|r| r.user == request.user && r.state == crate::access::RequestState::Pending)
            .count();
        if pending >= crate::access::MAX_PENDING_PER_USER {
            return Err(crate::access::approval_pending_cap_error(&request.user));
        }
        state.next_request += 1;
        let id = state.next_request;
        state.requests.insert(
            id,
            crate::access::AccessRequest {
                id,
                user: request.user.clone(),
                target: request.target.clone(),
                reason: request.reason.clone(),
                duration: request.duration,
                created: request.created,
                state: crate::access::RequestState::Pending,
                approver_role: request.approver_role.clone(),
                approvals_needed: request.approvals_needed,
                approvals: Vec::new(),
                decided_by: None,
                decided_at: None,
                expires: None,
                note: String::new(),
                version: 1,
            },
        );
        Ok(id)
    }

    async fn access_requests(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<crate::access::AccessRequest>, CoreError> {
        Ok(self
            .lock()
            .requests
            .values()
            .rev()
            .filter(|r| user.is_none_or(|u| r.user == u))
            .take(crate::access::MAX_LISTED_REQUESTS)
            .cloned()
            .collect())
    }

    async fn access_request(
        &self,
        id: i64,
    ) -> Result<Option<crate::access::AccessRequest>, CoreError> {
        Ok(self.lock().requests.get(&id).cloned())
    }

    async fn replace_access_request(
        &self,
        next: &crate::access::AccessRequest,
    ) -> Result<bool, CoreError> {
        crate::access::check_request_fields(next)?;
        let mut state = self.lock();
        match state.requests.get_mut(&next.id) {
            Some(r) if r.version == next.version.saturating_sub(1) => {
                *r = next.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        super::super::conformance::run(&super::MemoryDirectory::new()).await;
    }
}
