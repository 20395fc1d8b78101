//! The registry of live sessions on one gateway: list them, and join, pause, resume, lock,
//! unlock, terminate one by id, or decide its held commands.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use psm_core::SessionId;
use psm_core::live::{LiveAction, LiveCommand, LiveReport};
use tokio::sync::mpsc;

use crate::session::{ProxySession, SessionInfo, Viewer};

/// The live sessions of this process.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use psm_proxy::{SessionRegistry, ProxySession, SessionControl, SessionInfo};
/// # struct Demo { info: SessionInfo, control: Arc<SessionControl> }
/// # impl ProxySession for Demo {
/// #     fn info(&self) -> &SessionInfo { &self.info }
/// #     fn control(&self) -> &Arc<SessionControl> { &self.control }
/// # }
/// let registry = SessionRegistry::new();
/// let info = SessionInfo {
///     id: psm_core::SessionId::new(), user: "alice".into(), target: "web-01".into(),
///     target_account: "root".into(), protocol: psm_core::Protocol::Ssh, peer: None,
///     started: psm_core::Timestamp::from_micros(0),
/// };
/// let control = Arc::new(SessionControl::new());
/// let guard = registry.register(Arc::new(Demo { info: info.clone(), control: control.clone() }));
/// assert_eq!(registry.list().len(), 1);
/// assert!(registry.terminate(info.id, "policy"));
/// assert_eq!(control.termination().as_deref(), Some("policy"));
/// assert_eq!(registry.pause(info.id), true);
/// drop(guard);
/// assert!(registry.list().is_empty());
/// # });
/// ```
#[derive(Clone, Default)]
pub struct SessionRegistry {
    inner: Arc<Mutex<HashMap<SessionId, Arc<dyn ProxySession>>>>,
    reports: Arc<OnceLock<mpsc::Sender<LiveReport>>>,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("live", &self.len())
            .finish()
    }
}

/// Removes its session from the registry when dropped.
#[must_use = "the session leaves the registry when the guard is dropped"]
pub struct Registration {
    registry: SessionRegistry,
    id: SessionId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl SessionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<dyn ProxySession>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a live session until the returned guard is dropped.
    pub fn register(&self, session: Arc<dyn ProxySession>) -> Registration {
        let id = session.info().id;
        self.lock().insert(id, session);
        Registration {
            registry: self.clone(),
            id,
        }
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live session's info, oldest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self.lock().values().map(|s| s.info().clone()).collect();
        v.sort_by_key(|i| i.started);
        v
    }

    /// One live session.
    pub fn get(&self, id: SessionId) -> Option<Arc<dyn ProxySession>> {
        self.lock().get(&id).cloned()
    }

    /// Asks a session to end; false if it is not live here.
    pub fn terminate(&self, id: SessionId, reason: &str) -> bool {
        self.get(id)
            .map(|s| s.control().terminate(reason))
            .is_some()
    }

    /// Asks every session to end (graceful shutdown).
    pub fn terminate_all(&self, reason: &str) {
        let all: Vec<_> = self.lock().values().cloned().collect();
        for s in all {
            s.control().terminate(reason);
        }
    }

    /// Holds a session's traffic (on behalf of `admin`); false if it is not live here.
    pub fn pause(&self, id: SessionId) -> bool {
        self.get(id)
            .map(|s| s.control().pause_by("admin", ""))
            .is_some()
    }

    /// Releases a held session; false if it is not live here.
    pub fn resume(&self, id: SessionId) -> bool {
        self.get(id)
            .map(|s| s.control().resume_by("admin"))
            .is_some()
    }

    /// Joins a session as an anonymous observer (tests, tools); the live websocket server
    /// joins with a name through [`SessionControl::join`](crate::SessionControl::join).
    pub fn join(&self, id: SessionId) -> Option<Viewer> {
        self.get(id).and_then(|s| s.control().join(None).ok())
    }

    /// Applies a live command (from the control plane's queue or a viewer's websocket).
    /// `Ok` carries what happened, `Err` why nothing did.
    pub fn apply(&self, command: &LiveCommand) -> Result<String, String> {
        let Some(s) = self.get(command.session) else {
            return Err(format!(
                "session {} is not live on this gateway",
                command.session
            ));
        };
        apply(s.control(), command)
    }

    /// Where reports about live sessions go (the link to the control plane); set once.
    pub fn set_reports(&self, reports: mpsc::Sender<LiveReport>) {
        let _ = self.reports.set(reports);
    }

    /// Sends a report toward the control plane, if a link is set; never blocks (a full
    /// queue drops the report with a log line).
    pub fn report(&self, report: LiveReport) {
        if let Some(tx) = self.reports.get()
            && tx.try_send(report).is_err()
        {
            tracing::warn!("live reports are not being delivered; one was dropped");
        }
    }
}

/// Applies `command` to one session's control.
pub fn apply(control: &crate::SessionControl, command: &LiveCommand) -> Result<String, String> {
    let actor = command.actor.as_str();
    let reason = command.reason.as_deref().unwrap_or_default();
    let did = |changed: bool, done: &str, already: &str| {
        if changed {
            Ok(done.to_owned())
        } else {
            Ok(already.to_owned())
        }
    };
    match command.action {
        LiveAction::Pause => did(control.pause_by(actor, reason), "paused", "already paused"),
        LiveAction::Resume => did(control.resume_by(actor), "resumed", "was not paused"),
        LiveAction::Lock => did(control.lock_by(actor, reason), "locked", "already locked"),
        LiveAction::Unlock => did(control.unlock_by(actor), "unlocked", "was not locked"),
        LiveAction::Terminate => {
            let why = if reason.is_empty() {
                format!("terminated by {actor}")
            } else {
                reason.to_owned()
            };
            did(
                control.terminate_by(actor, &why),
                "terminated",
                "already ending",
            )
        }
        LiveAction::Disconnect => {
            let Some(viewer) = command.viewer.as_deref() else {
                return Err("no viewer named".into());
            };
            let why = if reason.is_empty() {
                format!("disconnected by {actor}")
            } else {
                reason.to_owned()
            };
            match control.disconnect_viewer(viewer, &why) {
                0 => Ok(format!("{viewer} was not watching")),
                n => Ok(format!("{viewer} disconnected ({n})")),
            }
        }
        LiveAction::Approve | LiveAction::Deny => {
            let Some(id) = command.approval else {
                return Err("no approval id".into());
            };
            let approved = command.action == LiveAction::Approve;
            // The session's own user is refused here, whichever path the decision came by
            // (a live viewer, the control plane's queue).
            control
                .try_decide(id, approved, actor, reason)
                .map(|()| if approved { "approved" } else { "denied" }.into())
                .map_err(|e| e.to_string())
        }
    }
}
