//! [`Factor`]: a login factor (password, TOTP) as a directory record carries it.

/// A login factor of a [`DirectoryUser`](super::DirectoryUser) as read back: not configured,
/// configured with its secret here (a local directory: SQLite, PostgreSQL, memory), or
/// configured with its secret kept by a remote directory, which verifies for the caller
/// ([`UserDirectory::verify_password`](super::UserDirectory::verify_password),
/// [`UserDirectory::verify_totp`](super::UserDirectory::verify_totp)).
///
/// ```
/// use psm_core::directory::{Factor, PasswordHash};
///
/// let here = Factor::Local(PasswordHash::hash("pw")?);
/// let remote: Factor<PasswordHash> = Factor::Remote;
/// assert!(here.is_some() && remote.is_some());
/// assert!(here.local().is_some() && remote.local().is_none());
/// assert!(Factor::<PasswordHash>::from(None).is_none());
/// # Ok::<(), psm_core::CoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Factor<T> {
    /// Not configured: the user cannot log in with it (password) or need not give it (TOTP).
    Absent,
    /// Configured, and the secret is here.
    Local(T),
    /// Configured; the secret stays with the directory that holds it.
    Remote,
}

impl<T> Factor<T> {
    /// Whether the factor is configured (here or remotely).
    pub fn is_some(&self) -> bool {
        !self.is_none()
    }

    /// Whether the factor is not configured.
    pub fn is_none(&self) -> bool {
        matches!(self, Factor::Absent)
    }

    /// The secret, when it is held here.
    pub fn local(&self) -> Option<&T> {
        match self {
            Factor::Local(t) => Some(t),
            Factor::Absent | Factor::Remote => None,
        }
    }
}

impl<T> From<Option<T>> for Factor<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Factor::Absent, Factor::Local)
    }
}
