//! What `psm up` leaves on disk is its owner's only (issue 17 M11), and the vault's master key
//! is never taken from a file others can read (L7): the real binary, as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::Up;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn psm_up_keeps_its_data_directory_and_database_private() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory and database as an older version left them under umask 022.
    let data = dir.path().join("psm-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let up = Up::start(dir.path(), &[]);
    assert_eq!(mode(&up.data), 0o700, "the data directory");
    for name in ["psm.db", "psm.db-wal", "psm.db-shm", "vault.key"] {
        let p = up.data.join(name);
        if name == "psm.db" || name == "vault.key" {
            assert!(p.exists(), "{name}");
        }
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    assert!(up.stop());

    // Restarted over a database someone made world-readable: narrowed again.
    std::fs::set_permissions(data.join("psm.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let up = Up::start(dir.path(), &[]);
    assert_eq!(mode(&up.data.join("psm.db")), 0o600);
    assert!(up.stop());
}

/// Runs `psm up` until it either ends (returning its output) or says it is ready (then stops
/// it and returns `None`): no clock involved.
fn up_until_ready_or_exit(dir: &Path) -> Option<(bool, String)> {
    use std::io::{BufRead, BufReader, Read};
    let port = || format!("127.0.0.1:{}", common::free_port());
    let mut child = std::process::Command::new(common::psm())
        .args(["up", "--data"])
        .arg(dir.join("psm-data"))
        .args(["--ssh-listen", &port(), "--api-listen", &port()])
        .args([
            "--live-listen",
            &port(),
            "--postgres-listen",
            &port(),
            "--mysql-listen",
            &port(),
            "--no-rdp",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut l = String::new();
        if lines.read_line(&mut l).unwrap() == 0 {
            break;
        }
        if l.contains("Press Ctrl-C") {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        printed.push_str(&l);
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    Some((status.success(), format!("{printed}{err}")))
}

#[test]
fn psm_up_refuses_a_master_key_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("psm-data");
    std::fs::create_dir(&data).unwrap();
    let key = data.join("vault.key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = up_until_ready_or_exit(dir.path())
        .expect("psm up must not start with a world-readable vault.key");
    assert!(!ok, "{out}");
    assert!(
        out.contains("may be read by its group or others") && out.contains("chmod 600"),
        "the message says what is wrong and how to fix it: {out}"
    );
    assert!(!out.contains(&"ab".repeat(32)), "never the key: {out}");
    // Made private, the same key is used.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(up_until_ready_or_exit(dir.path()).is_none(), "starts");
}

#[test]
fn no_binary_takes_the_master_key_on_its_command_line() {
    let controlplane = env!("CARGO_BIN_EXE_psm-controlplane");
    let help = std::process::Command::new(controlplane)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(help.contains("--master-key-file"), "{help}");
    assert!(
        help.contains("PSM_MASTER_KEY"),
        "the env var is documented: {help}"
    );
    assert!(
        !help.contains("--master-key ") && !help.contains("--master-key <"),
        "{help}"
    );
    // Refused before anything else is looked at (clap stops at the first unknown argument).
    let out = std::process::Command::new(controlplane)
        .args(["--master-key", &"cd".repeat(32), "--help"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", common::text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--master-key'"),
        "{}",
        common::text(&out)
    );
}

/// Every byte of the node's database files.
fn database_bytes(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["psm.db", "psm.db-wal"] {
        if let Ok(b) = std::fs::read(data.join(name)) {
            all.extend(b);
        }
    }
    all
}

#[test]
fn a_totp_secret_given_by_psm_users_add_is_not_in_the_database_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path(), &[]);
    let out = std::process::Command::new(common::psm())
        .args(["users", "add", "carol", "--data"])
        .arg(&up.data)
        .args(["--role", "ops", "--generate-password", "--totp"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let secret = printed
        .split("TOTP secret (shown once): ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the secret is shown once")
        .to_owned();
    assert!(secret.len() >= 26, "{secret}");
    let list = std::process::Command::new(common::psm())
        .args(["users", "list", "--data"])
        .arg(&up.data)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("totp=yes"),
        "{}",
        common::text(&list)
    );
    assert!(up.stop());
    let bytes = database_bytes(&dir.path().join("psm-data"));
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the TOTP secret is sealed in psm.db"
    );
}
