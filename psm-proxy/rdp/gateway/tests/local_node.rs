//! `psm-rdp-gateway` on a node's data directory (no remote control plane): a vault key file
//! others may read is refused at start with the fix in the message (issue 17 L7), as the
//! node itself refuses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

#[test]
fn a_vault_key_others_may_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key = data.join("vault.key");
    std::fs::write(&key, "not read: refused before\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (cert, pem) = self_signed(dir.path(), "gateway");
    let out = Command::new(env!("CARGO_BIN_EXE_psm-rdp-gateway"))
        .arg("--data")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&pem)
        .env_remove("PSM_CONTROL_PLANE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a readable key: {err}");
    assert!(err.contains("chmod 600"), "{err}");
}
