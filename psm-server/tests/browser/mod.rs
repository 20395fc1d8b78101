//! What browser tests share: Chromium driven step by step through `web_browser.cjs` (Debian's
//! Chromium, playwright-core, no browser download), and a command in a pseudo-terminal of a
//! given size (`web_pty.py`), typed into like a user's terminal window. psm-server's own
//! browser tests use it, and so do the black-box tests of the `psm` binary in `examples/`
//! (`#[path]`), so that there is one driver.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long any one wait may take (generous: the machine is shared and slow).
pub const WAIT: Duration = Duration::from_secs(60);

/// Panics with the package to install when `program` is missing.
pub fn need(program: &str, package: &str) {
    let found = Path::new(program).exists()
        || Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {program}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    assert!(found, "{program} is missing: install {package}");
}

/// The repository's root (the including package's nearest ancestor that holds this driver:
/// packages include this file from any depth, the RDP workspace's too).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("psm-server/tests/web_browser.cjs").is_file())
        .expect("the repository holding psm-server/tests/web_browser.cjs")
        .to_path_buf()
}

/// The tests' own folder, where the driver scripts are.
fn tests_dir() -> PathBuf {
    repo_root().join("psm-server").join("tests")
}

/// Chromium, one JSON step per line (see `web_browser.cjs`).
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    out: std::io::Lines<BufReader<std::process::ChildStdout>>,
    /// The screenshots taken so far.
    pub shots: Vec<PathBuf>,
}

impl Browser {
    /// Starts Chromium; screenshots go to `dir`.
    pub fn start(dir: &Path) -> Self {
        need("/usr/bin/chromium", "the Debian package chromium");
        need("node", "nodejs (Debian) or Node.js 20");
        let root = repo_root();
        assert!(
            root.join("node_modules/playwright-core").exists(),
            "node_modules/playwright-core is missing: run `npm ci` in {}",
            root.display()
        );
        let mut child = Command::new("node")
            .arg(tests_dir().join("web_browser.cjs"))
            .arg(dir)
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            out,
            shots: Vec::new(),
        }
    }

    /// Runs one step; panics (with the page's text) if it fails or if injected script ran.
    pub fn step(&mut self, step: Value) -> Value {
        let v = self.try_step(step.clone());
        assert_eq!(v["ok"], true, "browser step {step} failed: {v:#}");
        v
    }

    /// Runs one step; panics only if injected script ran, a dialog opened or the page threw.
    pub fn try_step(&mut self, step: Value) -> Value {
        writeln!(self.stdin, "{step}").unwrap();
        self.stdin.flush().unwrap();
        let line = self.out.next().expect("the browser driver ended").unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said {line:?}: {e}"));
        assert!(
            v["pwned"].is_null(),
            "script injected through data ran: {v:#}"
        );
        assert!(
            v["dialogs"].as_array().is_none_or(|d| d.is_empty()),
            "a dialog opened (injected script?): {v:#}"
        );
        assert!(
            v["pageErrors"].as_array().is_none_or(|d| d.is_empty()),
            "the page threw: {v:#}"
        );
        v
    }

    pub fn goto(&mut self, url: &str) {
        self.step(json!({"op": "goto", "url": url}));
    }

    pub fn wait(&mut self, js: &str) {
        self.step(json!({"op": "waitFor", "js": js, "timeout": WAIT.as_millis() as u64}));
    }

    pub fn eval(&mut self, js: &str) -> Value {
        self.step(json!({"op": "eval", "js": js}))["value"].clone()
    }

    pub fn click(&mut self, sel: &str) {
        self.step(json!({"op": "click", "sel": sel}));
    }

    pub fn fill(&mut self, sel: &str, value: &str) {
        self.step(json!({"op": "fill", "sel": sel, "value": value}));
    }

    /// Types `text` into the focused element and presses Enter.
    pub fn type_line(&mut self, text: &str) {
        self.step(json!({"op": "type", "text": text}));
        self.step(json!({"op": "press", "key": "Enter"}));
    }

    /// A screenshot named `name`, checked to hold something.
    pub fn shot(&mut self, name: &str) {
        let v = self.step(json!({"op": "screenshot", "name": name}));
        let p = PathBuf::from(v["value"].as_str().unwrap());
        assert!(
            std::fs::metadata(&p).unwrap().len() > 1000,
            "{} is empty",
            p.display()
        );
        println!("screenshot: {}", p.display());
        self.shots.push(p);
    }

    pub fn close(mut self) {
        let _ = self.try_step(json!({"op": "close"}));
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A command in a pseudo-terminal of `cols` × `rows` (like a user's terminal window), typed
/// into through a pipe, its output collected.
pub struct PtyClient {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl PtyClient {
    /// Runs `program args...` in the pseudo-terminal.
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        cols: u16,
        rows: u16,
        program: &str,
        args: &[S],
    ) -> Self {
        need("python3", "python3");
        need(program, program);
        let mut child = Command::new("python3")
            .arg(tests_dir().join("web_pty.py"))
            .args([cols.to_string(), rows.to_string()])
            .arg(program)
            .args(args)
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
        Self {
            stdin: child.stdin.take(),
            child,
            output,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Types `line` and Enter (a carriage return, as a terminal sends it).
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\r").unwrap();
        stdin.flush().unwrap();
    }

    pub fn wait_output(&self, needle: &str) {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if self.text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the terminal never showed {needle:?}; it showed:\n{}",
            self.text()
        );
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the terminal's program did not exit; it showed:\n{}",
            self.text()
        );
    }
}

impl Drop for PtyClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
