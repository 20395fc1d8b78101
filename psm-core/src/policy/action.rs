//! What a rule asks for, and what the engine answers: [`Action`] and [`Decision`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What to do when a rule matches, from the mildest to the most severe. The order is the
/// derive order: when several rules match one event, the most severe action wins
/// (`terminate > lock > pause > require-approval > alert > allow`).
///
/// The engine only *decides*; the gateway and the live-control layer act:
///
/// | action | meaning for the session |
/// |---|---|
/// | `allow` | nothing; the event is still reported (it is part of the command index) |
/// | `alert` | let it through and raise an alert (audit event, SIEM) |
/// | `require-approval` | hold the command (its Enter is not forwarded) until an approver allows or refuses it |
/// | `pause` | hold the whole session (input and output) until an administrator resumes it |
/// | `lock` | as `pause`, and the user may open no new session until an administrator unlocks them |
/// | `terminate` | end the session, with the rule's message as the reason shown to the user |
///
/// ```
/// use psm_core::policy::Action;
/// assert!(Action::Terminate > Action::Lock && Action::Alert > Action::Allow);
/// assert_eq!("require-approval".parse::<Action>().unwrap(), Action::RequireApproval);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Let it through.
    #[default]
    Allow,
    /// Let it through and alert.
    Alert,
    /// Hold it until someone approves.
    RequireApproval,
    /// Pause the session for review.
    Pause,
    /// Lock the session and the user.
    Lock,
    /// End the session.
    Terminate,
}

impl Action {
    /// Every action, mildest first.
    pub const ALL: [Action; 6] = [
        Action::Allow,
        Action::Alert,
        Action::RequireApproval,
        Action::Pause,
        Action::Lock,
        Action::Terminate,
    ];

    /// The configuration spelling (`require-approval`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Alert => "alert",
            Action::RequireApproval => "require-approval",
            Action::Pause => "pause",
            Action::Lock => "lock",
            Action::Terminate => "terminate",
        }
    }

    /// Whether the event may proceed without anyone's intervention (`allow`, `alert`).
    pub const fn lets_through(self) -> bool {
        matches!(self, Action::Allow | Action::Alert)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = crate::CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| crate::CoreError::InvalidInput {
                field: "policy action",
                reason: format!(
                    "unknown action {:?} (expected allow, alert, require-approval, pause, lock or terminate)",
                    crate::id::truncate_for_error(s)
                ),
            })
    }
}

/// Which way a file moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferDirection {
    /// From the user to the target.
    Upload,
    /// From the target to the user.
    Download,
}

/// Where the text of a submitted command came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LineSource {
    /// The user's keystrokes, replayed through a line editor and confirmed by the echo.
    Keystrokes,
    /// The terminal screen (history recall, tab completion, or keys the editor model does
    /// not know).
    Screen,
    /// An SSH `exec` request (`ssh host cmd`): the command as the client sent it.
    Exec,
    /// A `:` command line of vi/vim (`:!cmd`, `:r !cmd`, `:w !cmd`), read from the bottom row
    /// of the alternate screen.
    ViCommand,
}

/// What was judged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyEvent {
    /// A command line was submitted (Enter). Every submission yields one, matched or not:
    /// it is also the command index.
    Command {
        /// The reconstructed line, at most the tracker's `max_line` characters; continuation
        /// lines (`\` + Enter, open quotes) are joined into one.
        line: String,
        /// Where the text came from.
        source: LineSource,
        /// The judgement came after the Enter had been forwarded: the command may already
        /// run, so only `alert`, `pause`, `lock` and `terminate` still mean something.
        late: bool,
        /// The line was longer than `max_line` and was cut.
        truncated: bool,
    },
    /// A line of output matched at least one output rule. The output text itself is not
    /// carried (it may hold anything, secrets included); the recording has it.
    Output,
    /// A file moved through the session.
    Transfer {
        /// The path as the protocol named it.
        path: String,
        /// Which way.
        direction: TransferDirection,
    },
    /// The user submitted a line whose characters never appeared on the screen (a
    /// password prompt, or `stty -echo` to hide a command). The text is never carried.
    UnechoedInput {
        /// How many characters were typed.
        chars: usize,
    },
}

/// One rule that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    /// The rule's position in the policy (0-based, file order).
    pub index: usize,
    /// The rule's name.
    pub name: Arc<str>,
    /// The rule's action.
    pub action: Action,
    /// The rule's message, if it has one (shown to the user on pause/terminate, put in alerts).
    pub message: Option<Arc<str>>,
}

/// The engine's answer about one event: the event, the rules that matched (file order),
/// and the action that results (the most severe of theirs, or the policy's default for
/// commands and transfers that matched nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What was judged.
    pub event: PolicyEvent,
    /// The resulting action.
    pub action: Action,
    /// The rules that matched, in policy order; empty when the default applied.
    pub matched: Vec<RuleMatch>,
    /// The command line could not be judged completely; the policy's action for that
    /// (`incomplete_command`, `history_expansion`, `full_screen_command`) is part of
    /// `action`.
    pub incomplete: Option<Incomplete>,
}

/// Why a command line was judged only in part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Incomplete {
    /// Cut: longer than the tracker's `max_line`, or more simple commands, words or nesting
    /// than the engine follows.
    Cut,
    /// History expansion (`!!`, `^a^b`, `fc`): the shell runs text the line does not show.
    HistoryExpansion,
    /// Submitted inside a full-screen program at a place the tracker cannot tell is a shell
    /// prompt: the line may or may not run as a command (the policy's `full_screen_command`
    /// caps the action).
    FullScreen,
}

impl Incomplete {
    /// How the summary names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Incomplete::Cut => "cut",
            Incomplete::HistoryExpansion => "history expansion",
            Incomplete::FullScreen => "full screen, no prompt",
        }
    }
}

impl Decision {
    /// The first matched rule whose action is the resulting one (the rule to name in a
    /// notice or an alert).
    pub fn deciding_rule(&self) -> Option<&RuleMatch> {
        self.matched.iter().find(|m| m.action == self.action)
    }

    /// A one-line account for an audit event's detail:
    /// `command "rm -rf /" (keystrokes) matched wipe: terminate`. The command line is cut to
    /// 512 characters and its control characters escaped; output and unechoed input carry
    /// no text.
    ///
    /// ```
    /// # use psm_core::policy::{Policy, SessionScope, TransferDirection};
    /// let p = Policy::from_toml("[[rule]]\nname = \"shadow\"\nglob = \"*/shadow\"\non = \"transfer\"\naction = \"alert\"").unwrap();
    /// let d = p.for_session(&SessionScope::default()).judge_transfer("/etc/shadow", TransferDirection::Download);
    /// assert_eq!(d.summary(), r#"download "/etc/shadow" matched shadow: alert"#);
    /// ```
    pub fn summary(&self) -> String {
        let quoted = |s: &str| {
            let mut q: String = s.chars().take(512).flat_map(char::escape_debug).collect();
            if s.chars().count() > 512 {
                q.push_str("...");
            }
            format!("\"{q}\"")
        };
        let what = match &self.event {
            PolicyEvent::Command {
                line, source, late, ..
            } => {
                let source = match source {
                    LineSource::Keystrokes => "keystrokes",
                    LineSource::Screen => "screen",
                    LineSource::Exec => "exec",
                    LineSource::ViCommand => "vi command line",
                };
                let late = if *late { ", late" } else { "" };
                format!("command {} ({source}{late})", quoted(line))
            }
            PolicyEvent::Output => "output".to_owned(),
            PolicyEvent::Transfer { path, direction } => {
                let dir = match direction {
                    TransferDirection::Upload => "upload",
                    TransferDirection::Download => "download",
                };
                format!("{dir} {}", quoted(path))
            }
            PolicyEvent::UnechoedInput { chars } => format!("unechoed input ({chars} chars)"),
        };
        let what = match self.incomplete {
            Some(why) => format!("{what} [{}]", why.as_str()),
            None => what,
        };
        if self.matched.is_empty() {
            let how = if self.incomplete.is_some() {
                "incomplete"
            } else {
                "default"
            };
            format!("{what}: {} ({how})", self.action)
        } else {
            let names: Vec<&str> = self.matched.iter().map(|m| m.name.as_ref()).collect();
            format!("{what} matched {}: {}", names.join(", "), self.action)
        }
    }

    /// The submitted command line, for command decisions.
    pub fn command_line(&self) -> Option<&str> {
        match &self.event {
            PolicyEvent::Command { line, .. } => Some(line),
            _ => None,
        }
    }
}
