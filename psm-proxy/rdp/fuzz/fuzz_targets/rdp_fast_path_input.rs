//! Fast-path input PDUs from an authenticated client (ironrdp-server decodes them).
//!
//! KNOWN UPSTREAM BUG, so scripts/test.d/rdp does not run this target: ironrdp-pdu 0.9.0's
//! `FastPathInputHeader::decode` computes `length - sizeof_length - 1 - num_events_length`
//! without checking, which panics when overflow checks are on (debug builds, cargo-fuzz) and
//! wraps to a huge length that the next size check refuses when they are off (the gateway's
//! release build). Reach: only after the client authenticated (the acceptor queues input
//! and ironrdp-server decodes it after the credential check). Run it by hand:
//! `cargo fuzz run --sanitizer none rdp_fast_path_input`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ironrdp_core::decode::<ironrdp::pdu::input::fast_path::FastPathInput>(data);
});
