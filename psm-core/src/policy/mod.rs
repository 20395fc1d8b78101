//! Command policy: rules on what users type, see and transfer, judged in real time.
//!
//! A [`PolicyConfig`] (TOML or built in code) holds rules in order; each looks at commands,
//! output lines or transfer paths with a regex or a glob, applies to some targets and roles,
//! and names an [`Action`] (`allow`, `alert`, `require-approval`, `pause`, `lock`,
//! `terminate`). [`Policy::new`] compiles it once; [`Policy::for_session`] narrows it to a
//! session's target and roles; the [`SessionPolicy`] judges text already extracted (a
//! command line, an output line, a transfer path) and answers with [`Decision`]s. The engine
//! decides; the proxy acts. Reading command lines off a terminal (keystrokes and the
//! emulated screen) is the proxy's: psm-proxy's command tracker feeds its lines here.
//!
//! ```
//! use psm_core::policy::{Action, LineSource, Policy, PolicyEvent, SessionScope};
//!
//! let policy = Policy::from_toml(r#"
//!     [[rule]]
//!     name = "wipe"
//!     regex = '^rm\s+-\w*r\w*\s+/\S*$'
//!     action = "terminate"
//!     message = "Recursive delete from the root"
//! "#)?;
//! let session = policy.for_session(&SessionScope::new("db-01", ["dba"]));
//!
//! // A line read off the terminal (here from the screen, after a history recall): every
//! // form a shell would run is judged (quotes removed, `sudo` and paths stripped).
//! let d = session.judge_line("sudo '/bin/rm' -rf /etc", LineSource::Screen, false, false);
//! assert_eq!(d.command_line(), Some("sudo '/bin/rm' -rf /etc"));
//! assert_eq!(d.action, Action::Terminate);
//! assert!(matches!(d.event, PolicyEvent::Command { late: false, .. }));
//! # Ok::<(), psm_core::CoreError>(())
//! ```
//!
//! What can and cannot be caught is written down in `docs/policy.md`.

mod action;
mod compiled;
mod config;
mod pattern;
mod shell;

pub use action::{
    Action, Decision, Incomplete, LineSource, PolicyEvent, RuleMatch, TransferDirection,
};
pub use compiled::{Policy, SessionPolicy, SessionScope};
pub use config::{MAX_PATTERN, MAX_POLICY_TEXT, MAX_RULES, PolicyConfig, RuleConfig, Subject};
pub use pattern::glob_to_regex;
pub use shell::{
    CommandUnits, MAX_COMMANDS, MAX_DEPTH, MAX_FORMS, command_forms, command_units, continues,
};
