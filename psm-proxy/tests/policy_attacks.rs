//! Issue 17's command-policy attacks, typed into a real interactive bash (readline,
//! Debian's `/etc/inputrc`) in a real pty, with the tracker fed exactly the bytes that went
//! each way (the harness in `harness/bash.rs`, shared with `policy_bash.rs`). Every test
//! here failed on the tracker and engine before the fix: the attack line was judged
//! `allow` (or not at all).
//!
//! The commands run for real, on files in a temporary directory, so each test also checks
//! that bash ran what was judged: the "blocked" command is a harmless `touch` of a flag
//! file that a rule forbids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/bash.rs"]
mod bash;

use std::path::Path;
use std::time::{Duration, Instant};

use bash::Bash;
use psm_core::policy::{Action, Incomplete, LineSource, PolicyEvent};
use psm_proxy::tracker::DEFAULT_MAX_LINE;

/// docs/policy.md's example, on paths in the test's directory `d`: `rm -rf D/tmp/*` is
/// allowed, other recursive deletes need approval, touching `D/psm-flag` (our stand-in for
/// `shutdown -h now`) terminates.
fn docs_rules(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"
default_action = "allow"

[[rule]]
name = "tmp-cleanup"
glob = "rm -rf {d}/tmp/*"
action = "allow"

[[rule]]
name = "recursive-delete"
regex = '^rm\s+(-\w*[rR]\w*\s+|--recursive\s+)'
action = "require-approval"

[[rule]]
name = "no-flag"
glob = "touch {d}/psm-flag"
action = "terminate"
message = "stand-in for shutdown -h now"
"#
    )
}

fn flag(b: &Bash) -> String {
    format!("{}/psm-flag", b.dir().display())
}

fn screen(b: &Bash) -> String {
    String::from_utf8_lossy(&b.screen_log).into_owned()
}

/// H4: with docs/policy.md's example, `rm -rf /tmp/x; shutdown -h now` was allowed as a
/// whole by the `allow` on `rm -rf /tmp/*`. Now each simple command is judged on its own.
#[test]
fn h4_an_allow_covers_only_the_command_it_matched() {
    let mut b = Bash::start_with(false, docs_rules, DEFAULT_MAX_LINE);
    let d = b.dir().to_path_buf();
    std::fs::create_dir_all(d.join("tmp/x")).unwrap();
    let flag = flag(&b);
    for sep in ["; ", " && ", " | ", "\n"] {
        let _ = std::fs::remove_file(&flag);
        std::fs::create_dir_all(d.join("tmp/x")).unwrap();
        let line = format!("rm -rf {}/tmp/x{sep}touch {flag}", d.display());
        // Typed as a user types: key by key, each echo read (a newline in the middle
        // arrives as a bracketed paste, as a terminal sends a pasted block).
        let typed = if sep == "\n" {
            format!("\x1b[200~{line}\x1b[201~")
        } else {
            line.clone()
        };
        b.decisions.clear();
        if sep == "\n" {
            b.key(typed.as_bytes());
        } else {
            b.keys(&typed);
        }
        b.enter();
        let cmds = b.commands();
        assert!(
            cmds.iter()
                .any(|(_, a, late, _)| *a == Action::Terminate && !late),
            "{sep:?}: {cmds:?}; screen {:?}",
            screen(&b)
        );
        let d0 = b
            .decisions
            .iter()
            .find(|d| d.action == Action::Terminate)
            .unwrap();
        assert_eq!(d0.deciding_rule().unwrap().name.as_ref(), "no-flag");
        assert!(
            Path::new(&flag).exists(),
            "bash ran the touch the tracker judged"
        );
    }
}

/// H4: paths are normalised before globbing: `rm -rf /tmp/../etc` is not under `/tmp/*`.
#[test]
fn h4_dot_dot_does_not_escape_an_allowed_directory() {
    let mut b = Bash::start_with(false, docs_rules, DEFAULT_MAX_LINE);
    let d = b.dir().to_path_buf();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    std::fs::create_dir_all(d.join("keep/inner")).unwrap();
    let line = format!("rm -rf {}/tmp/../keep", d.display());
    b.keys(&line);
    b.enter();
    assert_eq!(
        b.commands(),
        vec![(line, Action::RequireApproval, false, LineSource::Keystrokes)],
        "screen {:?}",
        screen(&b)
    );
    assert!(
        !d.join("keep").exists(),
        "bash deleted what the tracker judged"
    );
}

/// M3: a command after 63 harmless ones was past the 64 forms kept, and escaped anchored
/// rules.
#[test]
fn m3_a_command_after_63_harmless_ones_is_judged() {
    let mut b = Bash::start_with(true, docs_rules, DEFAULT_MAX_LINE);
    let flag = flag(&b);
    let mut line: String = (1..=63).map(|i| format!(": {i}; ")).collect();
    line.push_str(&format!("touch {flag}"));
    // A script's burst: the Enter waits for the echo.
    b.send(format!("{line}\r").as_bytes());
    b.until("psm$ ");
    let cmds = b.commands();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(
        (cmds[0].1, cmds[0].2),
        (Action::Terminate, false),
        "{cmds:?}"
    );
    assert!(Path::new(&flag).exists());
}

/// M3: a command after `max_line` characters was cut off the judged text, which then
/// matched nothing: now a cut line gets `incomplete_command` (default
/// `require-approval`), before its Enter is forwarded.
#[test]
fn m3_a_command_past_max_line_fails_closed() {
    let mut b = Bash::start_with(true, docs_rules, 256);
    let flag = flag(&b);
    let line = format!(": {}; touch {flag}", "x".repeat(300));
    b.send(format!("{line}\r").as_bytes());
    b.until("psm$ ");
    let d = b
        .decisions
        .iter()
        .find(|d| matches!(d.event, PolicyEvent::Command { late: false, .. }))
        .expect("judged at the Enter");
    assert_eq!(d.action, Action::RequireApproval, "{d:?}");
    assert_eq!(d.incomplete, Some(Incomplete::Cut));
    assert!(matches!(
        d.event,
        PolicyEvent::Command {
            truncated: true,
            ..
        }
    ));
}

/// M3: history expansion ran text no rule saw. Now the line is flagged (the policy's
/// `history_expansion` action, `alert` by default) before its Enter, and the expanded
/// command bash echoes is judged when it appears (late).
#[test]
fn m3_history_expansion_is_flagged_and_its_echo_judged() {
    for (setup, expand) in [("echo touch FLAG", "^echo ^"), ("echo touch FLAG", "!:1-$")] {
        let mut b = Bash::start_with(false, docs_rules, DEFAULT_MAX_LINE);
        let flag = flag(&b);
        b.keys(&setup.replace("FLAG", &flag));
        b.enter();
        b.decisions.clear();
        b.keys(expand);
        b.enter();
        let first = &b.decisions[0];
        assert_eq!(first.command_line(), Some(expand));
        assert_eq!(
            first.incomplete,
            Some(Incomplete::HistoryExpansion),
            "{first:?}"
        );
        assert_eq!(first.action, Action::Alert);
        let cmds = b.commands();
        assert!(
            cmds.iter().any(|(l, a, late, _)| *late
                && *a == Action::Terminate
                && l.contains(&format!("touch {flag}"))),
            "{expand:?}: {cmds:?}; screen {:?}",
            screen(&b)
        );
        assert!(
            Path::new(&flag).exists(),
            "{expand:?}: bash ran the expansion"
        );
    }
}

/// H3: a line submitted by a key other than CR/LF/^O (`bind '"\C-t": accept-line'`) was
/// never judged. Now, when the shell starts a new line in answer to a key the model does
/// not know, the line is judged (late: the key has been forwarded).
#[test]
fn h3_a_line_accepted_by_a_rebound_key_is_judged() {
    let mut b = Bash::start_with(false, docs_rules, DEFAULT_MAX_LINE);
    let flag = flag(&b);
    b.keys(r#"bind '"\C-t": accept-line'"#);
    b.enter();
    b.decisions.clear();
    b.keys(&format!("touch {flag}"));
    b.send(b"\x14");
    b.until("psm$ ");
    b.pump(Duration::from_millis(50), Duration::from_millis(30));
    let cmds = b.commands();
    assert_eq!(
        cmds,
        vec![(
            format!("touch {flag}"),
            Action::Terminate,
            true,
            LineSource::Screen
        )],
        "screen {:?}",
        screen(&b)
    );
    assert!(
        Path::new(&flag).exists(),
        "bash ran the line the tracker judged"
    );
    // The next line reads normally.
    b.keys("echo next");
    b.enter();
    assert_eq!(
        b.commands().last().unwrap().0,
        "echo next",
        "{:?}",
        b.commands()
    );
}

/// H3: `ESC [200~` to a program that never asked for bracketed paste (here `sh`, dash,
/// which reads lines in the terminal's cooked mode) put the tracker in paste mode, where a
/// CR is text: the command after it was never judged. Now paste mode follows the target's
/// `ESC [?2004h` / `ESC [?2004l`, and the CR is an Enter.
#[test]
fn h3_a_fake_paste_to_a_shell_without_bracketed_paste_is_judged() {
    let mut b = Bash::start_with(true, docs_rules, DEFAULT_MAX_LINE);
    let flag = flag(&b);
    b.keys("exec sh");
    b.enter();
    b.decisions.clear();
    b.send(format!("\x1b[200~\rtouch {flag}\r").as_bytes());
    // Until sh has run the line (both prompts may come in one read).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(&flag).exists() && Instant::now() < deadline {
        b.pump(Duration::from_millis(100), Duration::from_millis(30));
    }
    b.pump(Duration::from_millis(50), Duration::from_millis(30));
    let cmds = b.commands();
    // Judged from the screen, or, when sh's output interleaved with the typed-ahead line
    // so that its echo never stood alone on the screen (a loaded machine), from the keys
    // before the Enter: reported then as unechoed input, without its text. Either way the
    // rule acted on the line the paste tried to hide.
    let from_keys = b.decisions.iter().any(|d| {
        d.action == Action::Terminate && matches!(d.event, PolicyEvent::UnechoedInput { .. })
    });
    assert!(
        from_keys
            || cmds
                .iter()
                .any(|(l, a, _, _)| *l == format!("touch {flag}") && *a == Action::Terminate),
        "{cmds:?}; screen {:?}",
        screen(&b)
    );
    assert!(
        Path::new(&flag).exists(),
        "sh ran the line the tracker judged"
    );
}

/// The decisions the rule `no-flag` terminated, as (event kind, line if any).
fn terminated(b: &Bash) -> Vec<(bool, Option<String>)> {
    b.decisions
        .iter()
        .filter(|d| d.action == Action::Terminate)
        .map(|d| {
            (
                matches!(d.event, PolicyEvent::UnechoedInput { .. }),
                d.command_line().map(str::to_owned),
            )
        })
        .collect()
}

/// H1: after `printf '\e[?1049h'` (the alternate screen, as tmux, screen and vim use)
/// every Enter was only checked for vi `:!`. Now a line at a shell prompt there is judged
/// before its Enter, as anywhere.
#[test]
fn h1_a_line_on_the_alternate_screen_is_judged_at_its_prompt() {
    let mut b = Bash::start_with(true, docs_rules, DEFAULT_MAX_LINE);
    let flag = flag(&b);
    b.keys("printf '\\e[?1049h'");
    b.enter();
    b.decisions.clear();
    b.keys(&format!("touch {flag}"));
    // The harness forwards the Enter after the tracker has read it: what is decided by
    // the time `send` returns was decided before the Enter reached bash.
    b.send(b"\r");
    assert_eq!(
        terminated(&b),
        vec![(false, Some(format!("touch {flag}")))],
        "{:?}; screen {:?}",
        b.decisions,
        screen(&b)
    );
    b.until("psm$ ");
}

/// H2: `PS1='password: '` hid every later line from the policy. The first key is still
/// taken as hidden (the echo has not come), but the echo shows the prompt echoes: the line
/// is judged with its text, before its Enter.
#[test]
fn h2_a_password_looking_prompt_hides_no_command() {
    let mut b = Bash::start_with(true, docs_rules, DEFAULT_MAX_LINE);
    let flag = flag(&b);
    b.keys("PS1='password: '");
    b.send(b"\r");
    b.until("password: ");
    b.pump(Duration::from_millis(50), Duration::from_millis(30));
    b.decisions.clear();
    b.keys(&format!("touch {flag}"));
    b.send(b"\r");
    assert_eq!(
        terminated(&b),
        vec![(false, Some(format!("touch {flag}")))],
        "{:?}; screen {:?}",
        b.decisions,
        screen(&b)
    );
}

/// M2: after `stty -echo`, the line was judged only when the output moved past it: the
/// command had run. Now, the keys being certain, it is judged before its Enter (without
/// its text: a line typed without echo may be a secret).
#[test]
fn m2_with_echo_off_the_keys_are_judged_before_the_enter() {
    let mut b = Bash::start_with(true, docs_rules, DEFAULT_MAX_LINE);
    let flag = flag(&b);
    b.keys("stty -echo");
    b.enter();
    b.decisions.clear();
    b.keys(&format!("touch {flag}"));
    b.send(b"\r");
    assert_eq!(terminated(&b), vec![(true, None)], "{:?}", b.decisions);
    assert!(!format!("{:?}", b.decisions).contains("psm-flag"));
}
