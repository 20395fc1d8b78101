//! The target's output as the gateway reads it before ironrdp-session paints it: fast-path
//! PDUs and slow-path frames through the bitmap normalizer (which decodes, crops and
//! re-encodes padded bitmaps). Input: PDUs, each after a 2-byte little-endian length and a
//! byte choosing fast path (even) or slow path (odd). Nothing may panic, and every PDU it
//! writes must decode again.
#![no_main]

use ironrdp::core::{Decode as _, ReadCursor};
use ironrdp::pdu::fast_path::{FastPathHeader, FastPathUpdatePdu};
use libfuzzer_sys::fuzz_target;
use psm_proxy_rdp::bitmaps::{Normalized, Normalizer};

fuzz_target!(|data: &[u8]| {
    let mut n = Normalizer::new(256, 128);
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 3);
        let slow = rest[2] & 1 == 1;
        let (pdu, tail) = rest[3..].split_at(len);
        rest = tail;
        let out = if slow { n.normalize_slow_path(pdu, 1003) } else { n.normalize(pdu) };
        if let Normalized::Rewritten(pdus) = out {
            for p in pdus {
                let mut src = ReadCursor::new(&p);
                FastPathHeader::decode(&mut src).expect("a rewritten PDU has a valid header");
                while !src.is_empty() {
                    FastPathUpdatePdu::decode(&mut src).expect("a rewritten update decodes");
                }
            }
        }
    }
});
