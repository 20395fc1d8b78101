//! The README's quick start, with the real binaries: `psm up`, `psm targets add --scan`,
//! `psm users add`, then plain OpenSSH `ssh USER+TARGET@gateway` to a real sshd.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

fn keygen(p: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(p)
        .status();
    assert!(
        ok.map(|s| s.success()).unwrap_or(false),
        "ssh-keygen is missing: install openssh-client"
    );
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn quick_start_reaches_a_real_sshd_with_plain_ssh() {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "/usr/sbin/sshd is missing: install openssh-server"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all("/run/sshd").unwrap();
    // The target: a private sshd and an account with a password (the credential PSM vaults).
    let account = "psmquick";
    if !Command::new("id")
        .arg(account)
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", account])
                .status()
                .unwrap()
                .success(),
            "useradd (run as root)"
        );
    }
    let password = format!("Quick-{}", std::process::id());
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{account}:{password}\n").as_bytes())
        .unwrap();
    assert!(chpasswd.wait().unwrap().success());
    keygen(&d.join("host"));
    let sshd_port = free_port();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {0}/host\nPidFile {0}/sshd.pid\nPasswordAuthentication yes\nUsePAM no\n",
            d.display()
        ),
    )
    .unwrap();
    let _sshd = Kill(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(sshd_port);

    // psm up
    let psm = env!("CARGO_BIN_EXE_psm");
    let data = d.join("psm-data");
    let (ssh_port, api_port) = (free_port(), free_port());
    let mut up = Command::new(psm)
        .args(["up", "--data"])
        .arg(&data)
        .args([
            "--ssh-listen",
            &format!("127.0.0.1:{ssh_port}"),
            "--api-listen",
            &format!("127.0.0.1:{api_port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut lines = BufReader::new(up.stdout.take().unwrap());
    while !printed.contains("Press Ctrl-C") {
        let mut l = String::new();
        assert!(
            lines.read_line(&mut l).unwrap() > 0,
            "psm up ended early: {printed}"
        );
        printed.push_str(&l);
    }
    let _up = Kill(up);
    assert!(
        printed.contains(&format!("ssh -p {ssh_port} admin+TARGET@127.0.0.1")),
        "{printed}"
    );
    assert!(
        printed.contains("first admin: user admin, password "),
        "{printed}"
    );

    // psm targets add (host key scanned and pinned), psm users add
    let mut add = Command::new(psm)
        .args(["targets", "add", "web-01", "--data"])
        .arg(&data)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &sshd_port.to_string(),
            "--user",
            account,
            "--password-stdin",
            "--scan",
            "--grant",
            "ops",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pinned"));
    keygen(&d.join("alice"));
    let out = Command::new(psm)
        .args(["users", "add", "alice", "--data"])
        .arg(&data)
        .args(["--role", "ops", "--key-file"])
        .arg(d.join("alice.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // alice, with plain ssh
    let out = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            d.join("known_hosts").display()
        ))
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(d.join("alice"))
        .args([
            "-p",
            &ssh_port.to_string(),
            "alice+web-01@127.0.0.1",
            "whoami",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        account,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and the session was recorded.
    let recordings: Vec<_> = std::fs::read_dir(data.join("recordings"))
        .unwrap()
        .collect();
    assert_eq!(recordings.len(), 1);
}
