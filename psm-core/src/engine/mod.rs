//! The lifecycle engine: every stage change of every session goes through here.
//!
//! The engine is stateless over its [`SessionStore`]: any number of engines (one per control
//! plane replica) can share one PostgreSQL store. Time comes from an injected [`Clock`].
//! Each call maps to an endpoint of the `secureaccessgateway` contract (see
//! `docs/lifecycle.md`).

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditAction, AuditEvent, AuditRecord};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::id::{ProcessInstance, SessionId};
use crate::session::{NewSession, PrivSession};
use crate::stage::{Stage, check_transition};
use crate::store::{AuditQuery, Guard, LeasePatch, ListQuery, Patch, SessionStore, StageSet};
use crate::timestamp::Timestamp;

mod claim;
mod requests;
mod watchdog;
mod windows;

pub use claim::RecordingStatusUpdate;
pub use watchdog::{SweepReport, run_watchdog};
pub use windows::WindowStatus;

/// Longest reason (terminate, failure) kept, in bytes; longer ones are cut.
pub const MAX_REASON_LEN: usize = 1024;

/// The engine's thresholds. All are durations so deployments tune them to their cadence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// A Connected session whose gateway has not reported for this long is ended by the
    /// watchdog (the gateway died).
    pub connected_stale_after: Duration,
    /// How long a claim (and each heartbeat renewing it) keeps an encoder's or uploader's
    /// lease; the watchdog requeues the session once it runs out.
    pub lease_ttl: Duration,
    /// Claims of one pipeline step (encoding, or upload) before the session becomes Failed.
    pub max_attempts: u32,
    /// Backoff before a failed step may be claimed again: `base * 2^(attempt-1)`, capped.
    pub retry_backoff_base: Duration,
    /// Cap of the backoff.
    pub retry_backoff_max: Duration,
    /// Most sessions one claim call may take.
    pub max_claim: u32,
    /// Most Connected sessions one user may have at once, across every gateway of this
    /// control plane (0: no cap). A session past it is refused at open (issue 17 L5).
    pub max_sessions_per_user: u32,
    /// What a Connected session's closing access window does (warning, end or lock); the
    /// windows apply once [`Engine::with_access_windows`] names their directory.
    pub windows: crate::access::WindowsConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            connected_stale_after: Duration::from_secs(90),
            lease_ttl: Duration::from_secs(60),
            max_attempts: 5,
            retry_backoff_base: Duration::from_secs(5),
            retry_backoff_max: Duration::from_secs(300),
            max_claim: 100,
            max_sessions_per_user: 0,
            windows: crate::access::WindowsConfig::default(),
        }
    }
}

impl EngineConfig {
    /// The backoff after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        self.retry_backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.retry_backoff_max)
    }
}

/// The lifecycle engine.
///
/// ```
/// # async fn demo() -> Result<(), psm_core::CoreError> {
/// use std::sync::Arc;
/// use psm_core::{Engine, EngineConfig, NewSession, ProcessInstance, Protocol, SessionId, Stage};
/// use psm_core::clock::SystemClock;
/// use psm_core::store::MemoryStore;
///
/// let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), EngineConfig::default());
/// let gateway = ProcessInstance::new("gateway-1")?;
/// let id = SessionId::new();
/// engine.open_session(NewSession {
///     id, user: "alice".into(), target: "db1".into(), protocol: Protocol::Ssh,
///     checkout_id: None, process_instance: gateway.clone(),
/// }).await?;
/// engine.heartbeat(id, &gateway).await?;
/// engine.end_session(id, &gateway).await?;
///
/// let encoder = ProcessInstance::new("encoder-1")?;
/// let leases = engine.claim_for_encoding(&encoder, 10).await?;
/// engine.complete(&leases[0], Default::default()).await?;
/// assert_eq!(engine.session(id).await?.stage, Stage::DoneEncoded);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// Held from counting a user's sessions to inserting the new one, so concurrent opens
    /// through this engine cannot both slip under the cap.
    opening: Arc<tokio::sync::Mutex<()>>,
    /// Access windows, when configured ([`Engine::with_access_windows`]).
    windows: windows::WindowGate,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Cuts a reason to [`MAX_REASON_LEN`] bytes on a character boundary.
pub(crate) fn bounded_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_LEN {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

impl Engine {
    /// An engine over `store`, reading time from `clock`.
    pub fn new(store: Arc<dyn SessionStore>, clock: Arc<dyn Clock>, config: EngineConfig) -> Self {
        Self {
            store,
            clock,
            config,
            opening: Arc::new(tokio::sync::Mutex::new(())),
            windows: windows::WindowGate::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The store underneath (for layers that keep their own audit events).
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn audit(
        &self,
        now: Timestamp,
        session: SessionId,
        actor: &str,
        action: AuditAction,
        stages: Option<(Stage, Stage)>,
        detail: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord {
            at: now,
            session: Some(session),
            actor: actor.to_owned(),
            action,
            from_stage: stages.map(|(f, _)| f),
            to_stage: stages.map(|(_, t)| t),
            detail: detail.into(),
        }
    }

    /// One session.
    pub async fn session(&self, id: SessionId) -> Result<PrivSession, CoreError> {
        self.store
            .get(id)
            .await?
            .ok_or(CoreError::UnknownSession(id))
    }

    /// Sessions, newest first.
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<PrivSession>, CoreError> {
        self.store.list(query).await
    }

    /// The audit trail of one session, oldest first.
    pub async fn audit_trail(&self, id: SessionId) -> Result<Vec<AuditEvent>, CoreError> {
        self.store
            .audit_events(&AuditQuery {
                session: Some(id),
                ..AuditQuery::default()
            })
            .await
    }

    /// Appends an `other` audit row now: an event recorded by a layer above the engine
    /// (live tickets, signer registrations), about `session` or about none.
    pub async fn note(
        &self,
        session: Option<SessionId>,
        actor: &str,
        detail: impl Into<String>,
    ) -> Result<(), CoreError> {
        self.store
            .append_audit(&AuditRecord {
                at: self.clock.now(),
                session,
                actor: actor.to_owned(),
                action: AuditAction::Other,
                from_stage: None,
                to_stage: None,
                detail: detail.into(),
            })
            .await
            .map(drop)
    }

    /// Opens a session in `Connected`, owned by the gateway in `new.process_instance`.
    ///
    /// With [`EngineConfig::max_sessions_per_user`] set, a user who already has that many
    /// Connected sessions is refused (`Forbidden`, audited), whichever gateway they came
    /// through: the user sees why.
    pub async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        self.open_session_from(new, None).await
    }

    /// [`Engine::open_session`] for a user whose client connected from `source` (the address
    /// as the gateway saw it; `None` when it did not say). With access windows configured
    /// ([`Engine::with_access_windows`]) a session outside them is refused (`Forbidden`,
    /// audited) with a message the user sees; a window that names networks refuses a
    /// session whose source is unknown.
    pub async fn open_session_from(
        &self,
        new: NewSession,
        source: Option<std::net::IpAddr>,
    ) -> Result<PrivSession, CoreError> {
        new.validate()?;
        self.check_windows(&new, source).await?;
        self.check_request_grant(&new).await?;
        let cap = self.config.max_sessions_per_user;
        let _opening = if cap > 0 {
            let guard = self.opening.lock().await;
            self.check_session_cap(&new, cap).await?;
            Some(guard)
        } else {
            None
        };
        let now = self.clock.now();
        let actor = new.process_instance.to_string();
        let session = PrivSession::connected(new, now);
        let audit = AuditRecord {
            at: now,
            session: Some(session.id),
            actor,
            action: AuditAction::Opened,
            from_stage: None,
            to_stage: Some(Stage::Connected),
            detail: format!(
                "user {} to {} over {}",
                session.user, session.target, session.protocol
            ),
        };
        self.store.insert(&session, &audit).await?;
        self.windows.remember(session.id, source);
        tracing::info!(session_id = %session.id, stage = %session.stage,
            process_instance = %audit.actor, "session opened");
        Ok(session)
    }

    async fn check_session_cap(&self, new: &NewSession, cap: u32) -> Result<(), CoreError> {
        let open = self
            .store
            .list(&ListQuery {
                stages: StageSet::one(Stage::Connected),
                ..ListQuery::default()
            })
            .await?
            .iter()
            .filter(|s| s.user == new.user)
            .count();
        if open < cap as usize {
            return Ok(());
        }
        let message = format!(
            "user {} already has {open} open session{}, the most one user may have at once \
             ({cap}); end one to open another",
            new.user,
            if open == 1 { "" } else { "s" }
        );
        let now = self.clock.now();
        let record = AuditRecord {
            at: now,
            session: Some(new.id),
            actor: new.process_instance.to_string(),
            action: AuditAction::Refused,
            from_stage: None,
            to_stage: None,
            detail: format!("session to {} refused: {message}", new.target),
        };
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(error = %e, "could not audit a refusal");
        }
        tracing::warn!(session_id = %new.id, user = %new.user, open, cap,
            "session refused: per-user cap");
        Err(CoreError::Forbidden(message))
    }

    /// Polling: the owning process reports the session alive. Refreshes LastReported and, for
    /// an encoder or uploader, renews its lease. Returns the session, whose `terminate` flag
    /// tells a gateway to close it.
    pub async fn heartbeat(
        &self,
        id: SessionId,
        by: &ProcessInstance,
    ) -> Result<PrivSession, CoreError> {
        let owned = StageSet::of(&[Stage::Connected, Stage::Encoding, Stage::Uploading]);
        self.heartbeat_in(id, by, owned).await
    }

    /// [`Engine::heartbeat`] accepted only in `stages` (a control plane narrows it to the
    /// stage the caller's role owns, so one guarded write does the whole check).
    pub async fn heartbeat_in(
        &self,
        id: SessionId,
        by: &ProcessInstance,
        stages: StageSet,
    ) -> Result<PrivSession, CoreError> {
        // A PrivSession carries no lock to the gateway: a window configured to lock ends
        // the session here (the HTTP Polling path).
        self.heartbeat_windowed(id, by, stages, false)
            .await
            .map(|(s, _)| s)
    }

    /// [`Engine::heartbeat_in`], with the access windows' verdict on a Connected session
    /// ([`Engine::window_status`]): a window that closed with
    /// [`End`](crate::access::WindowCloseAction::End) has set the returned session's
    /// terminate flag. A directory that cannot answer leaves the session as it is (logged).
    ///
    /// `lock_ok`: the caller hands [`WindowStatus::Closed`] with a lock on to the gateway
    /// (`HeartbeatReply::lock`). Only the SSH gateway applies it today, so other protocols'
    /// sessions are ended instead of being left running unlocked.
    pub async fn heartbeat_windowed(
        &self,
        id: SessionId,
        by: &ProcessInstance,
        stages: StageSet,
        lock_ok: bool,
    ) -> Result<(PrivSession, WindowStatus), CoreError> {
        let mut s = self.heartbeat_unchecked(id, by, stages).await?;
        let can_lock = lock_ok && s.protocol == crate::session::Protocol::Ssh;
        let status = match self.window_status(&s, can_lock).await {
            Ok(st) => st,
            Err(e) => {
                tracing::warn!(session_id = %id, error = %e,
                    "checking the access windows failed; the session goes on");
                WindowStatus::Open
            }
        };
        if let WindowStatus::Closed {
            action: crate::access::WindowCloseAction::End,
            message,
        } = &status
        {
            s.terminate = true;
            s.terminate_reason = Some(message.clone());
        }
        if !s.terminate {
            match self.request_grant_lapsed(&s).await {
                Ok(Some(message)) => {
                    s.terminate = true;
                    s.terminate_reason = Some(message);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(session_id = %id, error = %e,
                    "checking the access requests failed; the session goes on"),
            }
        }
        Ok((s, status))
    }

    async fn heartbeat_unchecked(
        &self,
        id: SessionId,
        by: &ProcessInstance,
        stages: StageSet,
    ) -> Result<PrivSession, CoreError> {
        let now = self.clock.now();
        let guard = Guard {
            stages,
            owner: Some(by.clone()),
            ..Guard::default()
        };
        let patch = Patch {
            last_reported: Some(now),
            lease_expires: LeasePatch::Renew(now.saturating_add(self.config.lease_ttl)),
            ..Patch::default()
        };
        match self.store.update(id, &guard, &patch, None).await? {
            Some(s) => Ok(s),
            None => Err(self.diagnose(id, &guard, "Polling").await),
        }
    }

    /// UpdateSession: sets EndTime to now on a Connected session.
    pub async fn update_session(&self, id: SessionId) -> Result<PrivSession, CoreError> {
        let guard = Guard {
            stages: StageSet::one(Stage::Connected),
            ..Guard::default()
        };
        let patch = Patch {
            end_time: Some(self.clock.now()),
            ..Patch::default()
        };
        match self.store.update(id, &guard, &patch, None).await? {
            Some(s) => Ok(s),
            None => Err(self.diagnose(id, &guard, "UpdateSession").await),
        }
    }

    /// EndSession: the gateway that owns a Connected session ends it: terminate flag,
    /// EndTime and LastReported set, stage `Ended`. Ending a session that has already ended
    /// is a success that changes nothing, so a gateway may retry after a timeout.
    pub async fn end_session(
        &self,
        id: SessionId,
        by: &ProcessInstance,
    ) -> Result<PrivSession, CoreError> {
        self.end_session_committed(id, by, None).await
    }

    /// [`end_session`](Self::end_session) with the gateway's commitment to the recording it
    /// wrote (docs/threat-model.md M12): kept with the session, written into the audit row,
    /// and handed to the encoder and uploader with their claims. A retry after the session
    /// ended changes nothing, so the first commitment stands.
    pub async fn end_session_committed(
        &self,
        id: SessionId,
        by: &ProcessInstance,
        recording: Option<&crate::session::RecordingCommitment>,
    ) -> Result<PrivSession, CoreError> {
        check_transition(Stage::Connected, Stage::Ended)?;
        let now = self.clock.now();
        let guard = Guard {
            stages: StageSet::one(Stage::Connected),
            owner: Some(by.clone()),
            ..Guard::default()
        };
        let patch = Patch {
            stage: Some(Stage::Ended),
            terminate: Some(true),
            end_time: Some(now),
            last_reported: Some(now),
            recording_commitment: recording.map(|c| Some(*c)),
            ..Patch::default()
        };
        let detail = match recording {
            Some(c) => format!("EndSession; recording {c}"),
            None => "EndSession".to_owned(),
        };
        let audit = self.audit(
            now,
            id,
            by.as_str(),
            AuditAction::Ended,
            Some((Stage::Connected, Stage::Ended)),
            &detail,
        );
        if let Some(s) = self.store.update(id, &guard, &patch, Some(&audit)).await? {
            self.windows.forget(id);
            tracing::info!(session_id = %id, stage = %s.stage, process_instance = %by, "session ended");
            return Ok(s);
        }
        let current = self.session(id).await?;
        if current.stage != Stage::Connected {
            return Ok(current);
        }
        Err(self.diagnose_with(&current, &guard, "EndSession"))
    }

    /// Asks the gateway of a Connected session to close it (an admin, a checkin, an expired
    /// checkout). Sets the terminate flag and reason; the gateway sees it on its next
    /// heartbeat, closes the user's connection and calls EndSession. A session that is no
    /// longer Connected is left as it is.
    pub async fn request_termination(
        &self,
        id: SessionId,
        actor: &str,
        reason: &str,
    ) -> Result<PrivSession, CoreError> {
        let now = self.clock.now();
        let reason = bounded_reason(reason);
        let guard = Guard {
            stages: StageSet::one(Stage::Connected),
            ..Guard::default()
        };
        let patch = Patch {
            terminate: Some(true),
            terminate_reason: Some(Some(reason.clone())),
            ..Patch::default()
        };
        let audit = self.audit(
            now,
            id,
            actor,
            AuditAction::TerminateRequested,
            None,
            reason,
        );
        match self.store.update(id, &guard, &patch, Some(&audit)).await? {
            Some(s) => Ok(s),
            None => self.session(id).await,
        }
    }

    /// Explains why a guarded write did not apply, from the session's current row.
    pub(crate) async fn diagnose(
        &self,
        id: SessionId,
        guard: &Guard,
        operation: &'static str,
    ) -> CoreError {
        match self.store.get(id).await {
            Ok(Some(current)) => self.diagnose_with(&current, guard, operation),
            Ok(None) => CoreError::UnknownSession(id),
            Err(e) => e,
        }
    }

    pub(crate) fn diagnose_with(
        &self,
        current: &PrivSession,
        guard: &Guard,
        operation: &'static str,
    ) -> CoreError {
        if let Some(token) = guard.token
            && token != current.fencing_token
        {
            return CoreError::StaleToken {
                session: current.id,
                presented: token,
                current: current.fencing_token,
            };
        }
        if !guard.stages.is_empty() && !guard.stages.contains(current.stage) {
            if guard.token.is_some() {
                return CoreError::LeaseLost {
                    session: current.id,
                    stage: current.stage,
                };
            }
            return CoreError::WrongStage {
                session: current.id,
                operation,
                expected: guard.stages.describe(),
                actual: current.stage,
            };
        }
        if let Some(owner) = &guard.owner
            && current.process_instance.as_ref() != Some(owner)
        {
            return CoreError::NotOwner {
                session: current.id,
                stage: current.stage,
                caller: owner.clone(),
                owner: current.process_instance.clone(),
            };
        }
        // The guard matches now: a concurrent write got in between.
        CoreError::Contended(current.id)
    }
}
