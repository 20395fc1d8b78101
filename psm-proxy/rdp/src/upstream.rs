//! The target side: the gateway is an RDP client (ironrdp connector + session) that logs in
//! with the vaulted credential, decodes the target's graphics into the session's
//! [`DesktopScreen`], and sends the user's input on.
//!
//! Only TLS and NLA (CredSSP) are offered to the target; standard RDP security (RC4) never.
//! The credential goes in CredSSP when the target speaks NLA, else in the Client Info PDU
//! with the auto-logon flag (xrdp, which offers TLS only).

use std::net::SocketAddr;
use std::time::Duration;

use ironrdp::connector::{self, ClientConnector, ConnectionResult, ConnectorError};
use ironrdp::pdu::gcc::KeyboardType;
use ironrdp::pdu::rdp::capability_sets::MajorPlatformType;
use ironrdp::pdu::rdp::client_info::{PerformanceFlags, TimezoneInfo};
use ironrdp::session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_async::{FramedWrite as _, NetworkClient};
use ironrdp_tokio::TokioFramed;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

use crate::access::TargetLogin;
use crate::bitmaps::{Normalized, Normalizer};
use crate::config::TargetSecurity;
use crate::error::RdpError;
use crate::input::InputEvent;
use crate::screen::{DesktopScreen, Rect};
use crate::tls;
use psm_proxy::Authorization;
use psm_proxy::HostKeyCheck;

type TargetStream = TlsStream<TcpStream>;

/// Kerberos is not offered toward targets: CredSSP uses NTLM, so no KDC is ever contacted.
struct NoKdc;

impl NetworkClient for NoKdc {
    async fn send(
        &mut self,
        _request: &ironrdp::connector::sspi::NetworkRequest,
    ) -> connector::ConnectorResult<Vec<u8>> {
        Err(connector::general_err!(
            "the RDP gateway does not reach Kerberos KDCs (NTLM only toward targets)"
        ))
    }
}

/// A logged-in connection to a target, ready to [`run`](TargetSession::run).
pub struct TargetSession {
    framed: TokioFramed<TargetStream>,
    stage: ActiveStage,
    io_channel_id: u16,
    user_channel_id: u16,
    /// The connector configuration for a deactivation-reactivation (capabilities only: its
    /// password is empty).
    reactivation: connector::Config,
    /// The desktop size the target chose.
    pub width: u16,
    /// See `width`.
    pub height: u16,
}

impl std::fmt::Debug for TargetSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSession")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// The keyboard layout announced to a target when the user's client announced none: US
/// English.
pub const DEFAULT_KEYBOARD_LAYOUT: u32 = 0x0409;

fn connector_config(
    login: &TargetLogin,
    width: u16,
    height: u16,
    security: TargetSecurity,
    keyboard_layout: u32,
) -> connector::Config {
    connector::Config {
        credentials: connector::Credentials::UsernamePassword {
            username: login.username.clone(),
            password: login.password.expose_secret().clone(),
        },
        domain: login.domain.clone(),
        enable_tls: security == TargetSecurity::NlaOrTls,
        enable_credssp: true,
        keyboard_type: KeyboardType::IbmEnhanced,
        keyboard_subtype: 0,
        // The user's own layout, so the target types what their keys say.
        keyboard_layout,
        keyboard_functional_keys_count: 12,
        ime_file_name: String::new(),
        dig_product_id: String::new(),
        desktop_size: connector::DesktopSize { width, height },
        // Lossless bitmaps only: without RemoteFX (lossy, and the default of ironrdp's
        // connector) the target sends exact pixels, so the recording is evidence of what was
        // on screen, text stays sharp for the user, and few-colour desktops compress to a
        // fraction of their size (see the recorder).
        bitmap: Some(connector::BitmapConfig {
            lossy_compression: false,
            color_depth: 32,
            codecs: ironrdp::pdu::rdp::capability_sets::BitmapCodecs(Vec::new()),
        }),
        client_build: 0,
        client_name: "psm-gateway".to_owned(),
        client_dir: String::new(),
        platform: MajorPlatformType::UNIX,
        enable_server_pointer: false,
        request_data: None,
        autologon: true,
        enable_audio_playback: false,
        compression_type: None,
        pointer_software_rendering: false,
        multitransport_flags: None,
        performance_flags: PerformanceFlags::default(),
        desktop_scale_factor: 0,
        hardware_id: None,
        license_cache: None,
        timezone_info: TimezoneInfo::default(),
        alternate_shell: String::new(),
        work_dir: String::new(),
    }
}

fn connect_err(auth: &Authorization, reason: impl std::fmt::Display) -> RdpError {
    RdpError::TargetConnect {
        target: auth.target.clone(),
        addr: format!("{}:{}", auth.host, auth.port),
        reason: reason.to_string(),
    }
}

fn describe(e: &ConnectorError) -> String {
    // The connector's errors carry no credential; keep the chain short and readable.
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    let mut n = 0;
    while let Some(cause) = src {
        if n >= 3 {
            break;
        }
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
        n += 1;
    }
    s
}

/// Connects and logs in to the target of `auth` with `login`, asking for a
/// The security used toward a target: NLA only when its certificate is not pinned.
///
/// An unpinned certificate proves nothing about who answers, so a man in the middle could
/// refuse NLA and read the password from the Client Info PDU of a TLS-only login (issue 17
/// L13). With NLA (CredSSP) the credential is sent only after the server proved it holds
/// it, which such a listener cannot. A pinned target may still fall back to TLS (xrdp
/// offers TLS only).
///
/// ```
/// use psm_proxy::HostKeyCheck;
/// use psm_proxy_rdp::TargetSecurity;
/// use psm_proxy_rdp::upstream::security_toward;
/// assert_eq!(security_toward(&HostKeyCheck::AcceptAny, TargetSecurity::NlaOrTls), TargetSecurity::NlaOnly);
/// let pinned = HostKeyCheck::Pinned(vec!["sha256:".to_owned() + &"ab".repeat(32)]);
/// assert_eq!(security_toward(&pinned, TargetSecurity::NlaOrTls), TargetSecurity::NlaOrTls);
/// ```
pub fn security_toward(check: &HostKeyCheck, configured: TargetSecurity) -> TargetSecurity {
    match check {
        HostKeyCheck::AcceptAny => TargetSecurity::NlaOnly,
        _ => configured,
    }
}

/// `width` x `height` desktop, within `timeout`.
pub async fn connect(
    auth: &Authorization,
    login: &TargetLogin,
    width: u16,
    height: u16,
    security: TargetSecurity,
    timeout: Duration,
) -> Result<TargetSession, RdpError> {
    connect_with(
        auth,
        login,
        width,
        height,
        security,
        timeout,
        None,
        None,
        DEFAULT_KEYBOARD_LAYOUT,
    )
    .await
}

/// [`connect`], with the target side of a clipboard bridge and the session drive when
/// they are given, announcing the user's keyboard layout (KLID).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn connect_with(
    auth: &Authorization,
    login: &TargetLogin,
    width: u16,
    height: u16,
    security: TargetSecurity,
    timeout: Duration,
    clipboard: Option<ironrdp::cliprdr::CliprdrClient>,
    drive: Option<crate::drive::DriveChannel>,
    keyboard_layout: u32,
) -> Result<TargetSession, RdpError> {
    tokio::time::timeout(
        timeout,
        connect_inner(
            auth,
            login,
            (width, height),
            security,
            clipboard,
            drive,
            keyboard_layout,
        ),
    )
    .await
    .map_err(|_| connect_err(auth, format!("no answer within {timeout:?}")))?
}

async fn connect_inner(
    auth: &Authorization,
    login: &TargetLogin,
    (width, height): (u16, u16),
    security: TargetSecurity,
    clipboard: Option<ironrdp::cliprdr::CliprdrClient>,
    drive: Option<crate::drive::DriveChannel>,
    keyboard_layout: u32,
) -> Result<TargetSession, RdpError> {
    let tcp = TcpStream::connect((auth.host.as_str(), auth.port))
        .await
        .map_err(|e| connect_err(auth, format!("TCP: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let client_addr: SocketAddr = tcp
        .local_addr()
        .map_err(|e| connect_err(auth, format!("local address: {e}")))?;
    let mut framed = TokioFramed::new(tcp);
    let security = security_toward(&auth.host_key, security);
    let mut connector = ClientConnector::new(
        connector_config(login, width, height, security, keyboard_layout),
        client_addr,
    );
    if let Some(cliprdr) = clipboard {
        connector.attach_static_channel(cliprdr);
    }
    if let Some(drive) = drive {
        connector.attach_static_channel(drive);
        // Windows answers `rdpdr` only when `rdpsnd` is offered too ([MS-RDPEFS] appendix
        // A <1>): a sound channel that plays nothing.
        connector.attach_static_channel(ironrdp::rdpsnd::client::Rdpsnd::new(Box::new(
            ironrdp::rdpsnd::client::NoopRdpsndBackend,
        )));
    }
    let should_upgrade = ironrdp_async::connect_begin(&mut framed, &mut connector)
        .await
        .map_err(|e| connect_err(auth, format!("negotiation: {}", describe(&e))))?;
    let (tcp, leftover) = framed.into_inner();
    if !leftover.is_empty() {
        // Nothing may come between the X.224 confirm and the TLS handshake.
        return Err(connect_err(
            auth,
            format!(
                "negotiation: {} unexpected bytes before TLS",
                leftover.len()
            ),
        ));
    }
    let tls_connector = tls::target_connector(&auth.host_key)?;
    let server_name = rustls::pki_types::ServerName::try_from(auth.host.clone())
        .map_err(|e| connect_err(auth, format!("server name: {e}")))?;
    let stream = tls_connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| RdpError::Tls {
            side: "target",
            reason: e.to_string(),
        })?;
    let public_key = {
        let (_, conn) = stream.get_ref();
        let cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| connect_err(auth, "the target sent no TLS certificate"))?;
        tls::subject_public_key(cert.as_ref())?
    };
    let upgraded = ironrdp_async::mark_as_upgraded(should_upgrade, &mut connector);
    let mut framed = TokioFramed::new(stream);
    let result: ConnectionResult = ironrdp_async::connect_finalize(
        upgraded,
        connector,
        &mut framed,
        &mut NoKdc,
        connector::ServerName::new(auth.host.clone()),
        public_key,
        None,
    )
    .await
    .map_err(|e| connect_err(auth, format!("login: {}", describe(&e))))?;
    let width = result.desktop_size.width;
    let height = result.desktop_size.height;
    let io_channel_id = result.io_channel_id;
    let user_channel_id = result.user_channel_id;
    let stage = ActiveStageBuilder {
        static_channels: result.static_channels,
        user_channel_id: result.user_channel_id,
        io_channel_id: result.io_channel_id,
        message_channel_id: result.message_channel_id,
        share_id: result.share_id,
        compression_type: result.compression_type,
        enable_server_pointer: result.enable_server_pointer,
        pointer_software_rendering: result.pointer_software_rendering,
    }
    .build();
    Ok(TargetSession {
        framed,
        stage,
        io_channel_id,
        user_channel_id,
        reactivation: connector_config(
            &TargetLogin::new(&login.username, String::new()),
            width,
            height,
            security,
            keyboard_layout,
        ),
        width,
        height,
    })
}

/// The next clipboard request, or never when there is no bridge (or it is gone).
async fn next_clipboard(
    rx: &mut Option<mpsc::Receiver<crate::clipboard::ToTarget>>,
) -> Option<crate::clipboard::ToTarget> {
    match rx {
        Some(r) => match r.recv().await {
            Some(m) => Some(m),
            None => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Longest a target's deactivation-reactivation sequence may take.
const REACTIVATION_TIMEOUT: Duration = Duration::from_secs(20);

/// What a finished deactivation-reactivation decided.
struct Reactivated {
    width: u16,
    height: u16,
    share_id: u32,
    enable_server_pointer: bool,
    pointer_software_rendering: bool,
}

/// Runs a Deactivation-Reactivation Sequence ([MS-RDPBCGR] 1.3.1.3) to its end: the
/// target's new Demand Active, our Confirm Active and the connection finalization.
async fn reactivate<R, W>(
    mut sequence: connector::connection_activation::ConnectionActivationSequence,
    reader: &mut ironrdp_async::Framed<R>,
    writer: &mut ironrdp_async::Framed<W>,
) -> Result<Reactivated, String>
where
    R: ironrdp_async::FramedRead,
    W: ironrdp_async::FramedWrite,
{
    use connector::connection_activation::ConnectionActivationState;
    let mut buf = ironrdp::core::WriteBuf::new();
    // A capability exchange and a finalization are a handful of PDUs; a target that keeps
    // the sequence going is refused.
    for _ in 0..64 {
        let written = ironrdp_async::single_sequence_step_read(reader, &mut sequence, &mut buf)
            .await
            .map_err(|e| describe(&e))?;
        if let Some(n) = written.size() {
            writer
                .write_all(&buf.filled()[..n])
                .await
                .map_err(|e| format!("writing to the target: {e}"))?;
        }
        if let ConnectionActivationState::Finalized {
            desktop_size,
            share_id,
            enable_server_pointer,
            pointer_software_rendering,
        } = sequence.connection_activation_state()
        {
            return Ok(Reactivated {
                width: desktop_size.width,
                height: desktop_size.height,
                share_id,
                enable_server_pointer,
                pointer_software_rendering,
            });
        }
    }
    Err("the sequence did not finish".into())
}

/// How the target side ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetEnd {
    /// The target closed the session (logoff, disconnect).
    Closed(String),
    /// The gateway stopped it (terminate, user gone).
    Stopped,
    /// The stream broke or could not be decoded.
    Failed(String),
}

impl TargetSession {
    /// Decodes the target's screen into `screen` and sends `input` to the target until
    /// the target ends, `stop` resolves, or the input sender is dropped (the user left).
    pub async fn run(
        self,
        screen: DesktopScreen,
        input: mpsc::Receiver<InputEvent>,
        stop: impl std::future::Future<Output = ()>,
    ) -> TargetEnd {
        self.run_with(screen, input, None, stop).await
    }

    /// [`run`](Self::run), also carrying out the clipboard bridge's requests.
    pub(crate) async fn run_with(
        mut self,
        screen: DesktopScreen,
        mut input: mpsc::Receiver<InputEvent>,
        mut clipboard: Option<mpsc::Receiver<crate::clipboard::ToTarget>>,
        stop: impl std::future::Future<Output = ()>,
    ) -> TargetEnd {
        tokio::pin!(stop);
        let (mut reader, mut writer) = ironrdp_tokio::split_tokio_framed(self.framed);
        let stage = &mut self.stage;
        let mut normalizer = Normalizer::new(self.width, self.height);
        let io_channel_id = self.io_channel_id;
        let mut batch: Vec<InputEvent> = Vec::with_capacity(32);
        let end = loop {
            tokio::select! {
                () = &mut stop => break TargetEnd::Stopped,
                pdu = reader.read_pdu() => {
                    let (action, payload) = match pdu {
                        Ok(p) => p,
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            break TargetEnd::Closed("the target closed the connection".into())
                        }
                        Err(e) => break TargetEnd::Failed(format!("reading from the target: {e}")),
                    };
                    // Padded bitmaps are cropped before the session paints them (see
                    // `crate::bitmaps`).
                    let rewritten = match action {
                        ironrdp::pdu::Action::FastPath => match normalizer.normalize(&payload) {
                            Normalized::Unchanged => None,
                            Normalized::Rewritten(pdus) => Some(pdus),
                        },
                        ironrdp::pdu::Action::X224 => match normalizer.normalize_slow_path(&payload, io_channel_id) {
                            Normalized::Unchanged => None,
                            Normalized::Rewritten(pdus) => Some(pdus),
                        },
                    };
                    // Rewritten PDUs are fast-path PDUs, whatever came in.
                    let part_action = if rewritten.is_some() { ironrdp::pdu::Action::FastPath } else { action };
                    let outputs = screen.update(|image| {
                        let parts: Vec<&[u8]> = match &rewritten {
                            Some(pdus) => pdus.iter().map(Vec::as_slice).collect(),
                            None => vec![&payload[..]],
                        };
                        let mut all = Vec::new();
                        let mut rects = Vec::new();
                        for part in parts {
                            match stage.process(image, part_action, part) {
                                Ok(outs) => {
                                    rects.extend(outs.iter().filter_map(|o| match o {
                                        ActiveStageOutput::GraphicsUpdate(r) => Some(Rect {
                                            x: r.left,
                                            y: r.top,
                                            width: r.right.saturating_sub(r.left).saturating_add(1),
                                            height: r.bottom.saturating_sub(r.top).saturating_add(1),
                                        }),
                                        _ => None,
                                    }));
                                    all.extend(outs);
                                }
                                Err(e) => return (Err(e), rects),
                            }
                        }
                        (Ok(all), rects)
                    });
                    let outputs = match outputs {
                        Ok(o) => o,
                        Err(e) => break TargetEnd::Failed(format!("decoding the target's stream: {e}")),
                    };
                    let mut closed = None;
                    for out in outputs {
                        match out {
                            ActiveStageOutput::ResponseFrame(frame) => {
                                if let Err(e) = writer.write_all(&frame).await {
                                    closed = Some(TargetEnd::Failed(format!("writing to the target: {e}")));
                                    break;
                                }
                            }
                            ActiveStageOutput::Terminate(reason) => {
                                closed = Some(TargetEnd::Closed(reason.to_string()));
                                break;
                            }
                            ActiveStageOutput::DeactivateAll => {
                                // The target restarts the capability exchange (a resize, or a
                                // reconnection to a desktop of another size): run it, then go
                                // on with the new size.
                                let sequence = connector::connection_activation::ConnectionActivationSequence::new(
                                    self.reactivation.clone(),
                                    io_channel_id,
                                    self.user_channel_id,
                                );
                                match tokio::time::timeout(
                                    REACTIVATION_TIMEOUT,
                                    reactivate(sequence, &mut reader, &mut writer),
                                )
                                .await
                                {
                                    Ok(Ok(done)) => {
                                        stage.set_fastpath_processor(
                                            ironrdp::session::fast_path::ProcessorBuilder {
                                                io_channel_id,
                                                user_channel_id: self.user_channel_id,
                                                share_id: done.share_id,
                                                enable_server_pointer: done.enable_server_pointer,
                                                pointer_software_rendering: done.pointer_software_rendering,
                                                bulk_decompressor: None,
                                            }
                                            .build(),
                                        );
                                        stage.set_share_id(done.share_id);
                                        stage.set_enable_server_pointer(done.enable_server_pointer);
                                        let (w, h) = (done.width, done.height);
                                        tracing::info!(width = w, height = h, "the target reactivated the session");
                                        if (w, h) != screen.size() {
                                            screen.resize(w, h);
                                            normalizer.resize(w, h);
                                        }
                                    }
                                    Ok(Err(e)) => {
                                        closed = Some(TargetEnd::Failed(format!("the target's deactivation-reactivation failed: {e}")));
                                        break;
                                    }
                                    Err(_) => {
                                        closed = Some(TargetEnd::Failed(format!(
                                            "the target's deactivation-reactivation did not finish within {REACTIVATION_TIMEOUT:?}"
                                        )));
                                        break;
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    if let Some(c) = closed {
                        break c;
                    }
                }
                Some(request) = next_clipboard(&mut clipboard) => {
                    let Some(cliprdr) = stage.get_svc_processor_mut::<ironrdp::cliprdr::CliprdrClient>() else {
                        continue;
                    };
                    let frame = request
                        .apply(cliprdr)
                        .map_err(|e| e.to_string())
                        .and_then(|m| stage.process_svc_processor_messages(m).map_err(|e| e.to_string()));
                    match frame {
                        Ok(frame) => {
                            if let Err(e) = writer.write_all(&frame).await {
                                break TargetEnd::Failed(format!("writing to the target: {e}"));
                            }
                        }
                        // Not ready yet, or nothing to answer: the clipboard only loses this one.
                        Err(e) => tracing::debug!(error = %e, "clipboard request to the target not sent"),
                    }
                }
                n = input.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        break TargetEnd::Stopped;
                    }
                    let events: Vec<_> = batch.drain(..).map(InputEvent::to_fast_path).collect();
                    let outs = screen.update(|image| (stage.process_fastpath_input(image, &events), Vec::new()));
                    match outs {
                        Ok(outs) => {
                            for o in outs {
                                if let ActiveStageOutput::ResponseFrame(frame) = o
                                    && let Err(e) = writer.write_all(&frame).await
                                {
                                    return TargetEnd::Failed(format!("writing to the target: {e}"));
                                }
                            }
                        }
                        Err(e) => break TargetEnd::Failed(format!("encoding input: {e}")),
                    }
                }
            }
        };
        if end == TargetEnd::Stopped
            && let Ok(outs) = stage.graceful_shutdown()
        {
            for o in outs {
                if let ActiveStageOutput::ResponseFrame(frame) = o {
                    let _ = writer.write_all(&frame).await;
                }
            }
        }
        // Whatever the target sent after the end is not read (the session is over).
        let (mut stream, _unread) =
            ironrdp_tokio::unsplit_tokio_framed(reader, writer).into_inner();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.shutdown()).await;
        end
    }
}
