//! Telling a refused native client why: a Set Error Info PDU (MS-RDPBCGR 2.2.5.1.1) with the
//! code that fits the refusal, then an MCS Disconnect Provider Ultimatum. FreeRDP prints the
//! code's name and text (`ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES (0x00000009):The user cannot
//! connect to the server due to insufficient access privileges.`), mstsc shows its own dialog
//! for it; without it both only report a dropped network connection.
//!
//! ironrdp-server 0.13 offers no way to send either PDU: its own denial after a rejected
//! credential sends the Set Error Info body without its Share Control and Share Data headers,
//! which FreeRDP cannot parse (`rdp_read_share_control_header() fail`). So the gateway holds
//! the user's TLS stream itself ([`HeldTls`]): it answers the client's Connection Request and
//! runs the TLS handshake, gives ironrdp-server the stream as already secured
//! ([`ironrdp::server::TransportTls::AlreadyDone`]), keeps it open when ironrdp-server is
//! done with it, and writes the refusal into it.
//!
//! The code says what kind of refusal it was; the details (which rule, which target) stay in
//! the gateway's log. A client that did not authenticate learns only that it was denied.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ironrdp::pdu::mcs::{
    DisconnectProviderUltimatum, DisconnectReason, McsMessage, SendDataIndication,
};
use ironrdp::pdu::nego::{ConnectionConfirm, ResponseFlags, SecurityProtocol};
use ironrdp::pdu::rdp::headers::{
    CompressionFlags, ShareControlHeader, ShareControlPdu, ShareDataHeader, ShareDataPdu,
    StreamPriority,
};
use ironrdp::pdu::rdp::server_error_info::{
    ErrorInfo, ProtocolIndependentCode, ProtocolIndependentConnectionBrokerCode,
    ServerSetErrorInfoPdu,
};
use ironrdp::pdu::x224::X224;
use psm_core::CoreError;
use psm_proxy::ProxyError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::error::RdpError;

/// The MCS channels ironrdp-acceptor 0.10 assigns (its `USER_CHANNEL_ID`, `IO_CHANNEL_ID`).
const USER_CHANNEL_ID: u16 = 1002;
const IO_CHANNEL_ID: u16 = 1003;

/// Why a client is sent away, as the RDP error code it is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not authenticated (wrong password, unknown or locked-out user, no credentials):
    /// `ERRINFO_SERVER_DENIED_CONNECTION`.
    Denied,
    /// Authenticated, but not allowed to reach the target now (no grant, the checkout was
    /// refused): `ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES`.
    NotAllowed,
    /// The target named is unknown (or not an RDP target): `ERRINFO_CB_DESTINATION_NOT_FOUND`.
    UnknownTarget,
    /// The gateway could not connect or log in to the target:
    /// `ERRINFO_CB_REDIRECTING_TO_DESTINATION`.
    TargetFailed,
    /// Anything else that stopped the session from starting (the control plane or the
    /// recording failed): `ERRINFO_CB_CONNECTION_CANCELLED`.
    Cancelled,
}

impl Refusal {
    /// The refusal an error stands for, seen by a client that authenticated.
    pub fn of(error: &RdpError) -> Self {
        match error {
            RdpError::AuthRefused { .. } | RdpError::BadLogin(_) | RdpError::Client { .. } => {
                Refusal::Denied
            }
            RdpError::Target { .. } => Refusal::UnknownTarget,
            RdpError::TargetConnect { .. }
            | RdpError::Tls { side: "target", .. }
            | RdpError::Session(_) => Refusal::TargetFailed,
            RdpError::ControlPlane(e) | RdpError::Proxy(ProxyError::Core(e)) => match e {
                CoreError::UnknownTarget(_) => Refusal::UnknownTarget,
                CoreError::Forbidden(_)
                | CoreError::Unauthenticated(_)
                | CoreError::UnknownUser(_)
                | CoreError::CheckoutEnded { .. } => Refusal::NotAllowed,
                _ => Refusal::Cancelled,
            },
            RdpError::Proxy(e) => match e {
                ProxyError::NotAllowed { .. } => Refusal::NotAllowed,
                ProxyError::UnknownTarget(_) => Refusal::UnknownTarget,
                ProxyError::TargetUnreachable { .. }
                | ProxyError::HostKeyMismatch { .. }
                | ProxyError::HostKeyUnknown { .. }
                | ProxyError::TargetAuthFailed { .. }
                | ProxyError::BadCredential { .. } => Refusal::TargetFailed,
                _ => Refusal::Cancelled,
            },
            _ => Refusal::Cancelled,
        }
    }

    /// The Set Error Info code.
    pub fn error_info(self) -> ErrorInfo {
        use ProtocolIndependentCode as P;
        use ProtocolIndependentConnectionBrokerCode as B;
        match self {
            Refusal::Denied => ErrorInfo::ProtocolIndependentCode(P::ServerDeniedConnection),
            Refusal::NotAllowed => {
                ErrorInfo::ProtocolIndependentCode(P::ServerInsufficientPrivileges)
            }
            Refusal::UnknownTarget => {
                ErrorInfo::ProtocolIndependentConnectionBrokerCode(B::DestinationNotFound)
            }
            Refusal::TargetFailed => {
                ErrorInfo::ProtocolIndependentConnectionBrokerCode(B::RedirectingToDestination)
            }
            Refusal::Cancelled => {
                ErrorInfo::ProtocolIndependentConnectionBrokerCode(B::ConnectionCancelled)
            }
        }
    }

    /// The bytes that tell the client: a Set Error Info PDU on the I/O channel, then a
    /// Disconnect Provider Ultimatum.
    pub fn pdus(self) -> Result<Vec<u8>, RdpError> {
        let encode = |e: ironrdp::core::EncodeError| RdpError::Session(format!("encoding: {e}"));
        let share = ShareControlHeader {
            share_id: 0,
            pdu_source: IO_CHANNEL_ID,
            share_control_pdu: ShareControlPdu::Data(ShareDataHeader {
                share_data_pdu: ShareDataPdu::ServerSetErrorInfo(ServerSetErrorInfoPdu(
                    self.error_info(),
                )),
                stream_priority: StreamPriority::Undefined,
                compression_flags: CompressionFlags::empty(),
                compression_type: ironrdp::pdu::rdp::client_info::CompressionType::K8,
            }),
        };
        let user_data = ironrdp::core::encode_vec(&share).map_err(encode)?;
        let mut out = ironrdp::core::encode_vec(&X224(SendDataIndication {
            initiator_id: USER_CHANNEL_ID,
            channel_id: IO_CHANNEL_ID,
            user_data: user_data.into(),
        }))
        .map_err(encode)?;
        out.extend(
            ironrdp::core::encode_vec(&X224(McsMessage::DisconnectProviderUltimatum(
                DisconnectProviderUltimatum::from_reason(DisconnectReason::ProviderInitiated),
            )))
            .map_err(encode)?,
        );
        Ok(out)
    }
}

/// The protocol ironrdp-acceptor 0.10 selects for a client that asked for `requested` from
/// a server offering `offered` (its `InitiationSendConfirm` step), when it is one the
/// gateway secures with TLS itself.
pub(crate) fn selected_protocol(
    requested: SecurityProtocol,
    offered: SecurityProtocol,
) -> Option<SecurityProtocol> {
    let common = requested & offered;
    [
        SecurityProtocol::HYBRID_EX,
        SecurityProtocol::HYBRID,
        SecurityProtocol::SSL,
    ]
    .into_iter()
    .find(|p| common.intersects(*p))
}

/// The X.224 Connection Confirm that selects `protocol`, as ironrdp-acceptor writes it.
pub(crate) fn connection_confirm(protocol: SecurityProtocol) -> Result<Vec<u8>, RdpError> {
    ironrdp::core::encode_vec(&X224(ConnectionConfirm::Response {
        flags: ResponseFlags::EXTENDED_CLIENT_DATA_SUPPORTED,
        protocol,
    }))
    .map_err(|e| RdpError::Session(format!("encoding the connection confirm: {e}")))
}

/// What is left of the Connection Confirm ironrdp-server writes (the gateway already sent
/// its own, before TLS).
#[derive(Debug)]
enum Swallow {
    /// Collecting the TPKT header (4 bytes) to learn the PDU's length.
    Header(Vec<u8>),
    /// Bytes of the PDU still to drop.
    Body(usize),
    /// Everything after it goes to the client.
    Done,
}

/// The user's TLS stream as ironrdp-server sees it: the Connection Request the gateway read
/// ahead is replayed, ironrdp-server's Connection Confirm is dropped (the gateway sent the
/// same one in clear before the handshake), everything else passes through, and shutting
/// it down only flushes: the gateway closes it once it told a refused client why.
pub(crate) struct HeldTls {
    tls: Arc<Mutex<TlsStream<TcpStream>>>,
    prefix: Vec<u8>,
    pos: usize,
    swallow: Swallow,
}

impl HeldTls {
    /// Over `tls`, replaying `request` first.
    pub(crate) fn new(tls: Arc<Mutex<TlsStream<TcpStream>>>, request: Vec<u8>) -> Self {
        Self {
            tls,
            prefix: request,
            pos: 0,
            swallow: Swallow::Header(Vec::with_capacity(4)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(Pin<&mut TlsStream<TcpStream>>) -> T) -> T {
        let mut guard = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        f(Pin::new(&mut *guard))
    }
}

impl AsyncRead for HeldTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        self.with(|s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for HeldTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.swallow {
            Swallow::Header(head) => {
                let n = buf.len().min(4 - head.len());
                head.extend_from_slice(&buf[..n]);
                if head.len() == 4 {
                    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                    self.swallow = match len.saturating_sub(4) {
                        0 => Swallow::Done,
                        rest => Swallow::Body(rest),
                    };
                }
                Poll::Ready(Ok(n))
            }
            Swallow::Body(rest) => {
                let n = buf.len().min(*rest);
                *rest -= n;
                if *rest == 0 {
                    self.swallow = Swallow::Done;
                }
                Poll::Ready(Ok(n))
            }
            Swallow::Done => self.with(|s| s.poll_write(cx, buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_pdus_decode_as_set_error_info_then_disconnect() {
        for refusal in [
            Refusal::Denied,
            Refusal::NotAllowed,
            Refusal::UnknownTarget,
            Refusal::TargetFailed,
            Refusal::Cancelled,
        ] {
            let bytes = refusal.pdus().expect("encodes");
            let first =
                ironrdp::core::decode::<X224<SendDataIndication<'_>>>(&bytes).expect("MCS data");
            let share =
                ironrdp::core::decode::<ShareControlHeader>(&first.0.user_data).expect("share");
            match share.share_control_pdu {
                ShareControlPdu::Data(d) => match d.share_data_pdu {
                    ShareDataPdu::ServerSetErrorInfo(ServerSetErrorInfoPdu(code)) => {
                        assert_eq!(code, refusal.error_info());
                    }
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
            let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            let second =
                ironrdp::core::decode::<X224<McsMessage<'_>>>(&bytes[len..]).expect("MCS message");
            assert!(matches!(
                second.0,
                McsMessage::DisconnectProviderUltimatum(_)
            ));
        }
    }

    #[test]
    fn errors_map_to_the_refusal_a_user_can_act_on() {
        let target = |reason: &str| RdpError::Target {
            target: "desk".into(),
            reason: reason.into(),
        };
        assert_eq!(
            Refusal::of(&target("no such target")),
            Refusal::UnknownTarget
        );
        assert_eq!(
            Refusal::of(&RdpError::ControlPlane(CoreError::Forbidden(
                "no grant".into()
            ))),
            Refusal::NotAllowed
        );
        assert_eq!(
            Refusal::of(&RdpError::ControlPlane(CoreError::UnknownTarget(
                "x".into()
            ))),
            Refusal::UnknownTarget
        );
        assert_eq!(
            Refusal::of(&RdpError::TargetConnect {
                target: "desk".into(),
                addr: "127.0.0.1:1".into(),
                reason: "refused".into()
            }),
            Refusal::TargetFailed
        );
        assert_eq!(Refusal::of(&RdpError::Timeout("x")), Refusal::Cancelled);
    }

    #[test]
    fn the_selected_protocol_follows_the_acceptor() {
        let tls = SecurityProtocol::SSL;
        let nla = SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX;
        let client = SecurityProtocol::SSL | SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX;
        assert_eq!(selected_protocol(client, tls), Some(SecurityProtocol::SSL));
        assert_eq!(
            selected_protocol(client, nla),
            Some(SecurityProtocol::HYBRID_EX)
        );
        assert_eq!(selected_protocol(SecurityProtocol::SSL, nla), None);
        assert_eq!(selected_protocol(SecurityProtocol::empty(), tls), None);
    }
}
