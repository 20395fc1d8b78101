//! Clipboard bridging (`cliprdr`) between a native client and the target, text only.
//!
//! The gateway terminates RDP on both sides, so the clipboard passes only because this
//! module carries it: the user's client talks `cliprdr` with the gateway's RDP server
//! (ironrdp-server's `CliprdrServer`), the target talks it with the gateway's RDP client
//! (`CliprdrClient`), and [`bridge`] relays between the two:
//!
//! - a copy on one side (a *format list*) is announced to the other side, keeping text
//!   formats only (`CF_UNICODETEXT`, `CF_TEXT`, `CF_OEMTEXT`); images and files are not
//!   announced, so they cannot be pasted across (a marker in the recording says so);
//! - a paste on one side (a *format data request*) is asked of the other side;
//! - the data that comes back is checked against [`Limits::max_clipboard_bytes`]: larger
//!   data is refused (the requester gets an error answer, the recording a marker), so a
//!   clipboard bomb never reaches the other side nor the recording; smaller data is
//!   recorded as a `Clipboard` event (when capture is on) and passed on.
//!
//! Every message between the two sides goes through bounded queues: a side that floods
//! clipboard messages loses them, never the session.
//!
//! [`Limits::max_clipboard_bytes`]: crate::config::Limits::max_clipboard_bytes

use std::sync::{Arc, Mutex};

use ironrdp::cliprdr::CliprdrClient;
use ironrdp::cliprdr::backend::{ClipboardMessage, CliprdrBackend, CliprdrBackendFactory};
use ironrdp::cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
    OwnedFormatDataResponse,
};
use ironrdp::server::{CliprdrServerFactory, ServerEvent, ServerEventSender};
use psm_recording::ClipboardDirection;
use tokio::sync::mpsc;

use crate::recorder::DesktopRecorder;

/// Clipboard messages queued between the two sides, at most.
const QUEUE: usize = 64;

/// The path the session's taps see for clipboard content (transfer rules match it:
/// `glob = "clipboard"`).
pub const CLIPBOARD_PATH: &str = "clipboard";
/// The protocol name taps see for clipboard transfers.
pub const PROTOCOL: &str = "rdp-clipboard";

/// Which end of the bridge a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The user's RDP client.
    User,
    /// The target.
    Target,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::User => "user's client",
            Side::Target => "target",
        }
    }
}

/// What one side's `cliprdr` said.
#[derive(Debug)]
pub(crate) enum Event {
    /// It copied: these formats are on its clipboard.
    Copied(Side, Vec<ClipboardFormat>),
    /// It pastes: it asks for the other side's data in this format.
    Requested(Side, ClipboardFormatId),
    /// It answered the other side's request.
    Delivered(Side, OwnedFormatDataResponse),
}

/// What the bridge asks of the target's `cliprdr`.
#[derive(Debug)]
pub(crate) enum ToTarget {
    /// Announce these formats (the user copied).
    Copy(Vec<ClipboardFormat>),
    /// Ask the target for its data (the user pastes).
    Paste(ClipboardFormatId),
    /// Answer the target's request.
    Data(OwnedFormatDataResponse),
}

impl ToTarget {
    /// Runs this on the target's `cliprdr`: the messages to send.
    pub(crate) fn apply(
        self,
        cliprdr: &mut CliprdrClient,
    ) -> ironrdp::pdu::PduResult<ironrdp::cliprdr::CliprdrSvcMessages<ironrdp::cliprdr::Client>>
    {
        match self {
            ToTarget::Copy(formats) => cliprdr.initiate_copy(&formats),
            ToTarget::Paste(format) => cliprdr.initiate_paste(format),
            ToTarget::Data(data) => cliprdr.submit_format_data(data),
        }
    }
}

/// A backend of one side: it only reports what its `cliprdr` says.
#[derive(Debug)]
struct Backend {
    side: Side,
    events: mpsc::Sender<Event>,
}

impl Backend {
    fn report(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            tracing::debug!(
                side = self.side.name(),
                "clipboard message dropped (queue full)"
            );
        }
    }
}

impl ironrdp::core::AsAny for Backend {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl CliprdrBackend for Backend {
    fn temporary_directory(&self) -> &str {
        // File transfer through the clipboard is not bridged; nothing is ever written.
        ""
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {}

    fn on_request_format_list(&mut self) {}

    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        self.report(Event::Copied(self.side, available_formats.to_vec()));
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.report(Event::Requested(self.side, request.format));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        use ironrdp::core::IntoOwned as _;
        self.report(Event::Delivered(self.side, response.into_owned()));
    }

    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: LockDataId) {}

    fn on_unlock(&mut self, _: LockDataId) {}
}

/// The user side's factory, handed to ironrdp-server: one backend per connection, and the
/// server's event sender, through which the bridge drives the user's `cliprdr`.
struct UserFactory {
    events: mpsc::Sender<Event>,
    server: Arc<Mutex<Option<mpsc::UnboundedSender<ServerEvent>>>>,
}

impl CliprdrBackendFactory for UserFactory {
    fn build_cliprdr_backend(&self) -> Box<dyn CliprdrBackend> {
        Box::new(Backend {
            side: Side::User,
            events: self.events.clone(),
        })
    }
}

impl ServerEventSender for UserFactory {
    fn set_sender(&mut self, sender: mpsc::UnboundedSender<ServerEvent>) {
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender);
    }
}

impl CliprdrServerFactory for UserFactory {}

/// One native connection's clipboard: made before the session exists (ironrdp-server wants
/// the factory when it is built), joined to the target when the session starts.
#[derive(Debug)]
pub(crate) struct Link {
    events: mpsc::Sender<Event>,
    receiver: Mutex<Option<mpsc::Receiver<Event>>>,
    server: Arc<Mutex<Option<mpsc::UnboundedSender<ServerEvent>>>>,
}

impl Link {
    pub(crate) fn new() -> Arc<Self> {
        let (events, receiver) = mpsc::channel(QUEUE);
        Arc::new(Self {
            events,
            receiver: Mutex::new(Some(receiver)),
            server: Arc::new(Mutex::new(None)),
        })
    }

    /// The factory for ironrdp-server's `with_cliprdr_factory`.
    pub(crate) fn user_factory(&self) -> Box<dyn CliprdrServerFactory> {
        Box::new(UserFactory {
            events: self.events.clone(),
            server: self.server.clone(),
        })
    }

    /// The target side's channel, to attach to the connector.
    pub(crate) fn target_channel(&self) -> CliprdrClient {
        CliprdrClient::new(Box::new(Backend {
            side: Side::Target,
            events: self.events.clone(),
        }))
    }

    fn to_user(&self, message: ClipboardMessage) {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = server.as_ref() {
            let _ = s.send(ServerEvent::Clipboard(message));
        }
    }
}

/// Whether a format carries text the bridge passes.
fn is_text(id: ClipboardFormatId) -> bool {
    id == ClipboardFormatId::CF_UNICODETEXT
        || id == ClipboardFormatId::CF_TEXT
        || id == ClipboardFormatId::CF_OEMTEXT
}

fn text_of(format: ClipboardFormatId, data: &FormatDataResponse<'_>) -> Option<String> {
    if format == ClipboardFormatId::CF_UNICODETEXT {
        data.to_unicode_string().ok()
    } else {
        data.to_string().ok()
    }
}

/// What the bridge decided about data one side delivered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Pass it on (and record this text, if any).
    Pass(Option<String>),
    /// Refuse it: why.
    Refuse(String),
}

/// Judges data delivered by `from` in answer to a request for `format`.
pub(crate) fn judge(
    from: Side,
    format: Option<ClipboardFormatId>,
    data: &FormatDataResponse<'_>,
    max_bytes: usize,
) -> Verdict {
    if data.is_error() {
        return Verdict::Pass(None);
    }
    let Some(format) = format.filter(|f| is_text(*f)) else {
        return Verdict::Refuse(format!(
            "clipboard data from the {} that nobody asked for as text",
            from.name()
        ));
    };
    let n = data.data().len();
    if n > max_bytes {
        return Verdict::Refuse(format!(
            "clipboard refused: {n} bytes from the {} (limit {max_bytes})",
            from.name()
        ));
    }
    Verdict::Pass(text_of(format, data))
}

/// Relays the clipboard between the user's client and the target until either side's
/// channel closes (the session ended).
pub(crate) async fn bridge(
    link: Arc<Link>,
    to_target: mpsc::Sender<ToTarget>,
    recorder: DesktopRecorder,
    gate: crate::session::TransferGate,
    max_bytes: usize,
    artifacts: Option<(psm_core::SessionId, Arc<dyn crate::artifacts::ArtifactPush>)>,
) {
    let Some(mut events) = link
        .receiver
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return;
    };
    // The format each side asked the other for, to read the answer.
    let mut asked_by_user: Option<ClipboardFormatId> = None;
    let mut asked_by_target: Option<ClipboardFormatId> = None;
    loop {
        // The session's end drops the target side's receiver: the bridge ends with it (the
        // link's own sender would otherwise keep `events` open).
        let event = tokio::select! {
            e = events.recv() => match e {
                Some(e) => e,
                None => break,
            },
            () = to_target.closed() => break,
        };
        match event {
            Event::Copied(side, formats) => {
                let text: Vec<_> = formats.iter().filter(|f| is_text(f.id)).cloned().collect();
                if text.len() < formats.len() {
                    recorder
                        .marker(format!(
                            "clipboard: the {} copied {} non-text format(s); not passed",
                            side.name(),
                            formats.len() - text.len()
                        ))
                        .await;
                }
                if text.is_empty() {
                    continue;
                }
                match side {
                    Side::User => {
                        if to_target.try_send(ToTarget::Copy(text)).is_err() {
                            tracing::debug!("clipboard: target queue full");
                        }
                    }
                    Side::Target => link.to_user(ClipboardMessage::SendInitiateCopy(text)),
                }
            }
            Event::Requested(side, format) => {
                if !is_text(format) {
                    let refusal = FormatDataResponse::new_error();
                    match side {
                        Side::User => link.to_user(ClipboardMessage::SendFormatData(refusal)),
                        Side::Target => {
                            let _ = to_target.try_send(ToTarget::Data(refusal));
                        }
                    }
                    continue;
                }
                match side {
                    Side::User => {
                        asked_by_user = Some(format);
                        let _ = to_target.try_send(ToTarget::Paste(format));
                    }
                    Side::Target => {
                        asked_by_target = Some(format);
                        link.to_user(ClipboardMessage::SendInitiatePaste(format));
                    }
                }
            }
            Event::Delivered(side, data) => {
                let (asked, direction) = match side {
                    // The user's client answers the target's request, and vice versa.
                    Side::User => (asked_by_target.take(), ClipboardDirection::ClientToTarget),
                    Side::Target => (asked_by_user.take(), ClipboardDirection::TargetToClient),
                };
                let verdict = match judge(side, asked, &data, max_bytes) {
                    // The session's taps (the policy's transfer rules, path `clipboard`)
                    // may refuse a paste the size limit lets through.
                    Verdict::Pass(text) => match gate.check(
                        match direction {
                            ClipboardDirection::ClientToTarget => psm_proxy::Direction::ToTarget,
                            ClipboardDirection::TargetToClient => psm_proxy::Direction::ToUser,
                        },
                        CLIPBOARD_PATH,
                        PROTOCOL,
                    ) {
                        psm_proxy::RequestVerdict::Allow => Verdict::Pass(text),
                        psm_proxy::RequestVerdict::Refuse(why) => Verdict::Refuse(format!(
                            "clipboard refused: {} ({why})",
                            match direction {
                                ClipboardDirection::ClientToTarget => "a paste into the target",
                                ClipboardDirection::TargetToClient => "a copy from the target",
                            }
                        )),
                    },
                    refused => refused,
                };
                let forward = match verdict {
                    Verdict::Pass(text) => {
                        if let Some(text) = text {
                            if let Some((id, sink)) = &artifacts {
                                let (id, sink, t) = (*id, sink.clone(), text.clone());
                                tokio::spawn(async move {
                                    if let Err(e) = sink.clipboard(id, t).await {
                                        tracing::warn!(session_id = %id, error = %e,
                                            "pushing clipboard text failed");
                                    }
                                });
                            }
                            recorder.clipboard(direction, text).await;
                        }
                        data
                    }
                    Verdict::Refuse(why) => {
                        tracing::warn!(reason = %why, "clipboard data refused");
                        recorder.marker(why).await;
                        FormatDataResponse::new_error()
                    }
                };
                match side {
                    Side::User => {
                        let _ = to_target.try_send(ToTarget::Data(forward));
                    }
                    Side::Target => link.to_user(ClipboardMessage::SendFormatData(forward)),
                }
            }
        }
    }
}

/// Feeds `data` to a clipboard channel set up as the gateway's user side (what a native
/// client's `cliprdr` messages meet), cut into messages by a 2-byte little-endian length
/// before each, and judges whatever data the client delivers against `max_bytes`; returns
/// how many deliveries were judged. For the `rdp_cliprdr` fuzz target and the proptests.
#[doc(hidden)]
pub fn exercise_user_side(data: &[u8], max_bytes: usize) -> usize {
    use ironrdp::svc::SvcProcessor as _;
    let (events, mut receiver) = mpsc::channel(QUEUE);
    let mut server = ironrdp::cliprdr::CliprdrServer::new(Box::new(Backend {
        side: Side::User,
        events,
    }));
    let _ = server.start();
    let mut judged = 0;
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (message, tail) = rest[2..].split_at(n);
        rest = tail;
        let _ = server.process(message);
        while let Ok(event) = receiver.try_recv() {
            if let Event::Delivered(side, response) = event {
                let verdict = judge(
                    side,
                    Some(ClipboardFormatId::CF_UNICODETEXT),
                    &response,
                    max_bytes,
                );
                if let Verdict::Pass(Some(text)) = &verdict {
                    assert!(response.data().len() <= max_bytes && text.len() <= 2 * max_bytes);
                }
                judged += 1;
            }
        }
    }
    judged
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_client_bytes_are_handled_without_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            exercise_user_side(&data, 256);
        }

        #[test]
        fn only_text_within_the_limit_passes(len in 0usize..3000, max in 0usize..2000, unicode in any::<bool>()) {
            let text = "a".repeat(len);
            let (format, data) = if unicode {
                (ClipboardFormatId::CF_UNICODETEXT, FormatDataResponse::new_unicode_string(&text))
            } else {
                (ClipboardFormatId::CF_TEXT, FormatDataResponse::new_string(&text))
            };
            match judge(Side::User, Some(format), &data, max) {
                Verdict::Pass(Some(t)) => {
                    prop_assert!(data.data().len() <= max);
                    prop_assert_eq!(t, text);
                }
                Verdict::Pass(None) => prop_assert!(false, "text data is read"),
                Verdict::Refuse(_) => prop_assert!(data.data().len() > max),
            }
        }
    }

    #[test]
    fn a_client_delivering_a_paste_is_judged() {
        // CB_FORMAT_DATA_RESPONSE (msgType 5, CB_RESPONSE_OK) with "hi\0" in UTF-16.
        let body = [b'h', 0, b'i', 0, 0, 0];
        let mut pdu = vec![5, 0, 1, 0];
        pdu.extend_from_slice(&(body.len() as u32).to_le_bytes());
        pdu.extend_from_slice(&body);
        let mut input = (pdu.len() as u16).to_le_bytes().to_vec();
        input.extend_from_slice(&pdu);
        assert_eq!(exercise_user_side(&input, 1024), 1);
    }

    #[test]
    fn text_within_the_limit_passes_and_is_read() {
        let data = FormatDataResponse::new_unicode_string("ls -l /etc");
        assert_eq!(
            judge(
                Side::User,
                Some(ClipboardFormatId::CF_UNICODETEXT),
                &data,
                1024
            ),
            Verdict::Pass(Some("ls -l /etc".into()))
        );
        let data = FormatDataResponse::new_string("plain");
        assert_eq!(
            judge(Side::Target, Some(ClipboardFormatId::CF_TEXT), &data, 1024),
            Verdict::Pass(Some("plain".into()))
        );
    }

    #[test]
    fn a_bomb_is_refused_and_unasked_or_non_text_data_too() {
        let big = "x".repeat(4096);
        let data = FormatDataResponse::new_unicode_string(&big);
        match judge(
            Side::User,
            Some(ClipboardFormatId::CF_UNICODETEXT),
            &data,
            1024,
        ) {
            Verdict::Refuse(why) => assert!(why.contains("limit 1024"), "{why}"),
            other => panic!("{other:?}"),
        }
        let data = FormatDataResponse::new_string("x");
        assert!(matches!(
            judge(Side::Target, None, &data, 1024),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            judge(Side::Target, Some(ClipboardFormatId::CF_DIB), &data, 1024),
            Verdict::Refuse(_)
        ));
        // An error answer passes as an error (nothing to record).
        assert_eq!(
            judge(Side::User, None, &FormatDataResponse::new_error(), 1024),
            Verdict::Pass(None)
        );
    }

    #[tokio::test]
    async fn the_bridge_ends_with_the_session() {
        use crate::recorder::{DirRecordings, RecordingFactory as _, writer_config};
        let dir = tempfile::tempdir().unwrap();
        let policy = crate::config::RecordingPolicy::default();
        let recordings = DirRecordings::new(
            dir.path(),
            psm_recording::SigningKey::generate().unwrap(),
            writer_config(&policy),
        );
        let id = psm_core::SessionId::new();
        let writer = recordings
            .create(psm_recording::Header::new(
                id,
                psm_recording::Protocol::Rdp,
                "alice",
                "desk-01",
                "test",
            ))
            .await
            .unwrap();
        let recorder = DesktopRecorder::start(
            writer,
            crate::screen::DesktopScreen::new(64, 64),
            policy,
            Default::default(),
        )
        .await
        .unwrap();
        let link = Link::new();
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(bridge(
            link.clone(),
            tx,
            recorder.clone(),
            crate::session::TransferGate::default(),
            1024,
            None,
        ));
        // Still running while the session is.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!task.is_finished());
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the bridge ended")
            .unwrap();
        recorder.finish("done").await.unwrap();
    }

    #[test]
    fn only_text_formats_are_bridged() {
        assert!(is_text(ClipboardFormatId::CF_UNICODETEXT));
        assert!(is_text(ClipboardFormatId::CF_TEXT));
        assert!(!is_text(ClipboardFormatId::CF_HDROP));
        assert!(!is_text(ClipboardFormatId::new(0xC0FE)));
    }
}
