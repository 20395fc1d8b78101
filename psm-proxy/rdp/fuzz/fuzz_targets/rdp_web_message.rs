//! A browser's websocket messages to the gateway (login, input).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = psm_proxy_rdp::web::parse_browser_message(s);
    }
});
