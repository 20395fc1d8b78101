//! The webhook signature check a receiver runs on an untrusted header and body, and the CEF
//! escaping of untrusted audit text: never panics; escaped values stay on one line.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use psm_server::siem::{escape_header, escape_value, sign, verify_signature};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (header, body) = data.split_at(split);
    let header = String::from_utf8_lossy(header);
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = verify_signature(b"key", &header, body, now, Duration::from_secs(300));
    let good = sign(b"key", 1_800_000_000, body);
    assert!(verify_signature(
        b"key",
        &good,
        body,
        now,
        Duration::from_secs(300)
    ));

    let text = String::from_utf8_lossy(body);
    let mut h = String::new();
    escape_header(&text, &mut h);
    let mut v = String::new();
    escape_value(&text, &mut v);
    assert!(!h.contains('\n') && !v.contains('\n') && !v.contains('\r'));
});
