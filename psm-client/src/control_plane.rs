//! [`HttpControlPlane`]: psm-core's [`ControlPlane`](psm_core::ControlPlane) (every role trait) over the HTTP contract, so a gateway,
//! encoder or uploader runs the same against a remote control plane as in-process.

use std::time::Duration;

use async_trait::async_trait;
use psm_core::vault::{
    Checkin, Checkout, CheckoutRequest, CheckoutStatus, Credential, PamSettings, Target,
};
use psm_core::{
    CheckoutId, Completion, CoreError, FencingToken, HeartbeatReply, Lease, LiveLinkApi,
    NewSession, PrivSession, ProcessInstance, RecordingStatus, RecordingStatusUpdate, SessionAdmin,
    SessionId, SessionLifecycle, Settings, Stage, TargetCredentials, Timestamp, WorkQueue,
};

use crate::client::Client;
use crate::error::ClientError;
use crate::wire;

/// A [`ControlPlane`](psm_core::ControlPlane) that speaks HTTP: it implements every role trait.
///
/// Against a PAM product that knows only the seed's endpoints, the seed's calls work and
/// PSM's extensions answer [`CoreError::Unsupported`]; claims without PSM's `Leases` get
/// leases with fencing token 0 (meaning "none": it is not sent back), and the lease expiry
/// is assumed to be [`assumed_lease`](Self::with_assumed_lease) from the claim.
#[derive(Clone, Debug)]
pub struct HttpControlPlane {
    client: Client,
    assumed_lease: Duration,
}

fn core(e: ClientError) -> CoreError {
    e.into_core()
}

fn token_on_wire(t: FencingToken) -> Option<u64> {
    (t.0 != 0).then_some(t.0)
}

impl HttpControlPlane {
    /// Over a configured [`Client`].
    pub fn new(client: Client) -> Self {
        Self {
            client,
            assumed_lease: Duration::from_secs(60),
        }
    }

    /// The lease length assumed when the server does not say (a seed-only product).
    pub fn with_assumed_lease(mut self, d: Duration) -> Self {
        self.assumed_lease = d;
        self
    }

    /// The typed client underneath (for the endpoints that are not lifecycle calls).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn leases(&self, resp: wire::ClaimResponse, by: &ProcessInstance, stage: Stage) -> Vec<Lease> {
        if !resp.leases.is_empty() {
            return resp.leases.into_iter().map(Lease::from).collect();
        }
        let expires = Timestamp::now_utc().saturating_add(self.assumed_lease);
        resp.session_ids
            .into_iter()
            .map(|session| Lease {
                session,
                stage,
                owner: by.clone(),
                token: FencingToken(0),
                expires,
                attempt: 1,
                recording: None,
            })
            .collect()
    }
}

impl HttpControlPlane {
    /// The leases of a restricted claim. A server that ignored `privSessionIds` (a seed-only
    /// product) may hand out a session outside the list: that is reported as
    /// [`CoreError::Unsupported`] rather than worked on (its lease then expires and the
    /// watchdog requeues it; the caller falls back to plain claims).
    fn leases_among(
        &self,
        resp: wire::ClaimResponse,
        by: &ProcessInstance,
        stage: Stage,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        let leases = self.leases(resp, by, stage);
        if leases.iter().any(|l| !among.contains(&l.session)) {
            return Err(CoreError::Unsupported {
                operation: "claims among given sessions (privSessionIds)",
            });
        }
        Ok(leases)
    }
}

fn checkout_from(
    dto: Option<wire::CheckoutDto>,
    id: &CheckoutId,
    remaining: Duration,
) -> Result<Checkout, CoreError> {
    match dto {
        Some(d) => Checkout::try_from(d),
        None => {
            // A seed-only answer: only the id and the time left are known.
            let now = Timestamp::now_utc();
            Ok(Checkout {
                id: id.clone(),
                user: String::new(),
                target: String::new(),
                created: now,
                expires: now.saturating_add(remaining),
                ended: None,
                end_reason: None,
                created_by: String::new(),
            })
        }
    }
}

#[async_trait]
impl SessionLifecycle for HttpControlPlane {
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        self.open_session_from(new, None).await
    }

    async fn open_session_from(
        &self,
        new: NewSession,
        source: Option<std::net::IpAddr>,
    ) -> Result<PrivSession, CoreError> {
        let req = wire::OpenSessionRequest {
            session: new.id,
            process_instance: new.process_instance,
            user_name: new.user,
            target: new.target,
            protocol: new.protocol,
            checkout_id: new.checkout_id,
            client_address: source,
        };
        let resp = self.client.open_session(&req).await.map_err(core)?;
        Ok(resp.session.into())
    }

    async fn heartbeat(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        let resp = self
            .client
            .polling(&wire::PollingRequest {
                session,
                process_instance: by.clone(),
                fencing_token: None,
            })
            .await
            .map_err(core)?;
        Ok(HeartbeatReply {
            terminate: resp.terminate_session,
            reason: resp.terminate_reason,
            // Access-window warnings and locks are not on the wire (yet): a remote gateway
            // learns that a window closed from the terminate flag.
            ..HeartbeatReply::default()
        })
    }

    async fn update_session(&self, session: SessionId) -> Result<(), CoreError> {
        self.client
            .update_session(session)
            .await
            .map(drop)
            .map_err(core)
    }

    async fn end_session(&self, session: SessionId, by: &ProcessInstance) -> Result<(), CoreError> {
        self.client
            .end_session(session, by)
            .await
            .map(drop)
            .map_err(core)
    }

    async fn end_session_committed(
        &self,
        session: SessionId,
        by: &ProcessInstance,
        recording: Option<&psm_core::RecordingCommitment>,
    ) -> Result<(), CoreError> {
        self.client
            .end_session_committed(session, by, recording)
            .await
            .map(drop)
            .map_err(core)
    }
}

#[async_trait]
impl TargetCredentials for HttpControlPlane {
    async fn target(&self, name: &str) -> Result<Target, CoreError> {
        Ok(self.client.get_target(name).await.map_err(core)?.into())
    }

    async fn get_credential(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<Credential, CoreError> {
        self.client
            .get_credential(session, by)
            .await
            .map_err(core)?
            .into_credential()
    }

    async fn checkout(
        &self,
        request: CheckoutRequest,
        _actor: &str,
    ) -> Result<Checkout, CoreError> {
        let minutes = u32::try_from(request.duration.as_secs().div_ceil(60)).unwrap_or(u32::MAX);
        let resp = self
            .client
            .checkout(&wire::CheckoutRequestDto {
                user_name: request.user,
                target: request.target,
                duration_minutes: minutes,
            })
            .await
            .map_err(core)?;
        Checkout::try_from(resp.checkout)
    }

    async fn checkout_status(&self, checkout: &CheckoutId) -> Result<CheckoutStatus, CoreError> {
        let resp = self
            .client
            .get_remaining_minutes_for_checkout(checkout)
            .await
            .map_err(core)?;
        let remaining = if resp.remaining_seconds > 0 || resp.checkout.is_some() {
            Duration::from_secs(resp.remaining_seconds)
        } else {
            Duration::from_secs(resp.remaining_minutes.saturating_mul(60))
        };
        let active = if resp.checkout.is_some() {
            resp.active
        } else {
            resp.remaining_minutes > 0
        };
        Ok(CheckoutStatus {
            checkout: checkout_from(resp.checkout, checkout, remaining)?,
            remaining,
            remaining_minutes: resp.remaining_minutes,
            active,
        })
    }

    async fn checkin(&self, checkout: &CheckoutId, _actor: &str) -> Result<Checkin, CoreError> {
        let resp = self.client.checkin(checkout).await.map_err(core)?;
        Ok(Checkin {
            checkout: checkout_from(resp.checkout, checkout, Duration::ZERO)?,
            already_ended: resp.already_checked_in,
            sessions_terminated: resp.sessions_terminated,
        })
    }
}

#[async_trait]
impl WorkQueue for HttpControlPlane {
    async fn claim_for_encoding(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        let resp = self
            .client
            .encoder_claim(by, Some(limit))
            .await
            .map_err(core)?;
        Ok(self.leases(resp, by, Stage::Encoding))
    }

    async fn claim_for_upload(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        let resp = self
            .client
            .uploder_claim(by, Some(limit))
            .await
            .map_err(core)?;
        Ok(self.leases(resp, by, Stage::Uploading))
    }

    async fn claim_for_encoding_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        if among.is_empty() {
            return Ok(Vec::new());
        }
        let resp = self
            .client
            .encoder_claim_among(by, Some(limit), Some(among))
            .await
            .map_err(core)?;
        self.leases_among(resp, by, Stage::Encoding, among)
    }

    async fn claim_for_upload_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        if among.is_empty() {
            return Ok(Vec::new());
        }
        let resp = self
            .client
            .uploder_claim_among(by, Some(limit), Some(among))
            .await
            .map_err(core)?;
        self.leases_among(resp, by, Stage::Uploading, among)
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, CoreError> {
        let resp = self
            .client
            .polling(&wire::PollingRequest {
                session: lease.session,
                process_instance: lease.owner.clone(),
                fencing_token: token_on_wire(lease.token),
            })
            .await
            .map_err(core)?;
        Ok(match resp.lease {
            Some(l) => l.into(),
            None => Lease {
                expires: Timestamp::now_utc().saturating_add(self.assumed_lease),
                ..lease.clone()
            },
        })
    }

    async fn complete(&self, lease: &Lease, completion: Completion) -> Result<(), CoreError> {
        let done = lease.stage.done_stage().ok_or(CoreError::WrongStage {
            session: lease.session,
            operation: "complete",
            expected: "Encoding or Uploading".into(),
            actual: lease.stage,
        })?;
        self.client
            .update_recording_process_status(&wire::UpdateRecordingStatusRequest {
                priv_session_id: lease.session,
                process_instance: lease.owner.clone(),
                recording_status: done,
                ssh_logs_uploaded: completion.ssh_logs_uploaded,
                recording_format: completion.recording_format,
                fencing_token: token_on_wire(lease.token),
                note: completion.note,
            })
            .await
            .map(drop)
            .map_err(core)
    }

    async fn fail(&self, lease: &Lease, reason: &str) -> Result<(), CoreError> {
        self.client
            .fail_recording_process(&wire::FailRecordingRequest {
                priv_session_id: lease.session,
                process_instance: lease.owner.clone(),
                fencing_token: lease.token.0,
                reason: reason.to_owned(),
            })
            .await
            .map(drop)
            .map_err(core)
    }

    async fn recording_status(
        &self,
        sessions: &[SessionId],
    ) -> Result<Vec<RecordingStatus>, CoreError> {
        let entries = self
            .client
            .get_recording_process_status(sessions)
            .await
            .map_err(core)?;
        Ok(entries
            .into_iter()
            .map(|e| RecordingStatus {
                session: e.session,
                stage: e.status,
                failure_reason: e.failure_reason,
            })
            .collect())
    }

    async fn update_recording_status(
        &self,
        update: RecordingStatusUpdate,
    ) -> Result<(), CoreError> {
        self.client
            .update_recording_process_status(&wire::UpdateRecordingStatusRequest {
                priv_session_id: update.session,
                process_instance: update.process_instance,
                recording_status: update.status,
                ssh_logs_uploaded: update.ssh_logs_uploaded,
                recording_format: update.recording_format,
                fencing_token: update.token.map(|t| t.0),
                note: update.note,
            })
            .await
            .map(drop)
            .map_err(core)
    }
}

#[async_trait]
impl Settings for HttpControlPlane {
    async fn pam_settings(&self) -> Result<PamSettings, CoreError> {
        PamSettings::try_from(self.client.get_pam_settings().await.map_err(core)?)
    }
}

#[async_trait]
impl LiveLinkApi for HttpControlPlane {
    async fn redeem_live_ticket(
        &self,
        ticket: &psm_core::live::LiveTicket,
        by: &ProcessInstance,
    ) -> Result<psm_core::live::TicketGrant, CoreError> {
        crate::live::redeem(&self.client, ticket, by)
            .await
            .map_err(core)
    }

    async fn live_commands(
        &self,
        by: &ProcessInstance,
        wait: std::time::Duration,
        live_url: Option<&str>,
    ) -> Result<Vec<psm_core::live::LiveCommand>, CoreError> {
        crate::live::commands(&self.client, by, wait, live_url)
            .await
            .map_err(core)
    }

    async fn live_report(
        &self,
        by: &ProcessInstance,
        reports: &[psm_core::live::LiveReport],
    ) -> Result<(), CoreError> {
        crate::live::report(&self.client, by, reports)
            .await
            .map_err(core)
    }
}

#[async_trait]
impl SessionAdmin for HttpControlPlane {
    async fn request_termination(
        &self,
        session: SessionId,
        _actor: &str,
        reason: &str,
    ) -> Result<(), CoreError> {
        // The server records the authenticated caller as the actor.
        self.client
            .terminate_session(&wire::TerminateSessionRequest {
                session,
                reason: reason.to_owned(),
            })
            .await
            .map(drop)
            .map_err(core)
    }
}
