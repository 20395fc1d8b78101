//! The one error type of psm-pipeline.

use std::path::PathBuf;

use psm_core::{CoreError, SessionId};
use psm_storage::StorageError;

/// Why a step on a session failed. Each variant names the session or file; none carries a
/// credential. The text is what the control plane records as the session's failure reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The session's raw recording is not where the layout says.
    #[error("session {session}: raw recording {path} is missing")]
    RawMissing {
        /// The session.
        session: SessionId,
        /// Where it should be.
        path: PathBuf,
    },

    /// The session was never encoded here: its exports manifest is missing.
    #[error("session {session}: exports manifest {path} is missing (not encoded on this node?)")]
    NotEncoded {
        /// The session.
        session: SessionId,
        /// Where it should be.
        path: PathBuf,
    },

    /// A manifest could not be read or does not belong to the session.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A local file disagrees with the manifest that describes it.
    #[error("session {session}: {path} {reason}")]
    LocalMismatch {
        /// The session.
        session: SessionId,
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },

    /// A local file or directory could not be read or written.
    #[error("{path}: {source}")]
    Local {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The raw recording could not be read at all.
    #[error("session {session}: raw recording {path} is unreadable: {reason}")]
    Recording {
        /// The session.
        session: SessionId,
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },

    /// A recording cannot get a seek index (not intact, encrypted without a key for it): the
    /// file is left as it is.
    #[error("{path}: no seek index added: {reason}")]
    SeekIndex {
        /// The recording.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// An export could not be produced (ffmpeg missing or failing, a bad frame).
    #[error("{export} export: {reason}")]
    Export {
        /// Which export.
        export: String,
        /// What went wrong.
        reason: String,
    },

    /// The control plane's settings cannot be used as they are (GetPAMSettings).
    #[error("settings: {0}")]
    Settings(String),

    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// The control plane failed or refused.
    #[error("control plane: {0}")]
    ControlPlane(#[from] CoreError),

    /// The worker lost its lease on the session (expired, or the session was claimed again):
    /// it stopped without committing.
    #[error("session {session}: lease lost ({reason}); stopped without committing")]
    LeaseLost {
        /// The session.
        session: SessionId,
        /// Why.
        reason: String,
    },
}

impl PipelineError {
    /// A frame of a graphical recording that cannot be painted (skipped, and listed as a
    /// gap), as opposed to an export that cannot be made at all.
    pub(crate) fn is_bad_frame(&self) -> bool {
        matches!(self, PipelineError::Export { export, .. } if export == "frames")
    }

    pub(crate) fn local(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| PipelineError::Local { path, source }
    }
}
