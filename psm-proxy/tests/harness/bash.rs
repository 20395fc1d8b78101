//! A real interactive bash (readline, Debian's `/etc/inputrc`) in a real pty, with the
//! command tracker fed exactly the bytes that go each way, as the policy tap feeds it. One
//! copy, included by `policy_bash.rs` and `policy_attacks.rs` with
//! `#[path = "harness/bash.rs"] mod bash;`.
//!
//! The pty comes from util-linux `script`; bash runs with `--norc --noprofile`, `PS1='psm$ '`,
//! in a temporary directory (its home) that the tests' rules name paths in.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use psm_core::policy::{Action, Decision, LineSource, Policy, PolicyEvent, SessionScope};
use psm_proxy::redact::EchoTracker;
use psm_proxy::tracker::{CommandTracker, Feed, TrackerConfig};

pub struct Bash {
    pub child: Child,
    pub stdin: ChildStdin,
    pub rx: Receiver<Vec<u8>>,
    pub tracker: CommandTracker,
    pub decisions: Vec<Decision>,
    pub screen_log: Vec<u8>,
    pub wait_for_echo: bool,
    pub dir: tempfile::TempDir,
    /// The gateway's echo-off inference (`psm_proxy::redact`), as the SSH bridge runs it:
    /// it says which keys the tracker gets as hidden.
    pub echo: EchoTracker,
}

pub fn require(tool: &str, package: &str) {
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
    pub fn start_with(
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
            echo: EchoTracker::default(),
        };
        bash.until("psm$ ");
        bash
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn output(&mut self, chunk: &[u8]) {
        self.screen_log.extend_from_slice(chunk);
        self.echo.output(chunk);
        self.tracker.output(chunk, &mut self.decisions);
    }

    /// Reads output until none came for `quiet`, waiting at most `first` for the first chunk.
    pub fn pump(&mut self, first: Duration, quiet: Duration) {
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
    pub fn until(&mut self, needle: &str) {
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

    pub fn write(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends bytes the way a proxy tap would: the tracker sees them first, and a
    /// `WaitForEcho` holds the Enter until the echo is on the screen.
    pub fn send(&mut self, bytes: &[u8]) {
        let hidden = self.echo.input(bytes);
        let mut rest = bytes;
        loop {
            match self.tracker.input(rest, hidden, &mut self.decisions) {
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
    pub fn key(&mut self, bytes: &[u8]) {
        self.send(bytes);
        self.pump(Duration::from_millis(500), Duration::from_millis(30));
    }

    pub fn keys(&mut self, text: &str) {
        for c in text.chars() {
            let mut b = [0; 4];
            self.key(c.encode_utf8(&mut b).as_bytes());
        }
    }

    /// Enter, then the output until the next prompt.
    pub fn enter(&mut self) {
        self.send(b"\r");
        self.until("psm$ ");
        self.pump(Duration::from_millis(50), Duration::from_millis(30));
    }

    /// The command decisions: line, action, late, source.
    pub fn commands(&self) -> Vec<(String, Action, bool, LineSource)> {
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
