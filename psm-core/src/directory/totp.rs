//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps, the authenticator-app default).

use std::fmt;

use totp_rs::{Algorithm, Builder, Secret};

use crate::error::CoreError;

/// A TOTP shared secret, kept as base32 text (what authenticator apps take). Its `Debug`
/// prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(String);

impl TotpSecret {
    /// A new random 160-bit secret.
    pub fn generate() -> Self {
        let bytes: [u8; 20] = rand::random();
        Self(Secret::from(bytes).to_base32())
    }

    /// Wraps a base32 secret (at least 128 bits, as RFC 4226 asks).
    pub fn from_base32(text: &str) -> Result<Self, CoreError> {
        let text = text.trim().to_ascii_uppercase();
        let bytes = Secret::try_from_base32(&text)
            .map(|s| s.to_vec())
            .map_err(|_| CoreError::InvalidInput {
                field: "totp",
                reason: "the secret is not base32".into(),
            })?;
        if bytes.len() < 16 || bytes.len() > 128 {
            return Err(CoreError::InvalidInput {
                field: "totp",
                reason: "the secret must be 16 to 128 bytes".into(),
            });
        }
        Ok(Self(text))
    }

    /// The base32 text (to show once to the user, and for storage).
    pub fn as_base32(&self) -> &str {
        &self.0
    }

    /// An `otpauth://` URL for authenticator apps.
    pub fn otpauth_url(&self, account: &str, issuer: &str) -> String {
        format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
            self.0
        )
    }

    fn totp(&self) -> Option<totp_rs::Totp> {
        let bytes = Secret::try_from_base32(&self.0).ok()?.to_vec();
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_secret(bytes)
            .build()
            .ok()
    }

    /// The code at `unix_seconds` (for tests and enrolment checks).
    pub fn code_at(&self, unix_seconds: u64) -> Option<String> {
        self.totp().map(|t| t.generate(unix_seconds).to_string())
    }

    /// Whether `code` is valid at `unix_seconds`, one 30 s step of skew either way.
    pub fn verify(&self, code: &str, unix_seconds: u64) -> bool {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        self.totp()
            .is_some_and(|t| t.check(code, unix_seconds).is_some())
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_verify_within_one_step() {
        let s = TotpSecret::generate();
        let t = 1_700_000_000;
        let code = s.code_at(t).expect("code");
        assert!(s.verify(&code, t));
        assert!(s.verify(&code, t + 30));
        assert!(!s.verify(&code, t + 120));
        assert!(!s.verify("12345", t));
        assert!(!s.verify("abcdef", t));
        assert!(!format!("{s:?}").contains(s.as_base32()));
        let back = TotpSecret::from_base32(&s.as_base32().to_lowercase()).expect("parse");
        assert!(back.verify(&code, t));
        assert!(TotpSecret::from_base32("AAAA").is_err());
        assert!(TotpSecret::from_base32("not base32!").is_err());
    }
}
