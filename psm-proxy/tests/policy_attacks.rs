//! Issue 17's command-policy attacks, typed into a real interactive bash (readline,
//! Debian's `/etc/inputrc`) in a real pty, with the tracker fed exactly the bytes that went
//! each way (the harness of `policy_bash.rs`). Every test here failed on the tracker and
//! engine before the fix: the attack line was judged `allow` (or not at all).
//!
//! The commands run for real, on files in a temporary directory, so each test also checks
//! that bash ran what was judged: the "blocked" command is a harmless `touch` of a flag
//! file that a rule forbids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use psm_core::policy::{
    Action, Decision, Incomplete, LineSource, Policy, PolicyEvent, SessionScope,
};
use psm_proxy::tracker::{CommandTracker, DEFAULT_MAX_LINE, Feed, TrackerConfig};

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
    /// A bash whose tracker judges with the policy `rules` builds from the temporary
    /// directory (rules name paths in it), reading lines of at most `max_line` characters.
    fn start_with(
        wait_for_echo: bool,
        rules: impl FnOnce(&Path) -> String,
        max_line: usize,
    ) -> Self {
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
        let policy = Policy::from_toml(&rules(dir.path())).unwrap();
        let tracker = CommandTracker::new(
            policy.for_session(&SessionScope::new("bash", ["ops"])),
            TrackerConfig {
                cols: 100,
                rows: 30,
                wait_for_echo,
                max_line,
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

    /// The command decisions: line, action, late, source.
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
