//! Who may connect, to what, and with which target credential.
//!
//! [`Authenticator`] checks a PSM user against the directory (argon2 password, TOTP code
//! appended to the password when the user has a second factor, role grants). [`TargetAccess`]
//! is the seam to targets and their vaulted credentials: [`VaultTargets`] goes through the
//! [`ControlPlane`] (checkout, `GetCredential`, checkin), [`StaticTargets`] is a fixed table
//! for tests and embedding. It mirrors `psm_proxy::TargetAccess` (which this crate cannot
//! depend on: russh and ironrdp cannot share a lockfile).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use psm_core::directory::{LoginThrottle, UserDirectory};
use psm_core::vault::{CheckoutRequest, CredentialSecret, Secret};
use psm_core::{CheckoutId, ControlPlane, ProcessInstance, Protocol, SessionId};
use tokio::sync::Semaphore;

use crate::error::RdpError;
use crate::login::parse_login;
use crate::tls::TargetCertCheck;

/// The account the gateway logs in to the target with. `Debug` hides the password.
#[derive(Clone)]
pub struct TargetLogin {
    /// The account (without domain).
    pub username: String,
    /// Its domain, if the vault holds `DOMAIN\account`.
    pub domain: Option<String>,
    /// The password.
    pub password: Secret<String>,
}

impl fmt::Debug for TargetLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetLogin")
            .field("username", &self.username)
            .field("domain", &self.domain)
            .field("password", &"***")
            .finish()
    }
}

impl TargetLogin {
    /// From `DOMAIN\account` or `account` and a password.
    pub fn new(account: &str, password: impl Into<String>) -> Self {
        let (domain, username) = match account.split_once('\\') {
            Some((d, u)) => (Some(d.to_owned()), u.to_owned()),
            None => (None, account.to_owned()),
        };
        Self {
            username,
            domain,
            password: Secret::new(password.into()),
        }
    }
}

/// A user's permission to reach a target now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The target's name.
    pub target: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How to check the target's certificate.
    pub cert_check: TargetCertCheck,
    /// The account that will be used (recorded; not secret).
    pub account: String,
    /// The checkout backing the session.
    pub checkout: Option<CheckoutId>,
}

/// Targets and credentials, as the RDP gateway needs them.
#[async_trait]
pub trait TargetAccess: Send + Sync {
    /// Authorizes `user` for `target` (checking the credential out if the vault uses
    /// checkouts).
    async fn authorize(&self, user: &str, target: &str) -> Result<Authorization, RdpError>;

    /// The credential for an open session.
    async fn credential(
        &self,
        session: SessionId,
        authorization: &Authorization,
    ) -> Result<TargetLogin, RdpError>;

    /// Gives the checkout back at the end (best effort).
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
    /// Certificate check.
    pub cert_check: TargetCertCheck,
    /// Credential.
    pub login: TargetLogin,
}

/// A fixed table of targets (tests, embedding).
#[derive(Clone, Default)]
pub struct StaticTargets {
    map: Arc<Mutex<HashMap<String, StaticTarget>>>,
}

impl fmt::Debug for StaticTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTargets").finish_non_exhaustive()
    }
}

impl StaticTargets {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a target.
    pub fn insert(&self, name: impl Into<String>, target: StaticTarget) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.into(), target);
    }

    fn get(&self, name: &str) -> Option<StaticTarget> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

#[async_trait]
impl TargetAccess for StaticTargets {
    async fn authorize(&self, _user: &str, target: &str) -> Result<Authorization, RdpError> {
        let t = self.get(target).ok_or_else(|| RdpError::Target {
            target: target.to_owned(),
            reason: "no such target".into(),
        })?;
        Ok(Authorization {
            target: target.to_owned(),
            host: t.host,
            port: t.port,
            cert_check: t.cert_check,
            account: t.login.username,
            checkout: None,
        })
    }

    async fn credential(
        &self,
        _session: SessionId,
        authorization: &Authorization,
    ) -> Result<TargetLogin, RdpError> {
        self.get(&authorization.target)
            .map(|t| t.login)
            .ok_or_else(|| RdpError::Target {
                target: authorization.target.clone(),
                reason: "no such target".into(),
            })
    }
}

/// Targets from the control plane's vault: `target()` for the address, a just-in-time
/// checkout for the user, `GetCredential` for the open session, checkin at the end.
#[derive(Clone)]
pub struct VaultTargets {
    control_plane: Arc<dyn ControlPlane>,
    process_instance: ProcessInstance,
    checkout_duration: Duration,
    allow_unpinned: bool,
}

impl fmt::Debug for VaultTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTargets")
            .field("process_instance", &self.process_instance)
            .finish_non_exhaustive()
    }
}

impl VaultTargets {
    /// `checkout_duration`: how long each session's checkout lasts. `allow_unpinned`:
    /// accept a target certificate when the vault has no pin for the target (`host_key`).
    pub fn new(
        control_plane: Arc<dyn ControlPlane>,
        process_instance: ProcessInstance,
        checkout_duration: Duration,
        allow_unpinned: bool,
    ) -> Self {
        Self {
            control_plane,
            process_instance,
            checkout_duration,
            allow_unpinned,
        }
    }
}

#[async_trait]
impl TargetAccess for VaultTargets {
    async fn authorize(&self, user: &str, target: &str) -> Result<Authorization, RdpError> {
        let t = self.control_plane.target(target).await?;
        if t.protocol != Protocol::Rdp {
            return Err(RdpError::Target {
                target: target.to_owned(),
                reason: format!("is a {} target, not rdp", t.protocol),
            });
        }
        let cert_check = TargetCertCheck::from_pin(t.host_key.as_deref(), self.allow_unpinned)?;
        let checkout = self
            .control_plane
            .checkout(
                CheckoutRequest {
                    user: user.to_owned(),
                    target: target.to_owned(),
                    duration: self.checkout_duration,
                },
                self.process_instance.as_str(),
            )
            .await?;
        Ok(Authorization {
            target: t.name,
            host: t.host,
            port: t.port,
            cert_check,
            account: String::new(),
            checkout: Some(checkout.id),
        })
    }

    async fn credential(
        &self,
        session: SessionId,
        authorization: &Authorization,
    ) -> Result<TargetLogin, RdpError> {
        let c = self
            .control_plane
            .get_credential(session, &self.process_instance)
            .await?;
        match &c.secret {
            CredentialSecret::Password(p) => {
                Ok(TargetLogin::new(&c.username, p.expose_secret().clone()))
            }
            _ => Err(RdpError::Target {
                target: authorization.target.clone(),
                reason: "the vaulted credential is a key; RDP needs a password".into(),
            }),
        }
    }

    async fn release(&self, session: SessionId, authorization: &Authorization) {
        if let Some(id) = &authorization.checkout
            && let Err(e) = self
                .control_plane
                .checkin(id, self.process_instance.as_str())
                .await
        {
            tracing::warn!(session_id = %session, error = %e, "checkin after the session failed");
        }
    }
}

/// A user who proved who they are and may reach the target they named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The PSM user.
    pub user: String,
    /// The target's name.
    pub target: String,
}

/// Checks PSM users against the directory.
#[derive(Clone)]
pub struct Authenticator {
    directory: Arc<dyn UserDirectory>,
    default_target: Option<String>,
    hashing: Arc<Semaphore>,
    logins: LoginThrottle,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("default_target", &self.default_target)
            .finish_non_exhaustive()
    }
}

/// Length of a TOTP code appended to the password.
const TOTP_DIGITS: usize = 6;

impl Authenticator {
    /// Over `directory`; `default_target` when a login names none; at most
    /// `max_concurrent_hashing` argon2 checks at once.
    pub fn new(
        directory: Arc<dyn UserDirectory>,
        default_target: Option<String>,
        max_concurrent_hashing: usize,
    ) -> Self {
        Self {
            directory,
            default_target,
            hashing: Arc::new(Semaphore::new(max_concurrent_hashing.max(1))),
            logins: LoginThrottle::default(),
        }
    }

    /// Counts failed logins with `logins` instead of the default throttle (five failed
    /// passwords or TOTP codes per user name lock it out for five minutes; a complete login
    /// clears the count). Clones share counts: give an SSH and an RDP gateway one to count
    /// together.
    pub fn with_throttle(mut self, logins: LoginThrottle) -> Self {
        self.logins = logins;
        self
    }

    /// Checks `login` (`USER+TARGET`) and `password` (followed by the 6-digit TOTP code when
    /// the user has a second factor). The error says why, for the log; the user only
    /// learns that access was denied.
    pub async fn authenticate(&self, login: &str, password: &str) -> Result<Identity, RdpError> {
        let name = parse_login(login)?;
        let refused = |reason: &str| RdpError::AuthRefused {
            user: name.user.clone(),
            reason: reason.to_owned(),
        };
        let target = name
            .target
            .clone()
            .or_else(|| self.default_target.clone())
            .ok_or_else(|| refused("the login names no target (use USER+TARGET)"))?;
        let user = self
            .directory
            .user(&name.user)
            .await?
            .ok_or_else(|| refused("no such user"))?;
        if user.disabled {
            return Err(refused("the user is disabled"));
        }
        let key = LoginThrottle::user_key(&name.user);
        if self.logins.locked_out(&key) {
            return Err(refused("too many failed logins: the name is locked out"));
        }
        let (password, code) = if user.needs_totp() {
            if password.len() < TOTP_DIGITS
                || !password.is_char_boundary(password.len() - TOTP_DIGITS)
            {
                return Err(refused("no TOTP code after the password"));
            }
            let (p, c) = password.split_at(password.len() - TOTP_DIGITS);
            (p.to_owned(), Some(c.to_owned()))
        } else {
            (password.to_owned(), None)
        };
        // The directory verifies where the secrets live (in-process, or the control plane
        // for a remote directory, whose records carry neither hash nor TOTP secret).
        let password = Secret::new(password);
        let ok = {
            let _permit = self
                .hashing
                .acquire()
                .await
                .map_err(|_| refused("the gateway is shutting down"))?;
            self.directory
                .verify_password(&name.user, &password)
                .await?
        };
        if !ok {
            self.logins.failed(&key);
            return Err(refused("wrong password"));
        }
        if let Some(code) = code {
            let code = Secret::new(code);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if !self
                .directory
                .verify_totp(&name.user, code.expose_secret(), now)
                .await?
            {
                self.logins.failed(&key);
                return Err(refused("wrong TOTP code"));
            }
        }
        self.logins.succeeded(&key);
        if !self.directory.may_reach(&user, &target).await? {
            return Err(RdpError::Target {
                target,
                reason: format!("user {} has no role that grants it", name.user),
            });
        }
        Ok(Identity {
            user: name.user,
            target,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use psm_core::directory::{MemoryDirectory, NewUser, PasswordHash};

    #[tokio::test]
    async fn authenticates_against_the_directory() {
        let dir = Arc::new(MemoryDirectory::new());
        dir.create_user(&NewUser {
            name: "alice".parse().unwrap(),
            password: Some(PasswordHash::hash("alice-pw").unwrap()),
            roles: vec!["ops".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
        dir.grant("ops", "web-01").await.unwrap();
        let auth = Authenticator::new(dir, None, 2);
        let id = auth.authenticate("alice+web-01", "alice-pw").await.unwrap();
        assert_eq!(id.target, "web-01");
        let wrong = auth.authenticate("alice+web-01", "nope").await.unwrap_err();
        assert!(!wrong.to_string().contains("nope"), "{wrong}");
        assert!(auth.authenticate("alice+db-01", "alice-pw").await.is_err());
        assert!(auth.authenticate("alice", "alice-pw").await.is_err());
        assert!(auth.authenticate("bob+web-01", "alice-pw").await.is_err());
    }

    #[tokio::test]
    async fn five_failed_logins_lock_the_name_out() {
        let dir = Arc::new(MemoryDirectory::new());
        for name in ["alice", "bob"] {
            dir.create_user(&NewUser {
                name: name.parse().unwrap(),
                password: Some(PasswordHash::hash(&format!("{name}-pw")).unwrap()),
                roles: vec!["ops".into()],
                ..NewUser::default()
            })
            .await
            .unwrap();
        }
        dir.grant("ops", "web-01").await.unwrap();
        let auth = Authenticator::new(dir, None, 2)
            .with_throttle(LoginThrottle::new(5, std::time::Duration::from_secs(300)));
        for _ in 0..5 {
            let e = auth
                .authenticate("alice+web-01", "guess")
                .await
                .unwrap_err();
            assert!(e.to_string().contains("wrong password"), "{e}");
        }
        let e = auth
            .authenticate("alice+web-01", "alice-pw")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("locked out"), "{e}");
        assert!(auth.authenticate("bob+web-01", "bob-pw").await.is_ok());
    }

    #[tokio::test]
    async fn totp_code_after_the_password_is_checked_by_the_directory() {
        use psm_core::directory::{TotpSecret, UserUpdate};
        let dir = Arc::new(MemoryDirectory::new());
        dir.create_user(&NewUser {
            name: "alice".parse().unwrap(),
            password: Some(PasswordHash::hash("alice-pw").unwrap()),
            roles: vec!["ops".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
        dir.grant("ops", "web-01").await.unwrap();
        let secret = TotpSecret::generate();
        dir.update_user(
            "alice",
            &UserUpdate {
                totp: Some(Some(secret.clone())),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
        let auth = Authenticator::new(dir, None, 2);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let code = secret.code_at(now).unwrap();
        let id = auth
            .authenticate("alice+web-01", &format!("alice-pw{code}"))
            .await
            .unwrap();
        assert_eq!(id.user, "alice");
        assert!(auth.authenticate("alice+web-01", "alice-pw").await.is_err());
        assert!(
            auth.authenticate("alice+web-01", "alice-pwabcdef")
                .await
                .is_err()
        );
        assert!(
            auth.authenticate("alice+web-01", &format!("wrong-pw{code}"))
                .await
                .is_err()
        );
    }

    #[test]
    fn target_login_hides_the_password() {
        let l = TargetLogin::new("CORP\\admin", "s3cret");
        assert_eq!(l.domain.as_deref(), Some("CORP"));
        assert!(!format!("{l:?}").contains("s3cret"));
    }
}
