//! The clipboard channel as a native client meets it when policy allows the clipboard:
//! ironrdp's `cliprdr` server decoding the client's messages, and the gateway's bridge
//! judging whatever data the client delivers (size limit, text decoding). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    psm_proxy_rdp::clipboard::exercise_user_side(data, 1024);
});
