//! The live websocket's client messages (docs/live.md: terminal input, moderation, and a
//! desktop's keys and pointer) on arbitrary text: an answer, never a panic; accepted
//! messages stay within the protocol's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_proxy::live::DesktopInput;
use psm_proxy::live::protocol::{ClientMessage, MAX_INPUT, MAX_KEY, MAX_REASON};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Input(bytes)) => assert!(bytes.len() <= MAX_INPUT),
        Ok(ClientMessage::Pause(r) | ClientMessage::Lock(r) | ClientMessage::Terminate(r)) => {
            assert!(r.chars().count() <= MAX_REASON)
        }
        Ok(ClientMessage::Desktop(DesktopInput::Key { key, .. })) => {
            assert!(!key.is_empty() && key.len() <= MAX_KEY)
        }
        Ok(_) | Err(_) => {}
    }
});
