//! savescreenshot's image check on arbitrary input, as text (data URL / base64) and as the
//! base64 of arbitrary bytes.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = psm_server::artifacts::decode_png(s);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    if let Ok(png) = psm_server::artifacts::decode_png(&b64) {
        assert_eq!(png, data);
    }
});
