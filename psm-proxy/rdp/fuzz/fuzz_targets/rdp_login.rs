//! The login name a client sends (`DOMAIN\USER+TARGET`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = psm_proxy_rdp::access::login_name(s);
    }
});
