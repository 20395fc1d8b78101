//! The vault's parsers of outside text: master keys (files, environment), recipient public
//! keys (configuration), stored key ids, and the error texts never echoing the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_core::vault::{KeyId, MasterKey, RecipientKey};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match MasterKey::parse(s) {
        Ok(k) => assert_eq!(
            MasterKey::parse(k.to_text().expose_secret())
                .map(|b| b.id().clone())
                .ok(),
            Some(k.id().clone())
        ),
        // The error is one fixed text: nothing of the input is in it.
        Err(e) => assert_eq!(
            e.to_string(),
            MasterKey::parse("").map(|_| ()).unwrap_err().to_string()
        ),
    }
    if let Ok(k) = RecipientKey::parse(s) {
        assert_eq!(RecipientKey::parse(&k.to_string()).ok(), Some(k));
    }
    let _ = KeyId::parse(s);
});
