//! A private sshd on loopback as an SSH target, and the helpers around it: shared by the
//! black-box tests here and, through `#[path]`, by other crates' (`examples/embed-ssh`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[path = "../../../test-support/ports.rs"]
mod ports;
#[allow(unused_imports)]
pub use ports::{free_port, wait_addr, wait_port};

pub fn keygen(p: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(p)
        .status();
    assert!(
        ok.map(|s| s.success()).unwrap_or(false),
        "ssh-keygen is missing: install openssh-client"
    );
}

/// A child killed when dropped.
pub struct Kill(pub std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private sshd on loopback and a local account with a password: the target and the
/// credential PSM vaults.
pub struct SshTarget {
    pub port: u16,
    pub account: String,
    pub password: String,
    _sshd: Kill,
}

impl SshTarget {
    /// The arguments of `psm targets add NAME` for this target: its port and account, the
    /// password on standard input (send [`password`](Self::password)), the host key read
    /// now (`--scan`), and `ROLE` let in. Where the target goes (`--data`, or
    /// `--control-plane`) is for the caller to add.
    pub fn add_args(&self, name: &str, role: &str) -> Vec<String> {
        [
            "targets",
            "add",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--user",
            &self.account,
            "--password-stdin",
            "--scan",
            "--grant",
            role,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    pub fn start(dir: &Path, account: &str) -> Self {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: install openssh-server"
        );
        std::fs::create_dir_all("/run/sshd").unwrap();
        if !Command::new("id")
            .arg(account)
            .output()
            .unwrap()
            .status
            .success()
        {
            let made = locked_retry(|| {
                Command::new("useradd")
                    .args(["-m", "-s", "/bin/bash", account])
                    .status()
                    .unwrap()
                    .success()
                    // Another test made it meanwhile.
                    || Command::new("id").arg(account).output().unwrap().status.success()
            });
            assert!(made, "useradd (run as root)");
        }
        let password = format!("Vaulted-{}-{}", std::process::id(), free_port());
        let set = locked_retry(|| {
            let mut chpasswd = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            chpasswd
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{account}:{password}\n").as_bytes())
                .unwrap();
            chpasswd.wait().unwrap().success()
        });
        assert!(set, "chpasswd (run as root)");
        let host = dir.join(format!("sshd-host-{account}"));
        keygen(&host);
        let port = free_port();
        let config = dir.join(format!("sshd_config-{account}"));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}/sshd-{account}.pid\nPasswordAuthentication yes\nUsePAM no\n",
                host.display(),
                dir.display()
            ),
        )
        .unwrap();
        let sshd = Kill(
            Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_port(port);
        Self {
            port,
            account: account.into(),
            password,
            _sshd: sshd,
        }
    }
}

/// Runs `f` until it succeeds, up to 50 times 100 ms apart: `useradd` and `chpasswd` lock
/// /etc/passwd and /etc/shadow, and tests running beside each other meet that lock ("cannot
/// lock /etc/shadow; try again later").
fn locked_retry(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..50 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
