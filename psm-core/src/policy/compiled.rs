//! A compiled [`Policy`], the per-session [`SessionPolicy`], and rule order.
//!
//! ## Order and precedence
//!
//! Rules are evaluated in file order against every form of the event. Every matching rule
//! that applies to the session (its `targets` and `roles`) is collected, until the first
//! matching `allow` rule, which ends the evaluation: an `allow` rule is an exception for the
//! rules *after* it. The result is the most severe action collected
//! (`terminate > lock > pause > require-approval > alert > allow`). A command or transfer
//! that matched nothing gets the policy's `default_action`; output that matched nothing
//! yields no decision.
//!
//! A command line is judged **per simple command** ([`command_units`]): each gets its own
//! evaluation (its normalised forms, the commands its wrappers run), its own `allow`
//! exception and its own default, and the line gets the most severe result. An `allow`
//! therefore covers only the simple command it matched: with an allow on `rm -rf /tmp/*`,
//! `rm -rf /tmp/x; shutdown -h now` is still judged on `shutdown -h now`. The line as
//! typed is matched too, for rules that span commands (`curl ... | sh`), but only rules
//! that matched none of its simple commands count from there, and never an `allow`.

use std::sync::Arc;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::action::{
    Action, Decision, Incomplete, LineSource, PolicyEvent, RuleMatch, TransferDirection,
};
use super::config::{PolicyConfig, RuleConfig, Subject, invalid};
use super::pattern::glob_to_regex;
use super::shell::command_units;
use crate::CoreError;

/// Bytes one compiled pattern may take.
const REGEX_SIZE_LIMIT: usize = 8 << 20;
/// Bytes the compiled set of one subject may take.
const SET_SIZE_LIMIT: usize = 64 << 20;

#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    action: Action,
    message: Option<Arc<str>>,
    targets: Vec<Regex>,
    roles: Vec<String>,
    direction: Option<TransferDirection>,
}

#[derive(Debug)]
struct SubjectSet {
    set: RegexSet,
    /// Set pattern index → rule index.
    rules: Vec<usize>,
}

impl SubjectSet {
    fn build(cfg: &PolicyConfig, subject: Subject) -> Result<Self, CoreError> {
        let mut patterns = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in cfg
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.on == subject)
        {
            let p = pattern_of(r);
            // Compiled alone first, so that an error names its rule.
            RegexBuilder::new(&p)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    invalid(format!(
                        "rule {} ({:?}): bad pattern: {e}",
                        i + 1,
                        crate::id::truncate_for_error(&r.name)
                    ))
                })?;
            patterns.push(p);
            rules.push(i);
        }
        let set = RegexSetBuilder::new(&patterns)
            .size_limit(SET_SIZE_LIMIT)
            .build()
            .map_err(|e| invalid(format!("the {subject:?} rules together: {e}")))?;
        Ok(Self { set, rules })
    }

    /// Marks in `hits` the rules whose pattern matches `text`.
    fn mark(&self, text: &str, hits: &mut [bool]) {
        if self.rules.is_empty() || !self.set.is_match(text) {
            return;
        }
        for k in self.set.matches(text).iter() {
            if let Some(&rule) = self.rules.get(k) {
                hits[rule] = true;
            }
        }
    }
}

fn pattern_of(r: &RuleConfig) -> String {
    let core = match (&r.regex, &r.glob) {
        (Some(re), _) => re.clone(),
        (None, Some(g)) => glob_to_regex(g),
        (None, None) => String::from("[^\\s\\S]"),
    };
    if r.case_insensitive {
        format!("(?i:{core})")
    } else {
        core
    }
}

/// A compiled policy: share it (`Arc`) between every session of a gateway.
///
/// ```
/// use psm_core::policy::{Action, Policy, SessionScope};
/// let policy = Policy::from_toml(r#"
///     [[rule]]
///     name = "no-root-wipe"
///     glob = "rm -rf /"
///     action = "terminate"
/// "#).unwrap();
/// let session = policy.for_session(&SessionScope::new("web-01", ["ops"]));
/// let d = session.judge_command("sudo  '/bin/rm' -rf /");
/// assert_eq!(d.action, Action::Terminate);
/// assert_eq!(d.matched[0].name.as_ref(), "no-root-wipe");
/// ```
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    command: SubjectSet,
    output: SubjectSet,
    transfer: SubjectSet,
    default_action: Action,
    unechoed_input: Action,
    incomplete_command: Action,
    history_expansion: Action,
    full_screen_command: Action,
}

impl Policy {
    /// Compiles a policy. Errors name the rule at fault.
    pub fn new(cfg: &PolicyConfig) -> Result<Arc<Self>, CoreError> {
        cfg.validate()?;
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for (i, r) in cfg.rules.iter().enumerate() {
            let targets = r
                .targets
                .iter()
                .map(|t| {
                    RegexBuilder::new(&glob_to_regex(t))
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| invalid(format!("rule {}: bad target glob: {e}", i + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule {
                name: Arc::from(r.name.as_str()),
                action: r.action,
                message: r.message.as_deref().map(Arc::from),
                targets,
                roles: r.roles.clone(),
                direction: r.direction,
            });
        }
        Ok(Arc::new(Self {
            rules,
            command: SubjectSet::build(cfg, Subject::Command)?,
            output: SubjectSet::build(cfg, Subject::Output)?,
            transfer: SubjectSet::build(cfg, Subject::Transfer)?,
            default_action: cfg.default_action,
            unechoed_input: cfg.unechoed_input,
            incomplete_command: cfg.incomplete_command,
            history_expansion: cfg.history_expansion,
            full_screen_command: cfg.full_screen_command,
        }))
    }

    /// Parses and compiles the TOML form (see [`PolicyConfig`]).
    pub fn from_toml(text: &str) -> Result<Arc<Self>, CoreError> {
        Self::new(&PolicyConfig::from_toml(text)?)
    }

    /// A policy with no rules: every command is allowed and reported.
    pub fn allow_all() -> Arc<Self> {
        let empty = || SubjectSet {
            set: RegexSet::empty(),
            rules: Vec::new(),
        };
        Arc::new(Self {
            rules: Vec::new(),
            command: empty(),
            output: empty(),
            transfer: empty(),
            default_action: Action::Allow,
            unechoed_input: Action::Allow,
            incomplete_command: Action::Allow,
            history_expansion: Action::Allow,
            full_screen_command: Action::Allow,
        })
    }

    /// How many rules the policy holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the policy holds no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules that apply to one session: call once per session, then judge with the
    /// result (or give it to each terminal channel's command tracker, in psm-proxy).
    pub fn for_session(self: &Arc<Self>, scope: &SessionScope) -> SessionPolicy {
        let applies: Vec<bool> = self
            .rules
            .iter()
            .map(|r| {
                (r.targets.is_empty() || r.targets.iter().any(|t| t.is_match(&scope.target)))
                    && (r.roles.is_empty() || r.roles.iter().any(|x| scope.roles.contains(x)))
            })
            .collect();
        let any_output = self.output.rules.iter().any(|&i| applies[i]);
        let any_command = self.command.rules.iter().any(|&i| applies[i]);
        SessionPolicy {
            policy: Arc::clone(self),
            applies: applies.into(),
            any_output,
            any_command,
        }
    }
}

/// Who is in a session, as far as rule scopes go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionScope {
    /// The target's name (matched by the rules' `targets` globs).
    pub target: String,
    /// The user's roles (matched by the rules' `roles`).
    pub roles: Vec<String>,
}

impl SessionScope {
    /// A scope from a target name and roles.
    pub fn new<R: Into<String>>(
        target: impl Into<String>,
        roles: impl IntoIterator<Item = R>,
    ) -> Self {
        Self {
            target: target.into(),
            roles: roles.into_iter().map(Into::into).collect(),
        }
    }
}

/// A policy narrowed to one session: cheap to clone (an `Arc` and a bit list), `Send`
/// and `Sync`, so every channel of the session can hold one.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    policy: Arc<Policy>,
    applies: Arc<[bool]>,
    any_output: bool,
    any_command: bool,
}

impl SessionPolicy {
    /// Judges a command line that did not come from a terminal (an SSH `exec` request).
    pub fn judge_command(&self, line: &str) -> Decision {
        self.judge_line(line, LineSource::Exec, false, false)
    }

    /// Judges a file transfer.
    pub fn judge_transfer(&self, path: &str, direction: TransferDirection) -> Decision {
        let mut hits = vec![false; self.policy.rules.len()];
        self.policy.transfer.mark(path, &mut hits);
        for (i, hit) in hits.iter_mut().enumerate() {
            if self.policy.rules[i]
                .direction
                .is_some_and(|d| d != direction)
            {
                *hit = false;
            }
        }
        let event = PolicyEvent::Transfer {
            path: path.to_owned(),
            direction,
        };
        self.decide(event.clone(), &hits, Some(self.policy.default_action))
            .unwrap_or(Decision {
                event,
                action: self.policy.default_action,
                matched: Vec::new(),
                incomplete: None,
            })
    }

    /// Whether any output rule applies to this session (if not, output needs no
    /// line splitting at all).
    pub fn watches_output(&self) -> bool {
        self.any_output
    }

    /// Judges one line of output text; `None` when no rule matched.
    pub fn judge_output_line(&self, line: &str) -> Option<Decision> {
        if !self.any_output || !self.policy.output.set.is_match(line) {
            return None;
        }
        let mut hits = vec![false; self.policy.rules.len()];
        self.policy.output.mark(line, &mut hits);
        let d = self.decide(PolicyEvent::Output, &hits, None)?;
        (!d.matched.is_empty()).then_some(d)
    }

    /// Judges one command line read off a terminal: `source` says how it was read, `late`
    /// that it is judged after its Enter was forwarded, `truncated` that it was cut at the
    /// reader's longest line.
    ///
    /// ```
    /// use psm_core::policy::{Action, LineSource, Policy, SessionScope};
    /// let policy = Policy::from_toml("[[rule]]\nname = \"wipe\"\nglob = \"rm -rf /*\"\naction = \"terminate\"")?;
    /// let session = policy.for_session(&SessionScope::new("web-01", ["ops"]));
    /// let d = session.judge_line("rm -rf /", LineSource::Keystrokes, false, false);
    /// assert_eq!(d.action, Action::Terminate);
    /// # Ok::<(), psm_core::CoreError>(())
    /// ```
    pub fn judge_line(
        &self,
        line: &str,
        source: LineSource,
        late: bool,
        truncated: bool,
    ) -> Decision {
        self.judge_lines(&[line], line, source, late, truncated)
    }

    /// Judges a submission seen in several readings (keystrokes and screen): a rule
    /// matches if it matches any form of any reading. `shown` is the line reported; the other
    /// arguments are [`judge_line`](Self::judge_line)'s.
    pub fn judge_lines(
        &self,
        readings: &[&str],
        shown: &str,
        source: LineSource,
        late: bool,
        truncated: bool,
    ) -> Decision {
        let n = self.policy.rules.len();
        let mut collected = vec![false; n];
        let mut action = None;
        let mut cut = truncated;
        let mut history = false;
        if self.any_command {
            let mut hits = vec![false; n];
            let mut in_commands = vec![false; n];
            for reading in readings {
                let units = command_units(reading);
                cut |= units.cut;
                // Only an interactive shell (or vi's `:!`) expands history.
                history |= units.history_expansion && source != LineSource::Exec;
                in_commands.fill(false);
                let whole = [units.line.clone()];
                let owned;
                let commands: &[Vec<String>] = if units.commands.is_empty() {
                    // No command word at all (`a=1`, a lone redirection): the line is the
                    // one thing to judge.
                    owned = vec![whole.to_vec()];
                    &owned
                } else {
                    &units.commands
                };
                for forms in commands {
                    hits.fill(false);
                    for form in forms {
                        self.policy.command.mark(form, &mut hits);
                    }
                    for (seen, hit) in in_commands.iter_mut().zip(&hits) {
                        *seen |= *hit;
                    }
                    let one = self.collect(&hits, &mut collected);
                    action = action.max(Some(one.unwrap_or(self.policy.default_action)));
                }
                // The line as typed: rules spanning commands, never an exception.
                hits.fill(false);
                self.policy.command.mark(&units.line, &mut hits);
                for (i, rule) in self.policy.rules.iter().enumerate() {
                    if hits[i] && !in_commands[i] && self.applies[i] && rule.action != Action::Allow
                    {
                        collected[i] = true;
                        action = action.max(Some(rule.action));
                    }
                }
            }
        }
        let mut action = action.unwrap_or(self.policy.default_action);
        let mut incomplete = None;
        if self.any_command && history {
            incomplete = Some(Incomplete::HistoryExpansion);
            action = action.max(self.policy.history_expansion);
        }
        if self.any_command && cut {
            incomplete = Some(Incomplete::Cut);
            action = action.max(self.policy.incomplete_command);
        }
        let matched = self
            .policy
            .rules
            .iter()
            .enumerate()
            .filter(|(i, _)| collected[*i])
            .map(|(i, rule)| RuleMatch {
                index: i,
                name: Arc::clone(&rule.name),
                action: rule.action,
                message: rule.message.clone(),
            })
            .collect();
        Decision {
            event: PolicyEvent::Command {
                line: shown.to_owned(),
                source,
                late,
                truncated,
            },
            action,
            matched,
            incomplete,
        }
    }

    /// Collects, for one simple command, the rules its `hits` name that apply to the
    /// session, in file order up to the first `allow`; returns their most severe action.
    fn collect(&self, hits: &[bool], collected: &mut [bool]) -> Option<Action> {
        let mut worst = None;
        for (i, rule) in self.policy.rules.iter().enumerate() {
            if !hits[i] || !self.applies[i] {
                continue;
            }
            collected[i] = true;
            worst = worst.max(Some(rule.action));
            if rule.action == Action::Allow {
                break;
            }
        }
        worst
    }

    /// Judges a line submitted inside a full-screen program where the tracker cannot tell
    /// whether it was typed at a shell (see [`PolicyConfig::full_screen_command`]): `None`
    /// when the line would be allowed (an editor's lines are no events), else the decision
    /// with the rules' action capped at `full_screen_command` and
    /// [`Incomplete::FullScreen`]. The arguments are [`judge_lines`](Self::judge_lines)'.
    ///
    /// [`PolicyConfig::full_screen_command`]: super::PolicyConfig::full_screen_command
    pub fn judge_full_screen(
        &self,
        readings: &[&str],
        shown: &str,
        source: LineSource,
        truncated: bool,
    ) -> Option<Decision> {
        if !self.any_command {
            return None;
        }
        let mut d = self.judge_lines(readings, shown, source, false, truncated);
        if d.action == Action::Allow {
            return None;
        }
        d.action = d.action.min(self.policy.full_screen_command);
        if d.incomplete.is_none() {
            d.incomplete = Some(Incomplete::FullScreen);
        }
        Some(d)
    }

    /// Judges a line typed at a prompt that hides its input (a password prompt, as far as
    /// the gateway can tell), from the keystrokes: `None` unless a rule that is not `allow`
    /// matches it, else an [`UnechoedInput`](PolicyEvent::UnechoedInput) decision (never the
    /// text) with those rules and the most severe of their actions. Neither the default
    /// action nor `incomplete_command`/`history_expansion` apply: a password is no command,
    /// but one that would run as a forbidden command is judged as one.
    pub fn judge_hidden(&self, line: &str, chars: usize) -> Option<Decision> {
        let d = self.judge_line(line, LineSource::Keystrokes, false, false);
        let matched: Vec<RuleMatch> = d
            .matched
            .into_iter()
            .filter(|m| m.action != Action::Allow)
            .collect();
        let action = matched.iter().map(|m| m.action).max()?;
        Some(Decision {
            event: PolicyEvent::UnechoedInput { chars },
            action,
            matched,
            incomplete: None,
        })
    }

    /// The decision for a line of `chars` characters typed and never shown on the screen (it
    /// may be a password): the policy's `unechoed_input` action, no text.
    pub fn unechoed(&self, chars: usize) -> Decision {
        Decision {
            event: PolicyEvent::UnechoedInput { chars },
            action: self.policy.unechoed_input,
            matched: Vec::new(),
            incomplete: None,
        }
    }

    /// Applies scope, order and precedence to the raw pattern hits.
    fn decide(
        &self,
        event: PolicyEvent,
        hits: &[bool],
        default: Option<Action>,
    ) -> Option<Decision> {
        let mut matched = Vec::new();
        for (i, rule) in self.policy.rules.iter().enumerate() {
            if !hits[i] || !self.applies[i] {
                continue;
            }
            matched.push(RuleMatch {
                index: i,
                name: Arc::clone(&rule.name),
                action: rule.action,
                message: rule.message.clone(),
            });
            if rule.action == Action::Allow {
                break;
            }
        }
        let action = match matched.iter().map(|m| m.action).max() {
            Some(a) => a,
            None => default?,
        };
        Some(Decision {
            event,
            action,
            matched,
            incomplete: None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POLICY: &str = r#"
        default_action = "allow"

        [[rule]]
        name = "watch-sudo"
        regex = '^sudo\b'
        action = "alert"

        [[rule]]
        name = "tmp-ok"
        glob = "rm -rf /tmp/*"
        action = "allow"

        [[rule]]
        name = "rm-rf"
        regex = '^rm\s+-\w*[rR]'
        action = "require-approval"

        [[rule]]
        name = "prod-shutdown"
        glob = "shutdown*"
        action = "terminate"
        targets = ["prod-*"]
        message = "No shutdowns on production"

        [[rule]]
        name = "contractor-psql"
        glob = "psql*"
        action = "pause"
        roles = ["contractor"]

        [[rule]]
        name = "secrets-out"
        on = "output"
        regex = 'BEGIN [A-Z ]*PRIVATE KEY'
        action = "lock"

        [[rule]]
        name = "no-shadow-download"
        on = "transfer"
        glob = "*/shadow"
        direction = "download"
        action = "terminate"

        [[rule]]
        name = "case"
        glob = "DROP TABLE*"
        case_insensitive = true
        action = "alert"
    "#;

    fn session(target: &str, roles: &[&str]) -> SessionPolicy {
        Policy::from_toml(POLICY)
            .unwrap()
            .for_session(&SessionScope::new(target, roles.iter().copied()))
    }

    #[test]
    fn order_precedence_and_scope() {
        let s = session("prod-db", &["ops"]);
        let d = s.judge_command("ls -l");
        assert_eq!((d.action, d.matched.len()), (Action::Allow, 0));

        let d = s.judge_command("rm -rf /var");
        assert_eq!(d.action, Action::RequireApproval);

        // The allow rule is an exception for the rules after it...
        let d = s.judge_command("rm -rf /tmp/build");
        assert_eq!(d.action, Action::Allow);
        assert_eq!(d.matched[0].name.as_ref(), "tmp-ok");
        // ...but not for the ones before it.
        let d = s.judge_command("sudo rm -rf /tmp/build");
        assert_eq!(d.action, Action::Alert);

        let d = s.judge_command("shutdown -h now");
        assert_eq!(d.action, Action::Terminate);
        assert_eq!(
            d.deciding_rule().unwrap().message.as_deref(),
            Some("No shutdowns on production")
        );
        // Not on a target outside the rule's scope.
        assert_eq!(
            session("dev-1", &["ops"])
                .judge_command("shutdown -h now")
                .action,
            Action::Allow
        );

        assert_eq!(s.judge_command("psql -U app").action, Action::Allow);
        assert_eq!(
            session("x", &["contractor"])
                .judge_command("psql -U app")
                .action,
            Action::Pause
        );

        assert_eq!(s.judge_command("drop table users;").action, Action::Alert);
    }

    /// docs/policy.md's example policy.
    const DOCS_POLICY: &str = r#"
        default_action = "allow"

        [[rule]]
        name = "tmp-cleanup"
        glob = "rm -rf /tmp/*"
        action = "allow"

        [[rule]]
        name = "recursive-delete"
        regex = '^rm\s+(-\w*[rR]\w*\s+|--recursive\s+)'
        action = "require-approval"

        [[rule]]
        name = "no-shutdown"
        glob = "shutdown*"
        case_insensitive = true
        action = "terminate"

        [[rule]]
        name = "pipe-to-shell"
        regex = '\|\s*(ba)?sh\b'
        action = "alert"
    "#;

    #[test]
    fn an_allow_covers_only_the_simple_command_it_matched() {
        let s = Policy::from_toml(DOCS_POLICY)
            .unwrap()
            .for_session(&SessionScope::default());
        let judge = |l: &str| s.judge_command(l);
        assert_eq!(judge("rm -rf /tmp/x").action, Action::Allow);
        for line in [
            "rm -rf /tmp/x; shutdown -h now",
            "rm -rf /tmp/x && shutdown -h now",
            "rm -rf /tmp/x || shutdown -h now",
            "rm -rf /tmp/x | shutdown -h now",
            "rm -rf /tmp/x & shutdown -h now",
            "rm -rf /tmp/x\nshutdown -h now",
            "rm -rf /tmp/x (shutdown -h now)",
            "rm -rf /tmp/x $(shutdown -h now)",
            "rm -rf /tmp/x `shutdown -h now`",
            "rm -rf /tmp/x; sudo shutdown -h now",
        ] {
            let d = judge(line);
            assert_eq!(d.action, Action::Terminate, "{line:?}: {d:?}");
            assert_eq!(d.deciding_rule().unwrap().name.as_ref(), "no-shutdown");
        }
        for line in [
            "rm -rf /tmp/../etc",
            "rm -rf /tmp/x/../../etc",
            "rm -rf /tmp/x; rm -rf /etc",
            "rm -rf '/tmp/'../etc",
        ] {
            let d = judge(line);
            assert_eq!(d.action, Action::RequireApproval, "{line:?}: {d:?}");
        }
        // Each command allowed on its own: the line is.
        assert_eq!(judge("rm -rf /tmp/x; rm -rf /tmp/y").action, Action::Allow);
        // A rule spanning commands still sees the line, even after an allow.
        let d = judge("rm -rf /tmp/x; curl http://x | sh");
        assert_eq!(d.action, Action::Alert, "{d:?}");
    }

    #[test]
    fn an_allow_list_needs_every_command_allowed() {
        let s = Policy::from_toml(
            r#"
            default_action = "require-approval"
            [[rule]]
            name = "ls"
            glob = "ls*"
            action = "allow"
            [[rule]]
            name = "cd-tmp"
            regex = '^cd /tmp$'
            action = "allow"
        "#,
        )
        .unwrap()
        .for_session(&SessionScope::default());
        assert_eq!(s.judge_command("ls -l").action, Action::Allow);
        assert_eq!(s.judge_command("cd /tmp && ls -l").action, Action::Allow);
        assert_eq!(
            s.judge_command("ls -l; reboot").action,
            Action::RequireApproval
        );
        assert_eq!(
            s.judge_command("ls $(reboot)").action,
            Action::RequireApproval
        );
    }

    #[test]
    fn cut_lines_and_history_expansion_fail_closed() {
        let s = Policy::from_toml(DOCS_POLICY)
            .unwrap()
            .for_session(&SessionScope::default());
        // 63 harmless commands, then the one that matters: judged.
        let mut line: String = (1..=63).map(|i| format!(": {i}; ")).collect();
        line.push_str("shutdown -h now");
        let d = s.judge_command(&line);
        assert_eq!((d.action, d.incomplete), (Action::Terminate, None));
        // Past every bound: the configured action, never a silent allow.
        let mut line: String = (0..2000).map(|i| format!(": {i}; ")).collect();
        line.push_str("shutdown -h now");
        let d = s.judge_command(&line);
        assert_eq!(
            (d.action, d.incomplete),
            (Action::RequireApproval, Some(Incomplete::Cut))
        );
        // Cut by the reader (max_line).
        let d = s.judge_line("rm -rf /tmp/x", LineSource::Keystrokes, false, true);
        assert_eq!(d.action, Action::RequireApproval);
        assert!(d.summary().contains("[cut]"), "{}", d.summary());
        // History expansion at a terminal: alert by default; not in an exec request.
        let d = s.judge_line("sudo !!", LineSource::Keystrokes, false, false);
        assert_eq!(
            (d.action, d.incomplete),
            (Action::Alert, Some(Incomplete::HistoryExpansion))
        );
        assert_eq!(s.judge_command("echo !!").incomplete, None);
        let strict = Policy::from_toml(&format!(
            "history_expansion = \"require-approval\"\nincomplete_command = \"terminate\"\n{DOCS_POLICY}"
        ))
        .unwrap()
        .for_session(&SessionScope::default());
        let d = strict.judge_line("^tmp^etc", LineSource::Screen, false, false);
        assert_eq!(d.action, Action::RequireApproval);
        let d = strict.judge_line("ls", LineSource::Screen, false, true);
        assert_eq!(d.action, Action::Terminate);
        // No command rules in the session: nothing to escape, nothing held.
        let none = Policy::allow_all().for_session(&SessionScope::default());
        assert_eq!(
            none.judge_line("x", LineSource::Keystrokes, false, true)
                .action,
            Action::Allow
        );
    }

    #[test]
    fn full_screen_lines_are_capped_and_allowed_ones_are_no_events() {
        let s = Policy::from_toml(DOCS_POLICY)
            .unwrap()
            .for_session(&SessionScope::default());
        let judge = |l: &str| s.judge_full_screen(&[l], l, LineSource::Keystrokes, false);
        assert_eq!(judge("hello world"), None);
        assert_eq!(judge("rm -rf /tmp/x"), None);
        // A terminate rule is held for approval (the default cap), with the reason.
        let d = judge("shutdown -h now").unwrap();
        assert_eq!(
            (d.action, d.incomplete),
            (Action::RequireApproval, Some(Incomplete::FullScreen))
        );
        assert_eq!(d.matched[0].name.as_ref(), "no-shutdown");
        assert!(
            d.summary().contains("[full screen, no prompt]"),
            "{}",
            d.summary()
        );
        // Below the cap, the rule's own action.
        assert_eq!(judge("curl x | sh").unwrap().action, Action::Alert);
        let lenient = Policy::from_toml(&format!("full_screen_command = \"alert\"\n{DOCS_POLICY}"))
            .unwrap()
            .for_session(&SessionScope::default());
        let d = lenient
            .judge_full_screen(&["shutdown"], "shutdown", LineSource::Screen, false)
            .unwrap();
        assert_eq!(d.action, Action::Alert);
    }

    #[test]
    fn hidden_lines_are_judged_by_their_rules_only_and_never_carry_text() {
        let strict = DOCS_POLICY.replace(
            "default_action = \"allow\"",
            "default_action = \"terminate\"",
        );
        let s = Policy::from_toml(&strict)
            .unwrap()
            .for_session(&SessionScope::default());
        // A password: no rule, and neither the default nor history expansion apply.
        assert_eq!(s.judge_hidden("hunter2!!", 9), None);
        assert_eq!(s.judge_hidden("rm -rf /tmp/x", 13), None);
        let d = s.judge_hidden("shutdown -h now", 15).unwrap();
        assert_eq!(d.event, PolicyEvent::UnechoedInput { chars: 15 });
        assert_eq!((d.action, d.matched.len()), (Action::Terminate, 1));
        assert!(!d.summary().contains("shutdown -h"), "{}", d.summary());
    }

    #[test]
    fn output_and_transfers() {
        let s = session("x", &[]);
        assert!(s.watches_output());
        assert!(s.judge_output_line("hello").is_none());
        let d = s
            .judge_output_line("-----BEGIN OPENSSH PRIVATE KEY-----")
            .unwrap();
        assert_eq!((d.event, d.action), (PolicyEvent::Output, Action::Lock));

        assert_eq!(
            s.judge_transfer("/etc/shadow", TransferDirection::Download)
                .action,
            Action::Terminate
        );
        assert_eq!(
            s.judge_transfer("/etc/shadow", TransferDirection::Upload)
                .action,
            Action::Allow
        );
    }

    #[test]
    fn errors_name_the_rule() {
        let e = Policy::from_toml("[[rule]]\nname = \"bad\"\nregex = \"(\"\naction = \"alert\"")
            .unwrap_err();
        assert!(e.to_string().contains("rule 1 (\"bad\")"), "{e}");
        let e = Policy::from_toml("[[rule]]\nname = \"x\"\nglob = \"a\"\naction = \"explode\"")
            .unwrap_err();
        assert!(e.to_string().contains("explode"), "{e}");
        let e = Policy::from_toml("[[rule]]\nname = \"x\"\naction = \"alert\"").unwrap_err();
        assert!(e.to_string().contains("regex or a glob"), "{e}");
        let e = Policy::from_toml(
            "[[rule]]\nname = \"x\"\nglob = \"a\"\nregex = \"a\"\naction = \"alert\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = Policy::from_toml("bogus = 1").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Policy::from_toml("[[rule]]\nname = \"x\"\nglob = \"a\"\naction = \"alert\"\n[[rule]]\nname = \"x\"\nglob = \"b\"\naction = \"alert\"").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn toml_round_trip() {
        let cfg = PolicyConfig::from_toml(POLICY).unwrap();
        let back = PolicyConfig::from_toml(&cfg.to_toml().unwrap()).unwrap();
        assert_eq!(cfg, back);
    }
}
