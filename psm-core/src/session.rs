//! The `PrivSession` record and what is needed to open one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::{CheckoutId, FencingToken, ProcessInstance, SessionId, truncate_for_error};
use crate::stage::Stage;
use crate::timestamp::Timestamp;

/// The protocol of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SSH (shell, exec, sftp, scp, port forwarding).
    Ssh,
    /// RDP.
    Rdp,
}

impl Protocol {
    /// Lower-case name as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Rdp => "rdp",
        }
    }
}

impl FromStr for Protocol {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ssh" => Ok(Protocol::Ssh),
            "rdp" => Ok(Protocol::Rdp),
            other => Err(CoreError::InvalidInput {
                field: "protocol",
                reason: format!("{:?} is not ssh or rdp", truncate_for_error(other)),
            }),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One privileged session, the seed's `PrivSession` row plus the lease bookkeeping that keeps
/// it out of limbo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivSession {
    /// Its GUID.
    pub id: SessionId,
    /// Where it is in its life.
    pub stage: Stage,
    /// The last time (UTC) its owning process reported on it (Polling or any other call).
    pub last_reported: Timestamp,
    /// The process that owns it now (gateway while Connected, encoder while Encoding, uploader
    /// while Uploading) or owned it last (in the queue stages).
    pub process_instance: Option<ProcessInstance>,
    /// When the user connected.
    pub start_time: Timestamp,
    /// When the session ended (or, while Connected, the last UpdateSession call).
    pub end_time: Option<Timestamp>,
    /// The seed's `TerminateSession`: set by EndSession, or by an admin or a checkin asking
    /// the gateway to close the session (it sees the flag on its next heartbeat).
    pub terminate: bool,
    /// Why termination was asked for, when an admin or a checkin asked.
    pub terminate_reason: Option<String>,
    /// The PSM user who connected.
    pub user: String,
    /// The target they reached.
    pub target: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The credential checkout the session runs under.
    pub checkout_id: Option<CheckoutId>,
    /// Claims of the current pipeline step so far (reset when a step completes).
    pub attempts: u32,
    /// The recording's format once encoded (the seed's `recordingFormat`, e.g. `.psmr`).
    pub recording_format: Option<String>,
    /// The seed's `sshLogsUploaded`.
    pub ssh_logs_uploaded: bool,
    /// While leased: when the lease runs out unless the owner heartbeats.
    pub lease_expires: Option<Timestamp>,
    /// The fencing token of the latest claim (0 before the first).
    pub fencing_token: FencingToken,
    /// After a failed attempt: not to be claimed again before this time (backoff).
    pub retry_at: Option<Timestamp>,
    /// Why the last attempt failed; kept when the session is `Failed`. A completed step
    /// replaces it with its [`Completion::note`] (or clears it), so on a session that is not
    /// Failed it says what the step that last ran found wrong, e.g. a damaged recording that
    /// was committed Done-Encoded with gaps.
    pub failure_reason: Option<String>,
    /// Bumped by every write; the stores' compare-and-swap guard.
    pub version: u64,
}

impl PrivSession {
    /// A session just opened by `new`'s gateway at `now`: Connected, owned by that gateway.
    pub fn connected(new: NewSession, now: Timestamp) -> Self {
        PrivSession {
            id: new.id,
            stage: Stage::Connected,
            last_reported: now,
            process_instance: Some(new.process_instance),
            start_time: now,
            end_time: None,
            terminate: false,
            terminate_reason: None,
            user: new.user,
            target: new.target,
            protocol: new.protocol,
            checkout_id: new.checkout_id,
            attempts: 0,
            recording_format: None,
            ssh_logs_uploaded: false,
            lease_expires: None,
            fencing_token: Default::default(),
            retry_at: None,
            failure_reason: None,
            version: 0,
        }
    }

    /// The lease a worker holds on this session, if it is in a leased stage.
    pub fn lease(&self) -> Option<Lease> {
        if !self.stage.is_leased() {
            return None;
        }
        Some(Lease {
            session: self.id,
            stage: self.stage,
            owner: self.process_instance.clone()?,
            token: self.fencing_token,
            expires: self.lease_expires?,
            attempt: self.attempts,
        })
    }
}

/// Longest user or target name, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// What a gateway knows when a user connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// The id to use (the gateway picks it so it can name the recording before the call).
    pub id: SessionId,
    /// The PSM user.
    pub user: String,
    /// The target.
    pub target: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The credential checkout, if any.
    pub checkout_id: Option<CheckoutId>,
    /// The gateway process that will heartbeat it.
    pub process_instance: ProcessInstance,
}

impl NewSession {
    /// Checks the free-text fields: non-empty, bounded, no control characters.
    pub fn validate(&self) -> Result<(), CoreError> {
        for (field, value) in [("user", &self.user), ("target", &self.target)] {
            if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control)
            {
                return Err(CoreError::InvalidInput {
                    field,
                    reason: format!(
                        "{:?} must be 1 to {MAX_NAME_LEN} bytes without control characters",
                        truncate_for_error(value)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A worker's claim on one session: what it must present to heartbeat, complete or fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The session.
    pub session: SessionId,
    /// The leased stage (`Encoding` or `Uploading`).
    pub stage: Stage,
    /// The worker.
    pub owner: ProcessInstance,
    /// The fencing token of this claim.
    pub token: FencingToken,
    /// When the lease runs out unless renewed by a heartbeat.
    pub expires: Timestamp,
    /// Which attempt at this step this claim is (1 for the first).
    pub attempt: u32,
}

/// The `GetRecordingProcessStatus` answer for one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// The session.
    pub session: SessionId,
    /// Its stage.
    pub stage: Stage,
    /// Why it failed, if `Failed`; otherwise the last failed attempt's reason or the note of
    /// the step that last completed (see [`PrivSession::failure_reason`]).
    pub failure_reason: Option<String>,
}

/// What a worker reports with its completion (the optional fields of the seed's
/// UpdateRecordingProcessStatus).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The recording format produced, e.g. `.psmr` or `.mp4`.
    pub recording_format: Option<String>,
    /// Whether SSH logs were uploaded.
    pub ssh_logs_uploaded: Option<bool>,
    /// A warning about the work that was done even though it completed, e.g. "recording
    /// damaged: encoded what is intact, 1 gap". Kept in the session's
    /// [`failure_reason`](PrivSession::failure_reason) so it shows in its status, not only in
    /// a worker's log (at most 1024 bytes are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
