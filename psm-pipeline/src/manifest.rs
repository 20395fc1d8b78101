//! The manifest of a recording set: what the encoder produced for a session, with the size and
//! BLAKE3 of every file. Written last by the encoder, uploaded last by the uploader: its
//! presence closes the set, locally and in the store.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use psm_core::SessionId;
use psm_storage::{Checksum, ObjectKey};
use serde::{Deserialize, Serialize};

use crate::error::PipelineError;
use crate::layout::{MANIFEST_FILE, RAW_OBJECT_NAME};
use psm_recording::keys::DetachedSignature;
use psm_recording::layout::{MANIFEST_SIGNATURE_CONTEXT, MANIFEST_SIGNATURE_FILE};
use psm_recording::{SigningKey, VerifyingKey};

/// The `format` of manifests this version writes and reads.
pub const MANIFEST_FORMAT: &str = "psm-recording-set/1";

/// Largest manifest read (the files it lists are few; anything larger is not ours).
pub const MAX_MANIFEST_LEN: u64 = psm_storage::layout::MAX_MANIFEST_LEN;

/// Most files one set may list.
pub const MAX_FILES: usize = 256;

/// One file of a set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its name, in the local exports directory and under `sessions/<id>/` in the store.
    pub name: String,
    /// What it is (`raw`, `asciicast`, `transcript`, `commands`, `frames`...).
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the content.
    pub blake3: Checksum,
}

pub use psm_recording::export::Gap;

/// Whether the raw recording was read whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityReport {
    /// True when every byte of the raw recording was read and verified.
    pub complete: bool,
    /// Damaged or missing parts; the exports hold what was intact, and the raw file is kept
    /// as it was.
    #[serde(default)]
    pub gaps: Vec<Gap>,
}

/// The manifest.
///
/// ```
/// use psm_pipeline::manifest::{Manifest, ManifestFile};
/// use psm_storage::Checksum;
/// let id = psm_core::SessionId::new();
/// let m = Manifest::new(id, ManifestFile {
///     name: "recording.psmr".into(), kind: "raw".into(), size: 3, blake3: Checksum::of(b"abc"),
/// });
/// let bytes = m.to_bytes();
/// assert_eq!(Manifest::from_bytes(&bytes, id, "manifest.json".as_ref())?, m);
/// # Ok::<(), psm_pipeline::PipelineError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The session.
    pub session: SessionId,
    /// The target reached (per-target retention reads it).
    #[serde(default)]
    pub target: Option<String>,
    /// The PSM user.
    #[serde(default)]
    pub user: Option<String>,
    /// The protocol (`ssh`, `rdp`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The raw recording, stored as `recording.psmr`.
    pub raw: ManifestFile,
    /// The exports, in a fixed order.
    #[serde(default)]
    pub exports: Vec<ManifestFile>,
    /// Whether the raw recording was whole.
    #[serde(default)]
    pub integrity: IntegrityReport,
    /// Problems the encoder found that did not stop it (e.g. a recording not encrypted for
    /// the deployment's recipient key). With the gaps, they make the session's note.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the exports leave out on purpose, one line each, e.g. `asciicast, transcript:
    /// channel 0: 400000000 bytes of binary output from 0.000012 on left out (the raw
    /// recording holds them)`: binary data on a channel without a terminal, which a text
    /// export would only repeat in a larger form. Not a problem with the recording.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// The key that signed the raw recording (`psmr-signing-public:...`), as its header
    /// names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_signer: Option<String>,
    /// The name that key is registered under (`DATA/keys/signers/gateways/NAME.pub`); `None`
    /// when the encoder trusted no registry, or the key is not in it (then the recording is
    /// not encoded and the integrity report says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The chain value at the end of the raw recording as the encoder read it (64 hex
    /// digits; psm-recording's `Reader::chain_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_chain: Option<String>,
    /// What the session's gateway committed to at EndSession, as the encoder's claim carried
    /// it (`None`: nothing was committed). The encoder encodes only a recording that ends at
    /// its chain value; the uploader uploads only a set whose manifest was checked against
    /// the commitment its own claim carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<psm_core::RecordingCommitment>,
}

/// Most warnings one manifest may hold, and the longest one, in bytes.
pub const MAX_WARNINGS: usize = 16;
const MAX_WARNING_LEN: usize = 1024;

impl Manifest {
    /// A manifest with only the raw recording, complete.
    pub fn new(session: SessionId, raw: ManifestFile) -> Self {
        Self {
            format: MANIFEST_FORMAT.into(),
            session,
            target: None,
            user: None,
            protocol: None,
            raw,
            exports: Vec::new(),
            integrity: IntegrityReport {
                complete: true,
                gaps: Vec::new(),
            },
            warnings: Vec::new(),
            left_out: Vec::new(),
            recording_signer: None,
            gateway: None,
            recording_chain: None,
            committed: None,
        }
    }

    /// What the session's status should say about this set, if anything: the recording's
    /// damage and the encoder's warnings, in one line (the encoder and the uploader both
    /// report it with their completion, so it stays on the session to Done-Uploaded).
    ///
    /// ```
    /// use psm_pipeline::manifest::{Gap, Manifest, ManifestFile};
    /// let raw = ManifestFile { name: "recording.psmr".into(), kind: "raw".into(), size: 1,
    ///     blake3: psm_storage::Checksum::of(b"x") };
    /// let mut m = Manifest::new(psm_core::SessionId::new(), raw);
    /// assert_eq!(m.note(), None);
    /// m.integrity.complete = false;
    /// m.integrity.gaps.push(Gap { from: psm_recording::Micros(2_000_000), to: None,
    ///     reason: "recording truncated after chunk 3".into() });
    /// assert_eq!(m.note().as_deref(), Some("recording damaged: encoded what is intact; \
    ///     1 gap, from 2.000 s: recording truncated after chunk 3"));
    /// ```
    pub fn note(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.integrity.complete {
            let n = self.integrity.gaps.len();
            let mut text = format!(
                "recording damaged: encoded what is intact; {n} gap{}",
                if n == 1 { "" } else { "s" }
            );
            if let Some(g) = self.integrity.gaps.first() {
                text.push_str(&format!(
                    ", from {}.{:03} s: {}",
                    g.from.0 / 1_000_000,
                    (g.from.0 % 1_000_000) / 1000,
                    g.reason
                ));
            }
            parts.push(text);
        }
        parts.extend(self.warnings.iter().cloned());
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Every file, the raw recording first.
    pub fn files(&self) -> impl Iterator<Item = &ManifestFile> {
        std::iter::once(&self.raw).chain(&self.exports)
    }

    /// Deterministic bytes: the same manifest always serializes identically.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses and checks a manifest that must belong to `session`.
    pub fn from_bytes(
        bytes: &[u8],
        session: SessionId,
        path: &Path,
    ) -> Result<Self, PipelineError> {
        let bad = |reason: String| PipelineError::Manifest {
            path: path.to_owned(),
            reason,
        };
        if bytes.len() as u64 > MAX_MANIFEST_LEN {
            return Err(bad(format!(
                "{} bytes, the limit is {MAX_MANIFEST_LEN}",
                bytes.len()
            )));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(bad(format!(
                "format {:?}, expected {MANIFEST_FORMAT:?}",
                m.format.chars().take(64).collect::<String>()
            )));
        }
        if m.session != session {
            return Err(bad(format!(
                "belongs to session {}, not {session}",
                m.session
            )));
        }
        if m.raw.name != RAW_OBJECT_NAME {
            return Err(bad(format!("raw file must be named {RAW_OBJECT_NAME}")));
        }
        if m.exports.len() >= MAX_FILES {
            return Err(bad(format!(
                "{} files, the limit is {MAX_FILES}",
                m.exports.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for f in m.files() {
            let single_segment = !f.name.contains('/') && ObjectKey::new(f.name.as_str()).is_ok();
            if !single_segment || f.name == MANIFEST_FILE || f.name == MANIFEST_SIGNATURE_FILE {
                return Err(bad(format!(
                    "file name {:?} is not a plain, safe name",
                    f.name.chars().take(64).collect::<String>()
                )));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(bad(format!("file {} listed twice", f.name)));
            }
            if f.kind.is_empty()
                || f.kind.len() > 32
                || !f
                    .kind
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(bad("a file kind is not a short ASCII word".into()));
            }
        }
        if m.warnings.len() > MAX_WARNINGS
            || m.left_out.len() > MAX_WARNINGS
            || m.warnings.iter().chain(&m.left_out).any(|w| {
                w.is_empty() || w.len() > MAX_WARNING_LEN || w.chars().any(char::is_control)
            })
        {
            return Err(bad(format!(
                "at most {MAX_WARNINGS} warnings (and as many left-out notes) of 1 to \
                 {MAX_WARNING_LEN} bytes without control characters"
            )));
        }
        let fields = [
            &m.target,
            &m.user,
            &m.protocol,
            &m.recording_signer,
            &m.gateway,
        ];
        for field in fields.into_iter().flatten() {
            if field.len() > 1024 || field.chars().any(char::is_control) {
                return Err(bad(
                    "target, user, protocol, signer or gateway is too long or holds control \
                     characters"
                        .into(),
                ));
            }
        }
        Ok(m)
    }

    /// Reads and checks a manifest file.
    pub fn read(path: &Path, session: SessionId) -> Result<Self, PipelineError> {
        let file = std::fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PipelineError::NotEncoded {
                    session,
                    path: path.to_owned(),
                }
            } else {
                PipelineError::local(path)(e)
            }
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_MANIFEST_LEN + 1),
            &mut bytes,
        )
        .map_err(PipelineError::local(path))?;
        Self::from_bytes(&bytes, session, path)
    }

    /// Writes the manifest into `dir` atomically (a hidden temporary, fsync, rename, fsync of
    /// the directory).
    pub fn write(&self, dir: &Path) -> Result<PathBuf, PipelineError> {
        self.write_signed(dir, None)
    }

    /// Writes the manifest into `dir` as [`write`](Self::write) does, after its signature by
    /// `key` (`manifest.sig`, see [`verify_signature`]); without a key, an old signature is
    /// removed (it would not match).
    pub fn write_signed(
        &self,
        dir: &Path,
        key: Option<&SigningKey>,
    ) -> Result<PathBuf, PipelineError> {
        let bytes = self.to_bytes();
        let sig_path = dir.join(MANIFEST_SIGNATURE_FILE);
        match key {
            Some(key) => {
                let sig = key.sign_detached(MANIFEST_SIGNATURE_CONTEXT, &bytes);
                write_atomic(&sig_path, sig.to_text().as_bytes())?;
            }
            None => match std::fs::remove_file(&sig_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PipelineError::local(&sig_path)(e)),
            },
        }
        let path = dir.join(MANIFEST_FILE);
        write_atomic(&path, &bytes)?;
        Ok(path)
    }
}

/// Checks that `signature` (the bytes of `manifest.sig`) is a signature of `manifest` (the
/// bytes of `manifest.json`) by one of `trusted` (the registered encoders' keys); returns
/// the key. `path` names the manifest in the error.
pub fn verify_signature(
    manifest: &[u8],
    signature: Option<&[u8]>,
    trusted: &[VerifyingKey],
    path: &Path,
) -> Result<VerifyingKey, PipelineError> {
    let bad = |reason: String| PipelineError::Manifest {
        path: path.to_owned(),
        reason,
    };
    let signature = signature
        .ok_or_else(|| bad(format!("not signed: {MANIFEST_SIGNATURE_FILE} is missing")))?;
    let text = std::str::from_utf8(signature)
        .map_err(|_| bad(format!("{MANIFEST_SIGNATURE_FILE} is not text")))?;
    let sig = DetachedSignature::from_text(text).map_err(|e| bad(e.to_string()))?;
    sig.verify(MANIFEST_SIGNATURE_CONTEXT, manifest, trusted)
        .map_err(|e| match e {
            psm_recording::RecordingError::UntrustedSigner { found } => bad(format!(
                "signed by {found}, which is not a registered encoder's key"
            )),
            other => bad(other.to_string()),
        })
}

/// Writes `bytes` to `path` through `.<name>.tmp` beside it, fsyncing file and directory, so a
/// reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&temp).map_err(PipelineError::local(&temp))?;
        f.write_all(bytes).map_err(PipelineError::local(&temp))?;
        f.sync_all().map_err(PipelineError::local(&temp))?;
        std::fs::rename(&temp, path).map_err(PipelineError::local(path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// fsyncs a directory so renames and deletions in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), PipelineError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(PipelineError::local(dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn sample(id: SessionId) -> Manifest {
        let mut m = Manifest::new(
            id,
            ManifestFile {
                name: RAW_OBJECT_NAME.into(),
                kind: "raw".into(),
                size: 1,
                blake3: Checksum::of(b"x"),
            },
        );
        m.exports.push(ManifestFile {
            name: "transcript.txt".into(),
            kind: "transcript".into(),
            size: 2,
            blake3: Checksum::of(b"yz"),
        });
        m
    }

    #[test]
    fn refuses_foreign_or_unsafe_manifests() {
        let id = SessionId::new();
        let p = Path::new("m.json");
        assert!(Manifest::from_bytes(&sample(id).to_bytes(), SessionId::new(), p).is_err());
        for bad_name in ["../x", "a/b", "manifest.json", ".hidden", "recording.psmr"] {
            let mut m = sample(id);
            m.exports[0].name = bad_name.into();
            assert!(
                Manifest::from_bytes(&m.to_bytes(), id, p).is_err(),
                "{bad_name}"
            );
        }
        let mut m = sample(id);
        m.format = "other/9".into();
        assert!(Manifest::from_bytes(&m.to_bytes(), id, p).is_err());
        assert!(Manifest::from_bytes(b"{", id, p).is_err());
    }

    #[test]
    fn serialization_is_deterministic() {
        let id = SessionId::new();
        assert_eq!(sample(id).to_bytes(), sample(id).to_bytes());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::from_bytes(&bytes, SessionId::new(), Path::new("m"));
        }
    }
}
