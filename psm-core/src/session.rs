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
    /// PostgreSQL (the database gateway: statements, results, query policy).
    Postgres,
    /// MySQL / MariaDB.
    Mysql,
    /// A web console (an administrative web UI through the web-console gateway).
    Web,
}

impl Protocol {
    /// Lower-case name as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Ssh => "ssh",
            Protocol::Rdp => "rdp",
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Web => "web",
        }
    }
}

impl FromStr for Protocol {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ssh" => Ok(Protocol::Ssh),
            "rdp" => Ok(Protocol::Rdp),
            "postgres" | "postgresql" => Ok(Protocol::Postgres),
            "mysql" | "mariadb" => Ok(Protocol::Mysql),
            "web" => Ok(Protocol::Web),
            other => Err(CoreError::InvalidInput {
                field: "protocol",
                reason: format!(
                    "{:?} is not ssh, rdp, postgres, mysql or web",
                    truncate_for_error(other)
                ),
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
    /// What the gateway committed to about its recording at EndSession (PSM's extension;
    /// `None`: it sent none, or the watchdog ended the session).
    pub recording_commitment: Option<RecordingCommitment>,
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
            recording_commitment: None,
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
            recording: self.recording_commitment,
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
    /// What the session's gateway committed to about its recording at EndSession, as the
    /// claim found it (`None`: nothing was committed, or the answer did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingCommitment>,
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

/// What a gateway commits to about the recording it wrote, sent with EndSession (PSM's
/// extension; docs/threat-model.md M12): the BLAKE3 chain value its signed trailer covers,
/// and its chunk and event counts. The control plane keeps it with the session, away from the
/// node that holds the file; anyone holding the recording can recompute the chain
/// (psm-recording's verifier reports it), so a recording changed, cut short or swapped after
/// its session ended no longer matches, whoever signed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordingCommitment {
    /// The chain value after the recording's signed trailer.
    #[serde(with = "hex_32")]
    pub chain: [u8; 32],
    /// Chunks the recording holds.
    pub chunks: u64,
    /// Events the recording holds.
    pub events: u64,
}

impl RecordingCommitment {
    /// The chain value as lower-case hex.
    pub fn chain_hex(&self) -> String {
        hex::encode(self.chain)
    }
}

/// The stored spelling: `blake3:<64 hex> chunks=N events=N`.
impl fmt::Display for RecordingCommitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "blake3:{} chunks={} events={}",
            self.chain_hex(),
            self.chunks,
            self.events
        )
    }
}

impl FromStr for RecordingCommitment {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        let bad = || CoreError::InvalidInput {
            field: "recording",
            reason: format!(
                "{:?} is not a recording commitment (blake3:<hex> chunks=N events=N)",
                truncate_for_error(s)
            ),
        };
        let mut parts = s.split(' ');
        let chain = parts
            .next()
            .and_then(|p| p.strip_prefix("blake3:"))
            .and_then(|h| hex_32::parse(h).ok())
            .ok_or_else(bad)?;
        let mut number = |key: &str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(key))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        let chunks = number("chunks=")?;
        let events = number("events=")?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(RecordingCommitment {
            chain,
            chunks,
            events,
        })
    }
}

/// 32 bytes as 64 lower-case hex digits, in JSON.
mod hex_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn parse(h: &str) -> Result<[u8; 32], String> {
        let mut out = [0u8; 32];
        if h.len() != 64 {
            return Err(format!("expected 64 hex digits, got {}", h.len()));
        }
        hex::decode_to_slice(h, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let h = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&h).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod commitment_tests {
    #![allow(clippy::unwrap_used)]
    use super::RecordingCommitment;

    #[test]
    fn a_commitment_reads_back_as_stored_and_as_json() {
        let c = RecordingCommitment {
            chain: [0xab; 32],
            chunks: 7,
            events: 1234,
        };
        let text = c.to_string();
        assert_eq!(
            text,
            format!("blake3:{} chunks=7 events=1234", "ab".repeat(32))
        );
        assert_eq!(text.parse::<RecordingCommitment>().unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            serde_json::from_str::<RecordingCommitment>(&json).unwrap(),
            c
        );
        for bad in [
            "",
            "blake3:ab chunks=1 events=1",
            &format!("blake3:{} chunks=x events=1", "ab".repeat(32)),
            &format!("blake3:{} chunks=1 events=1 more", "ab".repeat(32)),
            &format!("sha256:{} chunks=1 events=1", "ab".repeat(32)),
        ] {
            assert!(bad.parse::<RecordingCommitment>().is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<RecordingCommitment>(r#"{"chain":"zz","chunks":1,"events":1}"#)
                .is_err()
        );
    }
}
