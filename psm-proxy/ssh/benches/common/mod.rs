//! Helpers shared by the benches: a real OpenSSH `sshd` as the target (private config,
//! loopback only, stopped by PID on drop), OpenSSH client arguments that never touch
//! `~/.ssh`, and small statistics. Recipes from `PEERS.md`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "../../../../test-support/ports.rs"]
mod ports;
#[allow(unused_imports)]
pub use ports::{free_port, wait_addr, wait_port};

/// Runs `cmd` with `sh -c`.
pub fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}
/// An ed25519 key pair without passphrase at `path` and `path.pub`.
pub fn keygen(path: &Path) {
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .unwrap()
            .success()
    );
}

/// A private `sshd` on loopback, logging in `account` (created if missing; needs root) by
/// password or by the key `dir/direct`.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub host_pub: String,
    pub account: String,
    child: std::process::Child,
}

impl Sshd {
    pub fn start(account: &str) -> Self {
        std::fs::create_dir_all("/run/sshd").unwrap();
        if !sh(&format!("id {account}")).status.success() {
            assert!(
                sh(&format!("useradd -m -s /bin/bash {account}"))
                    .status
                    .success(),
                "useradd (run as root)"
            );
        }
        assert!(
            sh(&format!("echo {account}:Bench-Pw-7 | chpasswd"))
                .status
                .success()
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("direct"));
        std::fs::copy(d.join("direct.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        std::fs::write(
            d.join("cfg"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/pid\nPasswordAuthentication yes\n\
                 UsePAM no\nSubsystem sftp internal-sftp\nStrictModes no\nAuthorizedKeysFile {d}/authorized_keys\n\
                 MaxStartups 1000\nMaxSessions 1000\nLogLevel ERROR\n",
                d = d.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("cfg"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        let host_pub = std::fs::read_to_string(d.join("host.pub"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            dir,
            port,
            host_pub,
            account: account.to_owned(),
            child,
        }
    }

    /// The key `sshd` accepts for the account.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("direct")
    }

    /// A known_hosts file for connecting to this `sshd` directly.
    pub fn known_hosts(&self) -> PathBuf {
        let p = self.dir.path().join("kh");
        let mut parts = self.host_pub.split_whitespace();
        std::fs::write(
            &p,
            format!(
                "[127.0.0.1]:{} {} {}\n",
                self.port,
                parts.next().unwrap(),
                parts.next().unwrap()
            ),
        )
        .unwrap();
        p
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OpenSSH client options that use only `known_hosts` and `key`, on `port`.
pub fn ssh_args(known_hosts: &Path, key: &Path, port: u16) -> Vec<String> {
    vec![
        "-F".into(),
        "/dev/null".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-i".into(),
        key.display().to_string(),
        "-p".into(),
        port.to_string(),
    ]
}

/// The median (upper for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The `p` quantile (0..=1), nearest rank.
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `uptime`'s load averages.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A russh client that accepts any host key (the benches measure, they don't verify).
pub struct Client;
impl russh::client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _k: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A russh client connection to `127.0.0.1:port`, authenticated as `user` with `key`.
pub async fn connect(port: u16, user: &str, key: &Path) -> russh::client::Handle<Client> {
    let config = std::sync::Arc::new(russh::client::Config {
        nodelay: true,
        ..russh::client::Config::default()
    });
    let mut h = russh::client::connect(config, ("127.0.0.1", port), Client)
        .await
        .unwrap();
    let key = russh::keys::load_secret_key(key, None).unwrap();
    assert!(
        h.authenticate_publickey(
            user,
            russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None)
        )
        .await
        .unwrap()
        .success()
    );
    h
}
