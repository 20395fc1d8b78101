//! Encryption at rest: master keys, their ids, and sealing with XChaCha20-Poly1305.
//!
//! Every credential is sealed under the keyring's *primary* key with a fresh random 192-bit
//! nonce and, as associated data, the row it belongs to (target name, host, port, host key,
//! username, kind), so a ciphertext copied onto another row, or left on a repointed target,
//! does not open. The sealed row records the id of the key
//! that sealed it; older keys stay in the keyring (as *previous* keys) until
//! [`Vault::rotate`](super::Vault::rotate) has re-sealed everything under the primary one.

use std::fmt;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRngCore;
use zeroize::Zeroizing;

use super::Secret;
use crate::error::CoreError;

/// Length of a master key, in bytes.
pub const MASTER_KEY_LEN: usize = 32;
/// Length of a nonce, in bytes.
pub const NONCE_LEN: usize = 24;

/// The id of a master key: 16 hex digits derived from the key (a one-way derivation, so the
/// id says nothing about the key). Stored beside each sealed credential.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Wraps a stored key id (16 lower-case hex digits).
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(CoreError::MalformedRow {
                what: "sealed credential".into(),
                reason: "key id is not 16 hex digits".into(),
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit master key. `Debug` shows only its id; the bytes are wiped on drop.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
    id: KeyId,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {}, ***)", self.id)
    }
}

impl MasterKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, CoreError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|e| CoreError::Vault {
                reason: format!("the operating system's random source failed: {e}"),
            })?;
        Ok(Self::from_bytes(*bytes))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        let derived = blake3::derive_key("psm vault master key id v1", &bytes);
        let id = KeyId(derived[..8].iter().map(|b| format!("{b:02x}")).collect());
        Self {
            bytes: Zeroizing::new(bytes),
            id,
        }
    }

    /// Parses the text form: 64 hex digits, or standard base64 of 32 bytes; surrounding
    /// whitespace (a trailing newline in a key file) is ignored. The error never echoes the
    /// text.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let text = text.trim();
        let bad = || CoreError::Vault {
            reason: "a master key must be 64 hex digits or the base64 of 32 bytes".into(),
        };
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        if text.len() == 2 * MASTER_KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
                let hi = (chunk[0] as char).to_digit(16).ok_or_else(bad)?;
                let lo = (chunk[1] as char).to_digit(16).ok_or_else(bad)?;
                bytes[i] = (hi * 16 + lo) as u8;
            }
            return Ok(Self::from_bytes(*bytes));
        }
        if text.len() > 64 {
            return Err(bad());
        }
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| bad())?,
        );
        if decoded.len() != MASTER_KEY_LEN {
            return Err(bad());
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self::from_bytes(*bytes))
    }

    /// The text form (64 hex digits), for writing a key file.
    pub fn to_text(&self) -> Secret<String> {
        Secret::new(self.bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

/// A sealed value as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The key that sealed it.
    pub key_id: KeyId,
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// The master keys: one primary (seals) and any number of previous ones (open only).
#[derive(Clone, Debug)]
pub struct Keyring {
    primary: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring of one key.
    pub fn new(primary: MasterKey) -> Self {
        Self {
            primary,
            previous: Vec::new(),
        }
    }

    /// Adds a previous key (one being rotated away from).
    pub fn with_previous(mut self, key: MasterKey) -> Self {
        if key.id() != self.primary.id() && !self.previous.iter().any(|k| k.id() == key.id()) {
            self.previous.push(key);
        }
        self
    }

    /// The primary key's id.
    pub fn primary_id(&self) -> &KeyId {
        self.primary.id()
    }

    fn key(&self, id: &KeyId) -> Option<&MasterKey> {
        std::iter::once(&self.primary)
            .chain(self.previous.iter())
            .find(|k| k.id() == id)
    }

    /// Seals `plaintext` under the primary key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, CoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| CoreError::Vault {
                reason: format!("the operating system's random source failed: {e}"),
            })?;
        let cipher = XChaCha20Poly1305::new(self.primary.bytes.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CoreError::Vault {
                reason: "sealing failed".into(),
            })?;
        Ok(Sealed {
            key_id: self.primary.id().clone(),
            nonce,
            ciphertext,
        })
    }

    /// Opens a sealed value bound to `aad`. `what` names it in errors.
    pub fn open(
        &self,
        sealed: &Sealed,
        aad: &[u8],
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        let key = self.key(&sealed.key_id).ok_or_else(|| CoreError::Vault {
            reason: format!(
                "{what} is sealed under master key {}, which is not in the keyring (primary {}); \
                 give the old key as a previous key",
                sealed.key_id,
                self.primary.id()
            ),
        })?;
        let cipher = XChaCha20Poly1305::new(key.bytes.as_ref().into());
        cipher
            .decrypt(
                &XNonce::from(sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CoreError::Vault {
                reason: format!(
                    "{what} does not open under master key {}: the stored row was altered or \
                     moved",
                    sealed.key_id
                ),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let ring = Keyring::new(MasterKey::generate().expect("key"));
        let sealed = ring.seal(b"row-a", b"secret").expect("seal");
        assert_eq!(
            &*ring.open(&sealed, b"row-a", "x").expect("open"),
            b"secret"
        );
        assert!(
            ring.open(&sealed, b"row-b", "x").is_err(),
            "aad binds the row"
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(ring.open(&tampered, b"row-a", "x").is_err());
    }

    #[test]
    fn rotation_opens_with_previous_keys() {
        let old = MasterKey::generate().expect("key");
        let sealed = Keyring::new(old.clone()).seal(b"a", b"v").expect("seal");
        let new = MasterKey::generate().expect("key");
        let err = Keyring::new(new.clone())
            .open(&sealed, b"a", "credential")
            .unwrap_err();
        assert!(err.to_string().contains("not in the keyring"), "{err}");
        let ring = Keyring::new(new).with_previous(old);
        assert_eq!(&*ring.open(&sealed, b"a", "x").expect("open"), b"v");
    }

    #[test]
    fn key_text_forms() {
        let k = MasterKey::generate().expect("key");
        let text = k.to_text();
        let back = MasterKey::parse(&format!("{}\n", text.expose_secret())).expect("hex");
        assert_eq!(back.id(), k.id());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(MasterKey::parse(&b64).is_ok());
        let err = MasterKey::parse("short-secret-text")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("short-secret-text"), "{err}");
        assert!(!format!("{k:?}").contains(text.expose_secret()));
    }
}
