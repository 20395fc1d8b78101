//! The seam between PSM's processes and whoever owns sessions: one role trait per caller.
//!
//! | role trait | who calls it |
//! |---|---|
//! | [`SessionLifecycle`] | a gateway: open, heartbeat, end its sessions |
//! | [`TargetCredentials`] | a gateway logging in with vaulted credentials (psm-proxy's `ControlPlaneTargets`) |
//! | [`WorkQueue`] | the encoder and uploader: claims, leases, outcomes |
//! | [`Settings`] | the workers, and a gateway's recorder (encryption recipients) |
//! | [`LiveLinkApi`] | a gateway's live link and live websocket server |
//! | [`SessionAdmin`] | an administrator (terminate) |
//!
//! [`ControlPlane`] is their union, implemented for every type that implements all six. Each
//! component holds the narrowest trait it calls, so an integrator implements only what the
//! components they embed use, and the compiler names what is missing. In one process the
//! roles are [`LocalControlPlane`] (the [`Engine`] answers the lifecycle, queue and admin
//! roles alone); across processes they are `psm-client` speaking the `secureaccessgateway`
//! HTTP contract to `psm-server` or to an integrator's own PAM product.

use async_trait::async_trait;

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "conformance")]
pub mod conformance;

use crate::engine::{Engine, RecordingStatusUpdate};
use crate::error::CoreError;
use crate::id::{CheckoutId, ProcessInstance, SessionId};
use crate::live::{
    LiveAction, LiveCommand, LiveHub, LiveMode, LiveReport, LiveSessionState, LiveTicket,
    TicketGrant, TicketScope, Viewport,
};
use crate::session::{Completion, Lease, NewSession, PrivSession, RecordingStatus};
use crate::vault::{
    Checkin, Checkout, CheckoutRequest, CheckoutStatus, Credential, PamSettings, Target, Vault,
};

/// What a gateway learns from a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The control plane asks the gateway to close the session.
    pub terminate: bool,
    /// Why, to show the user.
    pub reason: Option<String>,
    /// A warning to show the user (an access window closing soon). The same text comes
    /// back on every heartbeat until things change: show it once.
    pub notice: Option<String>,
    /// Refuse the user's input, for this reason (an access window closed, configured to
    /// lock); `None` lifts such a lock the gateway set before.
    pub lock: Option<String>,
}

/// The union of the role traits: everything a whole control plane answers.
///
/// Nothing implements it by hand: every type that implements all the role traits is a
/// `ControlPlane` (a blanket impl). Components ask for the role they call, and an assembly
/// holding an `Arc<dyn ControlPlane>` hands each of them the narrower trait object:
///
/// ```
/// # fn demo(cp: std::sync::Arc<dyn psm_core::ControlPlane>) {
/// use std::sync::Arc;
/// use psm_core::{SessionLifecycle, WorkQueue};
/// let gateway: Arc<dyn SessionLifecycle> = cp.clone(); // what an SSH gateway holds
/// let encoder: Arc<dyn WorkQueue> = cp; // what a pipeline worker holds
/// # let _ = (gateway, encoder);
/// # }
/// ```
pub trait ControlPlane:
    SessionLifecycle + TargetCredentials + WorkQueue + Settings + LiveLinkApi + SessionAdmin
{
}

impl<T> ControlPlane for T where
    T: SessionLifecycle
        + TargetCredentials
        + WorkQueue
        + Settings
        + LiveLinkApi
        + SessionAdmin
        + ?Sized
{
}

/// A gateway's sessions: open one, keep it alive, end it (OpenSession, Polling,
/// UpdateSession, EndSession). The one control-plane role the SSH gateway itself calls.
///
/// An embedder's own control plane can be this alone:
///
/// ```
/// use async_trait::async_trait;
/// use psm_core::{CoreError, HeartbeatReply, NewSession, PrivSession, ProcessInstance,
///     SessionId, SessionLifecycle};
///
/// struct Log;
///
/// #[async_trait]
/// impl SessionLifecycle for Log {
///     async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
///         println!("open {} {}@{}", new.id, new.user, new.target);
///         Ok(PrivSession::connected(new, psm_core::Timestamp::now_utc()))
///     }
///     async fn heartbeat(&self, _: SessionId, _: &ProcessInstance) -> Result<HeartbeatReply, CoreError> {
///         Ok(HeartbeatReply::default())
///     }
///     async fn update_session(&self, _: SessionId) -> Result<(), CoreError> {
///         Ok(())
///     }
///     async fn end_session(&self, id: SessionId, _: &ProcessInstance) -> Result<(), CoreError> {
///         println!("end {id}");
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SessionLifecycle: Send + Sync {
    /// Opens a Connected session for a user who just connected to a gateway.
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError>;

    /// [`open_session`](Self::open_session) for a user whose client connected from
    /// `source` (the address as the gateway saw it), so the control plane can apply access
    /// windows' source networks. The default forgets the address and opens the session.
    async fn open_session_from(
        &self,
        new: NewSession,
        source: Option<std::net::IpAddr>,
    ) -> Result<PrivSession, CoreError> {
        let _ = source;
        self.open_session(new).await
    }

    /// Polling for a gateway: the session is alive; answers whether to terminate it.
    async fn heartbeat(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError>;

    /// UpdateSession: EndTime = now.
    async fn update_session(&self, session: SessionId) -> Result<(), CoreError>;

    /// EndSession.
    async fn end_session(&self, session: SessionId, by: &ProcessInstance) -> Result<(), CoreError>;

    /// EndSession with the gateway's commitment to the recording it wrote (PSM's extension,
    /// docs/threat-model.md M12). The default forgets the commitment and ends the session:
    /// a control plane that keeps none leaves the recording checked by its signature only.
    async fn end_session_committed(
        &self,
        session: SessionId,
        by: &ProcessInstance,
        recording: Option<&crate::session::RecordingCommitment>,
    ) -> Result<(), CoreError> {
        let _ = recording;
        self.end_session(session, by).await
    }
}

/// Targets and their vaulted credentials, for a gateway that logs in with them (GetTarget,
/// Checkout, GetCredential, GetRemainingMinutesForCheckout, Checkin). psm-proxy's
/// `ControlPlaneTargets` holds it.
#[async_trait]
pub trait TargetCredentials: Send + Sync {
    /// A target's connection details (GetTarget). Holds no secret.
    async fn target(&self, name: &str) -> Result<Target, CoreError>;

    /// GetCredential: the session's target credential, for the gateway `by` that owns the
    /// Connected session, while its checkout is valid.
    async fn get_credential(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<Credential, CoreError>;

    /// Checkout: a just-in-time checkout of a target's credential for a user. `actor` is who
    /// asks (a gateway on the user's behalf, or an admin).
    async fn checkout(&self, request: CheckoutRequest, actor: &str) -> Result<Checkout, CoreError>;

    /// GetRemainingMinutesForCheckout: a checkout and the time it has left (a gateway warns
    /// its user when it runs low).
    async fn checkout_status(&self, checkout: &CheckoutId) -> Result<CheckoutStatus, CoreError>;

    /// Checkin: ends a checkout and asks its live sessions to terminate.
    async fn checkin(&self, checkout: &CheckoutId, actor: &str) -> Result<Checkin, CoreError>;
}

/// The encoder's and uploader's queue: claims with leases and fencing tokens, renewals,
/// outcomes (EncoderClaim, UploderClaim, Polling, UpdateRecordingProcessStatus,
/// GetRecordingProcessStatus).
///
/// ```
/// # async fn demo(cp: &dyn psm_core::WorkQueue) -> Result<(), psm_core::CoreError> {
/// use psm_core::ProcessInstance;
/// let me = ProcessInstance::new("encoder-1")?;
/// for lease in cp.claim_for_encoding(&me, 4).await? {
///     // ... encode, renewing the lease now and then ...
///     let lease = cp.renew(&lease).await?;
///     cp.complete(&lease, Default::default()).await?;
/// }
/// # Ok(()) }
/// ```
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// EncoderClaim.
    async fn claim_for_encoding(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError>;

    /// UploderClaim.
    async fn claim_for_upload(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError>;

    /// EncoderClaim among the named sessions only (PSM's extension `privSessionIds`): a
    /// worker names the sessions whose raw recording it can read, so it never takes one whose
    /// files are on another node. At most [`MAX_CLAIM_AMONG`](crate::store::MAX_CLAIM_AMONG)
    /// ids. A control plane without the extension answers [`CoreError::Unsupported`].
    async fn claim_for_encoding_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        let _ = (by, limit, among);
        Err(CoreError::Unsupported {
            operation: "EncoderClaim privSessionIds",
        })
    }

    /// UploderClaim among the named sessions only (see
    /// [`WorkQueue::claim_for_encoding_among`]).
    async fn claim_for_upload_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        let _ = (by, limit, among);
        Err(CoreError::Unsupported {
            operation: "UploderClaim privSessionIds",
        })
    }

    /// Polling for a worker: renews its lease.
    async fn renew(&self, lease: &Lease) -> Result<Lease, CoreError>;

    /// UpdateRecordingProcessStatus to the step's done stage, with the fencing token.
    async fn complete(&self, lease: &Lease, completion: Completion) -> Result<(), CoreError>;

    /// Reports a failed attempt (back to the queue with backoff, or Failed).
    async fn fail(&self, lease: &Lease, reason: &str) -> Result<(), CoreError>;

    /// GetRecordingProcessStatus.
    async fn recording_status(
        &self,
        sessions: &[SessionId],
    ) -> Result<Vec<RecordingStatus>, CoreError>;

    /// UpdateRecordingProcessStatus as the seed has it: a worker reports on a session it
    /// holds, with or without its fencing token.
    async fn update_recording_status(&self, update: RecordingStatusUpdate)
    -> Result<(), CoreError>;
}

/// The deployment's settings (GetPAMSettings): what the workers export and where they
/// upload, and the recipients a gateway's recorder encrypts for.
#[async_trait]
pub trait Settings: Send + Sync {
    /// GetPAMSettings.
    async fn pam_settings(&self) -> Result<PamSettings, CoreError>;
}

/// Live control (`docs/live.md`) as a gateway sees it: tickets to redeem, commands to run,
/// reports to send. psm-proxy's `LiveLink` and `LiveServer` hold it.
#[async_trait]
pub trait LiveLinkApi: Send + Sync {
    /// RedeemLiveTicket: a gateway redeems a viewer's (or a browser terminal's) ticket once.
    /// A join ticket is redeemed only by the gateway `by` that runs its Connected session.
    async fn redeem_live_ticket(
        &self,
        ticket: &LiveTicket,
        by: &ProcessInstance,
    ) -> Result<TicketGrant, CoreError>;

    /// LiveCommands: the commands queued for gateway `by`, waiting up to `wait` for the
    /// first (a long poll). `live_url` is the gateway's websocket base URL, for tickets.
    async fn live_commands(
        &self,
        by: &ProcessInstance,
        wait: Duration,
        live_url: Option<&str>,
    ) -> Result<Vec<LiveCommand>, CoreError>;

    /// LiveReport: what gateway `by` did in its live sessions (each report an audit event).
    async fn live_report(
        &self,
        by: &ProcessInstance,
        reports: &[LiveReport],
    ) -> Result<(), CoreError>;
}

/// What an administrator asks of sessions it does not run.
#[async_trait]
pub trait SessionAdmin: Send + Sync {
    /// Asks the gateway of a Connected session to close it (an admin's terminate): the
    /// gateway sees the flag on its next Polling. `actor` is who asks, for the audit trail.
    async fn request_termination(
        &self,
        session: SessionId,
        actor: &str,
        reason: &str,
    ) -> Result<(), CoreError>;
}

#[async_trait]
impl SessionLifecycle for Engine {
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        Engine::open_session(self, new).await
    }

    async fn heartbeat(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        let owned = crate::store::StageSet::of(&[
            crate::Stage::Connected,
            crate::Stage::Encoding,
            crate::Stage::Uploading,
        ]);
        let (s, status) = Engine::heartbeat_windowed(self, session, by, owned, true).await?;
        let (notice, lock) = match status {
            crate::engine::WindowStatus::Closing { message, .. } => (Some(message), None),
            crate::engine::WindowStatus::Closed {
                action: crate::access::WindowCloseAction::Lock,
                message,
            } => (None, Some(message)),
            _ => (None, None),
        };
        Ok(HeartbeatReply {
            terminate: s.terminate,
            reason: s.terminate_reason,
            notice,
            lock,
        })
    }

    async fn open_session_from(
        &self,
        new: NewSession,
        source: Option<std::net::IpAddr>,
    ) -> Result<PrivSession, CoreError> {
        Engine::open_session_from(self, new, source).await
    }

    async fn update_session(&self, session: SessionId) -> Result<(), CoreError> {
        Engine::update_session(self, session).await.map(drop)
    }

    async fn end_session(&self, session: SessionId, by: &ProcessInstance) -> Result<(), CoreError> {
        Engine::end_session(self, session, by).await.map(drop)
    }

    async fn end_session_committed(
        &self,
        session: SessionId,
        by: &ProcessInstance,
        recording: Option<&crate::session::RecordingCommitment>,
    ) -> Result<(), CoreError> {
        Engine::end_session_committed(self, session, by, recording)
            .await
            .map(drop)
    }
}

#[async_trait]
impl WorkQueue for Engine {
    async fn claim_for_encoding(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        Engine::claim_for_encoding(self, by, limit).await
    }

    async fn claim_for_upload(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        Engine::claim_for_upload(self, by, limit).await
    }

    async fn claim_for_encoding_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        Engine::claim_for_encoding_among(self, by, limit, among).await
    }

    async fn claim_for_upload_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        Engine::claim_for_upload_among(self, by, limit, among).await
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, CoreError> {
        Engine::renew(self, lease).await
    }

    async fn complete(&self, lease: &Lease, completion: Completion) -> Result<(), CoreError> {
        Engine::complete(self, lease, completion).await.map(drop)
    }

    async fn fail(&self, lease: &Lease, reason: &str) -> Result<(), CoreError> {
        Engine::fail(self, lease, reason).await.map(drop)
    }

    async fn recording_status(
        &self,
        sessions: &[SessionId],
    ) -> Result<Vec<RecordingStatus>, CoreError> {
        Engine::recording_status(self, sessions).await
    }

    async fn update_recording_status(
        &self,
        update: RecordingStatusUpdate,
    ) -> Result<(), CoreError> {
        Engine::update_recording_status(self, update)
            .await
            .map(drop)
    }
}

#[async_trait]
impl SessionAdmin for Engine {
    async fn request_termination(
        &self,
        session: SessionId,
        actor: &str,
        reason: &str,
    ) -> Result<(), CoreError> {
        Engine::request_termination(self, session, actor, reason)
            .await
            .map(drop)
    }
}

/// The whole control plane in one process: the lifecycle [`Engine`], the credential
/// [`Vault`] and the deployment's [`PamSettings`]. This is what `psm-server` serves over HTTP
/// and what `psm up` hands its gateway, encoder and uploader directly.
///
/// ```
/// # async fn demo() -> Result<(), psm_core::CoreError> {
/// use std::sync::Arc;
/// use psm_core::clock::SystemClock;
/// use psm_core::store::MemoryStore;
/// use psm_core::vault::{Keyring, MasterKey, MemoryVaultStore, PamSettings, Vault, VaultConfig};
/// use psm_core::{ControlPlane, Engine, EngineConfig, LocalControlPlane};
///
/// let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), EngineConfig::default());
/// let vault = Vault::new(Arc::new(MemoryVaultStore::new()), Keyring::new(MasterKey::generate()?),
///     engine.clone(), VaultConfig::default());
/// let cp: Arc<dyn ControlPlane> = Arc::new(LocalControlPlane::new(engine, vault, PamSettings::default()));
/// assert!(cp.pam_settings().await?.encoding_enabled);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct LocalControlPlane {
    engine: Engine,
    vault: Vault,
    settings: Arc<PamSettings>,
    live: LiveHub,
}

impl LocalControlPlane {
    /// Assembles the parts. `vault` should terminate sessions through the same `engine`.
    pub fn new(engine: Engine, vault: Vault, settings: PamSettings) -> Self {
        Self {
            engine,
            vault,
            settings: Arc::new(settings),
            live: LiveHub::default(),
        }
    }

    /// The same, with live control configured (ticket lifetime, whether admins may join
    /// with control).
    pub fn with_live(mut self, live: LiveHub) -> Self {
        self.live = live;
        self
    }

    /// The live-control hub (tickets, commands, live state).
    pub fn live(&self) -> &LiveHub {
        &self.live
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The vault.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The settings.
    pub fn settings(&self) -> &PamSettings {
        &self.settings
    }

    /// JoinSession: a ticket for `actor` to watch (or control) a Connected session through
    /// its gateway. The caller checked that `actor` is an administrator.
    pub async fn join_session(
        &self,
        session: SessionId,
        mode: LiveMode,
        actor: &str,
        viewport: Option<Viewport>,
    ) -> Result<(LiveTicket, PrivSession), CoreError> {
        let s = self.connected(session, "JoinSession").await?;
        let ticket = self
            .live
            .issue(TicketScope::Join { session, mode }, actor, viewport)?;
        Ok((ticket, s))
    }

    /// TerminalTicket: a ticket for a browser terminal of `user` on `target`. The caller
    /// authenticated `user`; the gateway applies the directory's grants when it redeems it.
    pub async fn terminal_ticket(
        &self,
        user: &str,
        target: &str,
        viewport: Option<Viewport>,
    ) -> Result<LiveTicket, CoreError> {
        user.parse::<crate::directory::UserName>()?;
        if target.is_empty() || target.len() > 256 || target.chars().any(char::is_control) {
            return Err(CoreError::InvalidInput {
                field: "target",
                reason: "must be 1 to 256 characters without control characters".into(),
            });
        }
        self.live.issue(
            TicketScope::Terminal {
                user: user.to_owned(),
                target: target.to_owned(),
            },
            user,
            viewport,
        )
    }

    /// LiveControl: queues `action` for the gateway running `session` and waits up to
    /// `wait` for it to confirm. Returns whether it confirmed, and its message. `terminate`
    /// also sets the session's TerminateSession flag (the gateway then ends it on its next
    /// Polling even if the command is lost).
    pub async fn live_control(
        &self,
        session: SessionId,
        action: LiveAction,
        actor: &str,
        reason: Option<String>,
        approval: Option<u64>,
        wait: Duration,
    ) -> Result<(bool, String), CoreError> {
        if action.needs_approval_id() && approval.is_none() {
            return Err(CoreError::InvalidInput {
                field: "approvalId",
                reason: format!(
                    "{} needs the id of the approval it decides",
                    action.as_str()
                ),
            });
        }
        let s = self.connected(session, "LiveControl").await?;
        let Some(gateway) = s.process_instance.clone() else {
            return Err(CoreError::Forbidden(format!(
                "session {session} has no gateway to send {} to",
                action.as_str()
            )));
        };
        if action == LiveAction::Terminate {
            let why = reason
                .clone()
                .unwrap_or_else(|| format!("terminated by {actor}"));
            self.engine
                .request_termination(session, actor, &why)
                .await?;
        }
        let id = self
            .live
            .queue(&gateway, session, action, actor, reason, approval);
        Ok(match self.live.wait_done(id, wait).await {
            Some(done) => done,
            None => (
                false,
                format!(
                    "queued for gateway {gateway}, which has not confirmed it yet{}",
                    if action == LiveAction::Terminate {
                        "; it will end the session on its next Polling at the latest"
                    } else {
                        ""
                    }
                ),
            ),
        })
    }

    /// Every Connected session with the live state its gateway reported.
    pub async fn live_sessions(
        &self,
    ) -> Result<Vec<(PrivSession, Option<LiveSessionState>)>, CoreError> {
        let sessions = self
            .engine
            .list(&crate::store::ListQuery {
                stages: crate::store::StageSet::one(crate::Stage::Connected),
                ..Default::default()
            })
            .await?;
        let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
        self.live.retain_sessions(&ids);
        Ok(sessions
            .into_iter()
            .map(|s| {
                let st = self.live.state(s.id);
                (s, st)
            })
            .collect())
    }

    async fn live_report_one(&self, by: &ProcessInstance, r: &LiveReport) -> Result<(), CoreError> {
        let s = self.engine.session(r.session).await?;
        // A gateway reports on the sessions it runs (or ran: a report may race EndSession).
        if s.process_instance.as_ref() != Some(by) {
            return Err(CoreError::Forbidden(format!(
                "session {} runs on another gateway than {by}",
                r.session
            )));
        }
        self.live.apply(by, r);
        if let Some(detail) = r.audit_detail(by) {
            self.engine
                .store()
                .append_audit(&crate::audit::AuditRecord {
                    at: self.engine.now(),
                    session: Some(r.session),
                    actor: crate::live::cut(&r.actor),
                    action: crate::audit::AuditAction::Other,
                    from_stage: None,
                    to_stage: None,
                    detail,
                })
                .await?;
        }
        Ok(())
    }

    async fn connected(
        &self,
        session: SessionId,
        operation: &'static str,
    ) -> Result<PrivSession, CoreError> {
        let s = self.engine.session(session).await?;
        if s.stage != crate::Stage::Connected {
            return Err(CoreError::WrongStage {
                session,
                operation,
                expected: "Connected".into(),
                actual: s.stage,
            });
        }
        Ok(s)
    }

    /// One pass of every periodic duty: the engine's watchdog sweep, then ending expired
    /// checkouts (whose live sessions are asked to terminate).
    pub async fn sweep(&self) -> Result<(crate::engine::SweepReport, u32), CoreError> {
        let report = self.engine.sweep().await?;
        let expired = self.vault.sweep_expired().await?;
        Ok((report, expired))
    }

    /// Runs [`sweep`](Self::sweep) every `interval` until `shutdown` turns true; errors are
    /// logged and the loop goes on.
    pub async fn run_sweeper(
        self,
        interval: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::error!(error = %e, "control-plane sweep failed");
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl SessionLifecycle for LocalControlPlane {
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        self.engine.open_session(new).await
    }

    async fn open_session_from(
        &self,
        new: NewSession,
        source: Option<std::net::IpAddr>,
    ) -> Result<PrivSession, CoreError> {
        self.engine.open_session_from(new, source).await
    }

    async fn heartbeat(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        SessionLifecycle::heartbeat(&self.engine, session, by).await
    }

    async fn update_session(&self, session: SessionId) -> Result<(), CoreError> {
        SessionLifecycle::update_session(&self.engine, session).await
    }

    async fn end_session(&self, session: SessionId, by: &ProcessInstance) -> Result<(), CoreError> {
        SessionLifecycle::end_session(&self.engine, session, by).await
    }

    async fn end_session_committed(
        &self,
        session: SessionId,
        by: &ProcessInstance,
        recording: Option<&crate::session::RecordingCommitment>,
    ) -> Result<(), CoreError> {
        SessionLifecycle::end_session_committed(&self.engine, session, by, recording).await
    }
}

#[async_trait]
impl TargetCredentials for LocalControlPlane {
    async fn target(&self, name: &str) -> Result<Target, CoreError> {
        self.vault.target(name).await
    }

    async fn get_credential(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<Credential, CoreError> {
        self.vault.get_credential(session, by).await
    }

    async fn checkout(&self, request: CheckoutRequest, actor: &str) -> Result<Checkout, CoreError> {
        self.vault.checkout(request, actor).await
    }

    async fn checkout_status(&self, checkout: &CheckoutId) -> Result<CheckoutStatus, CoreError> {
        self.vault.checkout_status(checkout).await
    }

    async fn checkin(&self, checkout: &CheckoutId, actor: &str) -> Result<Checkin, CoreError> {
        self.vault.checkin(checkout, actor).await
    }
}

#[async_trait]
impl WorkQueue for LocalControlPlane {
    async fn claim_for_encoding(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.engine.claim_for_encoding(by, limit).await
    }

    async fn claim_for_upload(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.engine.claim_for_upload(by, limit).await
    }

    async fn claim_for_encoding_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        self.engine.claim_for_encoding_among(by, limit, among).await
    }

    async fn claim_for_upload_among(
        &self,
        by: &ProcessInstance,
        limit: u32,
        among: &[SessionId],
    ) -> Result<Vec<Lease>, CoreError> {
        self.engine.claim_for_upload_among(by, limit, among).await
    }

    async fn renew(&self, lease: &Lease) -> Result<Lease, CoreError> {
        self.engine.renew(lease).await
    }

    async fn complete(&self, lease: &Lease, completion: Completion) -> Result<(), CoreError> {
        WorkQueue::complete(&self.engine, lease, completion).await
    }

    async fn fail(&self, lease: &Lease, reason: &str) -> Result<(), CoreError> {
        WorkQueue::fail(&self.engine, lease, reason).await
    }

    async fn recording_status(
        &self,
        sessions: &[SessionId],
    ) -> Result<Vec<RecordingStatus>, CoreError> {
        self.engine.recording_status(sessions).await
    }

    async fn update_recording_status(
        &self,
        update: RecordingStatusUpdate,
    ) -> Result<(), CoreError> {
        self.engine.update_recording_status(update).await.map(drop)
    }
}

#[async_trait]
impl Settings for LocalControlPlane {
    async fn pam_settings(&self) -> Result<PamSettings, CoreError> {
        Ok((*self.settings).clone())
    }
}

#[async_trait]
impl LiveLinkApi for LocalControlPlane {
    async fn redeem_live_ticket(
        &self,
        ticket: &LiveTicket,
        by: &ProcessInstance,
    ) -> Result<TicketGrant, CoreError> {
        let grant = self.live.redeem(ticket.as_str())?;
        if let TicketScope::Join { session, .. } = &grant.scope {
            let s = self.connected(*session, "RedeemLiveTicket").await?;
            if s.process_instance.as_ref() != Some(by) {
                return Err(CoreError::Forbidden(format!(
                    "session {session} runs on another gateway than {by}"
                )));
            }
        }
        Ok(grant)
    }

    async fn live_commands(
        &self,
        by: &ProcessInstance,
        wait: Duration,
        live_url: Option<&str>,
    ) -> Result<Vec<LiveCommand>, CoreError> {
        Ok(self.live.take_commands(by, wait, live_url).await)
    }

    async fn live_report(
        &self,
        by: &ProcessInstance,
        reports: &[LiveReport],
    ) -> Result<(), CoreError> {
        if reports.len() > crate::live::MAX_REPORTS {
            return Err(CoreError::InvalidInput {
                field: "events",
                reason: format!("at most {} per call", crate::live::MAX_REPORTS),
            });
        }
        // Each report stands alone: one that is refused (a session handed on to an encoder
        // meanwhile) does not lose the others; the first refusal is returned at the end.
        let mut first_error = None;
        for r in reports {
            if let Err(e) = self.live_report_one(by, r).await {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(())
    }
}

#[async_trait]
impl SessionAdmin for LocalControlPlane {
    async fn request_termination(
        &self,
        session: SessionId,
        actor: &str,
        reason: &str,
    ) -> Result<(), CoreError> {
        self.engine
            .request_termination(session, actor, reason)
            .await
            .map(drop)
    }
}
