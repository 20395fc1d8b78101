//! The algorithms the gateway negotiates, on both sides, and why.
//!
//! Facing users ([`server`]), in preference order:
//!
//! | kind | algorithms |
//! |---|---|
//! | key exchange | `mlkem768x25519-sha256` (post-quantum hybrid), `curve25519-sha256`, `curve25519-sha256@libssh.org`; plus `ext-info-s` and `kex-strict-s-v00@openssh.com` (Terrapin countermeasure) |
//! | host key / user signatures | `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521` (user keys; the gateway's own host key is Ed25519), `rsa-sha2-512`, `rsa-sha2-256` |
//! | ciphers | `chacha20-poly1305@openssh.com`, `aes256-gcm@openssh.com`, `aes128-gcm@openssh.com`, `aes256-ctr`, `aes192-ctr`, `aes128-ctr` |
//! | MACs (for the CTR ciphers) | `hmac-sha2-512-etm@openssh.com`, `hmac-sha2-256-etm@openssh.com` |
//! | compression | `none`, `zlib@openssh.com` (starts only after authentication) |
//!
//! Left out on purpose: finite-field Diffie-Hellman (`diffie-hellman-group14-*` is 2048-bit,
//! the group-exchange and larger groups cost the server far more than the client, the
//! DHEat denial of service), NIST-curve key exchange, `ssh-rsa` (SHA-1 signatures, refused
//! from users and from targets' host keys), encrypt-and-MAC MACs (`hmac-sha2-256` without
//! `-etm`), SHA-1 MACs, CBC ciphers, and `zlib` (compression before authentication).
//! `sntrup761x25519-sha512` is not offered because russh does not implement it;
//! `mlkem768x25519-sha256` is the post-quantum hybrid (OpenSSH 9.9 and later).
//!
//! Toward targets ([`client`]) the gateway is the client and old servers are more common:
//! it also offers `diffie-hellman-group-exchange-sha256` and the 4096/8192-bit groups
//! (the cost of those falls on the target), but never `ssh-rsa` host keys, SHA-1 or
//! encrypt-and-MAC MACs.

use std::borrow::Cow;

use russh::keys::Algorithm;
use russh::keys::ssh_key::{EcdsaCurve, HashAlg};
use russh::{Preferred, cipher, compression, kex, mac};

/// Signature algorithms, strongest first; no `ssh-rsa` (SHA-1).
const KEYS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

const SERVER_KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

const CLIENT_KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::DH_GEX_SHA256,
    kex::DH_G16_SHA512,
    kex::DH_G18_SHA512,
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

const SERVER_CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// AES-GCM first toward targets: hardware-accelerated, and the bulk of a session's bytes.
const CLIENT_CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_128_CTR,
];

const MACS: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM];

const COMPRESSION: &[compression::Name] = &[compression::NONE, compression::ZLIB_LEGACY];

/// What the gateway offers to users' clients (see the module docs).
pub fn server() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(SERVER_KEX),
        key: Cow::Borrowed(KEYS),
        cipher: Cow::Borrowed(SERVER_CIPHERS),
        mac: Cow::Borrowed(MACS),
        compression: Cow::Borrowed(COMPRESSION),
        ..Preferred::default()
    }
}

/// What the gateway offers to targets (see the module docs).
pub fn client() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(CLIENT_KEX),
        key: Cow::Borrowed(KEYS),
        cipher: Cow::Borrowed(CLIENT_CIPHERS),
        mac: Cow::Borrowed(MACS),
        compression: Cow::Borrowed(&[compression::NONE]),
        ..Preferred::default()
    }
}

/// Whether a signature algorithm is `ssh-rsa`: RSA over SHA-1, refused everywhere.
pub fn is_sha1_rsa(algorithm: &Algorithm) -> bool {
    matches!(algorithm, Algorithm::Rsa { hash: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_weak_algorithm_is_offered() {
        for p in [server(), client()] {
            assert!(!p.key.iter().any(is_sha1_rsa));
            assert!(
                p.mac
                    .iter()
                    .all(|m| m.as_ref().ends_with("-etm@openssh.com"))
            );
            assert!(!p.kex.iter().any(|k| k.as_ref().contains("group14")
                || k.as_ref().contains("sha1")
                || k.as_ref().contains("nistp")));
            assert!(!p.compression.iter().any(|c| c.as_ref() == "zlib"));
        }
        assert!(
            !server()
                .kex
                .iter()
                .any(|k| k.as_ref().starts_with("diffie-hellman"))
        );
    }
}
