//! The command tracker against a real interactive bash (readline) in a real pty: every
//! editing key, history recall, completion, continuation, paste and bypass listed in
//! docs/policy.md, typed the way a user or a script would, with the tracker fed exactly
//! the bytes that went each way.
//!
//! The pty comes from util-linux `script`; bash runs with `--norc --noprofile` and
//! Debian's default `/etc/inputrc`. The commands run for real, on a canary in a temporary
//! directory, so each test also checks that what bash ran is what the tracker judged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "harness/bash.rs"]
mod bash;

use std::path::PathBuf;
use std::time::Duration;

use bash::Bash;
use psm_core::policy::{Action, Decision, LineSource, PolicyEvent};
use psm_proxy::tracker::DEFAULT_MAX_LINE;

const RULES: &str = r#"
unechoed_input = "alert"

[[rule]]
name = "canary-wipe"
regex = '^rm -rf \S*psm-canary'
action = "terminate"
message = "no wiping the canary"

[[rule]]
name = "marker"
glob = "echo psm-secret-marker*"
action = "alert"
"#;

/// A bash judged by `RULES`.
fn start(wait_for_echo: bool) -> Bash {
    Bash::start_with(wait_for_echo, |_| RULES.to_owned(), DEFAULT_MAX_LINE)
}

/// A directory for the wipe to remove.
fn canary(b: &Bash) -> PathBuf {
    let p = b.dir().join("psm-canary");
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn wipe_line(b: &Bash) -> String {
    format!("rm -rf {}", b.dir().join("psm-canary").display())
}

/// One decision: the wipe, terminate, judged before the Enter was forwarded.
fn assert_wipe_judged(b: &Bash, source: LineSource) {
    let cmds = b.commands();
    assert_eq!(
        cmds,
        vec![(wipe_line(b), Action::Terminate, false, source)],
        "screen: {:?}",
        String::from_utf8_lossy(&b.screen_log)
    );
}

fn assert_canary_gone(b: &Bash) {
    assert!(
        !b.dir().join("psm-canary").exists(),
        "bash did not run the command the tracker judged"
    );
}

#[test]
fn backspace_and_ctrl_h() {
    let mut b = start(false);
    let canary = canary(&b);
    b.key(b"r");
    b.key(b"\x7f");
    b.keys("rm -rf ");
    b.keys(&canary.display().to_string());
    b.keys("xy");
    b.key(b"\x08");
    b.key(b"\x7f");
    b.enter();
    assert_wipe_judged(&b, LineSource::Keystrokes);
    assert_canary_gone(&b);
}

#[test]
fn ctrl_u_and_ctrl_w_retyping() {
    let mut b = start(false);
    let canary = canary(&b);
    b.keys("echo harmless");
    b.key(b"\x15");
    b.keys("rm -rf /tmp/not-this-one");
    b.key(b"\x17");
    b.keys(&canary.display().to_string());
    b.enter();
    assert_wipe_judged(&b, LineSource::Keystrokes);
    assert_canary_gone(&b);
}

#[test]
fn cursor_keys_insert_home_end_delete() {
    let mut b = start(false);
    let canary = canary(&b);
    let path = canary.display().to_string();
    // "xm -rf PATHz": fix the first letter with Home + Delete + insert, the last with End
    // + backspace, and one in the middle with left arrows.
    b.keys(&format!("xm -f {path}z"));
    b.key(b"\x1b[H");
    b.key(b"\x1b[3~");
    b.key(b"r");
    b.key(b"\x1b[F");
    b.key(b"\x7f");
    for _ in 0..path.chars().count() + 1 {
        b.key(b"\x1b[D");
    }
    b.key(b"\x1b[D");
    b.key(b"r");
    b.enter();
    assert_wipe_judged(&b, LineSource::Keystrokes);
    assert_canary_gone(&b);
}

#[test]
fn history_recall_reads_the_screen() {
    let mut b = start(false);
    canary(&b);
    let wipe = wipe_line(&b);
    b.keys(&wipe);
    b.enter();
    b.keys("echo between");
    b.enter();
    canary(&b);
    b.key(b"\x1b[A");
    b.key(b"\x1b[A");
    b.enter();
    let cmds = b.commands();
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert_eq!(
        cmds[2],
        (wipe.clone(), Action::Terminate, false, LineSource::Screen)
    );
    assert_canary_gone(&b);
}

#[test]
fn tab_completion_reads_the_screen() {
    let mut b = start(false);
    let target = b.dir().join("psm-canary-completion-target");
    std::fs::create_dir_all(&target).unwrap();
    let partial = format!("rm -rf {}/psm-canary-compl", b.dir().display());
    b.keys(&partial);
    b.key(b"\t");
    b.enter();
    let cmds = b.commands();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(
        cmds[0].0.trim_end_matches('/'),
        format!("rm -rf {}", target.display())
    );
    assert_eq!(
        (cmds[0].1, cmds[0].3),
        (Action::Terminate, LineSource::Screen)
    );
    assert!(!target.exists());

    // Command-name completion.
    b.keys("ech");
    b.key(b"\t");
    b.keys("psm-secret-marker now");
    b.enter();
    let cmds = b.commands();
    assert_eq!(cmds[1].0, "echo psm-secret-marker now");
    assert_eq!(cmds[1].1, Action::Alert);
}

#[test]
fn backslash_continuation_is_judged_whole() {
    let mut b = start(false);
    let canary = canary(&b);
    b.keys("rm -rf \\");
    b.send(b"\r");
    b.until("> ");
    b.keys(&canary.display().to_string());
    b.enter();
    let cmds = b.commands();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(cmds[0].0, wipe_line(&b));
    assert_eq!(cmds[0].1, Action::Terminate);
    assert_canary_gone(&b);
}

#[test]
fn bracketed_paste() {
    let mut b = start(false);
    canary(&b);
    let wipe = wipe_line(&b);
    b.key(format!("\x1b[200~{wipe}\x1b[201~").as_bytes());
    b.enter();
    assert_wipe_judged(&b, LineSource::Keystrokes);
    assert_canary_gone(&b);
}

#[test]
fn quoting_spacing_and_paths_normalise() {
    for variant in [
        "'r'm   -rf {}",
        "\"rm\" -rf {}",
        "\\rm -rf {}",
        "/bin/rm -rf {}",
        "r\\m -rf '{}'",
        "true; rm -rf {}",
        "sudo() { \"$@\"; }; sudo rm -rf {}",
        "LC_ALL=C command rm -rf {} 2>/dev/null",
    ] {
        let mut b = start(false);
        let canary = canary(&b);
        let line = variant.replace("{}", &canary.display().to_string());
        b.keys(&line);
        b.enter();
        let cmds = b.commands();
        assert_eq!(cmds.len(), 1, "{variant}: {cmds:?}");
        assert_eq!(cmds[0].0, line, "{variant}");
        assert_eq!(cmds[0].1, Action::Terminate, "{variant} was not caught");
        assert_canary_gone(&b);
    }
}

#[test]
fn ctrl_c_abandons_the_line() {
    let mut b = start(false);
    let canary = canary(&b);
    b.keys(&wipe_line(&b));
    b.key(b"\x03");
    b.pump(Duration::from_millis(300), Duration::from_millis(50));
    b.keys("echo ok");
    b.enter();
    let cmds = b.commands();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(cmds[0].0, "echo ok");
    assert!(canary.exists());
}

#[test]
fn burst_without_waiting_is_judged_late_from_the_screen() {
    let mut b = start(false);
    canary(&b);
    let wipe = wipe_line(&b);
    b.send(format!("{wipe}\r").as_bytes());
    b.until("psm$ ");
    b.pump(Duration::from_millis(50), Duration::from_millis(30));
    let cmds = b.commands();
    assert_eq!(
        cmds,
        vec![(wipe, Action::Terminate, true, LineSource::Screen)]
    );
}

#[test]
fn burst_with_waiting_is_judged_before_the_enter() {
    let mut b = start(true);
    canary(&b);
    let wipe = wipe_line(&b);
    b.send(format!("{wipe}\r").as_bytes());
    b.until("psm$ ");
    b.pump(Duration::from_millis(50), Duration::from_millis(30));
    assert_wipe_judged(&b, LineSource::Keystrokes);
    assert_canary_gone(&b);
}

#[test]
fn stty_echo_off_is_reported_without_text_and_still_judged() {
    let mut b = start(false);
    b.keys("stty -echo");
    b.enter();
    canary(&b);
    let wipe = wipe_line(&b);
    b.keys(&wipe);
    b.enter();
    let unechoed: Vec<&Decision> = b
        .decisions
        .iter()
        .filter(|d| matches!(d.event, PolicyEvent::UnechoedInput { .. }))
        .collect();
    assert_eq!(unechoed.len(), 1, "{:?}", b.decisions);
    assert_eq!(unechoed[0].action, Action::Terminate);
    assert_eq!(unechoed[0].matched[0].name.as_ref(), "canary-wipe");
    assert!(!format!("{:?}", b.decisions).contains("psm-canary"));
    assert_canary_gone(&b);
}

#[test]
fn vi_bang_command() {
    bash::require("vim", "vim");
    let mut b = start(false);
    canary(&b);
    let wipe = wipe_line(&b);
    b.keys("vim -u NONE -N");
    b.send(b"\r");
    b.pump(Duration::from_secs(2), Duration::from_millis(200));
    b.keys(&format!(":!{wipe}"));
    b.send(b"\r");
    b.until("ENTER");
    b.key(b"\r");
    b.keys(":q!");
    b.enter();
    let vi: Vec<_> = b
        .commands()
        .into_iter()
        .filter(|c| c.3 == LineSource::ViCommand)
        .collect();
    assert_eq!(
        vi,
        vec![(wipe, Action::Terminate, false, LineSource::ViCommand)]
    );
    assert_canary_gone(&b);
}
