//! Keys: ed25519 for signing recordings, X25519 for encrypting them to recipients.
//!
//! Every key has a one-line text form, used by key files and the `psm` tool:
//!
//! | key | text form |
//! |---|---|
//! | signing (secret) | `psmr-signing-secret:` + 64 hex digits |
//! | signing (public) | `psmr-signing-public:` + 64 hex digits |
//! | recipient (secret) | `psmr-recipient-secret:` + 64 hex digits |
//! | recipient (public) | `psmr-recipient-public:` + 64 hex digits |
//!
//! Secret keys print as `***` with `{:?}`; only [`SigningKey::to_text`] and
//! [`RecipientSecret::to_text`] reveal them, for writing key files.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer as _;

use crate::error::RecordingError;

const SIGNING_SECRET: &str = "psmr-signing-secret:";
const SIGNING_PUBLIC: &str = "psmr-signing-public:";
const RECIPIENT_SECRET: &str = "psmr-recipient-secret:";
const RECIPIENT_PUBLIC: &str = "psmr-recipient-public:";

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RecordingError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| RecordingError::InvalidKey(format!("no randomness from the OS: {e}")))?;
    Ok(b)
}

fn parse_hex32(s: &str, prefix: &str) -> Result<[u8; 32], RecordingError> {
    let s = s.trim();
    let hex_part = s.strip_prefix(prefix).ok_or_else(|| {
        let shown: String = s.chars().take(24).collect();
        RecordingError::InvalidKey(format!(
            "expected a key starting with {prefix:?}, found {shown:?}..."
        ))
    })?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|e| {
        RecordingError::InvalidKey(format!("{prefix} key must be 64 hex digits: {e}"))
    })?;
    Ok(out)
}

/// The ed25519 key a writer signs a recording with. Its `Debug` prints `***`.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<Self, RecordingError> {
        Ok(Self::from_bytes(&random_bytes::<32>()?))
    }

    /// From the 32-byte secret.
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    /// The public half, which verifies the recording.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// The text form (`psmr-signing-secret:...`): for key files only.
    pub fn to_text(&self) -> String {
        format!("{SIGNING_SECRET}{}", hex::encode(self.0.to_bytes()))
    }

    /// Parses the text form.
    pub fn from_text(s: &str) -> Result<Self, RecordingError> {
        Ok(Self::from_bytes(&parse_hex32(s, SIGNING_SECRET)?))
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// An ed25519 public key that verifies recordings. `Display` is the text form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// From the 32-byte public key (rejects bytes that are not a curve point).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, RecordingError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| RecordingError::InvalidKey("not an ed25519 public key".into()))
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Parses the text form (`psmr-signing-public:...`).
    pub fn from_text(s: &str) -> Result<Self, RecordingError> {
        Self::from_bytes(&parse_hex32(s, SIGNING_PUBLIC)?)
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &sig).is_ok()
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SIGNING_PUBLIC}{}", hex::encode(self.0.to_bytes()))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for VerifyingKey {
    type Err = RecordingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_text(s)
    }
}

/// The X25519 secret key of a recipient who may decrypt recordings. `Debug` prints `***`.
#[derive(Clone)]
pub struct RecipientSecret([u8; 32]);

impl RecipientSecret {
    /// A new random key.
    pub fn generate() -> Result<Self, RecordingError> {
        Ok(Self(random_bytes::<32>()?))
    }

    /// From the 32-byte secret.
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self(secret)
    }

    /// The public half, which writers encrypt to.
    pub fn public(&self) -> RecipientPublic {
        RecipientPublic(x25519_dalek::x25519(
            self.0,
            x25519_dalek::X25519_BASEPOINT_BYTES,
        ))
    }

    /// The text form (`psmr-recipient-secret:...`): for key files only.
    pub fn to_text(&self) -> String {
        format!("{RECIPIENT_SECRET}{}", hex::encode(self.0))
    }

    /// Parses the text form.
    pub fn from_text(s: &str) -> Result<Self, RecordingError> {
        Ok(Self(parse_hex32(s, RECIPIENT_SECRET)?))
    }

    pub(crate) fn diffie_hellman(&self, public: &[u8; 32]) -> [u8; 32] {
        x25519_dalek::x25519(self.0, *public)
    }
}

impl fmt::Debug for RecipientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecipientSecret(***)")
    }
}

/// The X25519 public key of a recipient. `Display` is the text form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecipientPublic(pub(crate) [u8; 32]);

impl RecipientPublic {
    /// From the 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Parses the text form (`psmr-recipient-public:...`).
    pub fn from_text(s: &str) -> Result<Self, RecordingError> {
        Ok(Self(parse_hex32(s, RECIPIENT_PUBLIC)?))
    }
}

impl fmt::Display for RecipientPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{RECIPIENT_PUBLIC}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for RecipientPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for RecipientPublic {
    type Err = RecordingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_text(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn text_forms_round_trip_and_secrets_do_not_debug_print() {
        let sk = SigningKey::generate().unwrap();
        let again = SigningKey::from_text(&sk.to_text()).unwrap();
        assert_eq!(sk.verifying_key(), again.verifying_key());
        let pk = sk.verifying_key();
        assert_eq!(VerifyingKey::from_text(&pk.to_string()).unwrap(), pk);
        assert_eq!(format!("{sk:?}"), "SigningKey(***)");
        assert!(!format!("{sk:?}").contains(&sk.to_text()[20..]));

        let rs = RecipientSecret::generate().unwrap();
        let again = RecipientSecret::from_text(&rs.to_text()).unwrap();
        assert_eq!(rs.public(), again.public());
        assert_eq!(
            RecipientPublic::from_text(&rs.public().to_string()).unwrap(),
            rs.public()
        );
        assert_eq!(format!("{rs:?}"), "RecipientSecret(***)");

        assert!(SigningKey::from_text("psmr-signing-secret:zz").is_err());
        assert!(VerifyingKey::from_text(&rs.public().to_string()).is_err());
    }
}
