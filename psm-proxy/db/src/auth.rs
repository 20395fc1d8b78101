//! Who may connect: the PSM user's password (with the TOTP code appended when the user has
//! a second factor), checked against the directory, and the role grant for the target.
//!
//! PostgreSQL clients send the password the user typed in a `PasswordMessage` after the
//! gateway asked for a cleartext password; the gateway accepts that only inside TLS unless
//! configured otherwise (`docs/database.md`).

use std::fmt;
use std::sync::Arc;

use psm_core::directory::{DirectoryLookup, DirectoryUser, LoginThrottle};
use psm_core::vault::Secret;
use psm_proxy::{LoginName, ProxyError};
use tokio::sync::Semaphore;

/// Length of a TOTP code appended to the password.
const TOTP_DIGITS: usize = 6;

/// A user who proved who they are and may reach the target they named.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The directory entry.
    pub user: DirectoryUser,
    /// The target's name.
    pub target: String,
}

/// Why a login was refused: the reason goes to the log; the user only learns that the
/// password authentication failed (or, for a target they may not reach, which target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Wrong or unknown user, password or code, disabled, locked out.
    Credentials(String),
    /// The user may not reach the target.
    NotAllowed(String),
}

impl fmt::Display for LoginRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginRefusal::Credentials(r) | LoginRefusal::NotAllowed(r) => f.write_str(r),
        }
    }
}

/// Checks PSM users' passwords against the directory (argon2 bounded by a semaphore; failed
/// attempts counted per name by a [`LoginThrottle`]).
#[derive(Clone)]
pub struct LoginCheck {
    directory: Arc<dyn DirectoryLookup>,
    hashing: Arc<Semaphore>,
    logins: LoginThrottle,
}

impl fmt::Debug for LoginCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCheck").finish_non_exhaustive()
    }
}

impl LoginCheck {
    /// Over `directory`, at most `max_concurrent_hashing` password checks at once, failures
    /// counted by `logins` (share one with the other gateways to count together).
    pub fn new(
        directory: Arc<dyn DirectoryLookup>,
        max_concurrent_hashing: usize,
        logins: LoginThrottle,
    ) -> Self {
        Self {
            directory,
            hashing: Arc::new(Semaphore::new(max_concurrent_hashing.max(1))),
            logins,
        }
    }

    /// Checks `password` (followed by the 6-digit code when the user has a second factor)
    /// for `login`, then the grant for its target.
    pub async fn check(
        &self,
        login: &LoginName,
        password: &str,
    ) -> Result<Result<Admitted, LoginRefusal>, ProxyError> {
        let Some(target) = login.target.clone() else {
            return Ok(Err(LoginRefusal::Credentials(
                "the login names no target (use USER+TARGET)".into(),
            )));
        };
        let name = &login.user;
        // Whatever the name, one argon2 run happens before any answer (the directory's decoy
        // hash for unknown names), and the attempt is counted before the check.
        let user = self.directory.user(name).await?;
        let key = LoginThrottle::user_key(name);
        let reserved = self.logins.reserve(&key);
        let early = match &user {
            None => Some("no such user"),
            Some(u) if u.disabled => Some("the user is disabled"),
            Some(_) if !reserved => Some("too many failed logins: the name is locked out"),
            Some(_) => None,
        };
        let needs_totp = user.as_ref().is_some_and(|u| u.needs_totp());
        let (password, code) = if needs_totp
            && password.len() >= TOTP_DIGITS
            && password.is_char_boundary(password.len() - TOTP_DIGITS)
        {
            let (p, c) = password.split_at(password.len() - TOTP_DIGITS);
            (p.to_owned(), Some(c.to_owned()))
        } else {
            (password.to_owned(), None)
        };
        let password = Secret::new(password);
        let ok = {
            let Ok(_permit) = self.hashing.acquire().await else {
                return Ok(Err(LoginRefusal::Credentials(
                    "the gateway is shutting down".into(),
                )));
            };
            self.directory.verify_password(name, &password).await?
        };
        let (None, Some(user)) = (early, user) else {
            return Ok(Err(LoginRefusal::Credentials(
                early.unwrap_or("no such user").into(),
            )));
        };
        if needs_totp && code.is_none() {
            return Ok(Err(LoginRefusal::Credentials(
                "no TOTP code after the password".into(),
            )));
        }
        if !ok {
            return Ok(Err(LoginRefusal::Credentials("wrong password".into())));
        }
        if let Some(code) = code {
            let code = Secret::new(code);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if !self
                .directory
                .verify_totp(name, code.expose_secret(), now)
                .await?
            {
                return Ok(Err(LoginRefusal::Credentials("wrong TOTP code".into())));
            }
        }
        self.logins.succeeded(&key);
        if !self.directory.may_reach(&user, &target).await? {
            return Ok(Err(LoginRefusal::NotAllowed(format!(
                "user {name} may not reach target {target}"
            ))));
        }
        Ok(Ok(Admitted { user, target }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash};

    #[tokio::test]
    async fn passwords_grants_and_lockout() {
        let dir = Arc::new(MemoryDirectory::new());
        dir.create_user(&NewUser {
            name: "alice".parse().unwrap(),
            password: Some(PasswordHash::hash("alice-pw").unwrap()),
            roles: vec!["dba".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
        dir.grant("dba", "pgprod").await.unwrap();
        let check = LoginCheck::new(
            dir,
            2,
            LoginThrottle::new(3, std::time::Duration::from_secs(300)),
        );
        let login = |s: &str| psm_proxy::parse_login(s).unwrap();
        let ok = check
            .check(&login("alice+pgprod"), "alice-pw")
            .await
            .unwrap();
        assert_eq!(ok.unwrap().target, "pgprod");
        let other = check
            .check(&login("alice+pgtest"), "alice-pw")
            .await
            .unwrap();
        assert!(matches!(other, Err(LoginRefusal::NotAllowed(_))));
        assert!(
            check
                .check(&login("alice"), "alice-pw")
                .await
                .unwrap()
                .is_err()
        );
        for _ in 0..3 {
            let r = check.check(&login("alice+pgprod"), "guess").await.unwrap();
            assert_eq!(
                r.unwrap_err(),
                LoginRefusal::Credentials("wrong password".into())
            );
        }
        let r = check
            .check(&login("alice+pgprod"), "alice-pw")
            .await
            .unwrap();
        assert!(r.unwrap_err().to_string().contains("locked out"));
    }
}
