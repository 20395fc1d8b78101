//! The command policy, enforced in the session: a [`Tap`] that feeds the
//! [`CommandTracker`] with every byte of each terminal channel, judges `exec` requests,
//! shells without a terminal line by line, output lines and file transfers, and acts on the
//! [`Decision`]s (`docs/policy.md`, "Enforcement"):
//!
//! | action | at the Enter of a command (held until decided) | after the fact (output, transfers, late judgements) |
//! |---|---|---|
//! | `allow` | forwarded | — |
//! | `alert` | forwarded; audit + SIEM event, recording event | the same |
//! | `require-approval` | the Enter waits (and the user's further input behind it) until an admin approves (forwarded) or denies (dropped, ^C sent to clear the line), or the approval times out (denied) | as `pause` |
//! | `pause` | the session is paused; the Enter is forwarded when an admin resumes (dropped if the session is terminated instead) | the session is paused |
//! | `lock` | dropped, ^C sent, the session locked (input refused until an admin unlocks) | the session is locked |
//! | `terminate` | dropped; the session ends with the rule's message | the session ends |
//!
//! Put it **before** the recorder in the session's taps ([`TapFactories`](crate::TapFactories)),
//! so what it holds or drops is recorded as it reached the target.
//!
//! ```no_run
//! # fn demo(directory: std::sync::Arc<dyn psm_core::directory::UserDirectory>,
//! #         recorder: std::sync::Arc<dyn psm_proxy::TapFactory>) -> Result<(), psm_core::CoreError> {
//! use std::sync::Arc;
//! use psm_core::policy::Policy;
//! use psm_proxy::TapFactories;
//! use psm_proxy::policy_tap::{Enforcement, PolicyTapFactory};
//!
//! let policy = Policy::from_toml(r#"
//!     [[rule]]
//!     name = "no-wipe"
//!     regex = '^rm\s+-\w*r\w*\s+/\S*$'
//!     action = "terminate"
//!     message = "Recursive deletes from / are not allowed"
//! "#)?;
//! let taps = TapFactories::new(vec![
//!     Arc::new(PolicyTapFactory::new(policy, directory, Enforcement::default())),
//!     recorder,
//! ]);
//! // GatewayDeps { taps: Arc::new(taps), .. }
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use psm_core::directory::DirectoryLookup;
use psm_core::live::LiveReportKind;
use psm_core::policy::{
    Action, Decision, LineSource, Policy, PolicyEvent, SessionPolicy, SessionScope,
    TransferDirection,
};
use tokio::sync::Notify;

use crate::error::ProxyError;
use crate::session::{ControlNote, SessionControl, SessionInfo};
use crate::tap::{
    ChannelInfo, ChannelPurpose, ChannelRequest, DataEvent, DataVerdict, Direction, RequestVerdict,
    Tap, TapFactory, TapSet, TransferReport, TransferRequest,
};
use crate::tracker::{CommandTracker, Feed, TrackerConfig};

/// ^C: what the gateway sends to discard a line whose Enter it dropped.
const INTERRUPT: &[u8] = b"\x03";
/// The longest line of a shell without a terminal kept while it is typed.
const MAX_PLAIN_LINE: usize = 64 * 1024;

/// How the policy is enforced.
#[derive(Clone, Copy, Debug)]
pub struct Enforcement {
    /// How long an Enter waits for the echo of its line before the line is judged without
    /// it (from the keystrokes; then late, from the screen).
    pub echo_timeout: Duration,
    /// How long a command waits for an approval before it is denied (`None`: forever).
    pub approval_timeout: Option<Duration>,
    /// The longest command line judged (characters).
    pub max_line: usize,
}

impl Default for Enforcement {
    fn default() -> Self {
        Self {
            echo_timeout: Duration::from_secs(2),
            approval_timeout: Some(Duration::from_secs(600)),
            max_line: crate::tracker::DEFAULT_MAX_LINE,
        }
    }
}

/// Makes a [`PolicyTap`] for each session, narrowed to its target and its user's roles (read
/// from the directory).
pub struct PolicyTapFactory {
    policy: Arc<Policy>,
    directory: Arc<dyn DirectoryLookup>,
    enforcement: Enforcement,
}

impl std::fmt::Debug for PolicyTapFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyTapFactory")
            .field("rules", &self.policy.len())
            .finish_non_exhaustive()
    }
}

impl PolicyTapFactory {
    /// A factory enforcing `policy`.
    pub fn new(
        policy: Arc<Policy>,
        directory: Arc<dyn DirectoryLookup>,
        enforcement: Enforcement,
    ) -> Self {
        Self {
            policy,
            directory,
            enforcement,
        }
    }
}

#[async_trait]
impl TapFactory for PolicyTapFactory {
    async fn taps(&self, info: &SessionInfo) -> Result<TapSet, ProxyError> {
        let roles = self
            .directory
            .user(&info.user)
            .await?
            .map(|u| u.roles)
            .unwrap_or_default();
        let scope = SessionScope::new(info.target.clone(), roles);
        let mut set = TapSet::new();
        set.push(Arc::new(PolicyTap::new(
            self.policy.for_session(&scope),
            self.enforcement,
        )));
        Ok(set)
    }
}

#[derive(Default)]
struct Chan {
    pty: Mutex<Option<(u16, u16)>>,
    tracker: Mutex<Option<CommandTracker>>,
    /// A shell or interpreter without a terminal: its input is a script, judged line by
    /// line before each line goes on.
    plain: Mutex<Option<Script>>,
    echo: Notify,
    /// The last command line this channel blocked (its late re-reading is not acted on
    /// twice).
    blocked: Mutex<Option<String>>,
}

/// The policy of one session (see the module docs).
pub struct PolicyTap {
    policy: SessionPolicy,
    enforcement: Enforcement,
    control: OnceLock<Arc<SessionControl>>,
    channels: Mutex<HashMap<u32, Arc<Chan>>>,
    /// Transfers judged as they started (`check_transfer`), not judged again when the
    /// protocol reports them done.
    checked: Mutex<HashSet<(String, Direction)>>,
}

/// Most started transfers remembered as judged.
const MAX_CHECKED: usize = 4096;

/// The input of a shell without a terminal, held back until a whole command is in.
#[derive(Default)]
struct Script {
    /// Bytes of the line being typed (not forwarded yet).
    line: Vec<u8>,
    /// Whole lines of a command that continues (`\`-newline, an open quote, a trailing
    /// `|`/`&&`/`||`): text as the shell joins it, and the bytes, not forwarded yet.
    text: String,
    held: Vec<u8>,
    lines: usize,
}

impl Script {
    /// Takes input bytes; returns the commands they complete: the text the shell runs
    /// (lines joined as it joins them), the bytes to forward, and whether a bound cut it.
    fn feed(&mut self, bytes: &[u8]) -> Vec<(String, Vec<u8>, bool)> {
        let mut done = Vec::new();
        for &b in bytes {
            self.line.push(b);
            let full = self.held.len() + self.line.len() >= MAX_PLAIN_LINE;
            if b != b'\n' && !full {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let text = String::from_utf8_lossy(&line);
            let text = text.strip_suffix('\n').unwrap_or(&text);
            self.text.push_str(text);
            self.held.extend_from_slice(&line);
            self.lines += 1;
            if !full && self.lines < MAX_SCRIPT_LINES && psm_core::policy::continues(&self.text) {
                if self.text.ends_with('\\') {
                    self.text.pop();
                } else {
                    self.text.push('\n');
                }
                continue;
            }
            let cut = full || self.lines >= MAX_SCRIPT_LINES;
            done.push((
                std::mem::take(&mut self.text),
                std::mem::take(&mut self.held),
                cut,
            ));
            self.lines = 0;
        }
        done
    }

    /// The input ended: what is left (a last line without a newline, or lines of a
    /// command that never completed) is what the shell runs at end of input; it is the
    /// last command, judged as the others.
    fn finish(&mut self) -> Option<(String, Vec<u8>, bool)> {
        let line = std::mem::take(&mut self.line);
        self.text.push_str(&String::from_utf8_lossy(&line));
        self.held.extend_from_slice(&line);
        self.lines = 0;
        let text = std::mem::take(&mut self.text);
        let held = std::mem::take(&mut self.held);
        (!held.is_empty()).then_some((text, held, false))
    }
}

/// The most lines one command of a script may span before it is judged as cut.
const MAX_SCRIPT_LINES: usize = 64;

/// Programs that read commands from their standard input when run without a terminal
/// (`ssh host sh`, `ssh host bash -s < script`, `echo ... | ssh host python3`).
const SCRIPT_READERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox", "python",
    "python2", "python3", "perl", "ruby", "node", "php", "lua", "tclsh", "psql", "mysql",
    "sqlite3",
];

/// Whether an exec request's command runs a shell or interpreter that reads its input
/// as a script (anywhere in it: `sudo sh`, `exec bash -s`, `cat | sh`).
fn reads_a_script(command: &str) -> bool {
    psm_core::policy::command_units(command)
        .commands
        .iter()
        .flatten()
        .any(|form| {
            let name = form.split(' ').next().unwrap_or_default();
            let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
            SCRIPT_READERS.contains(&name)
                || SCRIPT_READERS.contains(&form.split(' ').next().unwrap_or_default())
        })
}

/// The deciding rule's name and message, and what the decision was about, for reports.
fn describe(d: &Decision) -> (String, Option<String>, String) {
    let (rule, message) = match d.deciding_rule() {
        Some(m) => (m.name.to_string(), m.message.as_deref().map(str::to_owned)),
        None => ("default".to_owned(), None),
    };
    let subject = match &d.event {
        PolicyEvent::Command { line, .. } => format!("command {line:?}"),
        PolicyEvent::Output => "output".to_owned(),
        PolicyEvent::Transfer { path, direction } => format!(
            "{} {path:?}",
            match direction {
                TransferDirection::Upload => "upload",
                TransferDirection::Download => "download",
            }
        ),
        PolicyEvent::UnechoedInput { chars } => {
            format!("input typed without echo ({chars} characters)")
        }
        _ => "an event".to_owned(),
    };
    (rule, message, subject)
}

impl std::fmt::Debug for PolicyTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyTap").finish_non_exhaustive()
    }
}

/// What to do with the bytes or request a decision was about, mildest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Forward,
    Block,
    /// Blocked, and ^C goes in place of the bytes: the command's characters, already
    /// forwarded before its Enter, are discarded before the session ends (a target reading
    /// in cooked mode would run them at the end of input that closing sends).
    Interrupt,
}

impl Outcome {
    fn blocks(self) -> bool {
        self != Outcome::Forward
    }
}

impl PolicyTap {
    /// The policy of one session.
    pub fn new(policy: SessionPolicy, enforcement: Enforcement) -> Self {
        Self {
            policy,
            enforcement,
            control: OnceLock::new(),
            channels: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashSet::new()),
        }
    }

    fn chan(&self, id: u32) -> Arc<Chan> {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    fn tracker_config(&self, size: Option<(u16, u16)>) -> TrackerConfig {
        let (cols, rows) = size.unwrap_or((80, 24));
        TrackerConfig {
            cols,
            rows,
            max_line: self.enforcement.max_line,
            wait_for_echo: true,
        }
    }

    fn report(&self, kind: LiveReportKind) {
        if let Some(c) = self.control.get() {
            c.note(ControlNote::Report {
                actor: "policy".into(),
                kind,
            });
        }
    }

    /// Acts on a decision. `held`: the bytes or request it is about have not reached the
    /// target yet (the Enter of a command, an exec request), so blocking means something.
    async fn enforce(&self, channel: u32, d: &Decision, held: bool) -> Outcome {
        let Some(control) = self.control.get().cloned() else {
            return Outcome::Forward;
        };
        if d.action == Action::Allow {
            return Outcome::Forward;
        }
        let chan = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&channel)
            .cloned()
            .unwrap_or_default();
        let line = d.command_line().map(str::to_owned);
        let late = matches!(d.event, PolicyEvent::Command { late: true, .. });
        if late && line.is_some() && *chan.blocked.lock().unwrap_or_else(|p| p.into_inner()) == line
        {
            // The screen's second reading of a line already blocked at its Enter.
            return Outcome::Forward;
        }
        let (rule, message, subject) = describe(d);
        let why = message
            .clone()
            .unwrap_or_else(|| format!("blocked by policy rule {rule}"));
        let policy = |outcome: &str| LiveReportKind::Policy {
            rule: rule.clone(),
            action: d.action,
            subject: subject.clone(),
            outcome: outcome.to_owned(),
        };
        let is_command = line.is_some() || matches!(d.event, PolicyEvent::Command { .. });
        // A line typed at the terminal, shown or not: its characters are at the target.
        let typed_line = is_command || matches!(d.event, PolicyEvent::UnechoedInput { .. });
        let remember_block = |chan: &Chan| {
            *chan.blocked.lock().unwrap_or_else(|p| p.into_inner()) = line.clone();
        };
        match d.action {
            Action::Allow => Outcome::Forward,
            Action::Alert => {
                self.report(policy("alerted"));
                Outcome::Forward
            }
            Action::RequireApproval if held && is_command => {
                let command = line.clone().unwrap_or_default();
                let (id, decision) = control.request_approval(&command, &rule, message.as_deref());
                let timeout = async {
                    match self.enforcement.approval_timeout {
                        Some(t) => tokio::time::sleep(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::pin!(decision);
                let decided = tokio::select! {
                    d = &mut decision => d.ok(),
                    _ = control.terminated() => None,
                    _ = timeout => {
                        control.decide(id, false, "policy", "no decision in time");
                        (&mut decision).await.ok()
                    }
                };
                match decided {
                    Some(d) if d.approved => Outcome::Forward,
                    Some(_) => {
                        remember_block(&chan);
                        // ^C in the Enter's place, in the same data path: input the user
                        // typed meanwhile must not reach the target before it (it would
                        // be appended to the denied line and run with the next Enter).
                        Outcome::Interrupt
                    }
                    None => Outcome::Block,
                }
            }
            Action::RequireApproval | Action::Pause => {
                self.report(policy("session paused"));
                control.pause_by("policy", &format!("rule {rule}: {why}"));
                control.wait_unpaused().await;
                if control.termination().is_some() {
                    Outcome::Block
                } else {
                    Outcome::Forward
                }
            }
            Action::Lock => {
                self.report(policy(if held {
                    "blocked; session locked"
                } else {
                    "session locked"
                }));
                control.lock_by("policy", &format!("rule {rule}: {why}"));
                if held {
                    if typed_line {
                        remember_block(&chan);
                        control.inject_to(Direction::ToTarget, Some(channel), INTERRUPT);
                    }
                    Outcome::Block
                } else {
                    Outcome::Forward
                }
            }
            Action::Terminate => {
                self.report(policy("session terminated"));
                remember_block(&chan);
                control.terminate_by("policy", &why);
                if held && typed_line {
                    Outcome::Interrupt
                } else {
                    Outcome::Block
                }
            }
        }
    }

    /// Acts at once on a transfer's decision (the protocol cannot wait for a human):
    /// whatever would hold the transfer refuses it, and the session is paused, locked or
    /// ended as the action says.
    fn enforce_now(&self, d: &Decision) -> RequestVerdict {
        let Some(control) = self.control.get() else {
            return RequestVerdict::Allow;
        };
        let (rule, message, subject) = describe(d);
        let why = message.unwrap_or_else(|| format!("refused by policy rule {rule}"));
        let report = |outcome: &str| {
            self.report(LiveReportKind::Policy {
                rule: rule.clone(),
                action: d.action,
                subject: subject.clone(),
                outcome: outcome.to_owned(),
            })
        };
        match d.action {
            Action::Allow => RequestVerdict::Allow,
            Action::Alert => {
                report("alerted");
                RequestVerdict::Allow
            }
            Action::RequireApproval | Action::Pause => {
                report("refused; session paused");
                control.pause_by("policy", &format!("rule {rule}: {why}"));
                RequestVerdict::Refuse(why)
            }
            Action::Lock => {
                report("refused; session locked");
                control.lock_by("policy", &format!("rule {rule}: {why}"));
                RequestVerdict::Refuse(why)
            }
            Action::Terminate => {
                report("refused; session terminated");
                control.terminate_by("policy", &why);
                RequestVerdict::Refuse(why)
            }
        }
    }

    async fn enforce_all(&self, channel: u32, decisions: &[Decision], held: bool) -> Outcome {
        let mut outcome = Outcome::Forward;
        for d in decisions {
            outcome = outcome.max(self.enforce(channel, d, held).await);
        }
        outcome
    }

    /// Terminal input: through the tracker, holding an Enter until its echo is on screen.
    async fn terminal_input(
        &self,
        channel: u32,
        chan: &Chan,
        bytes: &[u8],
        hidden: bool,
    ) -> Outcome {
        let mut rest = bytes;
        let mut outcome = Outcome::Forward;
        loop {
            let mut decisions = Vec::new();
            let feed = {
                let mut t = chan.tracker.lock().unwrap_or_else(|p| p.into_inner());
                match t.as_mut() {
                    Some(t) => t.input(rest, hidden, &mut decisions),
                    None => return Outcome::Forward,
                }
            };
            outcome = outcome.max(self.enforce_all(channel, &decisions, true).await);
            let consumed = match feed {
                Feed::All => return outcome,
                Feed::WaitForEcho { consumed } => consumed,
            };
            if consumed == 0 {
                self.wait_for_echo(chan).await;
            } else {
                // Keys before the Enter arrived with it in one chunk (the bridge splits
                // terminal input at submit keys, so only odd keys get here): their echo
                // cannot come before they are forwarded, so judge without it.
                if let Some(t) = chan
                    .tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                {
                    t.echo_timeout();
                }
            }
            rest = &rest[consumed..];
        }
    }

    async fn wait_for_echo(&self, chan: &Chan) {
        let deadline = tokio::time::sleep(self.enforcement.echo_timeout);
        tokio::pin!(deadline);
        loop {
            let notified = chan.echo.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut t = chan.tracker.lock().unwrap_or_else(|p| p.into_inner());
                match t.as_mut() {
                    Some(t) => {
                        if t.echo_ready() {
                            return;
                        }
                    }
                    None => return,
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = &mut deadline => {
                    if let Some(t) = chan.tracker.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        t.echo_timeout();
                    }
                    return;
                }
            }
        }
    }

    /// A shell or interpreter without a terminal (`ssh host < script`, `ssh -T host`,
    /// `echo cmd | ssh host sh`, `ssh host bash -s < script`): its input is held until a
    /// command is complete (a line, with `\`-newline continuations, open quotes and
    /// trailing `|`/`&&`/`||` joined the way the shell joins them), judged, and only then
    /// forwarded. A last line without a newline is held until the input ends
    /// ([`Tap::input_ended`]) and judged then, before the shell sees it.
    async fn script_input(&self, channel: u32, chan: &Chan, bytes: &[u8]) -> Option<DataVerdict> {
        // Commands complete in these bytes: (text to judge, bytes to forward, cut).
        let commands = {
            let mut plain = chan.plain.lock().unwrap_or_else(|p| p.into_inner());
            plain.as_mut()?.feed(bytes)
        };
        let mut forward = Vec::new();
        for (text, held, cut) in commands {
            if !text.trim().is_empty() {
                let d = self.policy.judge_line(&text, LineSource::Exec, false, cut);
                if self.enforce(channel, &d, true).await.blocks() {
                    // Nothing after a refused command goes on either: a script's later
                    // lines may depend on it (or be the rest of the attack).
                    if let Some(script) = chan
                        .plain
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_mut()
                    {
                        *script = Script::default();
                    }
                    break;
                }
            }
            forward.extend_from_slice(&held);
        }
        Some(if forward.is_empty() {
            DataVerdict::Drop
        } else if forward == bytes {
            DataVerdict::Forward
        } else {
            DataVerdict::Replace(forward.into())
        })
    }
}

impl PolicyTap {
    /// The end of a script's input: its unfinished last command is judged and, unless
    /// refused, released.
    async fn script_ended(&self, channel: u32, chan: &Chan) -> Option<bytes::Bytes> {
        let (text, held, cut) = chan
            .plain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()?
            .finish()?;
        if !text.trim().is_empty() {
            let d = self.policy.judge_line(&text, LineSource::Exec, false, cut);
            if self.enforce(channel, &d, true).await.blocks() {
                return None;
            }
        }
        Some(held.into())
    }
}

fn verdict(outcome: Outcome) -> DataVerdict {
    match outcome {
        Outcome::Forward => DataVerdict::Forward,
        Outcome::Block => DataVerdict::Drop,
        Outcome::Interrupt => DataVerdict::Replace(bytes::Bytes::from_static(INTERRUPT)),
    }
}

#[async_trait]
impl Tap for PolicyTap {
    async fn session_started(&self, _info: &SessionInfo, control: &Arc<SessionControl>) {
        let _ = self.control.set(control.clone());
    }

    async fn request(&self, channel: &ChannelInfo, request: &ChannelRequest) {
        let chan = self.chan(channel.id);
        match request {
            ChannelRequest::Pty { size, .. } => {
                *chan.pty.lock().unwrap_or_else(|p| p.into_inner()) = Some((size.cols, size.rows));
            }
            ChannelRequest::Shell | ChannelRequest::Exec(_) => {
                let pty = *chan.pty.lock().unwrap_or_else(|p| p.into_inner());
                let mut tracker = chan.tracker.lock().unwrap_or_else(|p| p.into_inner());
                if pty.is_some() || self.policy.watches_output() {
                    // With a terminal: keystrokes and screen. Without: output lines only.
                    *tracker = Some(CommandTracker::new(
                        self.policy.clone(),
                        self.tracker_config(pty),
                    ));
                }
                let script = match request {
                    ChannelRequest::Shell => true,
                    ChannelRequest::Exec(command) => reads_a_script(command),
                    _ => false,
                };
                if pty.is_none() && script {
                    *chan.plain.lock().unwrap_or_else(|p| p.into_inner()) = Some(Script::default());
                }
            }
            ChannelRequest::WindowChange(size) => {
                if let Some(t) = chan
                    .tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                {
                    t.resize(size.cols, size.rows);
                }
            }
            _ => {}
        }
    }

    async fn check(&self, channel: &ChannelInfo, request: &ChannelRequest) -> RequestVerdict {
        let ChannelRequest::Exec(command) = request else {
            return RequestVerdict::Allow;
        };
        let mut decisions = vec![self.policy.judge_command(command)];
        if let ChannelPurpose::FileCopy {
            direction, path, ..
        } = channel.purpose()
        {
            decisions.push(self.policy.judge_transfer(path, (*direction).into()));
        }
        // The most severe first: a terminate is not held for an approval.
        decisions.sort_by_key(|d| std::cmp::Reverse(d.action));
        for d in &decisions {
            if self.enforce(channel.id, d, true).await.blocks() {
                let rule = d
                    .deciding_rule()
                    .map_or_else(|| "default".to_owned(), |m| m.name.to_string());
                let why = d
                    .deciding_rule()
                    .and_then(|m| m.message.as_deref().map(str::to_owned))
                    .unwrap_or_else(|| "refused".into());
                return RequestVerdict::Refuse(format!(
                    "command refused by policy rule {rule}: {why}"
                ));
            }
        }
        RequestVerdict::Allow
    }

    async fn input_ended(&self, channel: &ChannelInfo) -> Option<bytes::Bytes> {
        let chan = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&channel.id)
            .cloned()?;
        self.script_ended(channel.id, &chan).await
    }

    async fn data(&self, channel: &ChannelInfo, event: &DataEvent<'_>) -> DataVerdict {
        let Some(chan) = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&channel.id)
            .cloned()
        else {
            return DataVerdict::Forward;
        };
        match event.direction {
            Direction::ToTarget => {
                if let Some(v) = self.script_input(channel.id, &chan, event.bytes).await {
                    return v;
                }
                let terminal = chan.pty.lock().unwrap_or_else(|p| p.into_inner()).is_some();
                if !terminal {
                    return DataVerdict::Forward;
                }
                verdict(
                    self.terminal_input(channel.id, &chan, event.bytes, event.hidden)
                        .await,
                )
            }
            Direction::ToUser => {
                let mut decisions = Vec::new();
                {
                    let mut t = chan.tracker.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(t) = t.as_mut() else {
                        return DataVerdict::Forward;
                    };
                    t.output(event.bytes, &mut decisions);
                }
                chan.echo.notify_waiters();
                // Output is never held for an approval (nothing waits on it): a decision
                // about it pauses, locks or ends the session.
                verdict(self.enforce_all(channel.id, &decisions, false).await)
            }
        }
    }

    async fn file_transfer(&self, channel: &ChannelInfo, transfer: &TransferReport) {
        let key = (transfer.path.clone(), transfer.direction);
        if self
            .checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
        {
            // Judged when it started (`check_transfer`): not acted on twice.
            return;
        }
        let d = self
            .policy
            .judge_transfer(&transfer.path, transfer.direction.into());
        self.enforce(channel.id, &d, false).await;
    }

    fn check_transfer(&self, transfer: &TransferRequest) -> RequestVerdict {
        let d = self
            .policy
            .judge_transfer(&transfer.path, transfer.direction.into());
        let verdict = self.enforce_now(&d);
        if verdict == RequestVerdict::Allow {
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            if checked.len() >= MAX_CHECKED {
                checked.clear();
            }
            checked.insert((transfer.path.clone(), transfer.direction));
        }
        verdict
    }

    async fn channel_closed(&self, channel: &ChannelInfo) {
        let chan = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&channel.id);
        if let Some(chan) = chan {
            let mut decisions = Vec::new();
            if let Some(t) = chan
                .tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                t.finish(&mut decisions);
            }
            self.enforce_all(channel.id, &decisions, false).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scripts_join_lines_as_the_shell_does() {
        let mut s = Script::default();
        let got = s.feed(b"echo a\ntou\\\nch f\necho 'x\ny'; rm z\nls |\n wc\npartial");
        let texts: Vec<&str> = got.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            texts,
            ["echo a", "touch f", "echo 'x\ny'; rm z", "ls |\n wc"]
        );
        assert!(got.iter().all(|c| !c.2));
        assert_eq!(s.line, b"partial");
        // At end of input the last line is a command too, and nothing is left after it.
        let last = s.finish().expect("the unterminated line");
        assert_eq!(
            (last.0.as_str(), last.1.as_slice()),
            ("partial", &b"partial"[..])
        );
        assert!(s.finish().is_none());
        let mut open = Script::default();
        assert!(open.feed(b"echo 'x\ny").is_empty());
        let last = open.finish().expect("an open quote at end of input");
        assert_eq!(last.0, "echo 'x\ny");
        assert!(reads_a_script("sh"));
        assert!(reads_a_script("sudo -n bash -s"));
        assert!(reads_a_script("cat x | /usr/bin/python3.11 -"));
        assert!(!reads_a_script("cat > file"));
    }

    proptest! {
        /// However the bytes are chunked, the same commands come out, and what is
        /// forwarded plus what is held is exactly the input, in order.
        #[test]
        fn chunking_never_changes_commands_or_bytes(
            input in proptest::collection::vec(prop_oneof![
                Just(b'\n'), Just(b'\\'), Just(b'\''), Just(b'"'), Just(b'|'), Just(b'&'),
                Just(b' '), Just(b'a'), any::<u8>(),
            ], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let mut whole = Script::default();
            let all = whole.feed(&input);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= input.len()).collect();
            cuts.sort_unstable();
            let mut chunked = Script::default();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([input.len()]) {
                got.extend(chunked.feed(&input[at..c]));
                at = c;
            }
            prop_assert_eq!(&got, &all);
            prop_assert!(whole.held.len() + whole.line.len() <= MAX_PLAIN_LINE);
            // What the commands forward, then what the end of input releases, is exactly
            // the input, in order.
            let mut bytes: Vec<u8> = all.iter().flat_map(|c| c.1.clone()).collect();
            if let Some(last) = whole.finish() {
                bytes.extend_from_slice(&last.1);
            }
            prop_assert_eq!(bytes, input);
        }
    }
}
