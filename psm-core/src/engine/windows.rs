//! Access windows in the engine: checked when a session opens and on each heartbeat of a
//! Connected session (issue 20 item 2). The rules are [`crate::access`]'s; this file asks
//! them at the right moments and records what they decided.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::access::{SourceCheck, WindowCloseAction, WindowedAccess};
use crate::audit::{AuditAction, AuditRecord};
use crate::directory::DirectoryLookup;
use crate::error::CoreError;
use crate::id::SessionId;
use crate::session::{NewSession, PrivSession};
use crate::stage::Stage;
use crate::timestamp::Timestamp;

use super::Engine;

/// Most client addresses remembered for heartbeats (one per Connected session); past it a
/// session's later checks read times only (its address was checked at open).
const MAX_SOURCES: usize = 65_536;

/// The directory whose windows the engine applies, and the client address each Connected
/// session opened from (in this engine's memory: another replica, or this one after a
/// restart, re-checks times only).
#[derive(Clone, Default)]
pub(crate) struct WindowGate {
    pub(crate) directory: Option<Arc<dyn DirectoryLookup>>,
    sources: Arc<Mutex<HashMap<SessionId, IpAddr>>>,
}

impl WindowGate {
    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, IpAddr>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn remember(&self, id: SessionId, source: Option<IpAddr>) {
        if self.directory.is_none() {
            return;
        }
        if let Some(ip) = source {
            let mut map = self.sources();
            if map.len() < MAX_SOURCES {
                map.insert(id, ip);
            }
        }
    }

    pub(crate) fn forget(&self, id: SessionId) {
        self.sources().remove(&id);
    }
}

/// What the access windows say about a Connected session at a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowStatus {
    /// Open, and not closing within the warning time (or not governed by a window).
    Open,
    /// Closing at `at`: the user is shown `message`.
    Closing {
        /// When it closes.
        at: Timestamp,
        /// The warning for the user.
        message: String,
    },
    /// Closed: the session is ended, or locked with `message` as the reason.
    Closed {
        /// What the engine did.
        action: WindowCloseAction,
        /// Why, for the user.
        message: String,
    },
}

fn utc_minute(t: Timestamp) -> String {
    let odt = t.to_offset_date_time();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        odt.year(),
        u8::from(odt.month()),
        odt.day(),
        odt.hour(),
        odt.minute()
    )
}

impl Engine {
    /// Applies the access windows ([`crate::access`]) kept in `directory` to every session
    /// this engine opens ([`Engine::open_session_from`]) and to each heartbeat of a
    /// Connected session, as [`EngineConfig::windows`](super::EngineConfig::windows) says.
    /// Without it the engine applies no windows (an embedder's own rules).
    pub fn with_access_windows(mut self, directory: Arc<dyn DirectoryLookup>) -> Self {
        self.windows.directory = Some(directory);
        self
    }

    /// Refuses `new` (audited, `Forbidden` with a message for the user) when the user's
    /// grants of the target are all governed by windows and none is open for `source` now.
    pub(crate) async fn check_windows(
        &self,
        new: &NewSession,
        source: Option<IpAddr>,
    ) -> Result<(), CoreError> {
        let Some(directory) = &self.windows.directory else {
            return Ok(());
        };
        // A user the directory does not know is not a gateway user of this directory
        // (whether they may connect at all is the gateway's check): no window applies.
        let Some(user) = directory.user(&new.user).await? else {
            return Ok(());
        };
        let access = WindowedAccess::of(directory.as_ref(), &user, &new.target).await?;
        let now = self.clock.now();
        let check = source.map_or(SourceCheck::Unknown, SourceCheck::Known);
        if access.allows(now, check) {
            return Ok(());
        }
        let message = access.refusal(&new.target, now, check);
        let record = AuditRecord {
            at: now,
            session: Some(new.id),
            actor: new.process_instance.to_string(),
            action: AuditAction::Refused,
            from_stage: None,
            to_stage: None,
            detail: format!(
                "session of {} to {} from {} refused: {message}",
                new.user,
                new.target,
                source.map_or_else(|| "an unreported address".to_owned(), |ip| ip.to_string())
            ),
        };
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(error = %e, "could not audit a refusal");
        }
        tracing::warn!(session_id = %new.id, user = %new.user, target_name = %new.target,
            "session refused: outside the access windows");
        Err(CoreError::Forbidden(message))
    }

    /// The access windows' verdict on Connected session `s` now. A closed window with
    /// [`WindowCloseAction::End`] also asks its gateway to end it (the terminate flag, seen
    /// on this very heartbeat), audited once. `can_lock`: whether the caller can carry a
    /// lock to the session's gateway; if not, a window configured to lock ends the session
    /// instead (fail closed rather than let it run on).
    pub async fn window_status(
        &self,
        s: &PrivSession,
        can_lock: bool,
    ) -> Result<WindowStatus, CoreError> {
        let Some(directory) = &self.windows.directory else {
            return Ok(WindowStatus::Open);
        };
        if s.stage != Stage::Connected || s.terminate {
            return Ok(WindowStatus::Open);
        }
        let Some(user) = directory.user(&s.user).await? else {
            return Ok(WindowStatus::Open);
        };
        let access = WindowedAccess::of(directory.as_ref(), &user, &s.target).await?;
        if !access.is_windowed() {
            return Ok(WindowStatus::Open);
        }
        let source = self
            .windows
            .sources()
            .get(&s.id)
            .copied()
            .map_or(SourceCheck::Skip, SourceCheck::Known);
        let now = self.clock.now();
        let mut cfg = self.config.windows;
        if !can_lock {
            cfg.on_close = WindowCloseAction::End;
        }
        if !access.allows(now, source) {
            let message = match cfg.on_close {
                WindowCloseAction::Lock => format!(
                    "your access window to {} has closed: input is locked until a window opens \
                     again",
                    s.target
                ),
                _ => format!(
                    "your access window to {} has closed: the session is ended",
                    s.target
                ),
            };
            if cfg.on_close == WindowCloseAction::End {
                self.request_termination(s.id, "access-window", &message)
                    .await?;
            }
            return Ok(WindowStatus::Closed {
                action: cfg.on_close,
                message,
            });
        }
        if cfg.warning.is_zero() {
            return Ok(WindowStatus::Open);
        }
        Ok(match access.closes_within(now, source, cfg.warning) {
            Some(at) => WindowStatus::Closing {
                at,
                message: format!(
                    "your access window to {} closes at {}; the session will then be {}",
                    s.target,
                    utc_minute(at),
                    match cfg.on_close {
                        WindowCloseAction::Lock => "locked",
                        _ => "ended",
                    }
                ),
            },
            None => WindowStatus::Open,
        })
    }
}
