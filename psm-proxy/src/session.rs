//! The protocol-neutral live session: what it is ([`SessionInfo`]), how it is controlled
//! ([`SessionControl`]: pause, resume, lock, terminate, inject, approvals, viewers) and the
//! [`ProxySession`] trait every protocol's sessions implement.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use psm_core::live::{LiveMode, LiveReportKind, PendingApproval, ViewerInfo, cut};
use psm_core::{Protocol, SessionId, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use crate::live::fanout::{Fanout, FanoutConfig, JoinRefused, Screen, SlotHandle};
use crate::tap::Direction;

/// Who is connected to what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The control plane's session id.
    pub id: SessionId,
    /// The gateway user.
    pub user: String,
    /// The target's name.
    pub target: String,
    /// The account used on the target (not secret).
    pub target_account: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The user's address.
    pub peer: Option<SocketAddr>,
    /// When the session started.
    pub started: Timestamp,
}

/// Why [`SessionControl::try_decide`] did not decide a held command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecideRefused {
    /// No approval with this id is pending (decided already, timed out, or never held).
    #[error("no approval {0} is pending in this session")]
    NotPending(u64),
    /// The session's own user tried to approve their own held command.
    #[error(
        "{user} cannot approve a command held in their own session: another administrator must decide it"
    )]
    OwnCommand {
        /// The session's user.
        user: String,
    },
}

/// Whether an approver's name is the session's user. Names are compared as the directory
/// does (ASCII case-insensitive, surrounding spaces ignored), so `Alice` is `alice`.
fn same_user(user: &str, by: &str) -> bool {
    user.trim().eq_ignore_ascii_case(by.trim())
}

/// What a gateway does with a session whose control plane stopped answering heartbeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnreachableAction {
    /// Lock the session (the user's input is refused, output still flows) until a heartbeat
    /// is answered again; then unlock it, unless someone else locked it meanwhile. The
    /// default: fail closed without losing the user's work.
    Lock,
    /// End the session.
    Terminate,
    /// Let it go on (until its checkout expires): the behaviour before issue 17 L6.
    Continue,
}

/// How many heartbeats in a row may go unanswered, and what then (issue 17 L6). One
/// decision for every protocol: the SSH and RDP gateways each keep a [`HeartbeatWatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatPolicy {
    /// Unanswered heartbeats in a row before [`action`](Self::action) (at least 1; default
    /// 3, so 30 s with the gateways' 10 s interval).
    pub max_missed: u32,
    /// What then (default [`UnreachableAction::Lock`]).
    pub action: UnreachableAction,
}

impl Default for HeartbeatPolicy {
    fn default() -> Self {
        Self {
            max_missed: 3,
            action: UnreachableAction::Lock,
        }
    }
}

/// The lock reason a [`HeartbeatWatch`] sets (and the only one it lifts).
const UNREACHABLE_REASON: &str =
    "the control plane cannot be reached; input is refused until it answers again";

/// What a gateway's heartbeat loop does next, as its [`HeartbeatWatch`] decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeartbeatStep {
    /// Keep heartbeating.
    Continue,
    /// End the session with this reason (the user sees it).
    End(String),
}

/// One session's heartbeat bookkeeping: counts unanswered heartbeats, locks or ends the
/// session as its [`HeartbeatPolicy`] says, and re-checks the user in the directory.
///
/// ```
/// use psm_proxy::{HeartbeatPolicy, HeartbeatStep, HeartbeatWatch, SessionControl};
/// let control = SessionControl::new();
/// let mut watch = HeartbeatWatch::new(HeartbeatPolicy::default());
/// assert_eq!(watch.missed(&control), HeartbeatStep::Continue);
/// assert_eq!(watch.missed(&control), HeartbeatStep::Continue);
/// assert!(!control.is_locked());
/// assert_eq!(watch.missed(&control), HeartbeatStep::Continue);
/// assert!(control.is_locked(), "locked after the third miss");
/// watch.answered(&control);
/// assert!(!control.is_locked(), "unlocked when the control plane answers");
/// ```
#[derive(Debug)]
pub struct HeartbeatWatch {
    policy: HeartbeatPolicy,
    missed: u32,
    locked: bool,
    /// The access-window warning shown last (shown once each).
    window_notice: Option<String>,
    /// The access-window lock this watch set, by its reason.
    window_lock: Option<String>,
}

/// Who a lock set for a closed access window is by.
const WINDOW_LOCKER: &str = "access-window";

impl HeartbeatWatch {
    /// A watch with this policy.
    pub fn new(policy: HeartbeatPolicy) -> Self {
        Self {
            policy,
            missed: 0,
            locked: false,
            window_notice: None,
            window_lock: None,
        }
    }

    /// Applies what an answered heartbeat says about the session's access window: locks
    /// the session when the control plane says its window closed (configured to lock), lifts
    /// that lock when it no longer says so (a window opened again; never a lock someone else
    /// set), and returns a warning to show the user, once per distinct warning.
    ///
    /// ```
    /// use psm_core::HeartbeatReply;
    /// use psm_proxy::{HeartbeatPolicy, HeartbeatWatch, SessionControl};
    /// let control = SessionControl::new();
    /// let mut watch = HeartbeatWatch::new(HeartbeatPolicy::default());
    /// let warn = HeartbeatReply { notice: Some("closes at 18:00".into()), ..Default::default() };
    /// assert_eq!(watch.access_window(&warn, &control).as_deref(), Some("closes at 18:00"));
    /// assert_eq!(watch.access_window(&warn, &control), None, "shown once");
    /// let lock = HeartbeatReply { lock: Some("window closed".into()), ..Default::default() };
    /// watch.access_window(&lock, &control);
    /// assert!(control.is_locked());
    /// watch.access_window(&HeartbeatReply::default(), &control);
    /// assert!(!control.is_locked());
    /// ```
    pub fn access_window(
        &mut self,
        reply: &psm_core::HeartbeatReply,
        control: &SessionControl,
    ) -> Option<String> {
        match (&reply.lock, &self.window_lock) {
            (Some(reason), None) if control.lock_by(WINDOW_LOCKER, reason) => {
                self.window_lock = Some(reason.clone());
            }
            (None, Some(_)) => {
                self.window_lock = None;
                let h = control.hold();
                if h.locked && h.by == WINDOW_LOCKER {
                    control.unlock_by(WINDOW_LOCKER);
                }
            }
            _ => {}
        }
        match &reply.notice {
            Some(text) if self.window_notice.as_ref() != Some(text) => {
                self.window_notice = Some(text.clone());
                Some(text.clone())
            }
            _ => None,
        }
    }

    /// Unanswered heartbeats in a row so far.
    pub fn missed_in_a_row(&self) -> u32 {
        self.missed
    }

    /// A heartbeat was answered: the count starts again, and a lock this watch set is
    /// lifted (not one an administrator or a policy set meanwhile).
    pub fn answered(&mut self, control: &SessionControl) {
        self.missed = 0;
        if std::mem::take(&mut self.locked) {
            let h = control.hold();
            if h.locked && h.by == "gateway" && h.reason == UNREACHABLE_REASON {
                control.unlock_by("gateway");
            }
        }
    }

    /// A heartbeat went unanswered (the control plane is unreachable or failing).
    pub fn missed(&mut self, control: &SessionControl) -> HeartbeatStep {
        self.missed = self.missed.saturating_add(1);
        if self.missed < self.policy.max_missed.max(1) {
            return HeartbeatStep::Continue;
        }
        match self.policy.action {
            UnreachableAction::Continue => HeartbeatStep::Continue,
            UnreachableAction::Terminate => HeartbeatStep::End(format!(
                "the control plane did not answer {} heartbeats in a row",
                self.missed
            )),
            UnreachableAction::Lock => {
                if !self.locked && control.lock_by("gateway", UNREACHABLE_REASON) {
                    self.locked = true;
                }
                HeartbeatStep::Continue
            }
        }
    }

    /// Re-checks the session's user, as at login: a user removed, disabled or no longer
    /// allowed to reach `target` ends the session. A directory that cannot answer changes
    /// nothing here (the heartbeat count covers an unreachable control plane).
    pub async fn recheck_user(
        &self,
        directory: &dyn psm_core::directory::DirectoryLookup,
        user: &str,
        target: &str,
    ) -> HeartbeatStep {
        match directory.user(user).await {
            Ok(None) => HeartbeatStep::End(format!("the user {user} no longer exists")),
            Ok(Some(u)) if u.disabled => {
                HeartbeatStep::End(format!("the user {user} was disabled"))
            }
            Ok(Some(u)) => match directory.may_reach(&u, target).await {
                Ok(false) => HeartbeatStep::End(format!("{user} may no longer reach {target}")),
                _ => HeartbeatStep::Continue,
            },
            Err(e) => {
                tracing::warn!(user, error = %e, "re-checking the user failed; the session goes on");
                HeartbeatStep::Continue
            }
        }
    }
}

/// Whether the session is held, and by whom.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldState {
    /// Input and output are held.
    pub paused: bool,
    /// The user's input is refused.
    pub locked: bool,
    /// Who changed it last.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// Something that happened in a live session, for viewers who joined it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveEvent {
    /// Terminal output toward the user (what a viewer renders).
    Output {
        /// The channel.
        channel: u32,
        /// The bytes.
        bytes: Bytes,
    },
    /// The followed terminal was resized.
    Resize {
        /// The channel.
        channel: u32,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The session was paused, resumed, locked or unlocked.
    State(HoldState),
    /// The viewers changed.
    Viewers(Vec<ViewerInfo>),
    /// The typist changed (four-eyes).
    Typing {
        /// Who types now.
        who: String,
        /// A viewer (true) or the user.
        viewer: bool,
    },
    /// A command is held for approval.
    Approval(PendingApproval),
    /// An approval was decided.
    ApprovalResolved {
        /// Which.
        id: u64,
        /// Approved or denied.
        approved: bool,
        /// By whom.
        by: String,
        /// Why.
        reason: String,
    },
    /// A policy rule fired.
    Policy {
        /// The rule.
        rule: String,
        /// Its action.
        action: psm_core::policy::Action,
        /// What it fired on.
        subject: String,
        /// What the gateway did.
        outcome: String,
    },
    /// A notice the user was shown.
    Notice(String),
    /// This viewer is disconnected (its account changed, or an admin closed it); the last
    /// event it gets.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The session ended.
    Ended {
        /// Why.
        reason: String,
    },
}

/// Bytes to write into a live session on behalf of the control side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    /// Toward the user (a notice on their terminal) or the target (typed input).
    pub direction: Direction,
    /// The channel; `None`: the primary terminal channel (toward the target) or every
    /// session channel (toward the user).
    pub channel: Option<u32>,
    /// The bytes.
    pub bytes: Bytes,
}

/// What the session's proxy must record, report and tell the user: produced by
/// [`SessionControl`] for every control action, consumed by the proxy that runs the session
/// ([`SessionControl::take_notes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlNote {
    /// A live action or policy hit: an audit event (through the control plane) and a
    /// recording event.
    Report {
        /// Who acted (`bob`, `policy`, `gateway`).
        actor: String,
        /// What happened.
        kind: LiveReportKind,
    },
    /// A line to show on the user's terminal.
    Notice(String),
}

/// How an approval was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDecision {
    /// Approved or denied.
    pub approved: bool,
    /// By whom.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// Traffic counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes from the user toward the target.
    pub to_target: AtomicU64,
    /// Bytes from the target toward the user.
    pub to_user: AtomicU64,
}

#[derive(Default)]
struct Approvals {
    next: u64,
    pending: HashMap<u64, (PendingApproval, oneshot::Sender<ApprovalDecision>)>,
}

/// Most control notes queued before new ones are dropped (with a log line).
const NOTE_QUEUE: usize = 4096;

/// The control surface of one live session, shared by the proxy that runs it, the registry,
/// the live websocket server and taps.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use psm_proxy::SessionControl;
/// let control = SessionControl::new();
/// control.pause_by("bob", "checking");
/// assert!(control.is_paused());
/// control.resume_by("bob");
/// control.wait_unpaused().await; // returns at once
/// control.lock_by("bob", "");
/// assert!(control.is_locked());
/// control.terminate("admin request");
/// assert_eq!(control.terminated().await, "admin request");
/// # });
/// ```
pub struct SessionControl {
    paused: watch::Sender<bool>,
    locked: AtomicBool,
    hold: Mutex<HoldState>,
    terminate: watch::Sender<Option<String>>,
    fanout: Fanout,
    inject_tx: mpsc::UnboundedSender<Injection>,
    inject_rx: Mutex<Option<mpsc::UnboundedReceiver<Injection>>>,
    notes_tx: mpsc::Sender<ControlNote>,
    notes_rx: Mutex<Option<mpsc::Receiver<ControlNote>>>,
    user: OnceLock<String>,
    typist: Mutex<Option<(String, bool)>>,
    approvals: Mutex<Approvals>,
    /// Traffic counters.
    pub counters: Counters,
}

impl std::fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionControl")
            .field("paused", &self.is_paused())
            .field("locked", &self.is_locked())
            .field("fanout", &self.fanout)
            .finish_non_exhaustive()
    }
}

impl Default for SessionControl {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionControl {
    /// A running, unpaused session control with default viewer limits.
    pub fn new() -> Self {
        Self::with_viewers(FanoutConfig::default())
    }

    /// The same, with these viewer limits.
    pub fn with_viewers(config: FanoutConfig) -> Self {
        let (inject_tx, inject_rx) = mpsc::unbounded_channel();
        let (notes_tx, notes_rx) = mpsc::channel(NOTE_QUEUE);
        Self {
            paused: watch::Sender::new(false),
            locked: AtomicBool::new(false),
            hold: Mutex::new(HoldState::default()),
            terminate: watch::Sender::new(None),
            fanout: Fanout::new(config),
            inject_tx,
            inject_rx: Mutex::new(Some(inject_rx)),
            notes_tx,
            notes_rx: Mutex::new(Some(notes_rx)),
            user: OnceLock::new(),
            typist: Mutex::new(None),
            approvals: Mutex::new(Approvals::default()),
            counters: Counters::default(),
        }
    }

    /// Names the session's user (for "who is typing"); the proxy calls it once.
    pub fn set_user(&self, user: &str) {
        let _ = self.user.set(user.to_owned());
    }

    fn hold_state(&self) -> std::sync::MutexGuard<'_, HoldState> {
        self.hold.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Paused, locked, by whom.
    pub fn hold(&self) -> HoldState {
        self.hold_state().clone()
    }

    /// Queues a note for the proxy (see [`ControlNote`]); never blocks.
    pub fn note(&self, note: ControlNote) {
        if self.notes_tx.try_send(note).is_err() {
            tracing::warn!("live control notes are not being consumed; one was dropped");
        }
    }

    fn report(&self, actor: &str, kind: LiveReportKind) {
        self.note(ControlNote::Report {
            actor: cut(actor),
            kind,
        });
    }

    /// Holds the session (on behalf of the gateway itself): see [`pause_by`](Self::pause_by).
    pub fn pause(&self) {
        self.pause_by("gateway", "");
    }

    /// Holds the session: bytes stop flowing both ways (flow control pushes back on both
    /// ends) until [`resume_by`](Self::resume_by); nothing is lost. The user sees a notice.
    /// Returns false if it was paused already.
    pub fn pause_by(&self, actor: &str, reason: &str) -> bool {
        let changed = !self.paused.send_replace(true);
        if changed {
            let state = {
                let mut h = self.hold_state();
                h.paused = true;
                h.by = cut(actor);
                h.reason = cut(reason);
                h.clone()
            };
            self.fanout.broadcast(&LiveEvent::State(state));
            self.report(
                actor,
                LiveReportKind::Paused {
                    reason: cut(reason),
                },
            );
        }
        changed
    }

    /// Lets bytes flow again (on behalf of the gateway itself).
    pub fn resume(&self) {
        self.resume_by("gateway");
    }

    /// Lets bytes flow again. Returns false if it was not paused.
    pub fn resume_by(&self, actor: &str) -> bool {
        let changed = self.paused.send_replace(false);
        if changed {
            let state = {
                let mut h = self.hold_state();
                h.paused = false;
                h.by = cut(actor);
                h.reason.clear();
                h.clone()
            };
            self.fanout.broadcast(&LiveEvent::State(state));
            self.report(actor, LiveReportKind::Resumed);
        }
        changed
    }

    /// Whether the session is paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Refuses the user's input until [`unlock_by`](Self::unlock_by); output still flows,
    /// and a viewer with control may still type. Returns false if it was locked already.
    pub fn lock_by(&self, actor: &str, reason: &str) -> bool {
        let changed = !self.locked.swap(true, Ordering::SeqCst);
        if changed {
            let state = {
                let mut h = self.hold_state();
                h.locked = true;
                h.by = cut(actor);
                h.reason = cut(reason);
                h.clone()
            };
            self.fanout.broadcast(&LiveEvent::State(state));
            self.report(
                actor,
                LiveReportKind::Locked {
                    reason: cut(reason),
                },
            );
        }
        changed
    }

    /// Accepts the user's input again. Returns false if it was not locked.
    pub fn unlock_by(&self, actor: &str) -> bool {
        let changed = self.locked.swap(false, Ordering::SeqCst);
        if changed {
            let state = {
                let mut h = self.hold_state();
                h.locked = false;
                h.by = cut(actor);
                h.reason.clear();
                h.clone()
            };
            self.fanout.broadcast(&LiveEvent::State(state));
            self.report(actor, LiveReportKind::Unlocked);
        }
        changed
    }

    /// Whether the user's input is refused.
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::SeqCst)
    }

    /// Waits while the session is paused (returns at once when it is not, or when it is
    /// being terminated).
    pub async fn wait_unpaused(&self) {
        if !*self.paused.borrow() {
            return;
        }
        let mut paused = self.paused.subscribe();
        let mut term = self.terminate.subscribe();
        loop {
            if !*paused.borrow_and_update() || term.borrow_and_update().is_some() {
                return;
            }
            tokio::select! {
                r = paused.changed() => if r.is_err() { return },
                r = term.changed() => if r.is_err() { return },
            }
        }
    }

    /// Asks the session to end; the proxy tells the user `reason` and closes within moments.
    /// The first reason wins.
    pub fn terminate(&self, reason: &str) -> bool {
        self.terminate.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason.to_owned());
                true
            } else {
                false
            }
        })
    }

    /// Ends the session on behalf of `actor` (an admin, a policy): as
    /// [`terminate`](Self::terminate), and the action is audited and recorded.
    pub fn terminate_by(&self, actor: &str, reason: &str) -> bool {
        let reason = cut(reason);
        let changed = self.terminate(&reason);
        if changed {
            self.report(actor, LiveReportKind::Terminated { reason });
        }
        changed
    }

    /// The termination reason, if termination was asked.
    pub fn termination(&self) -> Option<String> {
        self.terminate.borrow().clone()
    }

    /// Waits until termination is asked; returns the reason.
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

    /// Queues bytes to write into the session (see [`Injection`]).
    pub fn inject(&self, direction: Direction, bytes: impl Into<Bytes>) {
        self.inject_to(direction, None, bytes);
    }

    /// Queues bytes for one channel.
    pub fn inject_to(&self, direction: Direction, channel: Option<u32>, bytes: impl Into<Bytes>) {
        let _ = self.inject_tx.send(Injection {
            direction,
            channel,
            bytes: bytes.into(),
        });
    }

    /// A viewer with control typed: the bytes go to the primary terminal channel, through
    /// the session's taps (policy, recorder), and the typist change is announced.
    pub fn viewer_input(&self, viewer: &str, bytes: impl Into<Bytes>) {
        self.viewer_typed(viewer);
        self.inject_to(Direction::ToTarget, None, bytes);
    }

    /// A viewer with control gave input that a protocol crate delivers itself (a
    /// desktop's keys and clicks): the typist change is announced as for terminal input.
    pub fn viewer_typed(&self, viewer: &str) {
        self.typed(viewer, true);
    }

    /// The user typed on a terminal channel (the proxy calls this; cheap when nobody else
    /// types).
    pub fn user_typed(&self) {
        if self.fanout.viewers() == 0 {
            return;
        }
        let user = self
            .user
            .get()
            .cloned()
            .unwrap_or_else(|| "the user".into());
        self.typed(&user, false);
    }

    fn typed(&self, who: &str, viewer: bool) {
        let changed = {
            let mut t = self.typist.lock().unwrap_or_else(|p| p.into_inner());
            let new = (who.to_owned(), viewer);
            if t.as_ref() == Some(&new) {
                false
            } else {
                // The first keystroke of a session is not news; a change of hands is.
                let was = t.replace(new);
                was.is_some() || viewer
            }
        };
        if changed && (viewer || self.fanout.has_controller()) {
            self.fanout.broadcast(&LiveEvent::Typing {
                who: cut(who),
                viewer,
            });
            self.note(ControlNote::Notice(format!("{} is typing", cut(who))));
        }
    }

    /// The receiving end of injections; the proxy running the session takes it once.
    pub fn take_injections(&self) -> Option<mpsc::UnboundedReceiver<Injection>> {
        self.inject_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The receiving end of control notes; the proxy running the session takes it once.
    pub fn take_notes(&self) -> Option<mpsc::Receiver<ControlNote>> {
        self.notes_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Holds a command for approval: the viewers and the control plane are told; the
    /// receiver gets the decision (it is dropped, and so reads as an error, if the session
    /// ends first).
    pub fn request_approval(
        &self,
        command: &str,
        rule: &str,
        message: Option<&str>,
    ) -> (u64, oneshot::Receiver<ApprovalDecision>) {
        let (tx, rx) = oneshot::channel();
        let approval = {
            let mut a = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
            a.next += 1;
            let approval = PendingApproval {
                id: a.next,
                command: cut(command),
                rule: cut(rule),
                message: message.map(cut),
                requested_at: Timestamp::now_utc(),
            };
            let id = a.next;
            a.pending.insert(id, (approval.clone(), tx));
            approval
        };
        self.fanout
            .broadcast(&LiveEvent::Approval(approval.clone()));
        let id = approval.id;
        self.report("policy", LiveReportKind::ApprovalRequested(approval));
        (id, rx)
    }

    /// Decides a held command. Returns false if no approval `id` is pending, or if `by` is
    /// the session's own user approving (see [`try_decide`](Self::try_decide)).
    pub fn decide(&self, id: u64, approved: bool, by: &str, reason: &str) -> bool {
        self.try_decide(id, approved, by, reason).is_ok()
    }

    /// Decides a held command, saying why it could not. The session's own user (named by
    /// [`set_user`](Self::set_user)) can never approve a command held in their session,
    /// whatever their role: the approval stays pending for someone else. They may deny it
    /// (that only cancels their own command).
    ///
    /// ```
    /// use psm_proxy::{DecideRefused, SessionControl};
    /// let c = SessionControl::new();
    /// c.set_user("alice");
    /// let (id, _rx) = c.request_approval("systemctl restart db", "restarts", None);
    /// assert_eq!(c.try_decide(id, true, "Alice", ""), Err(DecideRefused::OwnCommand { user: "alice".into() }));
    /// assert_eq!(c.try_decide(id, true, "bob", "ok"), Ok(()));
    /// assert_eq!(c.try_decide(id, false, "bob", ""), Err(DecideRefused::NotPending(id)));
    /// ```
    pub fn try_decide(
        &self,
        id: u64,
        approved: bool,
        by: &str,
        reason: &str,
    ) -> Result<(), DecideRefused> {
        let pending = {
            let mut a = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
            if !a.pending.contains_key(&id) {
                return Err(DecideRefused::NotPending(id));
            }
            if approved
                && let Some(user) = self.user.get()
                && same_user(user, by)
            {
                return Err(DecideRefused::OwnCommand { user: user.clone() });
            }
            a.pending.remove(&id)
        };
        let Some((_, tx)) = pending else {
            return Err(DecideRefused::NotPending(id));
        };
        let decision = ApprovalDecision {
            approved,
            by: cut(by),
            reason: cut(reason),
        };
        self.fanout.broadcast(&LiveEvent::ApprovalResolved {
            id,
            approved,
            by: decision.by.clone(),
            reason: decision.reason.clone(),
        });
        self.report(
            by,
            LiveReportKind::ApprovalResolved {
                id,
                approved,
                reason: decision.reason.clone(),
            },
        );
        let _ = tx.send(decision);
        Ok(())
    }

    /// The commands held for approval now.
    pub fn approvals(&self) -> Vec<PendingApproval> {
        let a = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = a.pending.values().map(|(p, _)| p.clone()).collect();
        v.sort_by_key(|p| p.id);
        v
    }

    /// Attaches a viewer (see [`Viewer`]). A named viewer is announced to the others and
    /// audited; `None` is an internal observer (tests, benchmarks).
    pub fn join(self: &Arc<Self>, viewer: Option<(&str, LiveMode)>) -> Result<Viewer, JoinRefused> {
        let info = viewer.map(|(name, mode)| ViewerInfo {
            name: cut(name),
            mode,
        });
        let (id, rx, slot) = self.fanout.attach(info.clone())?;
        if let Some(info) = &info {
            self.fanout
                .broadcast(&LiveEvent::Viewers(self.fanout.viewer_list()));
            self.report(&info.name, LiveReportKind::ViewerJoined { mode: info.mode });
            if info.mode == LiveMode::Control {
                self.note(ControlNote::Notice(format!(
                    "{} joined with control: their keystrokes reach this session",
                    info.name
                )));
            }
        }
        Ok(Viewer {
            control: self.clone(),
            id,
            rx,
            slot,
            info,
            last_screen: None,
        })
    }

    /// Whether anybody is watching.
    pub fn has_viewers(&self) -> bool {
        self.fanout.viewers() > 0
    }

    /// The viewers with a name.
    pub fn viewers(&self) -> Vec<ViewerInfo> {
        self.fanout.viewer_list()
    }

    /// Disconnects every viewer named `name` (they get [`LiveEvent::Disconnected`] and their
    /// streams end; the others are told they left once their websockets close); returns how
    /// many there were.
    pub fn disconnect_viewer(&self, name: &str, reason: &str) -> usize {
        self.fanout.evict(name, reason)
    }

    /// The terminal channel viewers follow (and viewer input goes to).
    pub fn primary_channel(&self) -> Option<u32> {
        self.fanout.primary()
    }

    /// Sends an event to the viewers, if any.
    pub fn publish(&self, event: LiveEvent) {
        match event {
            LiveEvent::Output { channel, bytes } => self.fanout.output(channel, &bytes),
            LiveEvent::Resize {
                channel,
                cols,
                rows,
            } => {
                self.fanout.resize(channel, cols, rows);
            }
            other => self.fanout.broadcast(&other),
        }
    }

    /// Output toward the user on `channel` (feeds its screen and the viewers).
    pub fn publish_output(&self, channel: u32, bytes: &Bytes) {
        self.fanout.output(channel, bytes);
    }

    /// A channel got a terminal of this size: its screen is kept for viewers.
    pub fn channel_terminal(&self, channel: u32, cols: u16, rows: u16) {
        self.fanout.terminal(channel, cols, rows);
    }

    /// A terminal channel was resized.
    pub fn channel_resized(&self, channel: u32, cols: u16, rows: u16) {
        self.fanout.resize(channel, cols, rows);
    }

    /// A channel closed.
    pub fn channel_closed(&self, channel: u32) {
        self.fanout.closed(channel);
    }

    /// Counts bytes.
    pub fn count(&self, direction: Direction, n: usize) {
        let c = match direction {
            Direction::ToTarget => &self.counters.to_target,
            Direction::ToUser => &self.counters.to_user,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What a [`Viewer`] receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewerItem {
    /// Reset the terminal and draw this screen.
    Screen(Screen),
    /// An event (output of the followed channel, a resize, a state change...).
    Event(LiveEvent),
}

/// One viewer of a live session: the current screen first, then the stream. Dropping it
/// detaches it (and announces its departure).
pub struct Viewer {
    control: Arc<SessionControl>,
    id: u64,
    rx: mpsc::Receiver<LiveEvent>,
    slot: Arc<SlotHandle>,
    info: Option<ViewerInfo>,
    last_screen: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Viewer {
    /// The session's control.
    pub fn control(&self) -> &Arc<SessionControl> {
        &self.control
    }

    /// The next thing to show; `None` once the viewer was cut off (it read nothing for too
    /// long) or the session is gone. Cancel-safe.
    pub async fn next(&mut self) -> Option<ViewerItem> {
        loop {
            if self.slot.behind() {
                // Drain what is queued: events are kept, stale output is dropped.
                match self.rx.try_recv() {
                    Ok(LiveEvent::Output { bytes, .. }) => {
                        self.slot.consumed(bytes.len());
                        continue;
                    }
                    Ok(event) => return Some(ViewerItem::Event(event)),
                    Err(mpsc::error::TryRecvError::Disconnected) => return None,
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                if let Some(last) = self.last_screen {
                    let next = last + self.control.fanout.resync_every();
                    if tokio::time::Instant::now() < next {
                        tokio::time::sleep_until(next).await;
                        continue;
                    }
                }
                self.last_screen = Some(tokio::time::Instant::now());
                if let Some(screen) = self.control.fanout.snapshot(&self.slot) {
                    return Some(ViewerItem::Screen(screen));
                }
                continue;
            }
            let received = tokio::select! {
                biased;
                r = self.rx.recv() => r,
                // Screen mode or a lost budget: nothing more is queued for this viewer.
                () = self.slot.fell_behind() => continue,
            };
            match received {
                Some(LiveEvent::Output { channel, bytes }) => {
                    self.slot.consumed(bytes.len());
                    if self.slot.behind() {
                        continue;
                    }
                    return Some(ViewerItem::Event(LiveEvent::Output { channel, bytes }));
                }
                Some(event) => return Some(ViewerItem::Event(event)),
                None => return None,
            }
        }
    }

    /// Events only, screens skipped (tests and simple observers).
    pub async fn recv(&mut self) -> Option<LiveEvent> {
        loop {
            match self.next().await? {
                ViewerItem::Event(e) => return Some(e),
                ViewerItem::Screen(_) => continue,
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if let Some(info) = self.control.fanout.detach(self.id) {
            self.control
                .fanout
                .broadcast(&LiveEvent::Viewers(self.control.fanout.viewer_list()));
            self.control.report(&info.name, LiveReportKind::ViewerLeft);
        }
    }
}

/// A live proxied session of any protocol, as the registry and the control side see it.
///
/// ```
/// use std::sync::Arc;
/// use psm_proxy::{ProxySession, SessionControl, SessionInfo};
///
/// struct Demo { info: SessionInfo, control: Arc<SessionControl> }
/// impl ProxySession for Demo {
///     fn info(&self) -> &SessionInfo { &self.info }
///     fn control(&self) -> &Arc<SessionControl> { &self.control }
/// }
/// ```
pub trait ProxySession: Send + Sync {
    /// Who is connected to what.
    fn info(&self) -> &SessionInfo;

    /// Pause, resume, terminate, inject, watch.
    fn control(&self) -> &Arc<SessionControl>;

    /// Open channels (SSH) or virtual channels (RDP): user-side ids.
    fn channels(&self) -> Vec<u32> {
        Vec::new()
    }

    /// The protocol crate's own view of the session, for callers that know the protocol
    /// (the RDP crate hands back the session's decoded desktop this way):
    /// `session.as_any().and_then(|a| a.downcast_ref::<T>())`. The registry itself stays
    /// protocol-free; `None` (the default) offers nothing beyond this trait.
    fn as_any(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        None
    }

    /// The session's desktop, for protocols that show one (RDP): the live server then sends
    /// viewers its tiles instead of a terminal, and takes keyboard and pointer input from a
    /// viewer with control ([`crate::live::desktop`]). `None` (the default): a terminal
    /// session, or nothing to show.
    fn desktop(&self) -> Option<Arc<dyn crate::live::desktop::Desktop>> {
        None
    }
}

/// Ends a session in the control plane, as every gateway does once its recording is sealed:
/// EndSession with the gateway's commitment to the recording (`None`: none was sealed),
/// tried up to three times while the error is transient. A failure is logged: the control
/// plane's watchdog ends the session once its heartbeats stop (without a commitment).
pub async fn end_in_control_plane(
    control_plane: &dyn psm_core::SessionLifecycle,
    session: SessionId,
    by: &psm_core::ProcessInstance,
    recording: Option<&psm_core::RecordingCommitment>,
) {
    for attempt in 0..3u32 {
        match control_plane
            .end_session_committed(session, by, recording)
            .await
        {
            Ok(()) => return,
            Err(e) if e.is_transient() && attempt < 2 => {
                tracing::warn!(session_id = %session, error = %e, "EndSession failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
            }
            Err(e) => {
                tracing::error!(session_id = %session, error = %e,
                    "EndSession failed; the control plane's watchdog will end the session \
                     once its heartbeats stop");
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn actions_are_noted_once_and_viewers_see_state() {
        let c = Arc::new(SessionControl::new());
        c.set_user("alice");
        let mut notes = c.take_notes().unwrap();
        c.channel_terminal(0, 80, 24);
        let mut v = c.join(Some(("bob", LiveMode::Control))).unwrap();
        assert!(matches!(
            v.next().await,
            Some(ViewerItem::Event(LiveEvent::Viewers(_)))
        ));
        assert!(matches!(v.next().await, Some(ViewerItem::Screen(_))));
        assert!(c.pause_by("bob", "look"));
        assert!(!c.pause_by("bob", "again"), "already paused");
        match v.next().await {
            Some(ViewerItem::Event(LiveEvent::State(s))) => {
                assert!(s.paused && s.by == "bob" && s.reason == "look")
            }
            other => panic!("{other:?}"),
        }
        c.viewer_input("bob", &b"ls"[..]);
        c.user_typed();
        let mut kinds = Vec::new();
        while let Ok(n) = notes.try_recv() {
            kinds.push(n);
        }
        assert!(matches!(
            &kinds[0],
            ControlNote::Report {
                kind: LiveReportKind::ViewerJoined {
                    mode: LiveMode::Control
                },
                ..
            }
        ));
        assert!(kinds.contains(&ControlNote::Notice("bob is typing".into())));
        assert!(kinds.contains(&ControlNote::Notice("alice is typing".into())));
        let (id, rx) = c.request_approval("rm -rf /x", "r", None);
        assert!(c.decide(id, false, "bob", "no"));
        assert!(!c.decide(id, true, "bob", ""), "decided once");
        assert!(!rx.await.unwrap().approved);
        drop(v);
        assert!(c.viewers().is_empty());
    }

    use std::time::Duration;

    #[tokio::test]
    async fn bulk_output_reaches_a_viewer_as_screens_not_as_the_stream() {
        let c = Arc::new(SessionControl::with_viewers(FanoutConfig {
            stream_rate: 64 << 10,
            resync_every: Duration::from_millis(20),
            ..FanoutConfig::default()
        }));
        c.channel_terminal(0, 80, 24);
        let mut v = c.join(None).unwrap();
        assert!(matches!(v.next().await, Some(ViewerItem::Screen(_))));
        c.publish_output(0, &Bytes::from_static(b"typed\r\n"));
        assert!(matches!(
            v.next().await,
            Some(ViewerItem::Event(LiveEvent::Output { .. }))
        ));
        // 1 MiB at once is far over 64 KiB/s: the viewer, waiting for output, is woken and
        // gets one screen with the end of it instead of the megabyte.
        let mut bulk = b"line\r\n".repeat(1 << 17);
        bulk.extend_from_slice(b"the last line");
        for chunk in bulk.chunks(32 << 10) {
            c.publish_output(0, &Bytes::copy_from_slice(chunk));
        }
        let mut streamed = 0;
        let screen = loop {
            match tokio::time::timeout(Duration::from_secs(10), v.next()).await {
                Ok(Some(ViewerItem::Screen(s))) if s.data.contains("the last line") => break s,
                Ok(Some(ViewerItem::Screen(_))) => {}
                Ok(Some(ViewerItem::Event(LiveEvent::Output { bytes, .. }))) => {
                    streamed += bytes.len()
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(screen.channel, 0);
        assert!(streamed <= 64 << 10, "streamed {streamed} bytes");
    }
}
