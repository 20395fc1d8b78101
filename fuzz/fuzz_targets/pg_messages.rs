//! The PostgreSQL gateway's message handling on arbitrary bytes: framing (with the length
//! checked before buffering), the startup packet, pgwire decoding, the statement tracker in
//! both directions (a refusal included) and the statement classifier. The first byte picks
//! which side the rest plays.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use psm_proxy_db::statement::{Request, StatementTracker};
use psm_proxy_db::wire::{split_message, split_startup};

fuzz_target!(|data: &[u8]| {
    // The gateway decodes some messages under `catch_unwind` (the protocol crates panic on
    // some malformed input): a panic it catches is its design, not a crash. libfuzzer-sys's
    // hook would abort on those too, so the default hook is put back; a panic that escapes
    // the gateway's code still ends the run (libfuzzer-sys catches it and aborts).
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 4 == 0 {
        let mut buf = BytesMut::from(rest);
        while let Ok(Some(f)) = split_startup(&mut buf) {
            assert!(f.bytes.len() <= psm_proxy_db::wire::MAX_STARTUP_LEN);
        }
        return;
    }
    let mut tracker = StatementTracker::new("db");
    let mut buf = BytesMut::from(rest);
    let mut i = 0usize;
    while let Ok(Some(frame)) = split_message(&mut buf, 1 << 16) {
        assert!(frame.bytes.len() <= (1 << 16) + 1);
        i += 1;
        // Mode decides the direction of each message: all from the user, all from the
        // target, or alternating.
        let from_user = match mode % 4 {
            1 => true,
            2 => false,
            _ => i % 2 == 0,
        };
        if from_user {
            match tracker.request(&frame) {
                Request::Statement(text) => {
                    let classes = psm_proxy_db::classify::classify(&text);
                    let names = classes.iter().map(|c| c.as_str()).collect();
                    if i % 3 == 0 {
                        let _ = tracker.refused(&frame, "fuzz", names);
                    } else {
                        tracker.forwarded(&frame, names);
                    }
                }
                Request::Other => tracker.forwarded(&frame, Vec::new()),
            }
        } else {
            let _ = tracker.response(&frame);
        }
        let _ = tracker.take_finished();
    }
    let _ = tracker.close();
});
