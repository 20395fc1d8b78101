//! What the black-box tests share: a private sshd as the target, `psm up` as a child process,
//! and the `psm` and OpenSSH commands a user would type.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod ssh_target;
#[allow(unused_imports)] // each test uses a different part
pub use ssh_target::{Kill, SshTarget, free_port, keygen, wait_port};

/// `psm up` running as a child, with what it printed until "Press Ctrl-C" and its log.
pub struct Up {
    pub data: PathBuf,
    pub ssh_port: u16,
    pub api_port: u16,
    pub live_port: u16,
    pub printed: String,
    pub log: Arc<Mutex<String>>,
    child: Option<std::process::Child>,
}

impl Up {
    /// `psm up --data DIR/psm-data` on free loopback ports, no RDP, with `extra` arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let data = dir.join("psm-data");
        let (ssh_port, api_port, live_port) = (free_port(), free_port(), free_port());
        let mut up = Command::new(psm())
            .args(["up", "--data"])
            .arg(&data)
            .args([
                "--ssh-listen",
                &format!("127.0.0.1:{ssh_port}"),
                "--api-listen",
                &format!("127.0.0.1:{api_port}"),
                "--live-listen",
                &format!("127.0.0.1:{live_port}"),
                "--no-rdp",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = up.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut printed = String::new();
        let mut lines = BufReader::new(up.stdout.take().unwrap());
        while !printed.contains("Press Ctrl-C") {
            let mut l = String::new();
            if lines.read_line(&mut l).unwrap() == 0 {
                let _ = up.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "psm up ended early: {printed}\nlog:\n{}",
                    log.lock().unwrap()
                );
            }
            printed.push_str(&l);
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        Self {
            data,
            ssh_port,
            api_port,
            live_port,
            printed,
            log,
            child: Some(up),
        }
    }

    /// The first admin's password, as printed.
    pub fn admin_password(&self) -> String {
        let at = self
            .printed
            .find("first admin: user admin, password ")
            .expect("the first admin's password is printed");
        self.printed[at + "first admin: user admin, password ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    /// `psm targets add NAME ... --scan --grant ROLE` for an SSH target.
    pub fn add_ssh_target(&self, name: &str, target: &SshTarget, role: &str) {
        let mut add = Command::new(psm())
            .args(["targets", "add", name, "--data"])
            .arg(&self.data)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &target.port.to_string(),
                "--user",
                &target.account,
                "--password-stdin",
                "--scan",
                "--grant",
                role,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        add.stdin
            .take()
            .unwrap()
            .write_all(target.password.as_bytes())
            .unwrap();
        let out = add.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("pinned"),
            "{}",
            text(&out)
        );
    }

    /// `psm users add NAME --role ROLE --key-file KEY.pub`.
    pub fn add_user_with_key(&self, name: &str, role: &str, key: &Path) {
        let out = Command::new(psm())
            .args(["users", "add", name, "--data"])
            .arg(&self.data)
            .args(["--role", role, "--key-file"])
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Plain OpenSSH: `ssh -i KEY -p PORT USER+TARGET@127.0.0.1 COMMAND`.
    pub fn ssh(&self, dir: &Path, key: &Path, login: &str, command: &str) -> Output {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.join("known_hosts").display()
            ))
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
            .arg(key)
            .args([
                "-p",
                &self.ssh_port.to_string(),
                &format!("{login}@127.0.0.1"),
                command,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The raw recordings written so far.
    pub fn recordings(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.data.join("recordings"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "psmr"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops it with SIGINT (Ctrl-C) and waits; returns whether it exited successfully.
    pub fn stop(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `psm` binary under test.
pub fn psm() -> &'static str {
    env!("CARGO_BIN_EXE_psm")
}

/// stdout and stderr of a finished command, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits up to `secs` for `f` to give something.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..secs * 10 {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}
