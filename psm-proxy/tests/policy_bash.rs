//! The command tracker against a real interactive bash (readline) in a real pty: every
//! editing key, history recall, completion, continuation, paste and bypass listed in
//! docs/policy.md, typed the way a user or a script would, with the tracker fed exactly
//! the bytes that went each way.
//!
//! The pty comes from util-linux `script`; bash runs with `--norc --noprofile` and
//! Debian's default `/etc/inputrc`. The commands run for real, on a canary in a temporary
//! directory, so each test also checks that what bash ran is what the tracker judged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use psm_core::policy::{Action, Decision, LineSource, Policy, PolicyEvent, SessionScope};
use psm_proxy::tracker::{CommandTracker, Feed, TrackerConfig};

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

struct Bash {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Vec<u8>>,
    tracker: CommandTracker,
    decisions: Vec<Decision>,
    screen_log: Vec<u8>,
    wait_for_echo: bool,
    dir: tempfile::TempDir,
}

fn require(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is missing: install the Debian package `{package}`"
    );
}

impl Bash {
    fn start(wait_for_echo: bool) -> Self {
        require("script", "util-linux");
        require("bash", "bash");
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("script")
            .args([
                "-qf",
                "-c",
                "stty cols 100 rows 30; exec bash --norc --noprofile -i",
                "/dev/null",
            ])
            .env_clear()
            .env("TERM", "xterm")
            .env("PS1", "psm$ ")
            .env("HOME", dir.path())
            .env("HISTFILE", dir.path().join("history"))
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("LANG", "C.UTF-8")
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start script(1)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let policy = Policy::from_toml(RULES).unwrap();
        let tracker = CommandTracker::new(
            policy.for_session(&SessionScope::new("bash", ["ops"])),
            TrackerConfig {
                cols: 100,
                rows: 30,
                wait_for_echo,
                ..TrackerConfig::default()
            },
        );
        let mut bash = Self {
            child,
            stdin,
            rx,
            tracker,
            decisions: Vec::new(),
            screen_log: Vec::new(),
            wait_for_echo,
            dir,
        };
        bash.until("psm$ ");
        bash
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn canary(&self) -> PathBuf {
        let p = self.dir().join("psm-canary");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn output(&mut self, chunk: &[u8]) {
        self.screen_log.extend_from_slice(chunk);
        self.tracker.output(chunk, &mut self.decisions);
    }

    /// Reads output until none came for `quiet`, waiting at most `first` for the first chunk.
    fn pump(&mut self, first: Duration, quiet: Duration) {
        let mut wait = first;
        loop {
            match self.rx.recv_timeout(wait) {
                Ok(chunk) => {
                    self.output(&chunk);
                    wait = quiet;
                }
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Reads output until `needle` appears in what arrived since the call.
    fn until(&mut self, needle: &str) {
        let start = self.screen_log.len();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&self.screen_log[start..]).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.output(&chunk),
                Err(_) => panic!(
                    "{needle:?} never came; output so far: {:?}",
                    String::from_utf8_lossy(&self.screen_log)
                ),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends bytes the way a proxy tap would: the tracker sees them first, and a
    /// `WaitForEcho` holds the Enter until the echo is on the screen.
    fn send(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        loop {
            match self.tracker.input(rest, false, &mut self.decisions) {
                Feed::All => {
                    self.write(rest);
                    return;
                }
                Feed::WaitForEcho { consumed } => {
                    assert!(self.wait_for_echo);
                    self.write(&rest[..consumed]);
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while !self.tracker.echo_ready() && Instant::now() < deadline {
                        if let Ok(chunk) = self.rx.recv_timeout(Duration::from_millis(50)) {
                            self.output(&chunk);
                        }
                    }
                    if !self.tracker.echo_ready() {
                        self.tracker.echo_timeout();
                    }
                    rest = &rest[consumed..];
                }
            }
        }
    }

    /// One key, as a person types it: sent, then its echo read.
    fn key(&mut self, bytes: &[u8]) {
        self.send(bytes);
        self.pump(Duration::from_millis(500), Duration::from_millis(30));
    }

    fn keys(&mut self, text: &str) {
        for c in text.chars() {
            let mut b = [0; 4];
            self.key(c.encode_utf8(&mut b).as_bytes());
        }
    }

    /// Enter, then the output until the next prompt.
    fn enter(&mut self) {
        self.send(b"\r");
        self.until("psm$ ");
        self.pump(Duration::from_millis(50), Duration::from_millis(30));
    }

    fn commands(&self) -> Vec<(String, Action, bool, LineSource)> {
        self.decisions
            .iter()
            .filter_map(|d| match &d.event {
                PolicyEvent::Command {
                    line, late, source, ..
                } => Some((line.clone(), d.action, *late, *source)),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Bash {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let mut b = Bash::start(false);
    let canary = b.canary();
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
    let mut b = Bash::start(false);
    let canary = b.canary();
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
    let mut b = Bash::start(false);
    let canary = b.canary();
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
    let mut b = Bash::start(false);
    b.canary();
    let wipe = wipe_line(&b);
    b.keys(&wipe);
    b.enter();
    b.keys("echo between");
    b.enter();
    b.canary();
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
    let mut b = Bash::start(false);
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
    let mut b = Bash::start(false);
    let canary = b.canary();
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
    let mut b = Bash::start(false);
    b.canary();
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
        let mut b = Bash::start(false);
        let canary = b.canary();
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
    let mut b = Bash::start(false);
    let canary = b.canary();
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
    let mut b = Bash::start(false);
    b.canary();
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
    let mut b = Bash::start(true);
    b.canary();
    let wipe = wipe_line(&b);
    b.send(format!("{wipe}\r").as_bytes());
    b.until("psm$ ");
    b.pump(Duration::from_millis(50), Duration::from_millis(30));
    assert_wipe_judged(&b, LineSource::Keystrokes);
    assert_canary_gone(&b);
}

#[test]
fn stty_echo_off_is_reported_without_text_and_still_judged() {
    let mut b = Bash::start(false);
    b.keys("stty -echo");
    b.enter();
    b.canary();
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
    require("vim", "vim");
    let mut b = Bash::start(false);
    b.canary();
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
