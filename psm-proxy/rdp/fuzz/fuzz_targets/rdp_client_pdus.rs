//! Every PDU decoder the gateway runs on bytes from an RDP client: the X.224 connection
//! request, MCS messages (connect initial, erect domain, attach user, channel join, send
//! data), the Client Info PDU, share control/data PDUs. Fast-path input has its own target
//! (`rdp_fast_path_input`): ironrdp-pdu 0.9.0 underflows on a short length there.
#![no_main]

use ironrdp::pdu::{mcs, nego, rdp, x224::X224};
use ironrdp_core::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::<X224<nego::ConnectionRequest>>(data);
    let _ = decode::<X224<mcs::McsMessage<'_>>>(data);
    let _ = decode::<mcs::ConnectInitial>(data);
    let _ = decode::<X224<ironrdp::pdu::x224::X224Data<'_>>>(data);
    let _ = decode::<rdp::ClientInfoPdu>(data);
    let _ = decode::<rdp::headers::ShareControlHeader>(data);
    let _ = ironrdp::pdu::find_size(data);
});
