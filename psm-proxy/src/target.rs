//! Where a gateway gets what it needs to log in to a target: the [`TargetAccess`] seam.
//!
//! The gateway asks it, per session, to [`authorize`](TargetAccess::authorize) a user for a
//! target (address, host-key or certificate pin, checkout), then for the vaulted
//! [`credential`](TargetAccess::credential) once the session is open, and to
//! [`release`](TargetAccess::release) the checkout at the end. The production implementation
//! goes through the control plane's `TargetCredentials` role (vault, checkouts, `GetCredential`); [`StaticTargets`] is
//! a fixed table for tests and embedding.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use psm_core::vault::{CheckoutRequest, CredentialSecret, Zeroize, ZeroizeOnDrop};
use psm_core::{CheckoutId, CoreError, ProcessInstance, SessionId, TargetCredentials, Timestamp};

use crate::error::ProxyError;

/// How to check a target's identity: the host key it presents (SSH) or its TLS certificate
/// (RDP). The pins are the vault's `host_key` text, read by the protocol crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key must be one of these. SSH: OpenSSH public key lines (`ssh-ed25519 AAAA...`),
    /// `SHA256:` fingerprints as `ssh-keygen -lf` prints them, or known_hosts lines. RDP: the
    /// SHA-256 of the target's certificate in hex (`sha256:` prefix, `:` separators and case
    /// ignored; several in one string separated by `,` or spaces). None: the target is
    /// refused, its key or certificate being unknown.
    Pinned(Vec<String>),
    /// The key must be listed for `[host]:port` (or `host` on port 22) in this known_hosts
    /// file; with `learn`, a host not yet in the file is trusted and added
    /// (trust-on-first-use), while a host listed with another key is refused. SSH only: a
    /// TLS-based protocol refuses the target.
    KnownHosts {
        /// The file.
        path: std::path::PathBuf,
        /// Trust-on-first-use.
        learn: bool,
    },
    /// Any key or certificate is accepted, with a warning in the log: a lab, or a target
    /// reached over a network trusted by other means. RDP servers mostly present self-signed
    /// certificates nobody pinned; this is the explicit way to accept them.
    AcceptAny,
}

/// The secret half of a target credential. `Debug` prints `***`; the text is wiped when it
/// is dropped.
#[derive(Clone, PartialEq, Eq)]
pub enum TargetSecret {
    /// A password.
    Password(String),
    /// A private key (OpenSSH or PEM text) and its passphrase.
    PrivateKey {
        /// The key text.
        key: String,
        /// Its passphrase.
        passphrase: Option<String>,
    },
}

/// The strings are wiped when the secret is dropped (every clone wipes its own copy).
impl Drop for TargetSecret {
    fn drop(&mut self) {
        match self {
            TargetSecret::Password(p) => p.zeroize(),
            TargetSecret::PrivateKey { key, passphrase } => {
                key.zeroize();
                passphrase.zeroize();
            }
        }
    }
}

impl ZeroizeOnDrop for TargetSecret {}

impl fmt::Debug for TargetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetSecret::Password(_) => "Password(***)",
            TargetSecret::PrivateKey { .. } => "PrivateKey(***)",
        })
    }
}

/// The account and secret to log in to a target with. `Debug` hides the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetCredential {
    /// The account on the target.
    pub account: String,
    /// Its secret.
    pub secret: TargetSecret,
}

/// A user's permission to reach a target now, with where and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The target's name.
    pub target: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How to verify its host key.
    pub host_key: HostKeyCheck,
    /// The account that will be used (shown to the user, recorded).
    pub account: String,
    /// The checkout backing the session, if the vault uses checkouts.
    pub checkout: Option<CheckoutId>,
    /// When the checkout runs out: the gateway warns the user and ends the session then.
    pub expires: Option<Timestamp>,
}

/// Targets, checkouts and credentials, as a gateway needs them.
///
/// ```
/// # async fn demo(access: &dyn psm_proxy::TargetAccess) -> Result<(), psm_proxy::ProxyError> {
/// let auth = access.authorize("alice", "web-01").await?;
/// let session = psm_core::SessionId::new();
/// // ... open the session with auth.checkout ...
/// let cred = access.credential(session, &auth).await?;
/// println!("logging in to {}:{} as {}", auth.host, auth.port, cred.account);
/// access.release(session, &auth).await;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait TargetAccess: Send + Sync {
    /// The target names `user` may pick from (the menu); the directory's grants filter them
    /// further.
    async fn targets(&self, user: &str) -> Result<Vec<String>, ProxyError>;

    /// Authorizes `user` for `target` (checking it out if the vault uses checkouts).
    async fn authorize(&self, user: &str, target: &str) -> Result<Authorization, ProxyError>;

    /// The credential for an open session (the control plane's `GetCredential`, valid only
    /// for the gateway owning the session while the checkout lasts).
    async fn credential(
        &self,
        session: SessionId,
        authorization: &Authorization,
    ) -> Result<TargetCredential, ProxyError>;

    /// Gives the checkout back at the end of the session (best effort: logged on failure).
    async fn release(&self, session: SessionId, authorization: &Authorization) {
        let _ = (session, authorization);
    }
}

/// One entry of [`StaticTargets`].
#[derive(Clone, Debug)]
pub struct StaticTarget {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Host key check.
    pub host_key: HostKeyCheck,
    /// Credential.
    pub credential: TargetCredential,
    /// How long a session may last (a simulated checkout); `None`: unbounded.
    pub lifetime: Option<Duration>,
}

/// A fixed table of targets and credentials (tests, embedding).
#[derive(Clone, Default)]
pub struct StaticTargets {
    targets: Arc<Mutex<HashMap<String, StaticTarget>>>,
}

impl fmt::Debug for StaticTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTargets").finish_non_exhaustive()
    }
}

impl StaticTargets {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a target.
    pub fn insert(&self, name: impl Into<String>, target: StaticTarget) {
        self.targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.into(), target);
    }

    fn get(&self, name: &str) -> Option<StaticTarget> {
        self.targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

#[async_trait]
impl TargetAccess for StaticTargets {
    async fn targets(&self, _user: &str) -> Result<Vec<String>, ProxyError> {
        let mut v: Vec<String> = self
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        Ok(v)
    }

    async fn authorize(&self, _user: &str, target: &str) -> Result<Authorization, ProxyError> {
        let t = self
            .get(target)
            .ok_or_else(|| ProxyError::UnknownTarget(target.to_owned()))?;
        Ok(Authorization {
            target: target.to_owned(),
            host: t.host,
            port: t.port,
            host_key: t.host_key,
            account: t.credential.account,
            checkout: None,
            expires: t.lifetime.map(|d| Timestamp::now_utc().saturating_add(d)),
        })
    }

    async fn credential(
        &self,
        _session: SessionId,
        authorization: &Authorization,
    ) -> Result<TargetCredential, ProxyError> {
        self.get(&authorization.target)
            .map(|t| t.credential)
            .ok_or_else(|| ProxyError::UnknownTarget(authorization.target.clone()))
    }
}

/// The production [`TargetAccess`]: targets, checkouts and credentials through a
/// control plane's [`TargetCredentials`] role (in-process `LocalControlPlane`, or `psm-client`
/// over HTTP).
///
/// Per session it checks out the target's credential just in time for the user (for
/// `checkout_duration`), calls `GetCredential` as the gateway owning the session, and checks
/// the credential back in when the session ends. A target's pinned host key or certificate
/// (the vault's `host_key`) is required unless a known_hosts file is configured or unpinned
/// targets are accepted. It serves one protocol's targets (SSH unless
/// [`for_protocol`](Self::for_protocol) says otherwise) and refuses the others.
pub struct ControlPlaneTargets {
    control_plane: Arc<dyn TargetCredentials>,
    gateway: ProcessInstance,
    checkout_duration: Duration,
    protocol: psm_core::Protocol,
    known_hosts: Option<(std::path::PathBuf, bool)>,
    accept_unpinned: bool,
    catalog:
        Option<Arc<dyn Fn() -> futures::future::BoxFuture<'static, Vec<String>> + Send + Sync>>,
}

impl fmt::Debug for ControlPlaneTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneTargets")
            .field("gateway", &self.gateway)
            .field("checkout_duration", &self.checkout_duration)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl ControlPlaneTargets {
    /// Targets through `control_plane`, acting as `gateway`, with checkouts of
    /// `checkout_duration`.
    pub fn new(
        control_plane: Arc<dyn TargetCredentials>,
        gateway: ProcessInstance,
        checkout_duration: Duration,
    ) -> Self {
        Self {
            control_plane,
            gateway,
            checkout_duration,
            protocol: psm_core::Protocol::Ssh,
            known_hosts: None,
            accept_unpinned: false,
            catalog: None,
        }
    }

    /// Serves `protocol`'s targets (the RDP gateway passes `Protocol::Rdp`); a target of
    /// another protocol is refused.
    pub fn for_protocol(mut self, protocol: psm_core::Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Accepts any key or certificate from a target the vault has no pin for
    /// ([`HostKeyCheck::AcceptAny`]) when no known_hosts file is configured.
    pub fn with_unpinned_accepted(mut self, accept: bool) -> Self {
        self.accept_unpinned = accept;
        self
    }

    /// Verifies targets without a pinned key against `path`; with `learn`, trusts and records
    /// a target's key the first time it is seen (trust-on-first-use).
    pub fn with_known_hosts(mut self, path: impl Into<std::path::PathBuf>, learn: bool) -> Self {
        self.known_hosts = Some((path.into(), learn));
        self
    }

    /// Lists every target name for the menu (the control plane's API has no listing; an
    /// in-process assembly passes the vault's).
    pub fn with_catalog(
        mut self,
        catalog: impl Fn() -> futures::future::BoxFuture<'static, Vec<String>> + Send + Sync + 'static,
    ) -> Self {
        self.catalog = Some(Arc::new(catalog));
        self
    }
}

#[async_trait]
impl TargetAccess for ControlPlaneTargets {
    async fn targets(&self, _user: &str) -> Result<Vec<String>, ProxyError> {
        Ok(match &self.catalog {
            Some(list) => list().await,
            None => Vec::new(),
        })
    }

    async fn authorize(&self, user: &str, target: &str) -> Result<Authorization, ProxyError> {
        let t = match self.control_plane.target(target).await {
            Ok(t) => t,
            Err(CoreError::UnknownTarget(_)) => {
                return Err(ProxyError::UnknownTarget(target.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        if t.protocol != self.protocol {
            return Err(ProxyError::Config(format!(
                "target {target} is a {} target, not {}",
                t.protocol, self.protocol
            )));
        }
        let host_key = match (&t.host_key, &self.known_hosts) {
            (Some(pin), _) => HostKeyCheck::Pinned(vec![pin.clone()]),
            (None, Some((path, learn))) => HostKeyCheck::KnownHosts {
                path: path.clone(),
                learn: *learn,
            },
            (None, None) if self.accept_unpinned => HostKeyCheck::AcceptAny,
            (None, None) => HostKeyCheck::Pinned(Vec::new()),
        };
        let checkout = self
            .control_plane
            .checkout(
                CheckoutRequest {
                    user: user.to_owned(),
                    target: target.to_owned(),
                    duration: self.checkout_duration,
                },
                self.gateway.as_str(),
            )
            .await?;
        Ok(Authorization {
            target: target.to_owned(),
            host: t.host,
            port: t.port,
            host_key,
            account: String::new(),
            checkout: Some(checkout.id),
            expires: Some(checkout.expires),
        })
    }

    async fn credential(
        &self,
        session: SessionId,
        _authorization: &Authorization,
    ) -> Result<TargetCredential, ProxyError> {
        let c = self
            .control_plane
            .get_credential(session, &self.gateway)
            .await?;
        let secret = match &c.secret {
            CredentialSecret::Password(p) => TargetSecret::Password(p.expose_secret().clone()),
            CredentialSecret::PrivateKey { key, passphrase } => TargetSecret::PrivateKey {
                key: key.expose_secret().clone(),
                passphrase: passphrase.as_ref().map(|p| p.expose_secret().clone()),
            },
        };
        Ok(TargetCredential {
            account: c.username.clone(),
            secret,
        })
    }

    async fn release(&self, session: SessionId, authorization: &Authorization) {
        if let Some(id) = &authorization.checkout
            && let Err(e) = self.control_plane.checkin(id, self.gateway.as_str()).await
        {
            tracing::warn!(session_id = %session, checkout = %id, error = %e,
                "checkin failed; the checkout will run out on its own");
        }
    }
}
