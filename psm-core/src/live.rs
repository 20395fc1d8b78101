//! Live control of sessions across processes: tickets to watch or use a session through its
//! gateway, commands (pause, resume, lock, unlock, terminate, approve, deny) queued for the
//! gateway that runs a session, and the reports gateways send back (which become audit
//! events, and so SIEM events).
//!
//! The [`LiveHub`] holds this in the control plane's memory; [`LocalControlPlane`]
//! (`crate::LocalControlPlane`) owns one and serves it through the [`ControlPlane`] calls
//! [`redeem_live_ticket`](crate::ControlPlane::redeem_live_ticket),
//! [`live_commands`](crate::ControlPlane::live_commands) and
//! [`live_report`](crate::ControlPlane::live_report); `psm-server` serves the same over HTTP
//! (`docs/live.md`).
//!
//! ```
//! # async fn demo() -> Result<(), psm_core::CoreError> {
//! use std::time::Duration;
//! use psm_core::live::{LiveAction, LiveConfig, LiveHub, LiveMode, TicketScope};
//! use psm_core::{ProcessInstance, SessionId};
//!
//! let hub = LiveHub::new(LiveConfig::default());
//! let session = SessionId::new();
//! let ticket = hub.issue(TicketScope::Join { session, mode: LiveMode::View }, "bob", None)?;
//! let grant = hub.redeem(ticket.as_str())?;
//! assert_eq!(grant.actor, "bob");
//! assert!(hub.redeem(ticket.as_str()).is_err(), "single use");
//!
//! let gw = ProcessInstance::new("gw-1")?;
//! let id = hub.queue(&gw, session, LiveAction::Pause, "bob", Some("look".into()), None);
//! let commands = hub.take_commands(&gw, Duration::from_secs(1), None).await;
//! assert_eq!(commands[0].id, id);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::CoreError;
use crate::id::{ProcessInstance, SessionId};
use crate::policy::Action;
use crate::timestamp::Timestamp;

/// The prefix of every ticket.
pub const TICKET_PREFIX: &str = "psmt_";
/// A ticket's length: the prefix and 43 base64url characters (256 bits).
pub const TICKET_LEN: usize = TICKET_PREFIX.len() + 43;
/// The longest reason, command or name a command or report carries (characters); longer
/// text is cut.
pub const MAX_TEXT: usize = 512;
/// The most reports one [`live_report`](crate::ControlPlane::live_report) call carries.
pub const MAX_REPORTS: usize = 256;
/// The longest a gateway's long poll may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How a viewer joins a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveMode {
    /// Watch (and moderate: pause, lock, terminate, approve).
    View,
    /// Watch, moderate and type (four-eyes).
    Control,
}

impl LiveMode {
    /// `view` or `control`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LiveMode::View => "view",
            LiveMode::Control => "control",
        }
    }
}

impl std::str::FromStr for LiveMode {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "view" | "read" | "watch" => Ok(LiveMode::View),
            "control" => Ok(LiveMode::Control),
            _ => Err(CoreError::InvalidInput {
                field: "Mode",
                reason: "must be view or control".into(),
            }),
        }
    }
}

/// What a ticket lets its holder do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TicketScope {
    /// Watch (or control) a live session.
    Join {
        /// The session.
        session: SessionId,
        /// How.
        mode: LiveMode,
    },
    /// Open a browser terminal: `user` reaches `target` through the gateway.
    Terminal {
        /// The PSM user.
        user: String,
        /// The target's name.
        target: String,
    },
}

/// The viewer's screen, as JoinSession gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewport {
    /// Pixels (or columns, for a terminal ticket).
    pub width: u32,
    /// Pixels (or rows, for a terminal ticket).
    pub height: u32,
    /// Dots per inch (0: unknown).
    pub dpi: u32,
}

/// What a redeemed ticket grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketGrant {
    /// What it is for.
    pub scope: TicketScope,
    /// Who it was issued to (the admin, or the web UI's logged-in user).
    pub actor: String,
    /// The viewer's screen, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport: Option<Viewport>,
    /// When it was issued.
    pub issued: Timestamp,
}

/// A ticket: a bearer credential, shown only to whoever asked for it. `Debug` and `Display`
/// print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct LiveTicket(String);

impl fmt::Debug for LiveTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LiveTicket(***)")
    }
}

impl fmt::Display for LiveTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl LiveTicket {
    /// A ticket from text, checked for shape (prefix, length, alphabet) before anything is
    /// looked up.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let ok = text.len() == TICKET_LEN
            && text.starts_with(TICKET_PREFIX)
            && text[TICKET_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(CoreError::Unauthenticated(
                "the live ticket is malformed".into(),
            ))
        }
    }

    /// The ticket text (for the URL that carries it; never log it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn generate() -> Result<Self, CoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| CoreError::Unavailable {
                message: format!("random source failed: {e}"),
                source: None,
            })?;
        Ok(Self(format!(
            "{TICKET_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    fn hash(text: &str) -> [u8; 32] {
        blake3::derive_key("psm live ticket v1", text.as_bytes())
    }
}

/// An action on a live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveAction {
    /// Hold the user's input and output.
    Pause,
    /// Let it flow again.
    Resume,
    /// Refuse the user's input until unlocked.
    Lock,
    /// Undo a lock.
    Unlock,
    /// End the session.
    Terminate,
    /// Let a held command run.
    Approve,
    /// Discard a held command.
    Deny,
    /// Close the websockets of one viewer (named in the command's `viewer`): a user removed,
    /// disabled or changed in the directory, or an admin's kick.
    Disconnect,
}

impl LiveAction {
    /// Every action.
    pub const ALL: [LiveAction; 8] = [
        LiveAction::Pause,
        LiveAction::Resume,
        LiveAction::Lock,
        LiveAction::Unlock,
        LiveAction::Terminate,
        LiveAction::Approve,
        LiveAction::Deny,
        LiveAction::Disconnect,
    ];

    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            LiveAction::Pause => "pause",
            LiveAction::Resume => "resume",
            LiveAction::Lock => "lock",
            LiveAction::Unlock => "unlock",
            LiveAction::Terminate => "terminate",
            LiveAction::Approve => "approve",
            LiveAction::Deny => "deny",
            LiveAction::Disconnect => "disconnect",
        }
    }

    /// Whether the action decides an approval (and so needs its id).
    pub const fn needs_approval_id(self) -> bool {
        matches!(self, LiveAction::Approve | LiveAction::Deny)
    }
}

impl std::str::FromStr for LiveAction {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LiveAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| CoreError::InvalidInput {
                field: "action",
                reason: "must be pause, resume, lock, unlock, terminate, approve, deny or \
                         disconnect"
                    .into(),
            })
    }
}

/// A command for the gateway running a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveCommand {
    /// Its id (the gateway reports it back when done).
    pub id: u64,
    /// The session.
    pub session: SessionId,
    /// What to do.
    pub action: LiveAction,
    /// Who asked.
    pub actor: String,
    /// Why (shown to the user for pause, lock, terminate, deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The approval an approve or deny decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<u64>,
    /// The viewer a disconnect closes (by the name its ticket was issued to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer: Option<String>,
}

/// A viewer of a live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerInfo {
    /// Who.
    pub name: String,
    /// How.
    pub mode: LiveMode,
}

/// A command a policy holds until someone decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    /// Its id, unique within the session.
    pub id: u64,
    /// The held command line.
    pub command: String,
    /// The rule that asked for approval.
    pub rule: String,
    /// The rule's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was held.
    pub requested_at: Timestamp,
}

/// What a gateway reports about a live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LiveReportKind {
    /// The session is live on the reporting gateway (sent when it starts).
    Started,
    /// Paused.
    Paused {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Resumed.
    Resumed,
    /// Locked.
    Locked {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Unlocked.
    Unlocked,
    /// Terminated by a live action or a policy.
    Terminated {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// A viewer joined.
    ViewerJoined {
        /// How.
        mode: LiveMode,
    },
    /// A viewer left.
    ViewerLeft,
    /// A policy rule fired.
    Policy {
        /// The rule.
        rule: String,
        /// Its action.
        action: Action,
        /// What it fired on (`command "…"`, `output`, `upload "/path"`, ...).
        subject: String,
        /// What the gateway did.
        outcome: String,
    },
    /// A command is held for approval.
    ApprovalRequested(PendingApproval),
    /// An approval was decided.
    ApprovalResolved {
        /// Which.
        id: u64,
        /// Approved or denied.
        approved: bool,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// A queued command was applied (or could not be).
    CommandDone {
        /// The command's id.
        command: u64,
        /// Whether it applied.
        ok: bool,
        /// What happened.
        #[serde(default)]
        message: String,
    },
    /// The session ended on the gateway.
    Ended,
}

/// One report: who did what to which session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveReport {
    /// The session.
    pub session: SessionId,
    /// Who acted (an admin, a viewer, `policy`, `gateway`).
    pub actor: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: LiveReportKind,
}

impl LiveReport {
    /// The audit detail (`live: …` or `policy: …`), or `None` for reports that are state only
    /// (command acknowledgements, the session's start and end).
    pub fn audit_detail(&self, gateway: &ProcessInstance) -> Option<String> {
        let by = cut(&self.actor);
        let reason = |r: &str| {
            if r.is_empty() {
                String::new()
            } else {
                format!(" (reason: {})", cut(r))
            }
        };
        let text = match &self.kind {
            LiveReportKind::Started
            | LiveReportKind::Ended
            | LiveReportKind::CommandDone { .. } => {
                return None;
            }
            LiveReportKind::Paused { reason: r } => format!("live: paused by {by}{}", reason(r)),
            LiveReportKind::Resumed => format!("live: resumed by {by}"),
            LiveReportKind::Locked { reason: r } => format!("live: locked by {by}{}", reason(r)),
            LiveReportKind::Unlocked => format!("live: unlocked by {by}"),
            LiveReportKind::Terminated { reason: r } => {
                format!("live: terminated by {by}{}", reason(r))
            }
            LiveReportKind::ViewerJoined { mode } => {
                format!("live: viewer {by} joined ({})", mode.as_str())
            }
            LiveReportKind::ViewerLeft => format!("live: viewer {by} left"),
            LiveReportKind::Policy {
                rule,
                action,
                subject,
                outcome,
            } => format!(
                "policy: rule {} ({action}) on {}: {}",
                cut(rule),
                cut(subject),
                cut(outcome)
            ),
            LiveReportKind::ApprovalRequested(a) => format!(
                "policy: rule {} (require-approval) on command {:?}: held for approval {}",
                cut(&a.rule),
                cut(&a.command),
                a.id
            ),
            LiveReportKind::ApprovalResolved {
                id,
                approved,
                reason: r,
            } => format!(
                "live: approval {id} {} by {by}{}",
                if *approved { "approved" } else { "denied" },
                reason(r)
            ),
        };
        Some(format!("{text} via gateway {gateway}"))
    }
}

/// Cuts text to [`MAX_TEXT`] characters and replaces control characters (so a report can
/// never forge lines in a syslog stream or a terminal).
pub fn cut(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What the hub knows about one live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveSessionState {
    /// The session.
    pub session: SessionId,
    /// The gateway that reported it.
    pub gateway: ProcessInstance,
    /// Paused now.
    pub paused: bool,
    /// Locked now.
    pub locked: bool,
    /// Who watches.
    pub viewers: Vec<ViewerInfo>,
    /// Commands held for approval.
    pub approvals: Vec<PendingApproval>,
}

/// The hub's settings.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// How long a ticket stays valid.
    pub ticket_ttl: Duration,
    /// Whether admins may join with control (four-eyes typing).
    pub allow_control: bool,
    /// Most tickets outstanding at once (issuing more is refused until some expire).
    pub max_tickets: usize,
    /// Most commands queued for one gateway (older ones are dropped first).
    pub max_queued: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            ticket_ttl: Duration::from_secs(60),
            allow_control: true,
            max_tickets: 10_000,
            max_queued: 1024,
        }
    }
}

struct Ticket {
    grant: TicketGrant,
    expires: Instant,
}

#[derive(Default)]
struct GatewayQueue {
    commands: VecDeque<LiveCommand>,
    notify: Arc<Notify>,
    live_url: Option<String>,
}

#[derive(Default)]
struct Inner {
    tickets: HashMap<[u8; 32], Ticket>,
    gateways: HashMap<ProcessInstance, GatewayQueue>,
    sessions: HashMap<SessionId, LiveSessionState>,
    done: HashMap<u64, (bool, String)>,
    waiting: HashMap<u64, Arc<Notify>>,
    next_command: u64,
}

/// Tickets, command queues and live state, in memory (see the module docs).
#[derive(Clone)]
pub struct LiveHub {
    config: Arc<LiveConfig>,
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("LiveHub")
            .field("tickets", &inner.tickets.len())
            .field("gateways", &inner.gateways.len())
            .field("sessions", &inner.sessions.len())
            .finish()
    }
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new(LiveConfig::default())
    }
}

impl LiveHub {
    /// An empty hub.
    pub fn new(config: LiveConfig) -> Self {
        Self {
            config: Arc::new(config),
            inner: Arc::new(Mutex::new(Inner {
                next_command: 1,
                ..Inner::default()
            })),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a ticket. The caller checked the actor's rights (an admin API key, a logged-in
    /// web user) and, for a join, that the session is live.
    pub fn issue(
        &self,
        scope: TicketScope,
        actor: &str,
        viewport: Option<Viewport>,
    ) -> Result<LiveTicket, CoreError> {
        if let TicketScope::Join {
            mode: LiveMode::Control,
            ..
        } = scope
            && !self.config.allow_control
        {
            return Err(CoreError::Forbidden(
                "joining a session with control is not allowed by this deployment's policy".into(),
            ));
        }
        let ticket = LiveTicket::generate()?;
        let now = Instant::now();
        let mut inner = self.lock();
        inner.tickets.retain(|_, t| t.expires > now);
        if inner.tickets.len() >= self.config.max_tickets {
            return Err(CoreError::Unavailable {
                message: format!(
                    "{} live tickets are outstanding; try again when some expire",
                    inner.tickets.len()
                ),
                source: None,
            });
        }
        inner.tickets.insert(
            LiveTicket::hash(ticket.as_str()),
            Ticket {
                grant: TicketGrant {
                    scope,
                    actor: cut(actor),
                    viewport,
                    issued: Timestamp::now_utc(),
                },
                expires: now + self.config.ticket_ttl,
            },
        );
        Ok(ticket)
    }

    /// Redeems a ticket once: the grant, or `Unauthenticated` for a malformed, unknown,
    /// expired or already used ticket (one message for all, so a guesser learns nothing).
    pub fn redeem(&self, ticket: &str) -> Result<TicketGrant, CoreError> {
        let refused = || {
            CoreError::Unauthenticated(
                "the live ticket is unknown, expired or already used; ask for a new one".into(),
            )
        };
        let ticket = LiveTicket::parse(ticket).map_err(|_| refused())?;
        let mut inner = self.lock();
        let found = inner.tickets.remove(&LiveTicket::hash(ticket.as_str()));
        match found {
            Some(t) if t.expires > Instant::now() => Ok(t.grant),
            _ => Err(refused()),
        }
    }

    /// Ends what `user` holds live, for a user removed, disabled or changed in the directory
    /// (docs/threat-model.md M9): their unredeemed tickets are forgotten, and every gateway
    /// with a session they watch is told to close their websockets (a `disconnect` command
    /// for each such session). Returns the number of sessions told.
    pub fn disconnect_user(&self, user: &str, actor: &str) -> usize {
        let mut inner = self.lock();
        inner.tickets.retain(|_, t| t.grant.actor != user);
        let watched: Vec<(SessionId, ProcessInstance)> = inner
            .sessions
            .values()
            .filter(|s| s.viewers.iter().any(|v| v.name == user))
            .map(|s| (s.session, s.gateway.clone()))
            .collect();
        let max = self.config.max_queued.max(1);
        for (session, gateway) in &watched {
            let id = inner.next_command;
            inner.next_command += 1;
            let q = inner.gateways.entry(gateway.clone()).or_default();
            while q.commands.len() >= max {
                q.commands.pop_front();
            }
            q.commands.push_back(LiveCommand {
                id,
                session: *session,
                action: LiveAction::Disconnect,
                actor: cut(actor),
                reason: Some("the account changed".into()),
                approval: None,
                viewer: Some(cut(user)),
            });
            q.notify.notify_one();
        }
        watched.len()
    }

    /// Queues a command for `gateway`; returns its id.
    pub fn queue(
        &self,
        gateway: &ProcessInstance,
        session: SessionId,
        action: LiveAction,
        actor: &str,
        reason: Option<String>,
        approval: Option<u64>,
    ) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_command;
        inner.next_command += 1;
        let max = self.config.max_queued.max(1);
        let q = inner.gateways.entry(gateway.clone()).or_default();
        while q.commands.len() >= max {
            q.commands.pop_front();
        }
        q.commands.push_back(LiveCommand {
            id,
            session,
            action,
            actor: cut(actor),
            reason: reason.map(|r| cut(&r)),
            approval,
            viewer: None,
        });
        q.notify.notify_one();
        if inner.waiting.len() >= 4096 {
            // Nobody waits this long; forget the oldest confirmations.
            inner.waiting.clear();
            inner.done.clear();
        }
        inner.waiting.insert(id, Arc::new(Notify::new()));
        id
    }

    /// The commands queued for `gateway`, waiting up to `wait` (at most [`MAX_WAIT`]) for
    /// the first. `live_url` is the gateway's websocket base URL, remembered for tickets.
    pub async fn take_commands(
        &self,
        gateway: &ProcessInstance,
        wait: Duration,
        live_url: Option<&str>,
    ) -> Vec<LiveCommand> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            let notify = {
                let mut inner = self.lock();
                let q = inner.gateways.entry(gateway.clone()).or_default();
                if let Some(url) = live_url {
                    q.live_url = Some(cut(url));
                }
                if !q.commands.is_empty() {
                    return q.commands.drain(..).collect();
                }
                q.notify.clone()
            };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return Vec::new(),
            }
        }
    }

    /// The websocket base URL `gateway` advertised (`wss://host:port`), if any.
    pub fn gateway_url(&self, gateway: &ProcessInstance) -> Option<String> {
        self.lock()
            .gateways
            .get(gateway)
            .and_then(|q| q.live_url.clone())
    }

    /// Waits up to `timeout` for the gateway to report command `id` done.
    pub async fn wait_done(&self, id: u64, timeout: Duration) -> Option<(bool, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notify = {
                let mut inner = self.lock();
                if let Some(d) = inner.done.remove(&id) {
                    inner.waiting.remove(&id);
                    return Some(d);
                }
                inner.waiting.get(&id).cloned()?
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().done.contains_key(&id) {
                continue;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let mut inner = self.lock();
                    inner.waiting.remove(&id);
                    inner.done.remove(&id);
                    return None;
                }
            }
        }
    }

    /// Applies a gateway's report to the live state.
    pub fn apply(&self, gateway: &ProcessInstance, report: &LiveReport) {
        let mut inner = self.lock();
        if let LiveReportKind::CommandDone {
            command,
            ok,
            message,
        } = &report.kind
        {
            if let Some(n) = inner.waiting.get(command).cloned() {
                inner.done.insert(*command, (*ok, cut(message)));
                n.notify_waiters();
            }
            return;
        }
        if report.kind == LiveReportKind::Ended {
            inner.sessions.remove(&report.session);
            return;
        }
        let s = inner
            .sessions
            .entry(report.session)
            .or_insert_with(|| LiveSessionState {
                session: report.session,
                gateway: gateway.clone(),
                paused: false,
                locked: false,
                viewers: Vec::new(),
                approvals: Vec::new(),
            });
        s.gateway = gateway.clone();
        match &report.kind {
            LiveReportKind::Paused { .. } => s.paused = true,
            LiveReportKind::Resumed => s.paused = false,
            LiveReportKind::Locked { .. } => s.locked = true,
            LiveReportKind::Unlocked => s.locked = false,
            LiveReportKind::ViewerJoined { mode } if s.viewers.len() < 1024 => {
                s.viewers.push(ViewerInfo {
                    name: cut(&report.actor),
                    mode: *mode,
                });
            }
            LiveReportKind::ViewerLeft => {
                if let Some(i) = s.viewers.iter().position(|v| v.name == report.actor) {
                    s.viewers.remove(i);
                }
            }
            LiveReportKind::ApprovalRequested(a) if s.approvals.len() < 1024 => {
                let mut a = a.clone();
                a.command = cut(&a.command);
                a.rule = cut(&a.rule);
                a.message = a.message.map(|m| cut(&m));
                s.approvals.push(a);
            }
            LiveReportKind::ApprovalResolved { id, .. } => s.approvals.retain(|a| a.id != *id),
            _ => {}
        }
    }

    /// The live state of one session, if its gateway reported any.
    pub fn state(&self, session: SessionId) -> Option<LiveSessionState> {
        self.lock().sessions.get(&session).cloned()
    }

    /// Forgets sessions not in `live` (ended ones whose gateway vanished).
    pub fn retain_sessions(&self, live: &[SessionId]) {
        self.lock().sessions.retain(|id, _| live.contains(id));
    }
}

/// Builds the URL a viewer connects to: `base` is what the caller named (the seed's
/// `GatewayServerAddress`: a host, `host:port`, or a URL with a `ws`, `wss`, `http` or
/// `https` scheme) or, when empty, the URL the gateway advertised. `path_and_query` starts
/// with `/`.
///
/// ```
/// use psm_core::live::connection_url;
/// assert_eq!(connection_url("gw.example.com:2223", None, "/live/x").unwrap(),
///     "wss://gw.example.com:2223/live/x");
/// assert_eq!(connection_url("http://127.0.0.1:2223/", None, "/live/x").unwrap(),
///     "ws://127.0.0.1:2223/live/x");
/// assert_eq!(connection_url("", Some("ws://127.0.0.1:9"), "/t").unwrap(), "ws://127.0.0.1:9/t");
/// assert!(connection_url("gw/../x", None, "/t").is_err());
/// ```
pub fn connection_url(
    base: &str,
    advertised: Option<&str>,
    path_and_query: &str,
) -> Result<String, CoreError> {
    let bad = || CoreError::InvalidInput {
        field: "GatewayServerAddress",
        reason: "must be a host name or address, optionally with :port, or a ws(s):// or \
                 http(s):// URL of the gateway"
            .into(),
    };
    let base = base.trim();
    let base = if base.is_empty() {
        advertised.ok_or_else(|| CoreError::InvalidInput {
            field: "GatewayServerAddress",
            reason: "is empty and the session's gateway advertised no live URL".into(),
        })?
    } else {
        base
    };
    let (scheme, rest) = match base.split_once("://") {
        Some((s, r)) => match s.to_ascii_lowercase().as_str() {
            "ws" | "http" => ("ws", r),
            "wss" | "https" => ("wss", r),
            _ => return Err(bad()),
        },
        None => ("wss", base),
    };
    let host = rest.trim_end_matches('/');
    let valid = !host.is_empty()
        && host.len() <= 261
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !valid {
        return Err(bad());
    }
    Ok(format!("{scheme}://{host}{path_and_query}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn gw() -> ProcessInstance {
        ProcessInstance::new("gw-1").unwrap()
    }

    #[test]
    fn tickets_are_single_use_and_expire() {
        let hub = LiveHub::new(LiveConfig {
            ticket_ttl: Duration::from_millis(0),
            ..LiveConfig::default()
        });
        let t = hub
            .issue(
                TicketScope::Terminal {
                    user: "a".into(),
                    target: "t".into(),
                },
                "a",
                None,
            )
            .unwrap();
        assert!(hub.redeem(t.as_str()).is_err(), "expired");
        let hub = LiveHub::default();
        let t = hub
            .issue(
                TicketScope::Join {
                    session: SessionId::new(),
                    mode: LiveMode::Control,
                },
                "bob",
                None,
            )
            .unwrap();
        assert_eq!(t.as_str().len(), TICKET_LEN);
        assert_eq!(format!("{t:?} {t}"), "LiveTicket(***) ***");
        let mut forged = t.as_str().to_owned();
        forged.pop();
        forged.push(if t.as_str().ends_with('A') { 'B' } else { 'A' });
        assert!(hub.redeem(&forged).is_err());
        assert!(hub.redeem("").is_err());
        assert!(hub.redeem(&"x".repeat(10_000)).is_err());
        assert!(hub.redeem(t.as_str()).is_ok());
        assert!(hub.redeem(t.as_str()).is_err());
    }

    #[test]
    fn control_can_be_refused_and_tickets_are_bounded() {
        let hub = LiveHub::new(LiveConfig {
            allow_control: false,
            max_tickets: 2,
            ..LiveConfig::default()
        });
        let s = SessionId::new();
        let e = hub
            .issue(
                TicketScope::Join {
                    session: s,
                    mode: LiveMode::Control,
                },
                "bob",
                None,
            )
            .unwrap_err();
        assert!(matches!(e, CoreError::Forbidden(_)));
        for _ in 0..2 {
            hub.issue(
                TicketScope::Join {
                    session: s,
                    mode: LiveMode::View,
                },
                "bob",
                None,
            )
            .unwrap();
        }
        assert!(
            hub.issue(
                TicketScope::Join {
                    session: s,
                    mode: LiveMode::View
                },
                "bob",
                None
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn commands_reach_a_waiting_gateway_and_acks_reach_the_caller() {
        let hub = LiveHub::default();
        let s = SessionId::new();
        let h = hub.clone();
        let poller = tokio::spawn(async move {
            h.take_commands(&gw(), Duration::from_secs(30), Some("ws://g"))
                .await
        });
        tokio::task::yield_now().await;
        let id = hub.queue(&gw(), s, LiveAction::Lock, "bob", None, None);
        let got = poller.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action, LiveAction::Lock);
        assert_eq!(hub.gateway_url(&gw()).as_deref(), Some("ws://g"));
        let h = hub.clone();
        let waiter = tokio::spawn(async move { h.wait_done(id, Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        hub.apply(
            &gw(),
            &LiveReport {
                session: s,
                actor: "bob".into(),
                kind: LiveReportKind::CommandDone {
                    command: id,
                    ok: true,
                    message: "locked".into(),
                },
            },
        );
        assert_eq!(waiter.await.unwrap(), Some((true, "locked".into())));
        assert_eq!(hub.wait_done(999, Duration::from_millis(1)).await, None);
    }

    #[test]
    fn reports_update_state_and_read_as_audit_text() {
        let hub = LiveHub::default();
        let s = SessionId::new();
        let r = |actor: &str, kind| LiveReport {
            session: s,
            actor: actor.into(),
            kind,
        };
        hub.apply(
            &gw(),
            &r(
                "bob",
                LiveReportKind::ViewerJoined {
                    mode: LiveMode::View,
                },
            ),
        );
        hub.apply(
            &gw(),
            &r(
                "bob",
                LiveReportKind::Paused {
                    reason: "why\r\nforged".into(),
                },
            ),
        );
        let st = hub.state(s).unwrap();
        assert!(st.paused && st.viewers.len() == 1);
        let text = r(
            "bob",
            LiveReportKind::Paused {
                reason: "why\r\nforged".into(),
            },
        )
        .audit_detail(&gw())
        .unwrap();
        assert_eq!(
            text,
            "live: paused by bob (reason: why  forged) via gateway gw-1"
        );
        hub.apply(&gw(), &r("bob", LiveReportKind::ViewerLeft));
        hub.apply(&gw(), &r("gateway", LiveReportKind::Ended));
        assert!(hub.state(s).is_none());
    }

    /// M9: a user removed from the directory loses what they hold live: unredeemed tickets,
    /// and a disconnect command for each session they watch, to that session's gateway.
    #[tokio::test]
    async fn a_changed_user_is_disconnected_from_every_session_they_watch() {
        let hub = LiveHub::default();
        let watched = SessionId::new();
        let other = SessionId::new();
        for (session, who) in [(watched, "bob"), (other, "carol")] {
            hub.apply(
                &gw(),
                &LiveReport {
                    session,
                    actor: who.into(),
                    kind: LiveReportKind::ViewerJoined {
                        mode: LiveMode::View,
                    },
                },
            );
        }
        let scope = TicketScope::Join {
            session: watched,
            mode: LiveMode::View,
        };
        let ticket = hub.issue(scope.clone(), "bob", None).unwrap();
        let carols = hub.issue(scope, "carol", None).unwrap();
        assert_eq!(hub.disconnect_user("bob", "directory"), 1);
        assert!(hub.redeem(ticket.as_str()).is_err(), "bob's ticket is gone");
        assert!(hub.redeem(carols.as_str()).is_ok(), "carol's is not");
        let commands = hub
            .take_commands(&gw(), Duration::from_millis(10), None)
            .await;
        assert_eq!(commands.len(), 1, "{commands:?}");
        let c = &commands[0];
        assert_eq!(
            (c.session, c.action, c.viewer.as_deref()),
            (watched, LiveAction::Disconnect, Some("bob"))
        );
        assert_eq!(hub.disconnect_user("nobody", "directory"), 0);
    }

    #[test]
    fn urls_are_built_from_addresses_only() {
        assert!(connection_url("ftp://x", None, "/a").is_err());
        assert!(connection_url("a b", None, "/a").is_err());
        assert!(connection_url("", None, "/a").is_err());
        assert_eq!(
            connection_url("[::1]:2223", None, "/a").unwrap(),
            "wss://[::1]:2223/a"
        );
    }
}
