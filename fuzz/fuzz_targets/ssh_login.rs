//! The gateway's login-name parser (`USER+TARGET`) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(login) = psm_proxy::parse_login(s)
    {
        assert!(psm_core::directory::is_valid_name(&login.user));
        assert!(!login.user.contains('+'));
        if let Some(t) = login.target {
            assert_eq!(format!("{}+{}", login.user, t), s);
        }
    }
});
