//! Password hashes: argon2id in PHC string form.

use std::fmt;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::CoreError;

/// Longest password accepted for hashing or checking, in bytes (bounds argon2's input and
/// the work an unauthenticated client can cause).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// An argon2id password hash (`$argon2id$v=19$...`). Its `Debug` never prints the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Hashes `password` with argon2id (default parameters, random salt).
    pub fn hash(password: &str) -> Result<Self, CoreError> {
        if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
            return Err(CoreError::InvalidInput {
                field: "password",
                reason: format!("must be 1 to {MAX_PASSWORD_LEN} bytes"),
            });
        }
        let hash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| CoreError::InvalidInput {
                field: "password",
                reason: format!("cannot be hashed: {e}"),
            })?;
        Ok(Self(hash.to_string()))
    }

    /// Wraps a stored PHC string after checking that it parses.
    pub fn from_phc(phc: &str) -> Result<Self, CoreError> {
        Phc::new(phc).map_err(|_| CoreError::InvalidInput {
            field: "password_hash",
            reason: "not an argon2 PHC string".into(),
        })?;
        Ok(Self(phc.to_owned()))
    }

    /// The PHC string (for storage only).
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// Whether `password` matches (constant-time comparison inside argon2).
    pub fn verify(&self, password: &str) -> bool {
        if password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        match Phc::new(&self.0) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Whether `password` matches `hash`; without a hash, the same argon2 work is spent on a
/// decoy and the answer is false, so the time taken does not tell whether there was one.
pub(crate) fn verify_or_decoy(hash: Option<&PasswordHash>, password: &str) -> bool {
    static DECOY: OnceLock<Option<PasswordHash>> = OnceLock::new();
    match hash {
        Some(h) => h.verify(password),
        None => {
            if let Some(d) =
                DECOY.get_or_init(|| PasswordHash::hash("psm decoy password that nobody has").ok())
            {
                let _ = d.verify(password);
            }
            false
        }
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_and_hides() {
        let h = PasswordHash::hash("s3cret").expect("hash");
        assert!(h.verify("s3cret"));
        assert!(!h.verify("s3cret "));
        assert!(!format!("{h:?}").contains("argon2"));
        let back = PasswordHash::from_phc(h.as_phc()).expect("parse");
        assert!(back.verify("s3cret"));
        assert!(PasswordHash::from_phc("plain").is_err());
        assert!(PasswordHash::hash("").is_err());
        assert!(!h.verify(&"x".repeat(2000)));
        assert!(verify_or_decoy(Some(&h), "s3cret"));
        assert!(!verify_or_decoy(None, "s3cret"));
        assert!(!verify_or_decoy(None, "psm decoy password that nobody has"));
    }
}
