//! psm-pipeline's and psm-storage's parsers of outside bytes: a recording set's manifest (read
//! from the local disk and from the store), object keys and checksums from configuration and
//! object metadata, store locations. No input panics; an accepted manifest round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_core::SessionId;
use psm_pipeline::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let id: SessionId = "00000000-0000-0000-0000-000000000000"
        .parse()
        .expect("a session id");
    if let Ok(m) = Manifest::from_bytes(data, id, "fuzz".as_ref()) {
        let again = Manifest::from_bytes(&m.to_bytes(), id, "fuzz".as_ref()).expect("round trip");
        assert_eq!(again, m);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(k) = psm_storage::ObjectKey::new(s) {
            assert!(
                !k.as_str()
                    .split('/')
                    .any(|seg| seg.is_empty() || seg.starts_with('.'))
            );
        }
        if let Ok(c) = s.parse::<psm_storage::Checksum>() {
            assert_eq!(c.to_string(), s.to_ascii_lowercase());
        }
        let _ = psm_storage::StoreConfig::parse(s);
    }
});
