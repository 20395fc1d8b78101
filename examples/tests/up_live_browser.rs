//! The admin web UI of a real `psm up` in Chromium, as an operator uses it: Watch a live SSH
//! session, Pause and Resume it (confirmed by the gateway through the live link), Join with
//! control and type into it, Terminate it, then open the browser terminal. Nothing here is
//! wired by the test: everything is what `psm up` starts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SshTarget, Up};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// Chromium through psm-server's step driver (tests/web_browser.cjs: one JSON step per line).
struct Browser {
    child: Child,
    stdin: ChildStdin,
    out: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Browser {
    fn start(shots: &Path) -> Self {
        let root = repo_root();
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "/usr/bin/chromium is missing: install the Debian package chromium"
        );
        assert!(
            root.join("node_modules/playwright-core").exists(),
            "node_modules/playwright-core is missing: run `npm ci` in {}",
            root.display()
        );
        let mut child = Command::new("node")
            .arg(root.join("psm-server/tests/web_browser.cjs"))
            .arg(shots)
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, stdin, out }
    }

    fn step(&mut self, step: Value) -> Value {
        writeln!(self.stdin, "{step}").unwrap();
        self.stdin.flush().unwrap();
        let line = self.out.next().expect("the browser driver ended").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], true, "browser step {step} failed: {v:#}");
        assert!(
            v["pageErrors"].as_array().is_none_or(|e| e.is_empty()),
            "the page threw: {v:#}"
        );
        v
    }

    fn goto(&mut self, url: &str) {
        self.step(json!({"op": "goto", "url": url}));
    }
    fn wait(&mut self, js: &str) {
        self.step(json!({"op": "waitFor", "js": js, "timeout": WAIT.as_millis() as u64}));
    }
    fn eval(&mut self, js: &str) -> Value {
        self.step(json!({"op": "eval", "js": js}))["value"].clone()
    }
    fn click(&mut self, sel: &str) {
        self.step(json!({"op": "click", "sel": sel}));
    }
    fn fill(&mut self, sel: &str, value: &str) {
        self.step(json!({"op": "fill", "sel": sel, "value": value}));
    }
    fn type_line(&mut self, text: &str) {
        self.step(json!({"op": "type", "text": text}));
        self.step(json!({"op": "press", "key": "Enter"}));
    }
    fn shot(&mut self, name: &str) {
        self.step(json!({"op": "screenshot", "name": name}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OpenSSH in a 100x30 pseudo-terminal (psm-server's tests/web_pty.py), typed into.
struct Terminal {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn start(up: &Up, dir: &Path, key: &Path, login: &str) -> Self {
        let mut child = Command::new("python3")
            .arg(repo_root().join("psm-server/tests/web_pty.py"))
            .args(["100", "30", "ssh", "-F", "/dev/null"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.join("known_hosts").display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-o",
                "BatchMode=yes",
            ])
            .args(["-o", "IdentitiesOnly=yes", "-i"])
            .arg(key)
            .args([
                "-p",
                &up.ssh_port.to_string(),
                &format!("{login}@127.0.0.1"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        for mut stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let stdin = child.stdin.take().unwrap();
        Self {
            child,
            stdin,
            output,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn type_line(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.write_all(b"\r").unwrap();
        self.stdin.flush().unwrap();
    }

    fn wait_output(&self, needle: &str) {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if self.text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the terminal never showed {needle:?}:\n{}", self.text());
    }

    fn wait_exit(&mut self) {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ssh did not exit:\n{}", self.text());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_admin_watches_controls_and_joins_a_live_ssh_session_of_psm_up_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmlive");
    let up = Up::start(d, &[]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);
    let web = format!("http://127.0.0.1:{}", up.api_port);
    let shots = std::env::var_os("PSM_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("psm-up-live-browser"));

    // Alice works in a terminal through the gateway.
    let mut ssh = Terminal::start(&up, d, &key, "alice+web-01");
    ssh.type_line("echo ready-$((1+1))");
    ssh.wait_output("ready-2");

    let mut b = Browser::start(&shots);
    b.goto(&format!("{web}/ui/"));
    b.wait("!!document.querySelector('#password')");
    b.fill("#user", "admin");
    b.fill("#password", &up.admin_password());
    b.click("#login");
    b.wait("!!document.querySelector('#sessions-body tr[data-session].live')");
    let id =
        b.eval("document.querySelector('#sessions-body tr[data-session].live').dataset.session");
    let id = id.as_str().unwrap().to_owned();

    // Watch: what Alice types appears in the admin's view.
    b.goto(&format!("{web}/ui/session?id={id}&watch=1"));
    b.wait("window.psm.live && window.psm.live.connected");
    ssh.type_line("echo typed-by-alice-$((6*7))");
    ssh.wait_output("typed-by-alice-42");
    b.wait("window.psm.liveText && window.psm.liveText().includes('typed-by-alice-42')");
    b.shot("up-01-watch");

    // Pause: confirmed by the gateway (the live link), the user is told, input is held.
    b.fill("#reason", "checking this");
    b.click("#pause");
    b.wait("window.psm.lastControl && window.psm.lastControl.action === 'pause' && window.psm.lastControl.applied === true");
    ssh.wait_output("session paused by");
    ssh.type_line("echo held-while-paused-$((100+1))");
    std::thread::sleep(Duration::from_secs(2));
    let seen = b.eval("window.psm.liveText()");
    assert!(
        !seen.as_str().unwrap().contains("held-while-paused-101"),
        "input reached the target while paused:\n{seen}"
    );
    b.click("#resume");
    b.wait("window.psm.lastControl.action === 'resume' && window.psm.lastControl.applied === true");
    ssh.wait_output("held-while-paused-101");

    // Join with control: the admin's keystrokes reach the session.
    b.click("#join-control");
    b.wait("window.psm.live && window.psm.live.connected && window.psm.live.mode === 'control'");
    ssh.wait_output("joined with control");
    b.type_line("echo typed-by-the-admin-$((3*3))");
    ssh.wait_output("typed-by-the-admin-9");
    b.wait("window.psm.liveText().includes('typed-by-the-admin-9')");
    b.shot("up-02-join-control");

    // Terminate, with a reason Alice sees.
    b.fill("#reason", "end of the black-box test");
    b.click("#terminate");
    b.wait("window.psm.lastControl && window.psm.lastControl.action === 'terminate'");
    ssh.wait_output("end of the black-box test");
    ssh.wait_exit();
    b.wait("window.psm.live && !!window.psm.live.closed");
    b.shot("up-03-terminated");

    // The browser terminal: the admin (granted every target) opens a shell on web-01.
    b.goto(&format!("{web}/ui/terminal"));
    b.wait("!!document.querySelector('button.target[data-target=\"web-01\"]')");
    b.click("button.target[data-target=\"web-01\"]");
    b.wait("window.psm.terminal && window.psm.terminal.connected");
    b.wait("window.psm.terminalText().includes('$ ')");
    b.type_line("echo from-the-browser-$((2*21))");
    b.wait("window.psm.terminalText().includes('from-the-browser-42')");
    b.shot("up-04-browser-terminal");
    b.type_line("exit");
    b.wait("!!window.psm.terminal.closed");

    // No credential anywhere the operator or the page could see it.
    let page = b.eval("document.documentElement.outerHTML");
    assert!(!page.as_str().unwrap().contains(&target.password));
    assert!(!ssh.text().contains(&target.password));
    assert!(!up.log.lock().unwrap().contains(&target.password));
}
