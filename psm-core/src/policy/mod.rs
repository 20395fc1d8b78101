//! Command policy: rules on what users type, see and transfer, judged in real time.
//!
//! A [`PolicyConfig`] (TOML or built in code) holds rules in order; each looks at commands,
//! output lines or transfer paths with a regex or a glob, applies to some targets and roles,
//! and names an [`Action`] (`allow`, `alert`, `require-approval`, `pause`, `lock`,
//! `terminate`). [`Policy::new`] compiles it once; [`Policy::for_session`] narrows it to a
//! session's target and roles; [`SessionPolicy::tracker`] gives each terminal channel a
//! [`CommandTracker`], the state machine a proxy tap feeds with the bytes of both
//! directions and that answers with [`Decision`]s. The engine decides; the proxy acts.
//!
//! ```
//! use psm_core::policy::{Action, Feed, Policy, PolicyEvent, SessionScope, TrackerConfig};
//!
//! let policy = Policy::from_toml(r#"
//!     [[rule]]
//!     name = "wipe"
//!     regex = '^rm\s+-\w*r\w*\s+/\S*$'
//!     action = "terminate"
//!     message = "Recursive delete from the root"
//! "#)?;
//! let session = policy.for_session(&SessionScope::new("db-01", ["dba"]));
//! let mut tracker = session.tracker(TrackerConfig::default());
//! let mut decisions = Vec::new();
//!
//! // The shell prints its prompt; the user recalls the last command from history
//! // (up arrow): only the echo says what the line is.
//! tracker.output(b"$ ", &mut decisions);
//! let _ = tracker.input(b"\x1b[A", false, &mut decisions);
//! tracker.output(b"rm -rf /etc", &mut decisions);
//! let _ = tracker.input(b"\r", false, &mut decisions);
//!
//! let d = &decisions[0];
//! assert_eq!(d.command_line(), Some("rm -rf /etc"));
//! assert_eq!(d.action, Action::Terminate);
//! assert!(matches!(d.event, PolicyEvent::Command { late: false, .. }));
//! # Ok::<(), psm_core::CoreError>(())
//! ```
//!
//! What can and cannot be caught is written down in `docs/policy.md`.

mod action;
mod compiled;
mod config;
mod editor;
mod keys;
mod output;
mod pattern;
mod screen;
mod shell;
mod tracker;

pub use action::{Action, Decision, LineSource, PolicyEvent, RuleMatch, TransferDirection};
pub use compiled::{Policy, SessionPolicy, SessionScope};
pub use config::{MAX_PATTERN, MAX_POLICY_TEXT, MAX_RULES, PolicyConfig, RuleConfig, Subject};
pub use pattern::glob_to_regex;
pub use screen::{MAX_COLS, MAX_ROWS};
pub use shell::{MAX_DEPTH, MAX_FORMS, command_forms, continues};
pub use tracker::{CommandTracker, DEFAULT_MAX_LINE, Feed, TrackerConfig};
