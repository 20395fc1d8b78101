//! The control surface of a live RDP session ([`SessionControl`]: pause, resume, terminate)
//! and the [`Registry`] of this gateway's live sessions.
//!
//! These mirror `psm_proxy::{SessionControl, SessionRegistry}` (the SSH gateway's crate,
//! which this crate cannot depend on because russh and ironrdp cannot share a lockfile). The
//! live view of an RDP session is its [`Screen`]: a viewer calls
//! [`Screen::watch`](crate::screen::Screen::watch) and gets the damaged pixels as they change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use psm_core::{SessionId, Timestamp};
use tokio::sync::watch;

use crate::screen::Screen;

/// Who is connected to what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The control plane's session id.
    pub id: SessionId,
    /// The PSM user.
    pub user: String,
    /// The target's name.
    pub target: String,
    /// The account used on the target (not secret).
    pub target_account: String,
    /// The user's address (`None` for browser sessions behind a proxy).
    pub peer: Option<SocketAddr>,
    /// When the session started.
    pub started: Timestamp,
    /// `native` (an RDP client) or `browser`.
    pub client: &'static str,
}

/// Pause, resume and terminate for one live session.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use psm_proxy_rdp::control::SessionControl;
/// let c = SessionControl::new();
/// c.pause();
/// assert!(c.is_paused());
/// c.resume();
/// c.wait_unpaused().await;
/// c.terminate("admin");
/// assert_eq!(c.terminated().await, "admin");
/// # });
/// ```
#[derive(Debug)]
pub struct SessionControl {
    paused: watch::Sender<bool>,
    terminate: watch::Sender<Option<String>>,
}

impl Default for SessionControl {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionControl {
    /// Running, not paused.
    pub fn new() -> Self {
        Self {
            paused: watch::Sender::new(false),
            terminate: watch::Sender::new(None),
        }
    }

    /// Holds the session: the user's input stops reaching the target and the screen stops
    /// updating for the user (the recorder keeps recording the target's screen).
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Lets the session go on.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Returns once the session is not paused (or is being terminated).
    pub async fn wait_unpaused(&self) {
        let mut p = self.paused.subscribe();
        let mut t = self.terminate.subscribe();
        loop {
            if !*p.borrow_and_update() || t.borrow_and_update().is_some() {
                return;
            }
            tokio::select! {
                r = p.changed() => if r.is_err() { return },
                r = t.changed() => if r.is_err() { return },
            }
        }
    }

    /// Asks the session to end; the first reason wins.
    pub fn terminate(&self, reason: &str) {
        self.terminate.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason.to_owned());
                true
            } else {
                false
            }
        });
    }

    /// The termination reason, if asked.
    pub fn termination(&self) -> Option<String> {
        self.terminate.borrow().clone()
    }

    /// Waits for termination; returns the reason.
    pub async fn terminated(&self) -> String {
        let mut rx = self.terminate.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return "session control dropped".into();
            }
        }
    }
}

/// A live session as the registry holds it.
#[derive(Clone, Debug)]
pub struct LiveSession {
    /// Who and what.
    pub info: SessionInfo,
    /// Its control.
    pub control: Arc<SessionControl>,
    /// Its screen (join as a viewer with `screen.watch()`).
    pub screen: Screen,
}

/// The live sessions of this gateway.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<SessionId, LiveSession>>>,
}

/// Removes its session from the registry when dropped.
#[must_use = "the session leaves the registry when the guard is dropped"]
#[derive(Debug)]
pub struct Registration {
    registry: Registry,
    id: SessionId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, LiveSession>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a session until the guard drops.
    pub fn register(&self, session: LiveSession) -> Registration {
        let id = session.info.id;
        self.lock().insert(id, session);
        Registration {
            registry: self.clone(),
            id,
        }
    }

    /// Live sessions, oldest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut v: Vec<_> = self.lock().values().map(|s| s.info.clone()).collect();
        v.sort_by_key(|i| i.started);
        v
    }

    /// One session.
    pub fn get(&self, id: SessionId) -> Option<LiveSession> {
        self.lock().get(&id).cloned()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks a session to end; false if it is not live here.
    pub fn terminate(&self, id: SessionId, reason: &str) -> bool {
        self.get(id).map(|s| s.control.terminate(reason)).is_some()
    }

    /// Asks every session to end.
    pub fn terminate_all(&self, reason: &str) {
        let all: Vec<_> = self.lock().values().cloned().collect();
        for s in all {
            s.control.terminate(reason);
        }
    }

    /// Pauses a session; false if it is not live here.
    pub fn pause(&self, id: SessionId) -> bool {
        self.get(id).map(|s| s.control.pause()).is_some()
    }

    /// Resumes a session; false if it is not live here.
    pub fn resume(&self, id: SessionId) -> bool {
        self.get(id).map(|s| s.control.resume()).is_some()
    }
}
