//! Access rules beyond the role grants: **access windows**, the days, dates, times of day
//! (in a named time zone) and source networks in which a role may use its grants.
//!
//! A window belongs to a role and a target (a target name, or `*` for every target the
//! role reaches). A grant whose role has no window for that target is standing access, at
//! any hour from anywhere, as before windows existed. A grant whose role has windows is
//! usable only while one of them is open and admits the client's address. A user with
//! several roles reaching a target may use whichever grant is usable.
//!
//! The control plane's [`Engine`](crate::Engine) checks them when a session opens (every
//! protocol opens through it) and on each heartbeat of a Connected session: a window that
//! is about to close warns the user, and once it has closed the session is ended or locked
//! ([`WindowsConfig`]).
//!
//! **Access requests** (just-in-time access): a user without a standing grant of a target
//! asks for it for a while, with a reason ([`AccessRequests::request`]); the target's
//! [`ApprovalRule`] names the role whose members approve and how many must (never the
//! requester); once approved, the target is in the user's
//! [`allowed_targets`](crate::directory::DirectoryLookup::allowed_targets) until the
//! request expires, and the engine ends the user's sessions to it on the heartbeat after.
//! Every step is an audit event.
//!
//! ```
//! # async fn demo() -> Result<(), psm_core::CoreError> {
//! use psm_core::access::{NewWindow, SourceCheck, WindowedAccess};
//! use psm_core::directory::{DirectoryAdmin, DirectoryLookup, MemoryDirectory, NewUser};
//! use psm_core::Timestamp;
//!
//! let dir = MemoryDirectory::new();
//! dir.create_user(&NewUser { name: "alice".parse()?, roles: vec!["ops".into()], ..NewUser::default() }).await?;
//! dir.grant("ops", "web-01").await?;
//! dir.add_window(&NewWindow::new("ops", "*", "hours=08:00-18:00 tz=UTC".parse()?)?).await?;
//!
//! let alice = dir.user("alice").await?.unwrap();
//! let access = WindowedAccess::of(&dir, &alice, "web-01").await?;
//! let nine = Timestamp::from_micros(9 * 3600 * 1_000_000);
//! let eight_pm = Timestamp::from_micros(20 * 3600 * 1_000_000);
//! assert!(access.allows(nine, SourceCheck::Unknown));
//! assert!(!access.allows(eight_pm, SourceCheck::Unknown));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::time::Duration;

use crate::directory::{ALL_TARGETS, DirectoryLookup, DirectoryUser, check_name, check_target};
use crate::error::CoreError;
use crate::timestamp::Timestamp;

mod approval;
mod network;
mod request;
mod window;

pub use approval::AccessRequests;
pub(crate) use approval::approval_pending_cap_error;
pub use request::{
    AccessRequest, Approval, ApprovalRule, MAX_APPROVAL_RULES, MAX_APPROVALS, MAX_LISTED_REQUESTS,
    MAX_PENDING_PER_USER, MAX_REQUEST_DURATION, MAX_REQUEST_REASON_LEN, MIN_REQUEST_DURATION,
    NewAccessRequest, PENDING_TTL, RequestState, RequestStep, approvals_from_text,
    approvals_to_text, check_request_fields, parse_request_duration,
};

pub use network::{MAX_NETWORKS, SourceNetworks};
pub use window::{
    AccessWindow, MAX_DATE_RANGES, MAX_TIME_RANGES, MAX_WINDOW_SPEC_LEN, SourceCheck,
};

/// Most windows a directory holds.
pub const MAX_WINDOWS: usize = 10_000;

/// The longest warning before a window closes (the look-ahead is a minute-by-minute scan).
pub const MAX_WARNING: Duration = Duration::from_secs(24 * 3600);

/// A window to add: which role's grant of which target it governs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWindow {
    /// The role.
    pub role: String,
    /// The target, or `*` for every target the role reaches.
    pub target: String,
    /// When and from where.
    pub window: AccessWindow,
}

impl NewWindow {
    /// A window for `role` on `target` (checked as directory names; `*` is every target).
    pub fn new(role: &str, target: &str, window: AccessWindow) -> Result<Self, CoreError> {
        check_name("role", role)?;
        check_target(target)?;
        Ok(Self {
            role: role.to_owned(),
            target: target.to_owned(),
            window,
        })
    }
}

/// A window as stored, with the id `psm windows remove` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWindow {
    /// The id.
    pub id: i64,
    /// The role.
    pub role: String,
    /// The target, or `*`.
    pub target: String,
    /// When and from where.
    pub window: AccessWindow,
}

/// What an open window does when it closes on a Connected session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowCloseAction {
    /// End the session (the default).
    #[default]
    End,
    /// Lock it: the user's input is refused (output still flows) until a window opens
    /// again or an administrator ends it.
    Lock,
}

impl std::str::FromStr for WindowCloseAction {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "end" | "terminate" => Ok(Self::End),
            "lock" => Ok(Self::Lock),
            other => Err(CoreError::InvalidInput {
                field: "window_close",
                reason: format!(
                    "{:?} is not end or lock",
                    crate::id::truncate_for_error(other)
                ),
            }),
        }
    }
}

/// How the engine treats Connected sessions whose window closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowsConfig {
    /// How long before a window closes the user is warned (capped at [`MAX_WARNING`]);
    /// zero: no warning.
    pub warning: Duration,
    /// What happens once it has closed.
    pub on_close: WindowCloseAction,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        Self {
            warning: Duration::from_secs(300),
            on_close: WindowCloseAction::End,
        }
    }
}

/// The windows that govern one user's access to one target: for each role of the user
/// that grants the target, that role's windows for it (none: standing access).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowedAccess {
    grants: Vec<(String, Vec<AccessWindow>)>,
}

impl WindowedAccess {
    /// Reads `user`'s grants of `target` and their windows from `directory`.
    pub async fn of(
        directory: &dyn DirectoryLookup,
        user: &DirectoryUser,
        target: &str,
    ) -> Result<Self, CoreError> {
        let windows = directory.windows_of_roles(&user.roles).await?;
        let mut grants = Vec::new();
        for role in &user.roles {
            let targets = directory
                .targets_of_roles(std::slice::from_ref(role))
                .await?;
            if !targets.iter().any(|t| t == ALL_TARGETS || t == target) {
                continue;
            }
            let mine = windows
                .iter()
                .filter(|w| &w.role == role && (w.target == ALL_TARGETS || w.target == target))
                .map(|w| w.window.clone())
                .collect();
            grants.push((role.clone(), mine));
        }
        Ok(Self { grants })
    }

    /// Whether any grant of the target is governed by a window (false: standing access, or
    /// no grant at all).
    pub fn is_windowed(&self) -> bool {
        !self.grants.is_empty() && self.grants.iter().all(|(_, w)| !w.is_empty())
    }

    /// Whether some grant is usable at `now` from `source` (true without any grant: whether
    /// the user may reach the target at all is the grants' question, not the windows').
    pub fn allows(&self, now: Timestamp, source: SourceCheck) -> bool {
        if !self.is_windowed() {
            return true;
        }
        self.grants
            .iter()
            .any(|(_, ws)| ws.iter().any(|w| w.allows(now, source)))
    }

    /// Why the user is refused at `now` from `source`, for the user to read: which windows
    /// there are and what did not match.
    pub fn refusal(&self, target: &str, now: Timestamp, source: SourceCheck) -> String {
        let windows: Vec<String> = self
            .grants
            .iter()
            .flat_map(|(role, ws)| ws.iter().map(move |w| format!("[{role}: {w}]")))
            .take(8)
            .collect();
        let in_time = self
            .grants
            .iter()
            .any(|(_, ws)| ws.iter().any(|w| w.open_at(now)));
        let why = match source {
            _ if !in_time => "no access window is open now".to_owned(),
            SourceCheck::Known(ip) => {
                format!(
                    "your address {} is not in an allowed network",
                    ip.to_canonical()
                )
            }
            SourceCheck::Unknown => {
                "the gateway did not report your address, and the open window allows only \
                 some networks"
                    .to_owned()
            }
            SourceCheck::Skip => "no access window is open now".to_owned(),
        };
        format!(
            "access to {target} is outside your access windows: {why} (windows: {})",
            windows.join(" ")
        )
    }

    /// When, within `horizon` of `now`, the access allowed at `now` stops (the first minute
    /// it does not allow); `None` if it stays open that long (or is not open now).
    pub fn closes_within(
        &self,
        now: Timestamp,
        source: SourceCheck,
        horizon: Duration,
    ) -> Option<Timestamp> {
        if !self.is_windowed() || !self.allows(now, source) {
            return None;
        }
        let horizon = horizon.min(MAX_WARNING);
        // Windows change only on local minute boundaries: check each one ahead.
        let minute = 60_000_000i64;
        let mut t = Timestamp::from_micros(
            now.as_micros()
                .div_euclid(minute)
                .saturating_add(1)
                .saturating_mul(minute),
        );
        let end = now.saturating_add(horizon);
        while t <= end {
            if !self.allows(t, source) {
                return Some(t);
            }
            t = Timestamp::from_micros(t.as_micros().saturating_add(minute));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{DirectoryAdmin, MemoryDirectory, NewUser};

    fn at_hm(h: i64, m: i64) -> Timestamp {
        // Thursday 1970-01-01 in UTC.
        Timestamp::from_micros((h * 3600 + m * 60) * 1_000_000)
    }

    async fn dir() -> MemoryDirectory {
        let dir = MemoryDirectory::new();
        dir.create_user(&NewUser {
            name: "alice".parse().unwrap(),
            roles: vec!["ops".into(), "dba".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
        dir.grant("ops", "web-01").await.unwrap();
        dir.grant("dba", "*").await.unwrap();
        dir
    }

    async fn access(dir: &MemoryDirectory, target: &str) -> WindowedAccess {
        let u = dir.user("alice").await.unwrap().unwrap();
        WindowedAccess::of(dir, &u, target).await.unwrap()
    }

    #[tokio::test]
    async fn a_role_without_windows_is_standing_access() {
        let dir = dir().await;
        let w = |s: &str| s.parse::<AccessWindow>().unwrap();
        dir.add_window(&NewWindow::new("ops", "web-01", w("hours=08:00-18:00")).unwrap())
            .await
            .unwrap();
        // dba reaches every target without a window: alice is never refused.
        assert!(
            access(&dir, "web-01")
                .await
                .allows(at_hm(20, 0), SourceCheck::Unknown)
        );
        // Windowed on every target for dba too: now 20:00 is refused.
        dir.add_window(&NewWindow::new("dba", "*", w("hours=09:00-17:00")).unwrap())
            .await
            .unwrap();
        let a = access(&dir, "web-01").await;
        assert!(a.is_windowed());
        assert!(!a.allows(at_hm(20, 0), SourceCheck::Unknown));
        assert!(a.allows(at_hm(8, 30), SourceCheck::Unknown), "ops' window");
        assert!(
            a.refusal("web-01", at_hm(20, 0), SourceCheck::Unknown)
                .contains("no access window is open")
        );
        // db-01 is reached through dba only.
        let b = access(&dir, "db-01").await;
        assert!(!b.allows(at_hm(8, 30), SourceCheck::Unknown));
        assert!(b.allows(at_hm(9, 0), SourceCheck::Unknown));
    }

    #[tokio::test]
    async fn networks_and_closing_time() {
        let dir = MemoryDirectory::new();
        dir.create_user(&NewUser {
            name: "alice".parse().unwrap(),
            roles: vec!["ops".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
        dir.grant("ops", "web-01").await.unwrap();
        dir.add_window(
            &NewWindow::new(
                "ops",
                "web-01",
                "hours=08:00-18:00 from=127.0.0.1/32".parse().unwrap(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        let a = access(&dir, "web-01").await;
        let here = SourceCheck::Known("127.0.0.1".parse().unwrap());
        let there = SourceCheck::Known("127.0.0.2".parse().unwrap());
        assert!(a.allows(at_hm(9, 0), here));
        assert!(!a.allows(at_hm(9, 0), there));
        assert!(
            a.refusal("web-01", at_hm(9, 0), there)
                .contains("127.0.0.2 is not in an allowed network")
        );
        assert!(!a.allows(at_hm(9, 0), SourceCheck::Unknown), "fails closed");
        let at = at_hm(17, 56).saturating_add(Duration::from_secs(7));
        assert_eq!(
            a.closes_within(at, here, Duration::from_secs(300)),
            Some(at_hm(18, 0))
        );
        assert_eq!(
            a.closes_within(at_hm(17, 0), here, Duration::from_secs(300)),
            None
        );
    }
}
