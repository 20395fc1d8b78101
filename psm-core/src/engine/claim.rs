//! Claims, completions and failures: the encoder's and uploader's side of the lifecycle.

use crate::audit::AuditAction;
use crate::error::CoreError;
use crate::id::{FencingToken, ProcessInstance, SessionId};
use crate::session::{Completion, Lease, PrivSession, RecordingStatus};
use crate::stage::{Stage, check_transition};
use crate::store::{ClaimSpec, Guard, LeasePatch, ListQuery, MAX_CLAIM_AMONG, Patch, StageSet};

use super::{Engine, bounded_reason};

/// Most ids one GetRecordingProcessStatus call may ask about.
pub const MAX_STATUS_IDS: usize = 1000;

/// Longest recording format string (`.psmr`, `.mp4`...), in bytes.
const MAX_FORMAT_LEN: usize = 32;

/// UpdateRecordingProcessStatus: a worker reports on a session it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingStatusUpdate {
    /// The session.
    pub session: SessionId,
    /// The worker (must own the session).
    pub process_instance: ProcessInstance,
    /// The stage the worker reports: the current leased stage (only the fields change) or the
    /// stage its success leads to (a completion).
    pub status: Stage,
    /// The worker's fencing token. Without it, only the process instance is checked (the
    /// seed's request carries none); PSM's own workers always send it.
    pub token: Option<FencingToken>,
    /// The seed's `sshLogsUploaded`.
    pub ssh_logs_uploaded: Option<bool>,
    /// The seed's `recordingFormat`.
    pub recording_format: Option<String>,
    /// PSM's extension: a warning about the completed work (see [`Completion::note`]); on a
    /// completion it replaces the session's failure reason, on a fields-only update it sets it.
    pub note: Option<String>,
}

fn lease_guard(lease: &Lease) -> Guard {
    Guard {
        stages: StageSet::one(lease.stage),
        owner: Some(lease.owner.clone()),
        token: Some(lease.token),
        version: None,
    }
}

fn validate_format(format: &Option<String>) -> Result<(), CoreError> {
    if let Some(f) = format
        && (f.is_empty() || f.len() > MAX_FORMAT_LEN || !f.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(CoreError::InvalidInput {
            field: "recordingFormat",
            reason: format!("must be 1 to {MAX_FORMAT_LEN} printable ASCII characters"),
        });
    }
    Ok(())
}

impl Engine {
    /// EncoderClaim: moves up to `limit` Ended sessions to Encoding, leased to `by`.
    pub async fn claim_for_encoding(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.claim(Stage::Ended, Stage::Encoding, by, limit, None)
            .await
    }

    /// UploderClaim: moves up to `limit` Done-Encoded sessions to Uploading, leased to `by`.
    pub async fn claim_for_upload(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.claim(Stage::DoneEncoded, Stage::Uploading, by, limit, None)
            .await
    }

    /// EncoderClaim restricted to `among` (PSM's extension `privSessionIds`): only the listed
    /// sessions are eligible, e.g. those whose raw recording is on the encoder's disk, so a
    /// worker never takes (and fails) a session whose files are on another node. At most
    /// [`MAX_CLAIM_AMONG`] ids; an empty list claims nothing.
    pub async fn claim_for_encoding_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        self.claim(Stage::Ended, Stage::Encoding, by, limit, Some(among))
            .await
    }

    /// UploderClaim restricted to `among` (see [`Engine::claim_for_encoding_among`]).
    pub async fn claim_for_upload_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        self.claim(Stage::DoneEncoded, Stage::Uploading, by, limit, Some(among))
            .await
    }

    async fn claim(
        &self,
        from: Stage,
        to: Stage,
        by: &ProcessInstance,
        limit: u32,
        among: Option<&[SessionId]>,
    ) -> Result<Vec<Lease>, CoreError> {
        if let Some(among) = among {
            if among.len() > MAX_CLAIM_AMONG {
                return Err(CoreError::InvalidInput {
                    field: "privSessionIds",
                    reason: format!("{} ids, the limit is {MAX_CLAIM_AMONG}", among.len()),
                });
            }
            if among.is_empty() {
                return Ok(Vec::new());
            }
        }
        check_transition(from, to)?;
        let limit = limit.clamp(1, self.config.max_claim.max(1));
        let now = self.clock.now();
        let spec = ClaimSpec {
            from,
            to,
            owner: by.clone(),
            now,
            lease_expires: now.saturating_add(self.config.lease_ttl),
            limit,
            among: among.map(<[SessionId]>::to_vec),
        };
        let mut claimed = self.store.claim(&spec).await?;
        // Stores return claims in any order; answer in queue order, the same on every backend.
        claimed.sort_by_key(|s| (s.end_time, s.id));
        let leases: Vec<Lease> = claimed.iter().filter_map(PrivSession::lease).collect();
        for lease in &leases {
            tracing::info!(session_id = %lease.session, stage = %to, process_instance = %by,
                fencing_token = lease.token.0, attempt = lease.attempt, "session claimed");
        }
        Ok(leases)
    }

    /// Renews a worker's lease (Polling with the lease in hand) and returns it with its new
    /// expiry. Fails with [`CoreError::StaleToken`] or [`CoreError::LeaseLost`] once the lease
    /// is gone: the worker must stop.
    pub async fn renew(&self, lease: &Lease) -> Result<Lease, CoreError> {
        let now = self.clock.now();
        let guard = lease_guard(lease);
        let patch = Patch {
            last_reported: Some(now),
            lease_expires: LeasePatch::Renew(now.saturating_add(self.config.lease_ttl)),
            ..Patch::default()
        };
        match self
            .store
            .update(lease.session, &guard, &patch, None)
            .await?
        {
            Some(s) => s.lease().ok_or_else(|| CoreError::LeaseLost {
                session: s.id,
                stage: s.stage,
            }),
            None => Err(self.diagnose(lease.session, &guard, "renew").await),
        }
    }

    /// Completes the leased step: Encoding → Done-Encoded, Uploading → Done-Uploaded.
    /// Accepted only from the lease's owner with the session's current fencing token.
    pub async fn complete(
        &self,
        lease: &Lease,
        completion: Completion,
    ) -> Result<PrivSession, CoreError> {
        validate_format(&completion.recording_format)?;
        let done = lease.stage.done_stage().ok_or(CoreError::WrongStage {
            session: lease.session,
            operation: "complete",
            expected: "Encoding or Uploading".into(),
            actual: lease.stage,
        })?;
        check_transition(lease.stage, done)?;
        let completion_note = completion
            .note
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(bounded_reason);
        let now = self.clock.now();
        let guard = lease_guard(lease);
        let patch = Patch {
            stage: Some(done),
            last_reported: Some(now),
            lease_expires: LeasePatch::Clear,
            attempts: Some(0),
            retry_at: Some(None),
            // The step succeeded: earlier failures are history (in the audit trail); what the
            // session's status says now is the completing worker's note, if any.
            failure_reason: Some(completion_note.clone()),
            recording_format: completion.recording_format.map(Some),
            ssh_logs_uploaded: completion.ssh_logs_uploaded,
            ..Patch::default()
        };
        let audit = self.audit(
            now,
            lease.session,
            lease.owner.as_str(),
            AuditAction::Completed,
            Some((lease.stage, done)),
            match &completion_note {
                Some(note) => format!("fencing token {}; note: {note}", lease.token),
                None => format!("fencing token {}", lease.token),
            },
        );
        match self
            .store
            .update(lease.session, &guard, &patch, Some(&audit))
            .await?
        {
            Some(s) => {
                tracing::info!(session_id = %s.id, stage = %s.stage,
                    process_instance = %lease.owner, "step completed");
                Ok(s)
            }
            None => Err(self.diagnose(lease.session, &guard, "complete").await),
        }
    }

    /// Reports a failed attempt at the leased step. The session returns to its queue
    /// (Ended or Done-Encoded) with a backoff before the next claim, or, if this was the last
    /// allowed attempt, becomes Failed with `reason` kept.
    pub async fn fail(&self, lease: &Lease, reason: &str) -> Result<PrivSession, CoreError> {
        let retry = lease.stage.retry_stage().ok_or(CoreError::WrongStage {
            session: lease.session,
            operation: "fail",
            expected: "Encoding or Uploading".into(),
            actual: lease.stage,
        })?;
        let now = self.clock.now();
        let reason = bounded_reason(reason);
        let exhausted = lease.attempt >= self.config.max_attempts;
        let to = if exhausted { Stage::Failed } else { retry };
        check_transition(lease.stage, to)?;
        let guard = lease_guard(lease);
        let patch = Patch {
            stage: Some(to),
            last_reported: Some(now),
            lease_expires: LeasePatch::Clear,
            retry_at: Some(
                (!exhausted).then(|| now.saturating_add(self.config.backoff(lease.attempt))),
            ),
            failure_reason: Some(Some(reason.clone())),
            ..Patch::default()
        };
        let audit = self.audit(
            now,
            lease.session,
            lease.owner.as_str(),
            AuditAction::AttemptFailed,
            Some((lease.stage, to)),
            format!(
                "attempt {} of {}: {reason}",
                lease.attempt, self.config.max_attempts
            ),
        );
        match self
            .store
            .update(lease.session, &guard, &patch, Some(&audit))
            .await?
        {
            Some(s) => {
                tracing::warn!(session_id = %s.id, stage = %s.stage,
                    process_instance = %lease.owner, attempt = lease.attempt, "attempt failed");
                Ok(s)
            }
            None => Err(self.diagnose(lease.session, &guard, "fail").await),
        }
    }

    /// GetRecordingProcessStatus: the stage of each requested session, in request order.
    /// An unknown id is an error naming it.
    pub async fn recording_status(
        &self,
        ids: &[SessionId],
    ) -> Result<Vec<RecordingStatus>, CoreError> {
        if ids.len() > MAX_STATUS_IDS {
            return Err(CoreError::InvalidInput {
                field: "privSessionIds",
                reason: format!("{} ids, the limit is {MAX_STATUS_IDS}", ids.len()),
            });
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .store
            .list(&ListQuery {
                ids: ids.to_vec(),
                ..ListQuery::default()
            })
            .await?;
        ids.iter()
            .map(|id| {
                found
                    .iter()
                    .find(|s| s.id == *id)
                    .map(|s| RecordingStatus {
                        session: s.id,
                        stage: s.stage,
                        failure_reason: s.failure_reason.clone(),
                    })
                    .ok_or(CoreError::UnknownSession(*id))
            })
            .collect()
    }

    /// UpdateRecordingProcessStatus. `status` equal to the current leased stage updates the
    /// optional fields and renews the lease; `status` equal to the stage the step leads to
    /// completes it (as [`Engine::complete`]); anything else is refused.
    pub async fn update_recording_status(
        &self,
        update: RecordingStatusUpdate,
    ) -> Result<PrivSession, CoreError> {
        validate_format(&update.recording_format)?;
        let current = self.session(update.session).await?;
        let guard = Guard {
            stages: StageSet::of(&[Stage::Encoding, Stage::Uploading]),
            owner: Some(update.process_instance.clone()),
            token: update.token,
            version: None,
        };
        if !guard.matches(&current) {
            return Err(self.diagnose_with(&current, &guard, "UpdateRecordingProcessStatus"));
        }
        if update.status != current.stage && Some(update.status) != current.stage.done_stage() {
            check_transition(current.stage, update.status)?;
            // Legal in the lifecycle but not a worker's to make (e.g. Encoding -> Ended).
            return Err(CoreError::IllegalTransition {
                from: current.stage,
                to: update.status,
            });
        }
        let lease = Lease {
            session: current.id,
            stage: current.stage,
            owner: update.process_instance.clone(),
            token: current.fencing_token,
            expires: current.lease_expires.unwrap_or(current.last_reported),
            attempt: current.attempts,
            recording: current.recording_commitment,
        };
        let mut guard = lease_guard(&lease);
        // Pin the version too: without a token from the caller, this read is what we checked.
        if update.token.is_none() {
            guard.version = Some(current.version);
        }
        if update.status != current.stage {
            let completion = Completion {
                recording_format: update.recording_format,
                ssh_logs_uploaded: update.ssh_logs_uploaded,
                note: update.note,
            };
            return self.complete(&lease, completion).await;
        }
        let now = self.clock.now();
        let patch = Patch {
            last_reported: Some(now),
            lease_expires: LeasePatch::Renew(now.saturating_add(self.config.lease_ttl)),
            recording_format: update.recording_format.map(Some),
            ssh_logs_uploaded: update.ssh_logs_uploaded,
            failure_reason: update
                .note
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .map(|n| Some(bounded_reason(n))),
            ..Patch::default()
        };
        let audit = self.audit(
            now,
            current.id,
            update.process_instance.as_str(),
            AuditAction::RecordingStatusUpdated,
            None,
            format!(
                "recordingFormat {:?}, sshLogsUploaded {:?}",
                patch.recording_format, patch.ssh_logs_uploaded
            ),
        );
        match self
            .store
            .update(current.id, &guard, &patch, Some(&audit))
            .await?
        {
            Some(s) => Ok(s),
            None => Err(self
                .diagnose(current.id, &guard, "UpdateRecordingProcessStatus")
                .await),
        }
    }

    /// Puts a Failed session back in the queue of the step that failed, for another round of
    /// attempts (an admin's decision after fixing the cause).
    pub async fn requeue_failed(
        &self,
        id: SessionId,
        actor: &str,
    ) -> Result<PrivSession, CoreError> {
        let current = self.session(id).await?;
        if current.stage != Stage::Failed {
            return Err(CoreError::WrongStage {
                session: id,
                operation: "requeue",
                expected: "Failed".into(),
                actual: current.stage,
            });
        }
        // The audit trail says which step failed: the last attempt-failed or watchdog event.
        let to = self
            .audit_trail(id)
            .await?
            .iter()
            .rev()
            .find(|e| e.record.to_stage == Some(Stage::Failed))
            .and_then(|e| e.record.from_stage)
            .and_then(Stage::retry_stage)
            .unwrap_or(Stage::Ended);
        check_transition(Stage::Failed, to)?;
        let now = self.clock.now();
        let guard = Guard {
            stages: StageSet::one(Stage::Failed),
            version: Some(current.version),
            ..Guard::default()
        };
        let patch = Patch {
            stage: Some(to),
            attempts: Some(0),
            retry_at: Some(None),
            last_reported: Some(now),
            ..Patch::default()
        };
        let audit = self.audit(
            now,
            id,
            actor,
            AuditAction::Requeued,
            Some((Stage::Failed, to)),
            "requeued by admin",
        );
        match self.store.update(id, &guard, &patch, Some(&audit)).await? {
            Some(s) => Ok(s),
            None => Err(self.diagnose(id, &guard, "requeue").await),
        }
    }
}
