//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps, the authenticator-app default).
//!
//! A code is accepted once (RFC 6238 section 5.2): [`TotpSecret::verify`] remembers, per
//! secret, the last 30 s step it accepted and refuses that step and every earlier one, so a
//! code read over a shoulder or replayed from a captured login is refused even within its
//! window. The memory is this process's (every check of a node, web UI, VerifyUser and the
//! in-process gateways, shares it); it is keyed by a hash of the secret, never the secret.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

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

    /// The 30 s step `code` belongs to, if it is valid at `unix_seconds` (one step of skew
    /// either way). Accepts nothing: see [`verify`](Self::verify).
    fn step_of(&self, code: &str, unix_seconds: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp()?.check(code, unix_seconds)
    }

    /// Whether `code` is valid at `unix_seconds` (one 30 s step of skew either way) without
    /// using it up, e.g. to confirm an enrolment. A login checks with
    /// [`verify`](Self::verify).
    pub fn matches(&self, code: &str, unix_seconds: u64) -> bool {
        self.step_of(code, unix_seconds).is_some()
    }

    /// Accepts `code` if it is valid at `unix_seconds` (one 30 s step of skew either way)
    /// **and** its step is later than the last step accepted for this secret, then remembers
    /// that step: each code logs in once, and a code older than one already used never does.
    pub fn verify(&self, code: &str, unix_seconds: u64) -> bool {
        let Some(step) = self.step_of(code, unix_seconds) else {
            return false;
        };
        let now_step = unix_seconds / STEP_SECONDS;
        accept_step(self.ledger_key(), step, now_step)
    }

    fn ledger_key(&self) -> [u8; 32] {
        *blake3::keyed_hash(b"psm totp replay ledger key v1 \0\0", self.0.as_bytes()).as_bytes()
    }
}

/// RFC 6238's time step.
const STEP_SECONDS: u64 = 30;

/// Most secrets whose last step is remembered at once. Only correct codes add entries, so
/// it is reached only by that many second-factor logins within about a minute and a half;
/// beyond it logins are refused (fail closed) rather than forgetting what was used.
const MAX_REMEMBERED: usize = 100_000;

/// The last accepted step of each secret (by [`TotpSecret::ledger_key`]).
fn ledger() -> std::sync::MutexGuard<'static, HashMap<[u8; 32], u64>> {
    static LEDGER: OnceLock<Mutex<HashMap<[u8; 32], u64>>> = OnceLock::new();
    LEDGER
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn accept_step(key: [u8; 32], step: u64, now_step: u64) -> bool {
    let mut used = ledger();
    if used.get(&key).is_some_and(|&last| step <= last) {
        return false;
    }
    if used.len() >= MAX_REMEMBERED && !used.contains_key(&key) {
        // A step older than the window can never match again, so forgetting it cannot let
        // a code be used twice.
        used.retain(|_, &mut last| last + 1 >= now_step);
        if used.len() >= MAX_REMEMBERED {
            return false;
        }
    }
    used.insert(key, step);
    true
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
        assert!(s.matches(&code, t));
        assert!(s.matches(&code, t + 30));
        assert!(!s.matches(&code, t + 120));
        assert!(s.verify(&code, t + 30));
        assert!(!s.verify("12345", t));
        assert!(!s.verify("abcdef", t));
        assert!(!format!("{s:?}").contains(s.as_base32()));
        let back = TotpSecret::from_base32(&s.as_base32().to_lowercase()).expect("parse");
        assert!(back.matches(&code, t));
        assert!(TotpSecret::from_base32("AAAA").is_err());
        assert!(TotpSecret::from_base32("not base32!").is_err());
    }

    #[test]
    fn a_code_is_accepted_once_and_never_an_older_one() {
        let s = TotpSecret::generate();
        let t = 1_700_000_000;
        let code = s.code_at(t).expect("code");
        let previous = s.code_at(t - 30).expect("code");
        let next = s.code_at(t + 30).expect("code");
        assert!(s.verify(&code, t));
        // Replayed within its window, now or one step later: refused.
        assert!(!s.verify(&code, t));
        assert!(!s.verify(&code, t + 30));
        // The step before the one used is refused too, though still within the skew.
        assert!(!s.verify(&previous, t));
        assert!(s.verify(&next, t + 30));
        assert!(!s.verify(&next, t + 30));
        // Another secret keeps its own memory.
        let other = TotpSecret::generate();
        assert!(other.verify(&other.code_at(t).expect("code"), t));
    }
}
