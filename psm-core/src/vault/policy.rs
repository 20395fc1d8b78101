//! [`DirectoryPolicy`]: checkouts only for directory users whose roles reach the target.

use std::sync::Arc;

use async_trait::async_trait;

use super::{CheckoutPolicy, Target};
use crate::directory::DirectoryLookup;
use crate::error::CoreError;

/// Grants a checkout only to an existing, enabled directory user one of whose roles may
/// reach the target.
#[derive(Clone)]
pub struct DirectoryPolicy {
    directory: Arc<dyn DirectoryLookup>,
}

impl std::fmt::Debug for DirectoryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryPolicy").finish_non_exhaustive()
    }
}

impl DirectoryPolicy {
    /// A policy over `directory`.
    pub fn new(directory: Arc<dyn DirectoryLookup>) -> Self {
        Self { directory }
    }
}

#[async_trait]
impl CheckoutPolicy for DirectoryPolicy {
    async fn may_checkout(&self, user: &str, target: &Target) -> Result<(), CoreError> {
        let Some(u) = self.directory.user(user).await? else {
            return Err(CoreError::Forbidden(format!(
                "{user} is not a user of the directory"
            )));
        };
        if u.disabled {
            return Err(CoreError::Forbidden(format!("user {user} is disabled")));
        }
        if !self.directory.may_reach(&u, &target.name).await? {
            return Err(CoreError::Forbidden(format!(
                "no role of user {user} may reach target {}",
                target.name
            )));
        }
        Ok(())
    }
}
