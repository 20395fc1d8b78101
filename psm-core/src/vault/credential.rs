//! Credentials: the account a gateway logs in to a target with. Secret parts are [`Secret`]s
//! in memory and sealed under the vault's master key at rest.

use std::fmt;

use zeroize::Zeroizing;

use super::Secret;
use crate::error::CoreError;
use crate::id::truncate_for_error;

/// Longest username, in bytes.
pub const MAX_USERNAME_LEN: usize = 256;
/// Longest password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 4096;
/// Longest private key (OpenSSH or PEM text), in bytes.
pub const MAX_PRIVATE_KEY_LEN: usize = 16 * 1024;

/// The secret half of a credential.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSecret {
    /// A password.
    Password(Secret<String>),
    /// A private key in OpenSSH or PEM text form, with its passphrase if it has one.
    PrivateKey {
        /// The key.
        key: Secret<String>,
        /// Its passphrase.
        passphrase: Option<Secret<String>>,
    },
}

impl fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSecret::Password(_) => "Password(***)",
            CredentialSecret::PrivateKey { .. } => "PrivateKey(***)",
        })
    }
}

impl CredentialSecret {
    /// The kind as stored: `password` or `private-key`.
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialSecret::Password(_) => "password",
            CredentialSecret::PrivateKey { .. } => "private-key",
        }
    }

    /// Serializes for sealing: kind-specific length-prefixed fields, in wiped memory.
    pub(crate) fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        let mut field = |v: &[u8]| {
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
        };
        match self {
            CredentialSecret::Password(p) => field(p.expose_secret().as_bytes()),
            CredentialSecret::PrivateKey { key, passphrase } => {
                field(key.expose_secret().as_bytes());
                if let Some(p) = passphrase {
                    field(p.expose_secret().as_bytes());
                }
            }
        }
        out
    }

    /// The inverse of [`to_plaintext`](Self::to_plaintext); `what` names the row in errors.
    pub(crate) fn from_plaintext(kind: &str, bytes: &[u8], what: &str) -> Result<Self, CoreError> {
        let malformed = || CoreError::MalformedRow {
            what: what.to_owned(),
            reason: "the opened credential is not in PSM's format".into(),
        };
        let mut fields: Vec<Secret<String>> = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest.len() < 4 || fields.len() >= 2 {
                return Err(malformed());
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if len > rest.len() {
                return Err(malformed());
            }
            let text = std::str::from_utf8(&rest[..len]).map_err(|_| malformed())?;
            fields.push(Secret::new(text.to_owned()));
            rest = &rest[len..];
        }
        let mut fields = fields.into_iter();
        match (kind, fields.next(), fields.next()) {
            ("password", Some(p), None) => Ok(CredentialSecret::Password(p)),
            ("private-key", Some(key), passphrase) => {
                Ok(CredentialSecret::PrivateKey { key, passphrase })
            }
            _ => Err(malformed()),
        }
    }
}

/// A credential: username in clear, secret sealed at rest. `Debug` prints the username and
/// `***`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The account on the target.
    pub username: String,
    /// Its password or private key.
    pub secret: CredentialSecret,
}

impl Credential {
    /// A username + password credential.
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            secret: CredentialSecret::Password(Secret::new(password.into())),
        }
    }

    /// A username + private key credential.
    pub fn private_key(
        username: impl Into<String>,
        key: impl Into<String>,
        passphrase: Option<String>,
    ) -> Self {
        Self {
            username: username.into(),
            secret: CredentialSecret::PrivateKey {
                key: Secret::new(key.into()),
                passphrase: passphrase.map(Secret::new),
            },
        }
    }

    /// Checks lengths and characters. Errors name the field, never the value of a secret.
    pub fn validate(&self) -> Result<(), CoreError> {
        let u = &self.username;
        if u.is_empty() || u.len() > MAX_USERNAME_LEN || u.chars().any(char::is_control) {
            return Err(CoreError::InvalidInput {
                field: "userName",
                reason: format!(
                    "{:?} must be 1 to {MAX_USERNAME_LEN} bytes without control characters",
                    truncate_for_error(u)
                ),
            });
        }
        let check = |field: &'static str, v: &str, max: usize| {
            if v.is_empty() || v.len() > max || v.contains('\0') {
                Err(CoreError::InvalidInput {
                    field,
                    reason: format!("must be 1 to {max} bytes without NUL (value not shown)"),
                })
            } else {
                Ok(())
            }
        };
        match &self.secret {
            CredentialSecret::Password(p) => check("password", p.expose_secret(), MAX_PASSWORD_LEN),
            CredentialSecret::PrivateKey { key, passphrase } => {
                check("privateKey", key.expose_secret(), MAX_PRIVATE_KEY_LEN)?;
                if let Some(p) = passphrase {
                    check("passphrase", p.expose_secret(), MAX_PASSWORD_LEN)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let c = Credential::password("root", "hunter2");
        let k = Credential::private_key("deploy", "-----BEGIN KEY-----", Some("pp".into()));
        for text in [format!("{c:?}"), format!("{k:?}"), format!("{:#?}", c)] {
            assert!(!text.contains("hunter2") && !text.contains("BEGIN") && !text.contains("pp\""));
            assert!(text.contains("***"), "{text}");
        }
    }

    #[test]
    fn plaintext_round_trip_and_garbage() {
        for c in [
            Credential::password("u", "p\u{e9}ss"),
            Credential::private_key("u", "KEY", None),
            Credential::private_key("u", "KEY", Some("phrase".into())),
        ] {
            let bytes = c.secret.to_plaintext();
            let back = CredentialSecret::from_plaintext(c.secret.kind(), &bytes, "t").expect("ok");
            assert_eq!(back, c.secret);
        }
        for garbage in [
            &b"\x00\x00\x00\x09abc"[..],
            b"\xff",
            b"\x00\x00\x00\x01a\x00\x00\x00\x01b",
        ] {
            assert!(CredentialSecret::from_plaintext("password", garbage, "t").is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn from_plaintext_never_panics(kind in "password|private-key|x", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = CredentialSecret::from_plaintext(&kind, &bytes, "t");
        }
    }
}
