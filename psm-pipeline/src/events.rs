//! What the workers report as they go: every event is logged with structured fields, and
//! handed to an [`EventSink`] (the CLI draws progress bars from them).

use std::path::PathBuf;

use psm_core::SessionId;

/// A pipeline step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Raw recording → exports (Ended → Encoding → Done-Encoded).
    Encode,
    /// Exports → store (Done-Encoded → Uploading → Done-Uploaded).
    Upload,
}

impl Step {
    /// `encode` or `upload`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::Encode => "encode",
            Step::Upload => "upload",
        }
    }
}

/// One thing a worker did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineEvent {
    /// A session was claimed and work on it started; `total_bytes` is what will be read or
    /// sent.
    Started {
        /// The step.
        step: Step,
        /// The session.
        session: SessionId,
        /// Bytes to process.
        total_bytes: u64,
    },
    /// `bytes` more of the session were processed.
    Progress {
        /// The step.
        step: Step,
        /// The session.
        session: SessionId,
        /// Bytes since the last event.
        bytes: u64,
    },
    /// The step was committed on the control plane.
    Finished {
        /// The step.
        step: Step,
        /// The session.
        session: SessionId,
        /// Bytes processed.
        bytes: u64,
    },
    /// The attempt failed; the control plane retries it later or marks it Failed. Local data
    /// is kept.
    Failed {
        /// The step.
        step: Step,
        /// The session.
        session: SessionId,
        /// Why.
        error: String,
    },
    /// The worker stopped taking work: the disk at `path` is nearly full.
    DiskNearlyFull {
        /// The step.
        step: Step,
        /// The guarded directory.
        path: PathBuf,
        /// Bytes free.
        free_bytes: u64,
    },
    /// The disk has room again; the worker takes work again.
    DiskRecovered {
        /// The step.
        step: Step,
        /// The guarded directory.
        path: PathBuf,
    },
}

/// Receives pipeline events (called from worker tasks: keep it quick).
pub trait EventSink: Send + Sync {
    /// One event.
    fn event(&self, event: &PipelineEvent);
}

/// A sink that drops events (the workers log them anyway).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _event: &PipelineEvent) {}
}

/// Adapts a session's transfer progress to [`PipelineEvent::Progress`].
pub(crate) struct SessionProgress<'a> {
    pub(crate) sink: &'a dyn EventSink,
    pub(crate) step: Step,
    pub(crate) session: SessionId,
}

impl psm_storage::Progress for SessionProgress<'_> {
    fn advance(&self, bytes: u64) {
        self.sink.event(&PipelineEvent::Progress {
            step: self.step,
            session: self.session,
            bytes,
        });
    }
}
