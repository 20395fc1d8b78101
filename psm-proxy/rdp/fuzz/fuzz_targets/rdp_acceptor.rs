//! The whole client-facing connection sequence (ironrdp's acceptor, as the gateway's RDP
//! server runs it): the input is cut into PDUs by the acceptor's own framing hints and fed
//! step by step; the TLS upgrade is marked done when reached. Nothing may panic.
#![no_main]

use ironrdp::acceptor::{Acceptor, DesktopSize};
use ironrdp::connector::Sequence as _;
use ironrdp::pdu::nego::SecurityProtocol;
use ironrdp_core::WriteBuf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut acceptor = Acceptor::new(
        SecurityProtocol::SSL,
        DesktopSize {
            width: 1024,
            height: 768,
        },
        Vec::new(),
        None,
    );
    let mut out = WriteBuf::new();
    let mut rest = data;
    for _ in 0..64 {
        if acceptor.reached_security_upgrade().is_some() {
            acceptor.mark_security_upgrade_as_done();
            continue;
        }
        if acceptor.get_result().is_some() {
            break;
        }
        let r = match acceptor.next_pdu_hint() {
            None => acceptor.step_no_input(&mut out),
            Some(hint) => {
                let len = match hint.find_size(rest) {
                    Ok(Some((_, n))) if n > 0 && n <= rest.len() => n,
                    _ => return,
                };
                let (pdu, tail) = rest.split_at(len);
                rest = tail;
                acceptor.step(pdu, &mut out)
            }
        };
        if r.is_err() {
            return;
        }
        out.clear();
    }
});
