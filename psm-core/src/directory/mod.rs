//! The user directory: who may log in to a gateway, how they prove it, and which targets
//! their roles let them reach.
//!
//! A [`DirectoryUser`] has a name, optional argon2id [`PasswordHash`], SSH public keys
//! ([`AuthorizedKey`], compared by algorithm and key blob, never by comment), an optional TOTP
//! second factor ([`TotpSecret`]) and roles. A role grants targets by name, or every target
//! with `*`. A gateway reads them through [`DirectoryLookup`], an administrator changes
//! them through [`DirectoryAdmin`], and [`UserDirectory`] is both; [`MemoryDirectory`] is for tests and
//! embedding, and [`SqliteStore`](crate::store::SqliteStore) and
//! [`PostgresStore`](crate::store::PostgresStore) implement it over the same database as
//! their sessions (migration `0003_directory`).
//!
//! Passwords and TOTP codes are checked where the secrets live: ask the directory
//! ([`DirectoryLookup::verify_password`], [`DirectoryLookup::verify_totp`]) rather than the
//! record it returned. A local directory checks its own record; a remote one (psm-client's
//! `HttpDirectory`) asks the control plane, whose answers never carry a password hash or a
//! TOTP secret, so its records say only whether each [`Factor`] is configured.
//!
//! ```
//! # async fn demo() -> Result<(), psm_core::CoreError> {
//! use psm_core::directory::{DirectoryAdmin, DirectoryLookup, MemoryDirectory, NewUser, PasswordHash};
//! use psm_core::vault::Secret;
//!
//! let dir = MemoryDirectory::new();
//! dir.create_user(&NewUser {
//!     name: "alice".parse()?,
//!     password: Some(PasswordHash::hash("correct horse")?),
//!     roles: vec!["ops".into()],
//!     ..NewUser::default()
//! }).await?;
//! dir.grant("ops", "web-01").await?;
//!
//! assert!(dir.verify_password("alice", &Secret::new("correct horse".into())).await?);
//! assert!(!dir.verify_password("alice", &Secret::new("wrong".into())).await?);
//!
//! let alice = dir.user("alice").await?.expect("alice exists");
//! assert!(dir.may_reach(&alice, "web-01").await?);
//! assert!(!dir.may_reach(&alice, "db-01").await?);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;

use crate::error::CoreError;
use crate::id::truncate_for_error;
use crate::vault::Secret;

mod factor;
mod memory;
mod password;
mod postgres;
mod sql;
mod sqlite;
pub mod throttle;
mod totp;

pub use factor::Factor;
pub use memory::MemoryDirectory;
pub use password::{MAX_PASSWORD_LEN, PasswordHash};
pub use throttle::LoginThrottle;
pub use totp::TotpSecret;

/// Longest user, role or target name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most keys one user may hold.
pub const MAX_KEYS_PER_USER: usize = 64;
/// Longest authorized-key line, in bytes (an RSA 16384-bit key fits).
pub const MAX_KEY_LEN: usize = 8192;
/// The role name that grants every target.
pub const ALL_TARGETS: &str = "*";

/// A user name: 1 to 64 bytes of ASCII letters, digits, `.`, `_` and `-`, not starting with
/// `-`. It never holds `+`, `:`, `#`, `@` or whitespace, so `user+target` and
/// `user:target` logins split unambiguously.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` is a valid directory name (user, role or target): 1 to [`MAX_NAME_LEN`] bytes
/// of ASCII letters, digits, `.`, `_`, `-`, not starting with `-`.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) fn check_name(field: &'static str, s: &str) -> Result<(), CoreError> {
    if is_valid_name(s) {
        Ok(())
    } else {
        Err(CoreError::InvalidInput {
            field,
            reason: format!(
                "{:?} must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '.', '_' or '-', not \
                 starting with '-'",
                truncate_for_error(s)
            ),
        })
    }
}

impl FromStr for UserName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_name("user", s)?;
        Ok(Self(s.to_owned()))
    }
}

/// An SSH public key a user may log in with, as `ALGORITHM BASE64` (the comment is kept
/// apart and never used for matching).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthorizedKey {
    algorithm: String,
    blob: String,
    comment: String,
}

impl AuthorizedKey {
    /// Parses one `authorized_keys`-style line: `ALGORITHM BASE64 [COMMENT]` (options before
    /// the algorithm are not supported and refused).
    pub fn parse(line: &str) -> Result<Self, CoreError> {
        let bad = |reason: &str| CoreError::InvalidInput {
            field: "key",
            reason: format!("{:?}: {reason}", truncate_for_error(line)),
        };
        if line.len() > MAX_KEY_LEN {
            return Err(bad("longer than 8192 bytes"));
        }
        let mut parts = line.split_whitespace();
        let algorithm = parts.next().ok_or_else(|| bad("empty"))?;
        let blob = parts
            .next()
            .ok_or_else(|| bad("no base64 key after the algorithm"))?;
        let comment = parts.collect::<Vec<_>>().join(" ");
        let known = algorithm.starts_with("ssh-")
            || algorithm.starts_with("ecdsa-sha2-")
            || algorithm.starts_with("sk-");
        if !known || !algorithm.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "not an SSH key algorithm (ssh-ed25519, ssh-rsa, ecdsa-sha2-...)",
            ));
        }
        if !blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(bad("the key is not base64"));
        }
        Ok(Self {
            algorithm: algorithm.to_owned(),
            blob: blob.to_owned(),
            comment: comment.chars().filter(|c| !c.is_control()).collect(),
        })
    }

    /// The key algorithm, e.g. `ssh-ed25519`.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The base64 key blob.
    pub fn blob(&self) -> &str {
        &self.blob
    }

    /// The comment (informational).
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// `ALGORITHM BASE64`, the form used for matching and storage.
    pub fn key(&self) -> String {
        format!("{} {}", self.algorithm, self.blob)
    }

    /// Whether `openssh` (`ALGORITHM BASE64 [COMMENT]`) is this key.
    pub fn matches(&self, openssh: &str) -> bool {
        let mut parts = openssh.split_whitespace();
        parts.next() == Some(self.algorithm.as_str()) && parts.next() == Some(self.blob.as_str())
    }
}

impl fmt::Display for AuthorizedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.comment.is_empty() {
            write!(f, "{} {}", self.algorithm, self.blob)
        } else {
            write!(f, "{} {} {}", self.algorithm, self.blob, self.comment)
        }
    }
}

/// A user of the directory, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The login name.
    pub name: UserName,
    /// The password, if the user may log in by password: its hash when this directory
    /// holds it, [`Factor::Remote`] when read from a remote directory.
    pub password: Factor<PasswordHash>,
    /// The SSH keys the user may log in with.
    pub keys: Vec<AuthorizedKey>,
    /// The TOTP second factor, if one is required: its secret when this directory holds
    /// it, [`Factor::Remote`] when read from a remote directory.
    pub totp: Factor<TotpSecret>,
    /// The user's roles.
    pub roles: Vec<String>,
    /// A disabled user cannot log in.
    pub disabled: bool,
}

impl DirectoryUser {
    /// Whether `password` is this user's password, checked against the hash in this record
    /// (false without one, when the hash is held remotely, or when disabled). Prefer
    /// [`UserDirectory::verify_password`], which also works for a remote directory.
    pub fn verify_password(&self, password: &str) -> bool {
        !self.disabled && self.password.local().is_some_and(|h| h.verify(password))
    }

    /// Whether the user may log in by password (the hash here or remote).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Whether `openssh` (`ALGORITHM BASE64 [COMMENT]`) is one of this user's keys.
    pub fn has_key(&self, openssh: &str) -> bool {
        !self.disabled && self.keys.iter().any(|k| k.matches(openssh))
    }

    /// Whether a second factor is required.
    pub fn needs_totp(&self) -> bool {
        self.totp.is_some()
    }

    /// Whether `code` is the user's current TOTP code at `unix_seconds` (one step of skew
    /// either way, each code accepted once: [`TotpSecret::verify`]), checked against the
    /// secret in this record. True when no second factor
    /// is configured; false when the secret is held remotely. Prefer
    /// [`UserDirectory::verify_totp`], which also works for a remote directory.
    pub fn verify_totp(&self, code: &str, unix_seconds: u64) -> bool {
        match &self.totp {
            Factor::Absent => true,
            Factor::Local(secret) => !self.disabled && secret.verify(code, unix_seconds),
            Factor::Remote => false,
        }
    }
}

/// A user to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewUser {
    /// The login name.
    pub name: UserName,
    /// Password hash.
    pub password: Option<PasswordHash>,
    /// SSH keys.
    pub keys: Vec<AuthorizedKey>,
    /// TOTP secret.
    pub totp: Option<TotpSecret>,
    /// Roles.
    pub roles: Vec<String>,
}

impl Default for UserName {
    fn default() -> Self {
        Self("user".to_owned())
    }
}

impl NewUser {
    pub(crate) fn validate(&self) -> Result<(), CoreError> {
        for role in &self.roles {
            check_name("role", role)?;
        }
        if self.keys.len() > MAX_KEYS_PER_USER {
            return Err(CoreError::InvalidInput {
                field: "key",
                reason: format!("{} keys, the limit is {MAX_KEYS_PER_USER}", self.keys.len()),
            });
        }
        Ok(())
    }
}

/// A change to an existing user; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New password hash (`Some(None)` removes password login).
    pub password: Option<Option<PasswordHash>>,
    /// New TOTP secret (`Some(None)` removes the second factor).
    pub totp: Option<Option<TotpSecret>>,
    /// New role list.
    pub roles: Option<Vec<String>>,
    /// Enable or disable.
    pub disabled: Option<bool>,
}

impl UserUpdate {
    pub(crate) fn validate(&self) -> Result<(), CoreError> {
        for role in self.roles.iter().flatten() {
            check_name("role", role)?;
        }
        Ok(())
    }
}

pub(crate) fn check_target(target: &str) -> Result<(), CoreError> {
    if target == ALL_TARGETS {
        return Ok(());
    }
    check_name("target", target)
}

/// Where users, their credentials and roles live: the union of [`DirectoryLookup`] (what
/// a gateway calls to authenticate and authorize) and [`DirectoryAdmin`] (what an
/// administrator calls to change it).
///
/// Nothing implements it by hand: every type that implements both roles is a
/// `UserDirectory`. Implementations: [`MemoryDirectory`],
/// [`SqliteStore`](crate::store::SqliteStore), [`PostgresStore`](crate::store::PostgresStore);
/// all pass the same conformance tests. A gateway holds an `Arc<dyn DirectoryLookup>`, which
/// an `Arc<dyn UserDirectory>` converts into:
///
/// ```
/// # fn demo(dir: std::sync::Arc<dyn psm_core::directory::UserDirectory>) {
/// use psm_core::directory::DirectoryLookup;
/// let for_the_gateway: std::sync::Arc<dyn DirectoryLookup> = dir;
/// # let _ = for_the_gateway;
/// # }
/// ```
pub trait UserDirectory: DirectoryLookup + DirectoryAdmin {}

impl<T: DirectoryLookup + DirectoryAdmin + ?Sized> UserDirectory for T {}

/// Changing the directory: users, their keys, roles' grants.
///
/// ```
/// # async fn demo(dir: &dyn psm_core::directory::DirectoryAdmin) -> Result<(), psm_core::CoreError> {
/// use psm_core::directory::NewUser;
/// dir.create_user(&NewUser { name: "alice".parse()?, roles: vec!["ops".into()], ..NewUser::default() }).await?;
/// dir.grant("ops", "web-01").await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait DirectoryAdmin: Send + Sync {
    /// Every user, by name.
    async fn users(&self) -> Result<Vec<DirectoryUser>, CoreError>;

    /// Creates a user; an existing name is [`CoreError::UserExists`].
    async fn create_user(&self, user: &NewUser) -> Result<(), CoreError>;

    /// Changes a user; an unknown name is [`CoreError::UnknownUser`].
    async fn update_user(&self, name: &str, update: &UserUpdate) -> Result<(), CoreError>;

    /// Deletes a user with its keys and roles; returns whether one existed.
    async fn delete_user(&self, name: &str) -> Result<bool, CoreError>;

    /// Adds a key to a user (adding a key the user already has changes nothing).
    async fn add_key(&self, name: &str, key: &AuthorizedKey) -> Result<(), CoreError>;

    /// Removes a key (by algorithm and blob); returns whether the user had it.
    async fn remove_key(&self, name: &str, key: &AuthorizedKey) -> Result<bool, CoreError>;

    /// Lets `role` reach `target` (a target name, or `*` for every target).
    async fn grant(&self, role: &str, target: &str) -> Result<(), CoreError>;

    /// Takes the grant back; returns whether it existed.
    async fn revoke(&self, role: &str, target: &str) -> Result<bool, CoreError>;

    /// Every access window ([`crate::access`]), by role, target and id. A directory that
    /// keeps no windows answers [`CoreError::Unsupported`].
    async fn windows(&self) -> Result<Vec<crate::access::StoredWindow>, CoreError> {
        Err(CoreError::Unsupported {
            operation: "access windows",
        })
    }

    /// Adds an access window to a role's grant of a target (or `*`); returns its id. At most
    /// [`MAX_WINDOWS`](crate::access::MAX_WINDOWS) are kept.
    async fn add_window(&self, window: &crate::access::NewWindow) -> Result<i64, CoreError> {
        let _ = window;
        Err(CoreError::Unsupported {
            operation: "access windows",
        })
    }

    /// Removes the window with this id; returns whether it existed.
    async fn remove_window(&self, id: i64) -> Result<bool, CoreError> {
        let _ = id;
        Err(CoreError::Unsupported {
            operation: "access windows",
        })
    }

    /// Every approval rule ([`crate::access`]), by target. A directory that keeps no
    /// requests answers [`CoreError::Unsupported`].
    async fn approval_rules(&self) -> Result<Vec<crate::access::ApprovalRule>, CoreError> {
        Err(CoreError::Unsupported {
            operation: "access requests",
        })
    }

    /// Sets the approval rule of its target (replacing the one it had). At most
    /// [`MAX_APPROVAL_RULES`](crate::access::MAX_APPROVAL_RULES) are kept.
    async fn set_approval_rule(&self, rule: &crate::access::ApprovalRule) -> Result<(), CoreError> {
        let _ = rule;
        Err(CoreError::Unsupported {
            operation: "access requests",
        })
    }

    /// Removes the approval rule of `target` (`*` included); returns whether it existed.
    async fn remove_approval_rule(&self, target: &str) -> Result<bool, CoreError> {
        let _ = target;
        Err(CoreError::Unsupported {
            operation: "access requests",
        })
    }

    /// Files a request (validated; at most
    /// [`MAX_PENDING_PER_USER`](crate::access::MAX_PENDING_PER_USER) stored as pending per
    /// user); returns its id.
    async fn create_access_request(
        &self,
        request: &crate::access::NewAccessRequest,
    ) -> Result<i64, CoreError> {
        let _ = request;
        Err(CoreError::Unsupported {
            operation: "access requests",
        })
    }

    /// Requests, newest first (at most
    /// [`MAX_LISTED_REQUESTS`](crate::access::MAX_LISTED_REQUESTS)): every user's, or
    /// `user`'s.
    async fn access_requests(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<crate::access::AccessRequest>, CoreError> {
        let _ = user;
        Err(CoreError::Unsupported {
            operation: "access requests",
        })
    }

    /// One request by id.
    async fn access_request(
        &self,
        id: i64,
    ) -> Result<Option<crate::access::AccessRequest>, CoreError> {
        let _ = id;
        Err(CoreError::Unsupported {
            operation: "access requests",
        })
    }

    /// Replaces request `next.id` with `next` if it is still at version `next.version - 1`
    /// (what the caller read); returns whether it was (false: someone changed it first).
    async fn replace_access_request(
        &self,
        next: &crate::access::AccessRequest,
    ) -> Result<bool, CoreError> {
        let _ = next;
        Err(CoreError::Unsupported {
            operation: "access requests",
        })
    }
}

/// What a gateway asks the directory: who a user is, whether their password, key or TOTP
/// code is right, and which targets their roles reach. Two methods are required; the
/// checks have defaults over them.
///
/// ```
/// # async fn demo(dir: &dyn psm_core::directory::DirectoryLookup) -> Result<(), psm_core::CoreError> {
/// if let Some(user) = dir.user("alice").await? {
///     let targets = dir.allowed_targets(&user).await?;
///     println!("alice may reach {targets:?}");
/// }
/// # Ok(()) }
/// ```
#[async_trait]
pub trait DirectoryLookup: Send + Sync {
    /// One user by name; `None` if there is none (or the name is not a valid user name).
    async fn user(&self, name: &str) -> Result<Option<DirectoryUser>, CoreError>;

    /// The targets (names, or `*`) granted to any of `roles`, sorted, without duplicates.
    async fn targets_of_roles(&self, roles: &[String]) -> Result<Vec<String>, CoreError>;

    /// The access windows ([`crate::access`]) of any of `roles`. A directory that keeps no
    /// windows has none (the default): its grants are standing access.
    async fn windows_of_roles(
        &self,
        roles: &[String],
    ) -> Result<Vec<crate::access::StoredWindow>, CoreError> {
        let _ = roles;
        Ok(Vec::new())
    }

    /// The approval rule that governs requests for `target` (its own, else the `*` one);
    /// `None`: the target cannot be requested (the default, for a directory that keeps no
    /// requests).
    async fn approval_rule(
        &self,
        target: &str,
    ) -> Result<Option<crate::access::ApprovalRule>, CoreError> {
        let _ = target;
        Ok(None)
    }

    /// The targets approved requests of user `user` make reachable at `now` (sorted,
    /// without duplicates); none by default.
    async fn request_grants(
        &self,
        user: &str,
        now: crate::Timestamp,
    ) -> Result<Vec<String>, CoreError> {
        let _ = (user, now);
        Ok(Vec::new())
    }

    /// The targets `user` may reach (names, or `*`), sorted: their roles' standing grants
    /// and, until each expires, the targets of their approved access requests
    /// ([`request_grants`](Self::request_grants) at the system clock's now).
    async fn allowed_targets(&self, user: &DirectoryUser) -> Result<Vec<String>, CoreError> {
        if user.disabled {
            return Ok(Vec::new());
        }
        let mut targets = self.targets_of_roles(&user.roles).await?;
        let granted = self
            .request_grants(user.name.as_str(), crate::Timestamp::now_utc())
            .await?;
        if !granted.is_empty() {
            targets.extend(granted);
            targets.sort();
            targets.dedup();
        }
        Ok(targets)
    }

    /// Whether `user` may reach `target`.
    async fn may_reach(&self, user: &DirectoryUser, target: &str) -> Result<bool, CoreError> {
        let allowed = self.allowed_targets(user).await?;
        Ok(allowed.iter().any(|t| t == ALL_TARGETS || t == target))
    }

    /// Whether `password` is user `name`'s password: false for an unknown or disabled user,
    /// one without a password, or a password longer than [`MAX_PASSWORD_LEN`]. Only
    /// accepted or refused, never why.
    ///
    /// The default checks the record [`user`](Self::user) returns, with argon2 (constant-time
    /// comparison) on a blocking thread; an unknown user costs the same argon2 run, so the
    /// time taken does not tell whether the user exists. A directory whose records do not
    /// carry the hash ([`Factor::Remote`]) overrides this to ask the directory that holds it.
    async fn verify_password(
        &self,
        name: &str,
        password: &Secret<String>,
    ) -> Result<bool, CoreError> {
        let user = self.user(name).await?;
        let password = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let (hash, usable) = match &user {
                Some(u) => (u.password.local(), !u.disabled),
                None => (None, false),
            };
            password::verify_or_decoy(hash, password.expose_secret()) && usable
        })
        .await
        .unwrap_or(false);
        Ok(ok)
    }

    /// Whether `code` is user `name`'s TOTP code at `unix_seconds` (one 30 s step of skew
    /// either way): false for an unknown or disabled user, one without a second factor
    /// (ask only when [`DirectoryUser::needs_totp`]), or a code whose step was already
    /// accepted (a code logs in once, [`TotpSecret::verify`]). Only accepted or refused,
    /// never why.
    ///
    /// The default checks the record [`user`](Self::user) returns. A directory whose records
    /// do not carry the secret ([`Factor::Remote`]) overrides this to ask the directory that
    /// holds it, which may use its own clock rather than `unix_seconds`.
    async fn verify_totp(
        &self,
        name: &str,
        code: &str,
        unix_seconds: u64,
    ) -> Result<bool, CoreError> {
        Ok(self.user(name).await?.is_some_and(|u| {
            !u.disabled
                && u.totp
                    .local()
                    .is_some_and(|secret| secret.verify(code, unix_seconds))
        }))
    }
}

#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_exclude_login_separators() {
        for ok in ["alice", "a.b", "svc_01", "x-y", "A9"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a+b",
            "a:b",
            "a#b",
            "a@b",
            "a b",
            "é",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn keys_parse_and_match_without_comment() {
        let k = AuthorizedKey::parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@laptop")
            .expect("valid");
        assert_eq!(k.algorithm(), "ssh-ed25519");
        assert!(k.matches("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"));
        assert!(k.matches("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB other"));
        assert!(!k.matches("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIB"));
        assert!(AuthorizedKey::parse("").is_err());
        assert!(AuthorizedKey::parse("ssh-ed25519").is_err());
        assert!(AuthorizedKey::parse("command=\"x\" ssh-ed25519 AAAA").is_err());
        assert!(AuthorizedKey::parse("ssh-ed25519 AA$A").is_err());
        assert!(AuthorizedKey::parse(&format!("ssh-ed25519 {}", "A".repeat(9000))).is_err());
    }
}
