//! The append-only audit trail: every stage change, every claim, every refusal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::{SessionId, truncate_for_error};
use crate::stage::Stage;
use crate::timestamp::Timestamp;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A gateway opened the session.
    Opened,
    /// The session ended (EndSession).
    Ended,
    /// Termination was requested (admin, checkin, checkout expiry).
    TerminateRequested,
    /// A worker claimed the session (EncoderClaim / UploderClaim).
    Claimed,
    /// A worker completed its step.
    Completed,
    /// A worker reported a failure; the session goes back to its queue (with backoff) or to
    /// Failed.
    AttemptFailed,
    /// The watchdog moved the session because its owner went silent.
    Watchdog,
    /// An admin put a Failed session back in its queue.
    Requeued,
    /// UpdateRecordingProcessStatus changed the recording fields.
    RecordingStatusUpdated,
    /// A caller was refused (authentication or authorisation).
    Refused,
    /// Any other event recorded by a layer above the engine (checkouts, vault, live control).
    Other,
}

impl AuditAction {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::Opened => "opened",
            AuditAction::Ended => "ended",
            AuditAction::TerminateRequested => "terminate-requested",
            AuditAction::Claimed => "claimed",
            AuditAction::Completed => "completed",
            AuditAction::AttemptFailed => "attempt-failed",
            AuditAction::Watchdog => "watchdog",
            AuditAction::Requeued => "requeued",
            AuditAction::RecordingStatusUpdated => "recording-status-updated",
            AuditAction::Refused => "refused",
            AuditAction::Other => "other",
        }
    }

    const ALL: [AuditAction; 11] = [
        AuditAction::Opened,
        AuditAction::Ended,
        AuditAction::TerminateRequested,
        AuditAction::Claimed,
        AuditAction::Completed,
        AuditAction::AttemptFailed,
        AuditAction::Watchdog,
        AuditAction::Requeued,
        AuditAction::RecordingStatusUpdated,
        AuditAction::Refused,
        AuditAction::Other,
    ];
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| CoreError::MalformedRow {
                what: "audit event".into(),
                reason: format!("unknown action {:?}", truncate_for_error(s)),
            })
    }
}

/// An audit event about to be written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// The session concerned, if any.
    pub session: Option<SessionId>,
    /// Who: a process instance, a user, `watchdog`, or `anonymous`.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// The stage before, for stage changes.
    pub from_stage: Option<Stage>,
    /// The stage after, for stage changes.
    pub to_stage: Option<Stage>,
    /// Free text: a reason, a fencing token, a refused endpoint. Never a secret.
    pub detail: String,
}

/// A stored audit event: the record plus its position in the append-only log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the log; grows with every append.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub record: AuditRecord,
}
