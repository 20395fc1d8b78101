//! The session drive as a target meets it when policy allows drives: ironrdp's `rdpdr`
//! client decoding the target's requests and the gateway's backend answering them from a
//! session folder. Input: messages, each after a 2-byte little-endian length. Nothing may
//! panic, and nothing may appear outside the session folder.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ironrdp::svc::SvcProcessor as _;
use libfuzzer_sys::fuzz_target;
use psm_proxy_rdp::drive::{DriveChannel, DriveConfig, DriveEvents, SessionDrive};

fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("psm-rdp-drive-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let root = base.join("drives");
    let _ = std::fs::remove_dir_all(&root);
    let mut config = DriveConfig::new(&root);
    config.max_bytes = 64 << 10;
    config.max_open_files = 8;
    let folder = config.create_session_dir(psm_core::SessionId::new()).unwrap();
    std::fs::write(folder.join("seed.txt"), b"seed").unwrap();
    std::fs::create_dir(folder.join("dir")).unwrap();
    let (events, _rx) = DriveEvents::channel(16);
    let mut channel = DriveChannel::new(SessionDrive::new(&config, &folder, events).unwrap());
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (message, tail) = rest[2..].split_at(n);
        rest = tail;
        let _ = channel.process(message);
    }
    let outside: Vec<_> = std::fs::read_dir(base).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("drives")], "a file outside the drive");
});
