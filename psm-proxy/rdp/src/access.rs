//! Who may connect, to what, and with which target credential.
//!
//! [`Authenticator`] checks a PSM user against the directory (argon2 password, TOTP code
//! appended to the password when the user has a second factor, role grants). Targets,
//! checkouts and credentials come through psm-proxy's [`TargetAccess`] seam, shared with
//! every gateway: [`ControlPlaneTargets`](psm_proxy::ControlPlaneTargets) built
//! [`for_protocol(Protocol::Rdp)`](psm_proxy::ControlPlaneTargets::for_protocol) in
//! production, [`StaticTargets`](psm_proxy::StaticTargets) for tests and embedding. The
//! target's [`HostKeyCheck`](psm_proxy::HostKeyCheck) pins its TLS certificate
//! ([`crate::tls`]); [`TargetLogin`] is the vaulted credential in the shape RDP logs in with.

use std::fmt;
use std::sync::Arc;

use psm_core::SessionId;
use psm_core::directory::{DirectoryLookup, LoginThrottle};
use psm_core::vault::Secret;
use psm_proxy::{
    Authorization, LoginError, LoginName, MAX_LOGIN_LEN, ProxyError, TargetAccess,
    TargetCredential, TargetSecret,
};
use tokio::sync::Semaphore;

use crate::error::RdpError;

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

    /// From the session layer's credential for `target`: RDP needs a password.
    pub fn from_credential(credential: &TargetCredential, target: &str) -> Result<Self, RdpError> {
        match &credential.secret {
            TargetSecret::Password(p) => Ok(Self::new(&credential.account, p.clone())),
            TargetSecret::PrivateKey { .. } => Err(RdpError::Target {
                target: target.to_owned(),
                reason: "the vaulted credential is a key; RDP needs a password".into(),
            }),
        }
    }
}

/// Authorizes `user` for `target` through `targets`; an error says why in the gateway's
/// terms (an unknown target, or one of another protocol, is [`RdpError::Target`]).
pub async fn authorize(
    targets: &dyn TargetAccess,
    user: &str,
    target: &str,
) -> Result<Authorization, RdpError> {
    targets.authorize(user, target).await.map_err(|e| match e {
        // What `authorize` calls a configuration error is about the target named (it is of
        // another protocol): the client is told the destination was not found.
        ProxyError::Config(reason) => RdpError::Target {
            target: target.to_owned(),
            reason,
        },
        other => other.into(),
    })
}

/// The vaulted credential of an open session, as RDP logs in with it.
pub async fn credential(
    targets: &dyn TargetAccess,
    session: SessionId,
    authorization: &Authorization,
) -> Result<TargetLogin, RdpError> {
    let credential = targets.credential(session, authorization).await?;
    TargetLogin::from_credential(&credential, &authorization.target)
}

/// Parses the login name an RDP client sends: `USER`, `USER+TARGET` (psm-proxy's
/// [`parse_login`](psm_proxy::parse_login), shared with every gateway), with a `DOMAIN\`
/// prefix dropped: clients send a domain in the Client Info PDU or in CredSSP, and PSM users
/// live in the PSM directory.
///
/// ```
/// use psm_proxy_rdp::access::login_name;
/// assert_eq!(login_name("PSM\\alice+web-01").unwrap().target.as_deref(), Some("web-01"));
/// assert_eq!(login_name("alice").unwrap().target, None);
/// assert!(login_name("alice+").is_err());
/// ```
pub fn login_name(login: &str) -> Result<LoginName, RdpError> {
    if login.len() > MAX_LOGIN_LEN {
        return Err(RdpError::BadLogin(LoginError::TooLong.to_string()));
    }
    let login = login.rsplit_once('\\').map_or(login, |(_, user)| user);
    psm_proxy::parse_login(login).map_err(|e| RdpError::BadLogin(e.to_string()))
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
    directory: Arc<dyn DirectoryLookup>,
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
        directory: Arc<dyn DirectoryLookup>,
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
        let name = login_name(login)?;
        let refused = |reason: &str| RdpError::AuthRefused {
            user: name.user.clone(),
            reason: reason.to_owned(),
        };
        let target = name
            .target
            .clone()
            .or_else(|| self.default_target.clone())
            .ok_or_else(|| refused("the login names no target (use USER+TARGET)"))?;
        // Whoever the name is, the password costs one argon2 run before any answer: an
        // unknown, disabled or locked-out name is refused only after it (the directory's
        // decoy hash for unknown names), so the time taken tells nothing about the name.
        // The attempt is counted before the check (`LoginThrottle::reserve`): concurrent
        // logins cannot all pass the lockout check before any failure is counted (issue 17
        // M8). A complete login clears the count; any refusal keeps it.
        let user = self.directory.user(&name.user).await?;
        let key = LoginThrottle::user_key(&name.user);
        let reserved = self.logins.reserve(&key);
        let early = match &user {
            None => Some("no such user"),
            Some(u) if u.disabled => Some("the user is disabled"),
            Some(_) if !reserved => Some("too many failed logins: the name is locked out"),
            Some(_) => None,
        };
        let needs_totp = user.as_ref().is_some_and(|u| u.needs_totp());
        let (password, code) = if needs_totp {
            if password.len() < TOTP_DIGITS
                || !password.is_char_boundary(password.len() - TOTP_DIGITS)
            {
                (password.to_owned(), None)
            } else {
                let (p, c) = password.split_at(password.len() - TOTP_DIGITS);
                (p.to_owned(), Some(c.to_owned()))
            }
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
        let (None, Some(user)) = (early, user) else {
            return Err(refused(early.unwrap_or("no such user")));
        };
        if needs_totp && code.is_none() {
            return Err(refused("no TOTP code after the password"));
        }
        if !ok {
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
    use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash};

    /// A directory with alice (password `alice-pw`, role `ops`), and `ops` granted web-01.
    async fn alice_directory() -> Arc<MemoryDirectory> {
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
        dir
    }

    #[tokio::test]
    async fn authenticates_against_the_directory() {
        let dir = alice_directory().await;
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

    /// Issue 17 M8: a burst of concurrent guesses gets no more answers than the lockout
    /// allows (each attempt is counted before its password is checked).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_concurrent_guesses_gets_no_more_answers_than_the_lockout_allows() {
        let dir = alice_directory().await;
        let auth = Arc::new(
            Authenticator::new(dir, None, 16)
                .with_throttle(LoginThrottle::new(5, std::time::Duration::from_secs(300))),
        );
        let guesses: Vec<_> = (0..16)
            .map(|i| {
                let auth = auth.clone();
                tokio::spawn(async move {
                    auth.authenticate("alice+web-01", &format!("guess-{i}"))
                        .await
                        .unwrap_err()
                        .to_string()
                })
            })
            .collect();
        let mut answered = 0;
        for g in guesses {
            let e = g.await.unwrap();
            if e.contains("wrong password") {
                answered += 1;
            } else {
                assert!(e.contains("locked out"), "{e}");
            }
        }
        assert_eq!(answered, 5, "guesses judged on their password");
        let e = auth
            .authenticate("alice+web-01", "alice-pw")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("locked out"), "{e}");
    }

    #[tokio::test]
    async fn totp_code_after_the_password_is_checked_by_the_directory() {
        use psm_core::directory::{TotpSecret, UserUpdate};
        let dir = alice_directory().await;
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

    /// A directory that counts the password checks it was asked for.
    struct Counting(MemoryDirectory, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl DirectoryLookup for Counting {
        async fn user(
            &self,
            name: &str,
        ) -> Result<Option<psm_core::directory::DirectoryUser>, psm_core::CoreError> {
            self.0.user(name).await
        }
        async fn targets_of_roles(
            &self,
            roles: &[String],
        ) -> Result<Vec<String>, psm_core::CoreError> {
            self.0.targets_of_roles(roles).await
        }
        async fn verify_password(
            &self,
            name: &str,
            password: &Secret<String>,
        ) -> Result<bool, psm_core::CoreError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.verify_password(name, password).await
        }
    }

    /// Issue 17 L2: an unknown, disabled or locked-out name costs the same password check
    /// as a known one, so the time taken does not tell which names exist.
    #[tokio::test]
    async fn every_name_costs_a_password_check() {
        use psm_core::directory::UserUpdate;
        let dir = MemoryDirectory::new();
        for name in ["alice", "carol"] {
            dir.create_user(&NewUser {
                name: name.parse().unwrap(),
                password: Some(PasswordHash::hash("pw").unwrap()),
                roles: vec!["ops".into()],
                ..NewUser::default()
            })
            .await
            .unwrap();
        }
        dir.update_user(
            "carol",
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
        dir.grant("ops", "web-01").await.unwrap();
        let counting = Arc::new(Counting(dir, Default::default()));
        let auth = Authenticator::new(counting.clone(), None, 2);
        let checks = || counting.1.load(std::sync::atomic::Ordering::SeqCst);
        for (login, why) in [
            ("nobody+web-01", "no such user"),
            ("carol+web-01", "disabled"),
            ("alice+web-01", "wrong password"),
        ] {
            let before = checks();
            let e = auth.authenticate(login, "guess").await.unwrap_err();
            assert!(e.to_string().contains(why), "{login}: {e}");
            assert_eq!(checks(), before + 1, "{login} was refused without a check");
        }
    }

    #[test]
    fn login_names_split_on_the_first_plus_and_drop_domains() {
        let l = login_name("bob+db+replica").unwrap();
        assert_eq!(
            (l.user.as_str(), l.target.as_deref()),
            ("bob", Some("db+replica"))
        );
        assert_eq!(login_name("CORP\\bob+web").unwrap().user, "bob");
        assert!(login_name("+web").is_err());
        assert!(login_name("a b+web").is_err());
        assert!(login_name("bob+we\nb").is_err());
        assert!(login_name(&format!("{}\\bob+web", "D".repeat(600))).is_err());
    }

    proptest::proptest! {
        #[test]
        fn login_names_never_panic(s in ".{0,700}") {
            let _ = login_name(&s);
        }
    }

    #[test]
    fn target_login_hides_the_password() {
        let l = TargetLogin::new("CORP\\admin", "s3cret");
        assert_eq!(l.domain.as_deref(), Some("CORP"));
        assert!(!format!("{l:?}").contains("s3cret"));
    }
}
