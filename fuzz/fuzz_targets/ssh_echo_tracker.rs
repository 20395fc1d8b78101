//! The echo-off (secret prompt) inference over arbitrary output and input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_proxy::redact::EchoTracker;

fuzz_target!(|data: &[u8]| {
    let mut t = EchoTracker::default();
    for (i, chunk) in data.chunks(7).enumerate() {
        if i % 2 == 0 {
            t.output(chunk);
        } else {
            let _ = t.input(chunk);
        }
    }
});
