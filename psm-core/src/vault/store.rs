//! Where targets, sealed credentials and checkouts live: the [`VaultStore`] trait, an
//! in-memory backend, and (in `sqlite.rs`, `postgres.rs`) the two SQL stores, whose tables
//! come from migration `0002_vault.sql` in the same database as the sessions.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::checkout::{Checkout, CheckoutEnd};
use super::keyring::{KeyId, Sealed};
use super::target::Target;
use crate::error::CoreError;
use crate::id::{CheckoutId, SessionId};
use crate::timestamp::Timestamp;

/// Most rows any listing returns.
pub const MAX_VAULT_LIST: u32 = 10_000;

/// A credential as stored: who, what kind, and the sealed secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedCredential {
    /// The target it logs in to (one credential per target).
    pub target: String,
    /// The account (in clear: not a secret).
    pub username: String,
    /// `password` or `private-key`.
    pub kind: String,
    /// The sealed secret.
    pub sealed: Sealed,
    /// When it was last written.
    pub updated: Timestamp,
}

impl SealedCredential {
    /// The associated data a credential row is sealed with: it binds the ciphertext to its
    /// target's name and where the target is (host, port, pinned host key), and to the
    /// username and kind, so a credential never opens for a target that was repointed (even
    /// by a write straight to the database) or copied onto another row. Version 2 of the
    /// binding; [`aad_v1`](Self::aad_v1) is the one before it.
    pub fn aad(target: &Target, username: &str, kind: &str) -> Vec<u8> {
        let port = target.port.to_string();
        let mut aad = Vec::with_capacity(64 + target.name.len() + target.host.len());
        aad.extend_from_slice(b"psm-vault-v2\0");
        for part in [
            target.name.as_str(),
            username,
            kind,
            target.host.as_str(),
            port.as_str(),
        ] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        match &target.host_key {
            Some(key) => {
                aad.push(1);
                aad.extend_from_slice(&(key.len() as u32).to_be_bytes());
                aad.extend_from_slice(key.as_bytes());
            }
            None => aad.push(0),
        }
        aad
    }

    /// The associated data of rows sealed before version 2 (target name, username and kind
    /// only). The vault still opens such rows and re-seals them under [`aad`](Self::aad)
    /// bound to the target as it is then.
    pub fn aad_v1(target: &str, username: &str, kind: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(16 + target.len() + username.len() + kind.len());
        aad.extend_from_slice(b"psm-vault-v1\0");
        for part in [target, username, kind] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// Storage of the vault. Each method is atomic.
///
/// ```
/// # async fn demo() -> Result<(), psm_core::CoreError> {
/// use psm_core::vault::{MemoryVaultStore, VaultStore};
/// let store = MemoryVaultStore::new();
/// assert!(store.target("web-01").await?.is_none());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait VaultStore: Send + Sync + 'static {
    /// Creates or replaces a target.
    async fn put_target(&self, target: &Target, now: Timestamp) -> Result<(), CoreError>;
    /// One target.
    async fn target(&self, name: &str) -> Result<Option<Target>, CoreError>;
    /// Every target, by name (at most [`MAX_VAULT_LIST`]).
    async fn targets(&self) -> Result<Vec<Target>, CoreError>;
    /// Removes a target and its credential; whether it existed.
    async fn remove_target(&self, name: &str) -> Result<bool, CoreError>;
    /// Creates or replaces the credential of an existing target
    /// ([`CoreError::UnknownTarget`] otherwise).
    async fn put_credential(&self, credential: &SealedCredential) -> Result<(), CoreError>;
    /// Removes the credential of a target (the target stays); whether there was one.
    async fn remove_credential(&self, target: &str) -> Result<bool, CoreError>;
    /// The credential of a target.
    async fn credential(&self, target: &str) -> Result<Option<SealedCredential>, CoreError>;
    /// Up to `limit` credentials sealed under a key other than `key`.
    async fn credentials_not_under(
        &self,
        key: &KeyId,
        limit: u32,
    ) -> Result<Vec<SealedCredential>, CoreError>;
    /// Replaces `old` by `new` only if the stored row is still `old` (same nonce); whether
    /// it did.
    async fn replace_credential(
        &self,
        old: &SealedCredential,
        new: &SealedCredential,
    ) -> Result<bool, CoreError>;
    /// Inserts a new checkout.
    async fn insert_checkout(&self, checkout: &Checkout) -> Result<(), CoreError>;
    /// One checkout.
    async fn checkout(&self, id: &CheckoutId) -> Result<Option<Checkout>, CoreError>;
    /// Ends a checkout that has not ended yet and returns it; `None` if it had already ended
    /// (or does not exist).
    async fn end_checkout(
        &self,
        id: &CheckoutId,
        at: Timestamp,
        reason: CheckoutEnd,
    ) -> Result<Option<Checkout>, CoreError>;
    /// Up to `limit` checkouts not ended whose expiry is at or before `now`.
    async fn expired_checkouts(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Checkout>, CoreError>;
    /// The Connected sessions running under a checkout, if this store can see the sessions
    /// table (the SQL stores share a database with the sessions); `None` makes the vault
    /// list them through the engine instead.
    async fn connected_sessions_on(
        &self,
        checkout: &CheckoutId,
    ) -> Result<Option<Vec<SessionId>>, CoreError>;
}

#[derive(Default)]
struct Inner {
    targets: HashMap<String, Target>,
    credentials: HashMap<String, SealedCredential>,
    checkouts: HashMap<CheckoutId, Checkout>,
}

/// A vault in memory (tests, embedding).
#[derive(Default)]
pub struct MemoryVaultStore {
    inner: Mutex<Inner>,
}

impl MemoryVaultStore {
    /// An empty vault store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written map (each method writes
        // one entry), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl VaultStore for MemoryVaultStore {
    async fn put_target(&self, target: &Target, _now: Timestamp) -> Result<(), CoreError> {
        self.lock()
            .targets
            .insert(target.name.clone(), target.clone());
        Ok(())
    }

    async fn target(&self, name: &str) -> Result<Option<Target>, CoreError> {
        Ok(self.lock().targets.get(name).cloned())
    }

    async fn targets(&self) -> Result<Vec<Target>, CoreError> {
        let mut all: Vec<Target> = self.lock().targets.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.truncate(MAX_VAULT_LIST as usize);
        Ok(all)
    }

    async fn remove_target(&self, name: &str) -> Result<bool, CoreError> {
        let mut inner = self.lock();
        inner.credentials.remove(name);
        Ok(inner.targets.remove(name).is_some())
    }

    async fn put_credential(&self, credential: &SealedCredential) -> Result<(), CoreError> {
        let mut inner = self.lock();
        if !inner.targets.contains_key(&credential.target) {
            return Err(CoreError::UnknownTarget(credential.target.clone()));
        }
        inner
            .credentials
            .insert(credential.target.clone(), credential.clone());
        Ok(())
    }

    async fn remove_credential(&self, target: &str) -> Result<bool, CoreError> {
        Ok(self.lock().credentials.remove(target).is_some())
    }

    async fn credential(&self, target: &str) -> Result<Option<SealedCredential>, CoreError> {
        Ok(self.lock().credentials.get(target).cloned())
    }

    async fn credentials_not_under(
        &self,
        key: &KeyId,
        limit: u32,
    ) -> Result<Vec<SealedCredential>, CoreError> {
        Ok(self
            .lock()
            .credentials
            .values()
            .filter(|c| &c.sealed.key_id != key)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn replace_credential(
        &self,
        old: &SealedCredential,
        new: &SealedCredential,
    ) -> Result<bool, CoreError> {
        let mut inner = self.lock();
        match inner.credentials.get_mut(&old.target) {
            Some(c) if c.sealed.nonce == old.sealed.nonce => {
                *c = new.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn insert_checkout(&self, checkout: &Checkout) -> Result<(), CoreError> {
        let mut inner = self.lock();
        if inner.checkouts.contains_key(&checkout.id) {
            return Err(CoreError::InvalidInput {
                field: "checkOutId",
                reason: format!("checkout {} already exists", checkout.id),
            });
        }
        inner
            .checkouts
            .insert(checkout.id.clone(), checkout.clone());
        Ok(())
    }

    async fn checkout(&self, id: &CheckoutId) -> Result<Option<Checkout>, CoreError> {
        Ok(self.lock().checkouts.get(id).cloned())
    }

    async fn end_checkout(
        &self,
        id: &CheckoutId,
        at: Timestamp,
        reason: CheckoutEnd,
    ) -> Result<Option<Checkout>, CoreError> {
        let mut inner = self.lock();
        match inner.checkouts.get_mut(id) {
            Some(c) if c.ended.is_none() => {
                c.ended = Some(at);
                c.end_reason = Some(reason);
                Ok(Some(c.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn expired_checkouts(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Checkout>, CoreError> {
        let mut due: Vec<Checkout> = self
            .lock()
            .checkouts
            .values()
            .filter(|c| c.ended.is_none() && c.expires <= now)
            .cloned()
            .collect();
        due.sort_by_key(|c| c.expires);
        due.truncate(limit as usize);
        Ok(due)
    }

    async fn connected_sessions_on(
        &self,
        _checkout: &CheckoutId,
    ) -> Result<Option<Vec<SessionId>>, CoreError> {
        Ok(None)
    }
}
