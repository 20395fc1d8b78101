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
    pub postgres_port: u16,
    pub mysql_port: u16,
    pub printed: String,
    pub log: Arc<Mutex<String>>,
    child: Option<std::process::Child>,
}

impl Up {
    /// `psm up --data DIR/psm-data` on free loopback ports, no RDP, with `extra` arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let data = dir.join("psm-data");
        let (ssh_port, api_port, live_port) = (free_port(), free_port(), free_port());
        let postgres_port = free_port();
        let mysql_port = free_port();
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
                "--postgres-listen",
                &format!("127.0.0.1:{postgres_port}"),
                "--mysql-listen",
                &format!("127.0.0.1:{mysql_port}"),
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
            postgres_port,
            mysql_port,
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
        let out = run_with_stdin(
            Command::new(psm())
                .args(target.add_args(name, role))
                .arg("--data")
                .arg(&self.data),
            &target.password,
        );
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
        self.ssh_command(dir, key, login, command, false)
            .output()
            .unwrap()
    }

    /// The command [`ssh`](Self::ssh) runs, to run it elsewhere; `pty` adds `-tt` (a
    /// terminal, as an interactive user has: what live viewers watch).
    pub fn ssh_command(
        &self,
        dir: &Path,
        key: &Path,
        login: &str,
        command: &str,
        pty: bool,
    ) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=accept-new"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.join("known_hosts").display()
            ))
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
            .arg(key);
        if pty {
            ssh.arg("-tt");
        }
        ssh.args([
            "-p",
            &self.ssh_port.to_string(),
            &format!("{login}@127.0.0.1"),
            command,
        ])
        .stdin(Stdio::null());
        ssh
    }

    /// `psm windows ARGS --data DATA`, which must succeed; its standard output.
    pub fn windows(&self, args: &[&str]) -> String {
        let out = self.psm_with_stdin(&[&["windows"], args].concat(), "");
        assert!(out.status.success(), "psm windows {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Access windows that name networks see the client's address (the gateway reports it
    /// with OpenSession): with only a window for 10.0.0.0/8, `connect` (a client on
    /// 127.0.0.1 that selects `'inside-the-window'`) is refused and told why; with one for
    /// 127.0.0.1/32 instead, it gets in. `client` names it in failure messages.
    pub fn check_network_windows(
        &self,
        role: &str,
        target: &str,
        client: &str,
        connect: impl Fn() -> Output,
    ) {
        let added = self.windows(&["add", role, target, "--from", "10.0.0.0/8"]);
        let far = added.split_whitespace().nth(1).unwrap().to_owned();
        let out = connect();
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("your address 127.0.0.1 is not in an allowed network"),
            "{client} is told why: {}",
            text(&out)
        );
        self.windows(&["add", role, target, "--from", "127.0.0.1/32"]);
        self.windows(&["remove", &far]);
        let out = connect();
        assert!(
            out.status.success() && text(&out).contains("inside-the-window"),
            "{}",
            text(&out)
        );
    }

    /// `psm ARGS --data DATA` with `input` on its standard input.
    pub fn psm_with_stdin(&self, args: &[&str], input: &str) -> Output {
        run_with_stdin(
            Command::new(psm()).args(args).arg("--data").arg(&self.data),
            input,
        )
    }

    /// `psm users add NAME --role ROLE --password-stdin`, given `password`.
    pub fn add_user_with_password(&self, name: &str, role: &str, password: &str) {
        let out = self.psm_with_stdin(
            &["users", "add", name, "--role", role, "--password-stdin"],
            &format!("{password}\n"),
        );
        assert!(out.status.success(), "{}", text(&out));
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

/// One plain HTTP/1.1 request on loopback; returns the status, the head and the body
/// (de-chunked).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

/// A request to the web UI as a browser on the same origin sends it (Origin, JSON body,
/// the session cookie if any).
pub fn web_request(
    port: u16,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> (u16, String, String) {
    let origin = format!("http://127.0.0.1:{port}");
    let mut headers = vec![
        ("Origin", origin.as_str()),
        ("Content-Type", "application/json"),
    ];
    if !cookie.is_empty() {
        headers.push(("Cookie", cookie));
    }
    http_request(port, method, path, &headers, body)
}

/// Runs `cmd` with `input` on its standard input (then closed); what it printed.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Logs in to the web UI as `user` and returns the session cookie (`name=value`) to send.
pub fn web_login(port: u16, user: &str, password: &str) -> String {
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let (code, head, body) = web_request(port, "POST", "/ui/api/login", "", &body);
    assert_eq!(code, 200, "{head}\n{body}");
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim().to_owned())
        })
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("a session cookie")
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
