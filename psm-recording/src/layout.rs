//! Where a node keeps recordings on its own disk, from the gateway's raw file to the
//! encoder's exports, until the uploader has stored them remotely.
//!
//! One type names these paths for every process that touches them: the SSH gateway
//! (`psm-proxy`) and the RDP gateway (`psm-proxy-rdp`) write raw recordings, the encoder and
//! uploader (`psm-pipeline`) read them, write and read exports, and delete both once stored.
//! It lives here, beside the format, because psm-recording is the one crate all of them share.

use std::path::{Path, PathBuf};

use psm_core::SessionId;

/// The local data layout under one data directory:
///
/// ```text
/// DATA/recordings/<session-id>.psmr            raw recording, written by a gateway
/// DATA/exports/<session-id>/manifest.json      written last by the encoder: lists every file
/// DATA/exports/<session-id>/manifest.sig       the encoder's signature of manifest.json
/// DATA/exports/<session-id>/<export files>     session.cast, transcript.txt, session.mp4...
/// ```
///
/// `<session-id>` is the session GUID, lower-case and hyphenated. A gateway writes the raw
/// file and nothing else; the encoder reads it and writes the exports directory (each file
/// through a hidden temporary and a rename, the manifest last); the uploader reads both and
/// deletes them only after the upload was verified and the session committed Done-Uploaded.
///
/// ```
/// use psm_recording::layout::LocalLayout;
/// let layout = LocalLayout::new("/var/lib/psm");
/// let id: psm_core::SessionId = "123e4567-e89b-12d3-a456-426614174000".parse()?;
/// assert_eq!(
///     layout.raw_recording(id),
///     std::path::Path::new("/var/lib/psm/recordings/123e4567-e89b-12d3-a456-426614174000.psmr"),
/// );
/// // A gateway configured with only the recordings directory names the same file:
/// assert_eq!(
///     psm_recording::layout::raw_recording_in(&layout.recordings_dir(), id),
///     layout.raw_recording(id),
/// );
/// assert!(layout.manifest(id).ends_with("exports/123e4567-e89b-12d3-a456-426614174000/manifest.json"));
/// # Ok::<(), psm_core::CoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalLayout {
    root: PathBuf,
}

/// The name of the raw recordings' directory under the data directory.
pub const RECORDINGS_DIR: &str = "recordings";

/// The name of the exports' directory under the data directory.
pub const EXPORTS_DIR: &str = "exports";

/// The extension of a raw recording.
pub const RAW_EXTENSION: &str = "psmr";

/// The file name of a recording set's manifest, locally (and in the store).
pub const MANIFEST_FILE: &str = "manifest.json";

/// The file name of the encoder's signature of the manifest (a
/// [`crate::keys::DetachedSignature`] with the context [`MANIFEST_SIGNATURE_CONTEXT`]),
/// beside it locally and in the store.
pub const MANIFEST_SIGNATURE_FILE: &str = "manifest.sig";

/// What a manifest signature signs for (see [`crate::keys::SigningKey::sign_detached`]).
pub const MANIFEST_SIGNATURE_CONTEXT: &str = "psm recording-set manifest v1";

/// `<id>.psmr`: the file name of a session's raw recording.
pub fn raw_file_name(id: SessionId) -> String {
    format!("{id}.{RAW_EXTENSION}")
}

/// `DIR/<id>.psmr`, for a writer that was given only the recordings directory.
pub fn raw_recording_in(recordings_dir: &Path, id: SessionId) -> PathBuf {
    recordings_dir.join(raw_file_name(id))
}

impl LocalLayout {
    /// The layout under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: data_dir.into(),
        }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DATA/recordings`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.root.join(RECORDINGS_DIR)
    }

    /// `DATA/exports`.
    pub fn exports_root(&self) -> PathBuf {
        self.root.join(EXPORTS_DIR)
    }

    /// `DATA/recordings/<id>.psmr`.
    pub fn raw_recording(&self, id: SessionId) -> PathBuf {
        raw_recording_in(&self.recordings_dir(), id)
    }

    /// `DATA/exports/<id>`.
    pub fn exports_dir(&self, id: SessionId) -> PathBuf {
        self.exports_root().join(id.to_string())
    }

    /// `DATA/exports/<id>/manifest.json`.
    pub fn manifest(&self, id: SessionId) -> PathBuf {
        self.exports_dir(id).join(MANIFEST_FILE)
    }

    /// `DATA/keys/signers/gateways`: the public keys of the gateways whose recordings this
    /// node trusts (see [`crate::keys::SignerRegistry`]).
    pub fn gateway_signers(&self) -> crate::keys::SignerRegistry {
        crate::keys::SignerRegistry::new(self.root.join("keys").join("signers").join("gateways"))
    }

    /// `DATA/keys/signers/encoders`: the public keys of the encoders whose recording sets
    /// (manifest and exports) this node trusts.
    pub fn encoder_signers(&self) -> crate::keys::SignerRegistry {
        crate::keys::SignerRegistry::new(self.root.join("keys").join("signers").join("encoders"))
    }

    /// Creates the two directories.
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.recordings_dir())?;
        std::fs::create_dir_all(self.exports_root())
    }

    /// Sessions that have anything on this disk (a raw recording or an exports directory),
    /// sorted, each once. Names that are not a session id are ignored.
    pub fn local_sessions(&self) -> std::io::Result<Vec<SessionId>> {
        let mut out = Vec::new();
        let raw_suffix = format!(".{RAW_EXTENSION}");
        for (dir, strip) in [
            (self.recordings_dir(), raw_suffix.as_str()),
            (self.exports_root(), ""),
        ] {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let name = entry?.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(id) = name.strip_suffix(strip) else {
                    continue;
                };
                if let Ok(id) = id.parse::<SessionId>() {
                    out.push(id);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn local_sessions_lists_raw_files_and_export_dirs_once() {
        let dir = tempfile::tempdir().unwrap();
        let layout = LocalLayout::new(dir.path());
        layout.create().unwrap();
        let (a, b) = (SessionId::new(), SessionId::new());
        std::fs::write(layout.raw_recording(a), b"x").unwrap();
        std::fs::create_dir_all(layout.exports_dir(a)).unwrap();
        std::fs::create_dir_all(layout.exports_dir(b)).unwrap();
        std::fs::write(layout.recordings_dir().join("notes.txt"), b"x").unwrap();
        std::fs::write(layout.recordings_dir().join(".x.psmr.tmp"), b"x").unwrap();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(layout.local_sessions().unwrap(), want);
    }

    #[test]
    fn missing_directories_mean_no_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let layout = LocalLayout::new(dir.path().join("never-created"));
        assert!(layout.local_sessions().unwrap().is_empty());
    }
}
