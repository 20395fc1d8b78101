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

    /// Signs a document other than a recording's frames (a recording set's manifest): the
    /// signed message is `context`, a NUL byte, then `document`, so no signature made for
    /// one purpose verifies for another (a frame's context is `psmr v2 frame signature`).
    pub fn sign_detached(&self, context: &str, document: &[u8]) -> DetachedSignature {
        DetachedSignature {
            signer: self.verifying_key(),
            signature: self.sign(&detached_message(context, document)),
        }
    }
}

fn detached_message(context: &str, document: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(context.len() + 1 + document.len());
    msg.extend_from_slice(context.as_bytes());
    msg.push(0);
    msg.extend_from_slice(document);
    msg
}

const DETACHED_HEADER: &str = "psm-detached-signature v1";

/// A signature over a whole document, kept beside it (`manifest.sig` beside
/// `manifest.json`), with the public key that made it. Its text form:
///
/// ```text
/// psm-detached-signature v1
/// signer psmr-signing-public:<64 hex>
/// signature <128 hex>
/// ```
///
/// ```
/// use psm_recording::{SigningKey, keys::DetachedSignature};
/// let key = SigningKey::generate()?;
/// let sig = key.sign_detached("psm manifest v1", b"{...}");
/// let again = DetachedSignature::from_text(&sig.to_text())?;
/// assert_eq!(again.verify("psm manifest v1", b"{...}", &[key.verifying_key()])?, key.verifying_key());
/// assert!(again.verify("psm manifest v1", b"{..!}", &[key.verifying_key()]).is_err());
/// assert!(again.verify("psm manifest v1", b"{...}", &[SigningKey::generate()?.verifying_key()]).is_err());
/// # Ok::<(), psm_recording::RecordingError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetachedSignature {
    /// The key that signed.
    pub signer: VerifyingKey,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

impl DetachedSignature {
    /// Longest text form read.
    pub const MAX_TEXT_LEN: usize = 1024;

    /// The text form (three lines).
    pub fn to_text(&self) -> String {
        format!(
            "{DETACHED_HEADER}\nsigner {}\nsignature {}\n",
            self.signer,
            hex::encode(self.signature)
        )
    }

    /// Parses the text form.
    pub fn from_text(text: &str) -> Result<Self, RecordingError> {
        let bad =
            |why: &str| RecordingError::InvalidKey(format!("not a detached signature: {why}"));
        if text.len() > Self::MAX_TEXT_LEN {
            return Err(bad("too long"));
        }
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(DETACHED_HEADER) {
            return Err(bad("the first line must be \"psm-detached-signature v1\""));
        }
        let signer = lines
            .next()
            .and_then(|l| l.trim().strip_prefix("signer "))
            .ok_or_else(|| bad("no signer line"))?;
        let signer = VerifyingKey::from_text(signer)?;
        let sig = lines
            .next()
            .and_then(|l| l.trim().strip_prefix("signature "))
            .ok_or_else(|| bad("no signature line"))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(sig, &mut signature)
            .map_err(|_| bad("the signature must be 128 hex digits"))?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(bad("more than three lines"));
        }
        Ok(Self { signer, signature })
    }

    /// Checks that one of `trusted` signed `document` for `context`; returns that key.
    pub fn verify(
        &self,
        context: &str,
        document: &[u8],
        trusted: &[VerifyingKey],
    ) -> Result<VerifyingKey, RecordingError> {
        if !trusted.contains(&self.signer) {
            return Err(RecordingError::UntrustedSigner {
                found: self.signer.to_string(),
            });
        }
        if !self
            .signer
            .verify(&detached_message(context, document), &self.signature)
        {
            return Err(RecordingError::InvalidKey(format!(
                "the signature by {} does not match the document (changed after it was signed)",
                self.signer
            )));
        }
        Ok(self.signer)
    }
}

/// The public keys a node trusts for one purpose, one file each: `DIR/NAME.pub` holding the
/// key's text form (`psmr-signing-public:...`). Gateways register the key they sign
/// recordings with, encoders the key they sign recording sets with
/// ([`crate::layout::LocalLayout::gateway_signers`], [`crate::layout::LocalLayout::encoder_signers`]);
/// processes sharing a data directory see each other's at once, and an operator adds the
/// keys of other nodes' processes by copying their `.pub` files, with `psm signers add`, or
/// through the control plane's RegisterSigner endpoint.
/// Read again at each use, so a key registered later counts without a restart.
///
/// ```
/// use psm_recording::{SigningKey, keys::SignerRegistry};
/// let dir = tempfile::tempdir()?;
/// let reg = SignerRegistry::new(dir.path().join("gateways"));
/// let key = SigningKey::generate()?.verifying_key();
/// reg.register("gw-1", &key)?;
/// assert_eq!(reg.name_of(&key).as_deref(), Some("gw-1"));
/// assert_eq!(reg.keys(), vec![key]);
/// assert!(reg.register("../x", &key).is_err());
/// assert!(reg.remove("gw-1")?);
/// assert!(reg.keys().is_empty() && !reg.remove("gw-1")?);
/// assert!(!reg.remove("../gateways/gw-1")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerRegistry {
    dir: std::path::PathBuf,
}

/// Most keys a registry reads (a directory with more holds something else).
const MAX_REGISTERED: usize = 4096;

impl SignerRegistry {
    /// The registry kept in `dir`.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Registers `key` as `name` (printable ASCII without `/` or `\`, not starting with `.`:
    /// a process instance's name),
    /// replacing what that name held. Public keys only: nothing here is secret.
    pub fn register(&self, name: &str, key: &VerifyingKey) -> Result<(), RecordingError> {
        Self::check_name(name)?;
        let io = |what: String| {
            move |source: std::io::Error| RecordingError::Io {
                context: what,
                source,
            }
        };
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join(format!("{name}.pub"));
        let text = format!("{key}\n");
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        let temp = self.dir.join(format!(".{name}.pub.tmp"));
        std::fs::write(&temp, &text).map_err(io(format!("writing {}", temp.display())))?;
        std::fs::rename(&temp, &path).map_err(io(format!("writing {}", path.display())))
    }

    /// Whether `name` can name a registered key: printable ASCII without `/` or `\`, not
    /// starting with `.`, at most 128 bytes (a process instance's name, kept as a file name).
    pub fn check_name(name: &str) -> Result<(), RecordingError> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'\\'));
        if valid {
            return Ok(());
        }
        Err(RecordingError::InvalidKey(format!(
            "a signer's name is printable ASCII without '/' or '\\' and does not start \
             with '.', not {:?}",
            name.chars().take(64).collect::<String>()
        )))
    }

    /// The key registered as `name`, if any.
    pub fn key_of(&self, name: &str) -> Option<VerifyingKey> {
        self.entries()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k)
    }

    /// Stops trusting what `name` signs: removes its key. `false` when it held none.
    pub fn remove(&self, name: &str) -> Result<bool, RecordingError> {
        if Self::check_name(name).is_err() {
            return Ok(false);
        }
        let path = self.dir.join(format!("{name}.pub"));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RecordingError::Io {
                context: format!("removing {}", path.display()),
                source,
            }),
        }
    }

    /// Every registered key with its name, sorted by name; files that are not a public key
    /// are skipped (and logged).
    pub fn entries(&self) -> Vec<(String, VerifyingKey)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in dir.flatten().take(MAX_REGISTERED) {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let Some(name) = file.strip_suffix(".pub") else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let text = match std::fs::read(entry.path()) {
                Ok(b) if b.len() <= 256 => String::from_utf8_lossy(&b).into_owned(),
                _ => continue,
            };
            match VerifyingKey::from_text(text.trim()) {
                Ok(k) => out.push((name.to_owned(), k)),
                Err(e) => tracing::warn!(file = %entry.path().display(), error = %e,
                    "not a signer's public key; ignored"),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every registered key.
    pub fn keys(&self) -> Vec<VerifyingKey> {
        self.entries().into_iter().map(|(_, k)| k).collect()
    }

    /// The name `key` is registered under, if it is.
    pub fn name_of(&self, key: &VerifyingKey) -> Option<String> {
        self.entries()
            .into_iter()
            .find(|(_, k)| k == key)
            .map(|(n, _)| n)
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
