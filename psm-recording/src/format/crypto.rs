//! Optional encryption: a random data key per recording seals every chunk payload with
//! XChaCha20-Poly1305; the data key is wrapped for each recipient's X25519 public key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use psm_core::vault::{ZeroizeOnDrop, Zeroizing};

use crate::error::RecordingError;
use crate::keys::{RecipientPublic, RecipientSecret, random_bytes};

pub(crate) const WRAPPED_LEN: usize = 48;
const WRAP_CONTEXT: &str = "psmr v1 2024 data key wrap";
const WRAP_AAD: &[u8] = b"psmr v1 data key";

/// The data key wrapped for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WrappedKey {
    pub recipient: [u8; 32],
    pub ephemeral: [u8; 32],
    pub sealed: [u8; WRAPPED_LEN],
}

/// A recording's data key. Never printed; wiped when dropped.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl ZeroizeOnDrop for DataKey {}

impl DataKey {
    pub(crate) fn generate() -> Result<Self, RecordingError> {
        Ok(Self(Zeroizing::new(random_bytes::<32>()?)))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }

    /// Seals chunk `seq`'s (compressed) payload; `aad` is the chunk's cleartext metadata.
    pub(crate) fn seal(
        &self,
        seq: u64,
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, RecordingError> {
        self.cipher()
            .encrypt(&chunk_nonce(seq), Payload { msg: plain, aad })
            .map_err(|_| RecordingError::InvalidInput {
                field: "chunk payload",
                reason: "too large to encrypt".into(),
            })
    }

    /// Opens chunk `seq`'s payload; `None` if the tag does not verify.
    pub(crate) fn open(&self, seq: u64, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.cipher()
            .decrypt(&chunk_nonce(seq), Payload { msg: sealed, aad })
            .ok()
    }

    /// Seals seek-index entry `entry` (the keyframes for the start of chunk `chunk`).
    pub(crate) fn seal_keyframes(
        &self,
        entry: u64,
        chunk: u64,
        plain: &[u8],
    ) -> Result<Vec<u8>, RecordingError> {
        let aad = keyframes_aad(chunk);
        self.cipher()
            .encrypt(
                &keyframes_nonce(entry),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| RecordingError::InvalidInput {
                field: "keyframes",
                reason: "too large to encrypt".into(),
            })
    }

    /// Opens seek-index entry `entry`; `None` if the tag does not verify.
    pub(crate) fn open_keyframes(&self, entry: u64, chunk: u64, sealed: &[u8]) -> Option<Vec<u8>> {
        let aad = keyframes_aad(chunk);
        self.cipher()
            .decrypt(
                &keyframes_nonce(entry),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()
    }

    pub(crate) fn wrap_for(
        &self,
        recipient: &RecipientPublic,
    ) -> Result<WrappedKey, RecordingError> {
        let eph = RecipientSecret::from_bytes(random_bytes::<32>()?);
        let eph_pub = eph.public().to_bytes();
        let shared = Zeroizing::new(eph.diffie_hellman(&recipient.0));
        if *shared == [0u8; 32] {
            return Err(RecordingError::InvalidKey(format!(
                "{recipient} is a low-order point, not a usable X25519 key"
            )));
        }
        let kek = kek(&shared, &eph_pub, &recipient.0);
        let ct = XChaCha20Poly1305::new((&*kek).into())
            .encrypt(
                &XNonce::default(),
                Payload {
                    msg: &*self.0,
                    aad: WRAP_AAD,
                },
            )
            .map_err(|_| RecordingError::InvalidKey("key wrap failed".into()))?;
        let mut sealed = [0u8; WRAPPED_LEN];
        if ct.len() != WRAPPED_LEN {
            return Err(RecordingError::InvalidKey(
                "key wrap has an unexpected length".into(),
            ));
        }
        sealed.copy_from_slice(&ct);
        Ok(WrappedKey {
            recipient: recipient.0,
            ephemeral: eph_pub,
            sealed,
        })
    }

    /// Unwraps with `secret`; `None` if it is not this entry's recipient or the wrap was
    /// changed.
    pub(crate) fn unwrap(entry: &WrappedKey, secret: &RecipientSecret) -> Option<Self> {
        if secret.public().0 != entry.recipient {
            return None;
        }
        let shared = Zeroizing::new(secret.diffie_hellman(&entry.ephemeral));
        if *shared == [0u8; 32] {
            return None;
        }
        let kek = kek(&shared, &entry.ephemeral, &entry.recipient);
        let pt = XChaCha20Poly1305::new((&*kek).into())
            .decrypt(
                &XNonce::default(),
                Payload {
                    msg: &entry.sealed,
                    aad: WRAP_AAD,
                },
            )
            .ok()
            .map(Zeroizing::new)?;
        let mut key = Zeroizing::new([0u8; 32]);
        if pt.len() != key.len() {
            return None;
        }
        key.copy_from_slice(&pt);
        Some(Self(key))
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

fn kek(shared: &[u8; 32], eph_pub: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut material = Zeroizing::new([0u8; 96]);
    material[..32].copy_from_slice(shared);
    material[32..64].copy_from_slice(eph_pub);
    material[64..].copy_from_slice(recipient);
    Zeroizing::new(blake3::derive_key(WRAP_CONTEXT, &*material))
}

/// Keyframe nonces differ from chunk nonces in byte 8 (0x4B, "K"; chunks have 0 there).
fn keyframes_nonce(entry: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&entry.to_le_bytes());
    n[8] = 0x4b;
    n.into()
}

fn keyframes_aad(chunk: u64) -> [u8; 22] {
    let mut a = [0u8; 22];
    a[..14].copy_from_slice(b"psmr keyframes");
    a[14..].copy_from_slice(&chunk.to_le_bytes());
    a
}

fn chunk_nonce(seq: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&seq.to_le_bytes());
    n.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wrap_unwrap_and_seal_open() {
        let alice = RecipientSecret::generate().unwrap();
        let bob = RecipientSecret::generate().unwrap();
        let dk = DataKey::generate().unwrap();
        let w = dk.wrap_for(&alice.public()).unwrap();
        assert!(DataKey::unwrap(&w, &bob).is_none());
        let back = DataKey::unwrap(&w, &alice).unwrap();
        let sealed = dk.seal(7, b"meta", b"hello").unwrap();
        assert_eq!(back.open(7, b"meta", &sealed).unwrap(), b"hello");
        assert!(back.open(8, b"meta", &sealed).is_none());
        assert!(back.open(7, b"metb", &sealed).is_none());
        let mut tampered = w.clone();
        tampered.sealed[0] ^= 1;
        assert!(DataKey::unwrap(&tampered, &alice).is_none());
        assert!(dk.wrap_for(&RecipientPublic::from_bytes([0; 32])).is_err());
    }

    /// Issue 17 L8: the data key is wiped when dropped (the type says so, checked by the
    /// compiler) and never printed.
    #[test]
    fn the_data_key_is_wiped_and_never_printed() {
        fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}
        let dk = DataKey::generate().unwrap();
        wiped_on_drop(&dk);
        let text = format!("{dk:?} {:?}", dk.clone());
        assert_eq!(text, "DataKey(***) DataKey(***)");
        let hex: String = dk.0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex));
    }
}
