//! The credential vault: targets, their credentials sealed at rest, and checkouts.
//!
//! A user reaches a target under a *checkout*: a time-bounded right to the target's
//! credential ([`Vault::checkout`], just in time, for a duration). The gateway that owns the
//! user's session fetches the credential with [`Vault::get_credential`], which releases it
//! only to that gateway, only while the session is Connected and its checkout is valid, and
//! audits every release and every refusal. [`Vault::checkin`] ends a checkout and asks the
//! gateways of its live sessions to terminate them; [`Vault::sweep_expired`] does the same
//! for checkouts whose time ran out (gateways warn users beforehand from
//! [`Vault::checkout_status`]).
//!
//! Secrets are [`Secret`]s in memory (their `Debug`/`Display` print `***`) and sealed with
//! XChaCha20-Poly1305 under the [`Keyring`]'s primary master key at rest, bound to their row
//! and to where the target is (host, port, pinned host key): repointing a target invalidates
//! its credential until it is set again ([`Vault::put_target`]).
//! Rotating the master key: start with the new key as primary and the old one as a previous
//! key, call [`Vault::rotate`] (it re-seals every credential under the primary key), then drop
//! the old key.
//!
//! ```
//! # async fn demo() -> Result<(), psm_core::CoreError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use psm_core::clock::SystemClock;
//! use psm_core::store::MemoryStore;
//! use psm_core::vault::{Credential, CheckoutRequest, Keyring, MasterKey, MemoryVaultStore, Target, Vault, VaultConfig};
//! use psm_core::{Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId};
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), EngineConfig::default());
//! let vault = Vault::new(Arc::new(MemoryVaultStore::new()), Keyring::new(MasterKey::generate()?),
//!     engine.clone(), VaultConfig::default());
//! vault.put_target(Target { name: "web-01".into(), host: "127.0.0.1".into(), port: 22,
//!     protocol: Protocol::Ssh, host_key: None }, "admin").await?;
//! vault.set_credential("web-01", Credential::password("root", "s3cret"), "admin").await?;
//!
//! let checkout = vault.checkout(CheckoutRequest { user: "alice".into(), target: "web-01".into(),
//!     duration: Duration::from_secs(3600) }, "admin").await?;
//! let gateway = ProcessInstance::new("gateway-1")?;
//! let id = SessionId::new();
//! engine.open_session(NewSession { id, user: "alice".into(), target: "web-01".into(),
//!     protocol: Protocol::Ssh, checkout_id: Some(checkout.id.clone()),
//!     process_instance: gateway.clone() }).await?;
//! let credential = vault.get_credential(id, &gateway).await?;
//! assert_eq!(credential.username, "root");
//! assert_eq!(format!("{credential:?}").contains("s3cret"), false);
//!
//! let checkin = vault.checkin(&checkout.id, "admin").await?;
//! assert_eq!(checkin.sessions_terminated, vec![id]);
//! assert!(vault.get_credential(id, &gateway).await.is_err());
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::{AuditAction, AuditRecord};
use crate::engine::Engine;
use crate::error::CoreError;
use crate::id::{CheckoutId, ProcessInstance, SessionId};
use crate::session::NewSession;
use crate::stage::Stage;
use crate::store::{ListQuery, StageSet};

mod checkout;
mod credential;
mod keyring;
mod policy;
mod secret;
mod settings;
mod sql;
mod store;
mod target;

pub use checkout::{Checkin, Checkout, CheckoutEnd, CheckoutRequest};
pub use credential::{
    Credential, CredentialSecret, MAX_PASSWORD_LEN, MAX_PRIVATE_KEY_LEN, MAX_USERNAME_LEN,
};
pub use keyring::{KeyId, Keyring, MASTER_KEY_LEN, MasterKey, NONCE_LEN, Sealed};
pub use policy::DirectoryPolicy;
pub use secret::Secret;
pub use settings::{PamSettings, RecipientKey, StorageMode};
pub use store::{MAX_VAULT_LIST, MemoryVaultStore, SealedCredential, VaultStore};
pub use target::{MAX_HOST_KEY_LEN, MAX_HOST_LEN, Target, validate_target_name};
/// The wiping the vault's types use, for crates that hold what the vault releases (a
/// gateway's copy of a target password, a recording's data key): one version of it across
/// the workspaces.
pub use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The vault's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    /// Shortest checkout.
    pub min_checkout: Duration,
    /// Longest checkout.
    pub max_checkout: Duration,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            min_checkout: Duration::from_secs(60),
            max_checkout: Duration::from_secs(24 * 3600),
        }
    }
}

/// Decides whether a user may check out a target's credential (the user directory's roles
/// plug in here). The default vault allows every request for an existing target.
#[async_trait]
pub trait CheckoutPolicy: Send + Sync + 'static {
    /// `Ok` to allow; [`CoreError::Forbidden`] to refuse, with the reason.
    async fn may_checkout(&self, user: &str, target: &Target) -> Result<(), CoreError>;
}

/// What [`Vault::checkout_status`] answers: the checkout and the time it has left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutStatus {
    /// The checkout.
    pub checkout: Checkout,
    /// Time left (zero once over).
    pub remaining: Duration,
    /// Whole minutes left, rounded up (GetRemainingMinutesForCheckout).
    pub remaining_minutes: u64,
    /// Whether it is valid now.
    pub active: bool,
}

/// The vault service.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn VaultStore>,
    keyring: Arc<Keyring>,
    engine: Engine,
    config: VaultConfig,
    policy: Option<Arc<dyn CheckoutPolicy>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("primary_key", self.keyring.primary_id())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const CREDENTIAL_ACTOR_LEN: usize = 200;

fn actor_text(actor: &str) -> String {
    let mut a: String = actor
        .chars()
        .filter(|c| !c.is_control())
        .take(CREDENTIAL_ACTOR_LEN)
        .collect();
    if a.is_empty() {
        a.push_str("anonymous");
    }
    a
}

impl Vault {
    /// A vault over `store`, sealing with `keyring`, terminating sessions through `engine`.
    pub fn new(
        store: Arc<dyn VaultStore>,
        keyring: Keyring,
        engine: Engine,
        config: VaultConfig,
    ) -> Self {
        Self {
            store,
            keyring: Arc::new(keyring),
            engine,
            config,
            policy: None,
        }
    }

    /// Consults `policy` before granting a checkout.
    pub fn with_policy(mut self, policy: Arc<dyn CheckoutPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The engine the vault terminates sessions through.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    async fn audit(
        &self,
        session: Option<SessionId>,
        actor: &str,
        action: AuditAction,
        detail: String,
    ) -> Result<(), CoreError> {
        self.engine
            .store()
            .append_audit(&AuditRecord {
                at: self.engine.now(),
                session,
                actor: actor_text(actor),
                action,
                from_stage: None,
                to_stage: None,
                detail,
            })
            .await
            .map(drop)
    }

    /// Records a refusal in the audit trail and returns the error to give the caller.
    pub async fn refuse(
        &self,
        session: Option<SessionId>,
        actor: &str,
        error: CoreError,
    ) -> CoreError {
        if let Err(e) = self
            .audit(session, actor, AuditAction::Refused, error.to_string())
            .await
        {
            tracing::error!(error = %e, "could not audit a refusal");
        }
        tracing::warn!(session_id = ?session.map(|s| s.to_string()), actor = %actor_text(actor),
            reason = %error, "refused");
        error
    }

    /// Creates or replaces a target. Repointing an existing target (a new host, port or
    /// pinned host key) invalidates its credential until it is set again, so the vaulted
    /// password is never sent to the new place; that is audited as an alert.
    pub async fn put_target(&self, target: Target, actor: &str) -> Result<Target, CoreError> {
        target.validate()?;
        let before = self.store.target(&target.name).await?;
        self.store.put_target(&target, self.engine.now()).await?;
        self.audit(
            None,
            actor,
            AuditAction::Other,
            format!(
                "target {} set to {}:{} over {}",
                target.name, target.host, target.port, target.protocol
            ),
        )
        .await?;
        if let Some(before) = before
            && (before.host != target.host
                || before.port != target.port
                || before.host_key != target.host_key)
            && self.store.remove_credential(&target.name).await?
        {
            let key_note = if before.host_key != target.host_key {
                ", host key changed"
            } else {
                ""
            };
            self.audit(
                None,
                actor,
                AuditAction::Other,
                format!(
                    "ALERT: target {} repointed from {}:{} to {}:{}{key_note}: its credential \
                     is invalidated until it is set again",
                    target.name, before.host, before.port, target.host, target.port
                ),
            )
            .await?;
            tracing::warn!(target = %target.name, actor = %actor_text(actor),
                "target repointed: its credential is invalidated until it is set again");
        }
        Ok(target)
    }

    /// One target ([`CoreError::UnknownTarget`] if there is none by that name).
    pub async fn target(&self, name: &str) -> Result<Target, CoreError> {
        validate_target_name(name)?;
        self.store
            .target(name)
            .await?
            .ok_or_else(|| CoreError::UnknownTarget(name.to_owned()))
    }

    /// Every target, by name.
    pub async fn targets(&self) -> Result<Vec<Target>, CoreError> {
        self.store.targets().await
    }

    /// Removes a target and its credential.
    pub async fn remove_target(&self, name: &str, actor: &str) -> Result<(), CoreError> {
        validate_target_name(name)?;
        if !self.store.remove_target(name).await? {
            return Err(CoreError::UnknownTarget(name.to_owned()));
        }
        self.audit(
            None,
            actor,
            AuditAction::Other,
            format!("target {name} removed"),
        )
        .await
    }

    /// Seals and stores the credential of an existing target (replacing any earlier one).
    pub async fn set_credential(
        &self,
        target: &str,
        credential: Credential,
        actor: &str,
    ) -> Result<(), CoreError> {
        validate_target_name(target)?;
        credential.validate()?;
        let bound_to = self.target(target).await?;
        let kind = credential.secret.kind();
        let aad = SealedCredential::aad(&bound_to, &credential.username, kind);
        let sealed = self.keyring.seal(&aad, &credential.secret.to_plaintext())?;
        self.store
            .put_credential(&SealedCredential {
                target: target.to_owned(),
                username: credential.username.clone(),
                kind: kind.to_owned(),
                sealed,
                updated: self.engine.now(),
            })
            .await?;
        self.audit(
            None,
            actor,
            AuditAction::Other,
            format!(
                "credential of target {target} set: user {}, {kind}",
                credential.username
            ),
        )
        .await
    }

    /// Opens a row bound to `target` as it is now. A row sealed before the binding to
    /// host, port and host key (version 1) opens under its old binding; the second value
    /// says so, and the caller re-seals it ([`Vault::reseal`]).
    fn open(
        &self,
        row: &SealedCredential,
        target: &Target,
    ) -> Result<(Credential, bool), CoreError> {
        let what = format!("the credential of target {}", row.target);
        let aad = SealedCredential::aad(target, &row.username, &row.kind);
        let (plain, legacy) = match self.keyring.open(&row.sealed, &aad, &what) {
            Ok(plain) => (plain, false),
            Err(e) => {
                let v1 = SealedCredential::aad_v1(&row.target, &row.username, &row.kind);
                match self.keyring.open(&row.sealed, &v1, &what) {
                    Ok(plain) => (plain, true),
                    Err(_) => {
                        return Err(match e {
                            CoreError::Vault { reason } => CoreError::Vault {
                                reason: format!(
                                    "{reason} (or target {} was repointed to {}:{} since it \
                                     was set: set the credential again)",
                                    target.name, target.host, target.port
                                ),
                            },
                            e => e,
                        });
                    }
                }
            }
        };
        Ok((
            Credential {
                username: row.username.clone(),
                secret: CredentialSecret::from_plaintext(&row.kind, &plain, &what)?,
            },
            legacy,
        ))
    }

    /// Re-seals `row` under the primary key, bound to `target`; whether the row was still
    /// `row` (and so replaced).
    async fn reseal(
        &self,
        row: &SealedCredential,
        credential: &Credential,
        target: &Target,
    ) -> Result<bool, CoreError> {
        let aad = SealedCredential::aad(target, &row.username, &row.kind);
        let sealed = self.keyring.seal(&aad, &credential.secret.to_plaintext())?;
        let new = SealedCredential {
            sealed,
            updated: self.engine.now(),
            ..row.clone()
        };
        self.store.replace_credential(row, &new).await
    }

    /// Re-seals every credential sealed before the binding to host, port and host key
    /// (version 1) bound to its target as it is now; returns how many. A node runs it at
    /// start, so old vaults stay readable and every row is bound from then on (a version-1
    /// row still opens on first use if this never ran, and is re-sealed then).
    pub async fn upgrade_bindings(&self) -> Result<u32, CoreError> {
        let mut done = 0;
        for target in self.store.targets().await? {
            let Some(row) = self.store.credential(&target.name).await? else {
                continue;
            };
            // A row that opens under neither binding is left alone: GetCredential refuses
            // it with the reason, and one bad row does not stop a node from starting.
            let (credential, legacy) = match self.open(&row, &target) {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::warn!(target = %target.name, error = %e,
                        "a credential does not open; left as it is");
                    continue;
                }
            };
            if legacy && self.reseal(&row, &credential, &target).await? {
                done += 1;
            }
        }
        if done > 0 {
            self.audit(
                None,
                "vault",
                AuditAction::Other,
                format!(
                    "{done} credentials re-sealed bound to their target's host, port and host key"
                ),
            )
            .await?;
        }
        Ok(done)
    }

    /// Re-seals every credential sealed under a previous key with the primary key; returns
    /// how many were re-sealed. Safe to run concurrently with writes (each row is replaced
    /// only if unchanged since read).
    pub async fn rotate(&self) -> Result<u32, CoreError> {
        let primary = self.keyring.primary_id().clone();
        let mut done = 0;
        // Bounded: each round re-seals the rows it read or stops.
        for _ in 0..10_000 {
            let batch = self.store.credentials_not_under(&primary, 100).await?;
            if batch.is_empty() {
                break;
            }
            let mut progressed = false;
            for row in &batch {
                let target = self.target(&row.target).await?;
                let (credential, _) = self.open(row, &target)?;
                if self.reseal(row, &credential, &target).await? {
                    done += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if done > 0 {
            self.audit(
                None,
                "vault",
                AuditAction::Other,
                format!("{done} credentials re-sealed under master key {primary}"),
            )
            .await?;
        }
        Ok(done)
    }

    /// Grants a checkout of `request.target`'s credential to `request.user` for
    /// `request.duration` (bounded by the configured limits).
    pub async fn checkout(
        &self,
        request: CheckoutRequest,
        actor: &str,
    ) -> Result<Checkout, CoreError> {
        let probe = NewSession {
            id: SessionId::new(),
            user: request.user.clone(),
            target: request.target.clone(),
            protocol: crate::session::Protocol::Ssh,
            checkout_id: None,
            process_instance: ProcessInstance::new("probe")?,
        };
        probe.validate()?;
        if request.duration < self.config.min_checkout
            || request.duration > self.config.max_checkout
        {
            return Err(CoreError::InvalidInput {
                field: "durationMinutes",
                reason: format!(
                    "{} s is outside {} s to {} s",
                    request.duration.as_secs(),
                    self.config.min_checkout.as_secs(),
                    self.config.max_checkout.as_secs()
                ),
            });
        }
        let target = self.target(&request.target).await?;
        if self.store.credential(&target.name).await?.is_none() {
            return Err(CoreError::NoCredential {
                target: target.name,
            });
        }
        if let Some(policy) = &self.policy
            && let Err(e) = policy.may_checkout(&request.user, &target).await
        {
            return Err(self.refuse(None, actor, e).await);
        }
        let now = self.engine.now();
        let checkout = Checkout {
            id: CheckoutId::new(uuid::Uuid::new_v4().to_string())?,
            user: request.user,
            target: target.name,
            created: now,
            expires: now.saturating_add(request.duration),
            ended: None,
            end_reason: None,
            created_by: actor_text(actor),
        };
        self.store.insert_checkout(&checkout).await?;
        self.audit(
            None,
            actor,
            AuditAction::Other,
            format!(
                "checkout {} of target {} granted to {} until {}",
                checkout.id, checkout.target, checkout.user, checkout.expires
            ),
        )
        .await?;
        tracing::info!(checkout_id = %checkout.id, target = %checkout.target,
            user = %checkout.user, "checkout granted");
        Ok(checkout)
    }

    /// One checkout ([`CoreError::UnknownCheckout`] if none).
    pub async fn get_checkout(&self, id: &CheckoutId) -> Result<Checkout, CoreError> {
        self.store
            .checkout(id)
            .await?
            .ok_or_else(|| CoreError::UnknownCheckout(id.clone()))
    }

    /// GetRemainingMinutesForCheckout.
    pub async fn checkout_status(&self, id: &CheckoutId) -> Result<CheckoutStatus, CoreError> {
        let checkout = self.get_checkout(id).await?;
        let now = self.engine.now();
        Ok(CheckoutStatus {
            remaining: checkout.remaining(now),
            remaining_minutes: checkout.remaining_minutes(now),
            active: checkout.is_active(now),
            checkout,
        })
    }

    async fn sessions_on(&self, id: &CheckoutId) -> Result<Vec<SessionId>, CoreError> {
        if let Some(ids) = self.store.connected_sessions_on(id).await? {
            return Ok(ids);
        }
        Ok(self
            .engine
            .list(&ListQuery {
                stages: StageSet::one(Stage::Connected),
                ..ListQuery::default()
            })
            .await?
            .into_iter()
            .filter(|s| s.checkout_id.as_ref() == Some(id))
            .map(|s| s.id)
            .collect())
    }

    async fn terminate_sessions_on(
        &self,
        id: &CheckoutId,
        actor: &str,
        reason: &str,
    ) -> Result<Vec<SessionId>, CoreError> {
        let ids = self.sessions_on(id).await?;
        let mut asked = Vec::with_capacity(ids.len());
        for session in ids {
            let s = self
                .engine
                .request_termination(session, &actor_text(actor), reason)
                .await?;
            if s.stage == Stage::Connected {
                asked.push(session);
            }
        }
        Ok(asked)
    }

    /// Checkin: ends the checkout and asks the gateways of its live sessions to terminate
    /// them. A checkout that has already ended is a success that changes nothing (its
    /// sessions are asked again, in case a gateway missed it).
    pub async fn checkin(&self, id: &CheckoutId, actor: &str) -> Result<Checkin, CoreError> {
        let now = self.engine.now();
        let (checkout, already_ended) = match self
            .store
            .end_checkout(id, now, CheckoutEnd::CheckedIn)
            .await?
        {
            Some(c) => (c, false),
            None => (self.get_checkout(id).await?, true),
        };
        let sessions_terminated = self
            .terminate_sessions_on(id, actor, &format!("checkout {id} was checked in"))
            .await?;
        if !already_ended {
            self.audit(
                None,
                actor,
                AuditAction::Other,
                format!(
                    "checkout {id} checked in; {} live sessions asked to terminate",
                    sessions_terminated.len()
                ),
            )
            .await?;
            tracing::info!(checkout_id = %id, sessions = sessions_terminated.len(), "checked in");
        }
        Ok(Checkin {
            checkout,
            already_ended,
            sessions_terminated,
        })
    }

    /// Ends every checkout whose time ran out and asks its live sessions to terminate;
    /// returns how many checkouts ended. Run it beside the watchdog.
    pub async fn sweep_expired(&self) -> Result<u32, CoreError> {
        let mut ended = 0;
        for _ in 0..1000 {
            let now = self.engine.now();
            let due = self.store.expired_checkouts(now, 500).await?;
            if due.is_empty() {
                break;
            }
            let mut progressed = false;
            for c in due {
                if self
                    .store
                    .end_checkout(&c.id, now, CheckoutEnd::Expired)
                    .await?
                    .is_none()
                {
                    continue;
                }
                progressed = true;
                ended += 1;
                let asked = self
                    .terminate_sessions_on(&c.id, "vault", &format!("checkout {} expired", c.id))
                    .await?;
                self.audit(
                    None,
                    "vault",
                    AuditAction::Other,
                    format!(
                        "checkout {} expired; {} live sessions asked to terminate",
                        c.id,
                        asked.len()
                    ),
                )
                .await?;
            }
            if !progressed {
                break;
            }
        }
        Ok(ended)
    }

    /// GetCredential: the credential of `session`'s target, released only to the gateway
    /// `by` that owns the session, while it is Connected and its checkout is valid (granted
    /// to the session's user, for the session's target, not ended, not expired). Every
    /// release and every refusal is audited; the secret never is.
    pub async fn get_credential(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<Credential, CoreError> {
        let s = self.engine.session(session).await?;
        let refuse = |reason: String| CoreError::Forbidden(reason);
        if s.stage != Stage::Connected {
            return Err(self
                .refuse(
                    Some(session),
                    by.as_str(),
                    refuse(format!(
                        "session {session} is {}: credentials are released only to Connected \
                         sessions",
                        s.stage
                    )),
                )
                .await);
        }
        if s.process_instance.as_ref() != Some(by) {
            return Err(self
                .refuse(
                    Some(session),
                    by.as_str(),
                    // The holder is not named: the caller learns nothing about other
                    // gateways (issue 17 M7).
                    refuse(format!("session {session} is not held by {by}")),
                )
                .await);
        }
        let Some(checkout_id) = &s.checkout_id else {
            return Err(self
                .refuse(
                    Some(session),
                    by.as_str(),
                    refuse(format!("session {session} runs under no checkout")),
                )
                .await);
        };
        let checkout = match self.store.checkout(checkout_id).await? {
            Some(c) => c,
            None => {
                return Err(self
                    .refuse(
                        Some(session),
                        by.as_str(),
                        CoreError::UnknownCheckout(checkout_id.clone()),
                    )
                    .await);
            }
        };
        let now = self.engine.now();
        if !checkout.is_active(now) {
            let reason = checkout
                .end_reason
                .map_or("expired".to_owned(), |r| r.to_string());
            return Err(self
                .refuse(
                    Some(session),
                    by.as_str(),
                    CoreError::CheckoutEnded {
                        checkout: checkout.id.clone(),
                        reason,
                    },
                )
                .await);
        }
        if checkout.target != s.target || checkout.user != s.user {
            return Err(self
                .refuse(
                    Some(session),
                    by.as_str(),
                    refuse(format!(
                        "checkout {} is for user {} on target {}, not for this session's user \
                         {} on {}",
                        checkout.id, checkout.user, checkout.target, s.user, s.target
                    )),
                )
                .await);
        }
        let row =
            self.store
                .credential(&s.target)
                .await?
                .ok_or_else(|| CoreError::NoCredential {
                    target: s.target.clone(),
                })?;
        let target = self.target(&s.target).await?;
        let (credential, legacy) = self.open(&row, &target)?;
        if legacy {
            self.reseal(&row, &credential, &target).await?;
        }
        self.audit(
            Some(session),
            by.as_str(),
            AuditAction::Other,
            format!(
                "credential of target {} (user {}) released under checkout {}",
                s.target, row.username, checkout.id
            ),
        )
        .await?;
        tracing::info!(session_id = %session, process_instance = %by, target = %s.target,
            "credential released");
        Ok(credential)
    }
}
