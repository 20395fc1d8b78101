//! The typed policy configuration ([`PolicyConfig`], [`RuleConfig`]) and its TOML form.

use serde::{Deserialize, Serialize};

use super::action::{Action, TransferDirection};
use crate::CoreError;

/// The largest policy text accepted by [`PolicyConfig::from_toml`] (1 MiB).
pub const MAX_POLICY_TEXT: usize = 1 << 20;
/// The most rules a policy may hold.
pub const MAX_RULES: usize = 4096;
/// The longest pattern (bytes).
pub const MAX_PATTERN: usize = 4096;
/// The most target globs or roles a rule may name.
pub const MAX_SCOPE_ENTRIES: usize = 256;
/// The longest rule name or message (bytes).
pub const MAX_TEXT: usize = 1024;

/// What a rule looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subject {
    /// The reconstructed command line (interactive shells, REPLs, `exec` requests).
    #[default]
    Command,
    /// Lines of output from the target.
    Output,
    /// File transfer paths (SFTP, scp).
    Transfer,
}

/// One rule, as written in the policy file.
///
/// Exactly one of `regex` and `glob` is given. A `regex` *searches* the text (add `^`/`$`
/// to anchor it); a `glob` must match the *whole* text (`*` matches any characters,
/// spaces and `/` included; `?` one character; `[a-z]`, `[!a-z]` classes; `\` escapes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A short name, unique in the policy (it is what alerts and audit events show).
    pub name: String,
    /// What the rule looks at (default `command`).
    #[serde(default)]
    pub on: Subject,
    /// A regular expression (Rust `regex` syntax) searched in the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A glob matched against the whole text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// Match without regard to case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// What to do on a match.
    pub action: Action,
    /// Only on targets whose name matches one of these globs (empty: every target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Only for users holding one of these roles (empty: every user).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// For `transfer` rules: only this direction (absent: both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<TransferDirection>,
    /// Text for the user (pause/terminate notice) and for alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A whole policy: defaults and rules in evaluation order.
///
/// ```
/// use psm_core::policy::{Action, PolicyConfig};
/// let cfg = PolicyConfig::from_toml(r#"
///     default_action = "allow"
///
///     [[rule]]
///     name = "tmp-cleanup-ok"
///     glob = "rm -rf /tmp/*"
///     action = "allow"
///
///     [[rule]]
///     name = "recursive-delete"
///     regex = '^rm\s+-\w*r'
///     action = "terminate"
///     targets = ["prod-*"]
///     message = "Recursive deletes are not allowed on production"
/// "#).unwrap();
/// assert_eq!(cfg.rules.len(), 2);
/// assert_eq!(cfg.rules[1].action, Action::Terminate);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The action for a command or transfer no rule matched (default `allow`; `require-approval`
    /// or `terminate` turn the policy into an allow-list).
    #[serde(default)]
    pub default_action: Action,
    /// The action when the user submits a line that never appeared on the screen (typed with
    /// echo off). Default `allow`, because password prompts do exactly that; `alert` reports
    /// every such line (without its text).
    #[serde(default)]
    pub unechoed_input: Action,
    /// The action for a command line the engine could judge only in part: cut at the
    /// tracker's `max_line`, or holding more simple commands, words or nesting than the
    /// engine follows ([`CommandUnits::cut`](super::CommandUnits::cut)). The parts that were
    /// read are judged too; the more severe action wins. Default `require-approval`: a line
    /// built to hide a command past the bounds does not run unseen. Applies only in sessions
    /// where command rules apply.
    #[serde(default = "fail_closed")]
    pub incomplete_command: Action,
    /// The action for a line typed at a terminal that uses history expansion (`!!`, `!$`,
    /// `!-2`, `!rm`, `^old^new`, `fc`): the shell runs text the line does not show. Default
    /// `alert`; the expanded command the shell echoes is judged as well, late. Set
    /// `require-approval` to hold such lines before they run.
    #[serde(default = "alert")]
    pub history_expansion: Action,
    /// The most a line submitted inside a full-screen program (tmux, screen, vim's
    /// `:terminal`, anything on the alternate screen) gets when the tracker cannot tell it
    /// was typed at a shell prompt (no `$ `, `# `, `% `, `> ` prompt left of it) and the line
    /// matches rules: the rules' action, capped at this one. Default `require-approval`: a
    /// shell run with an unusual prompt inside tmux does not run a forbidden command unseen,
    /// while an editor line that merely looks like one waits for an administrator instead
    /// of ending the session. Lines at a recognised prompt are judged as at any shell.
    #[serde(default = "fail_closed")]
    pub full_screen_command: Action,
    /// The rules, in evaluation order.
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleConfig>,
}

fn fail_closed() -> Action {
    Action::RequireApproval
}

fn alert() -> Action {
    Action::Alert
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            default_action: Action::Allow,
            unechoed_input: Action::Allow,
            incomplete_command: fail_closed(),
            history_expansion: alert(),
            full_screen_command: fail_closed(),
            rules: Vec::new(),
        }
    }
}

impl PolicyConfig {
    /// Parses the TOML form (the caller reads the file). Errors name the line and the
    /// problem; the text is bounded to [`MAX_POLICY_TEXT`].
    pub fn from_toml(text: &str) -> Result<Self, CoreError> {
        if text.len() > MAX_POLICY_TEXT {
            return Err(invalid(format!(
                "policy text is {} bytes, more than the {MAX_POLICY_TEXT} accepted",
                text.len()
            )));
        }
        let cfg: PolicyConfig =
            toml::from_str(text).map_err(|e| invalid(format!("policy TOML: {}", e.message())))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The TOML form of this policy.
    pub fn to_toml(&self) -> Result<String, CoreError> {
        toml::to_string(self).map_err(|e| invalid(format!("policy TOML: {e}")))
    }

    /// Checks bounds and consistency (patterns are compiled later, by
    /// [`Policy::new`](super::Policy::new)).
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.rules.len() > MAX_RULES {
            return Err(invalid(format!(
                "{} rules, more than the {MAX_RULES} accepted",
                self.rules.len()
            )));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = || {
                format!(
                    "rule {} ({:?})",
                    i + 1,
                    crate::id::truncate_for_error(&r.name)
                )
            };
            if r.name.is_empty() || r.name.len() > MAX_TEXT {
                return Err(invalid(format!(
                    "rule {}: a name of 1 to {MAX_TEXT} bytes is required",
                    i + 1
                )));
            }
            if !names.insert(r.name.as_str()) {
                return Err(invalid(format!("{}: the name is used twice", at())));
            }
            match (&r.regex, &r.glob) {
                (Some(_), Some(_)) => {
                    return Err(invalid(format!("{}: give regex or glob, not both", at())));
                }
                (None, None) => {
                    return Err(invalid(format!("{}: a regex or a glob is required", at())));
                }
                (Some(p), None) | (None, Some(p)) => {
                    if p.len() > MAX_PATTERN {
                        return Err(invalid(format!(
                            "{}: the pattern is {} bytes, more than {MAX_PATTERN}",
                            at(),
                            p.len()
                        )));
                    }
                }
            }
            if r.targets.len() > MAX_SCOPE_ENTRIES || r.roles.len() > MAX_SCOPE_ENTRIES {
                return Err(invalid(format!(
                    "{}: at most {MAX_SCOPE_ENTRIES} targets and roles",
                    at()
                )));
            }
            if r.targets.iter().chain(&r.roles).any(|t| t.len() > MAX_TEXT) {
                return Err(invalid(format!("{}: a target or role is too long", at())));
            }
            if r.message.as_ref().is_some_and(|m| m.len() > MAX_TEXT) {
                return Err(invalid(format!(
                    "{}: the message is longer than {MAX_TEXT} bytes",
                    at()
                )));
            }
            if r.direction.is_some() && r.on != Subject::Transfer {
                return Err(invalid(format!(
                    "{}: direction applies to transfer rules only",
                    at()
                )));
            }
        }
        Ok(())
    }
}

pub(crate) fn invalid(reason: String) -> CoreError {
    CoreError::InvalidInput {
        field: "policy",
        reason,
    }
}
