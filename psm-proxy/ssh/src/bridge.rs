//! Moving bytes between a user's channel and its twin on the target.
//!
//! Each channel gets two pumps, one per direction, each a task. A pump writes with the
//! receiver's window (russh's `ChannelWriteHalf` waits for window space), so a slow reader
//! pushes back on the sender. Requests (pty, exec, window-change...) are forwarded by the
//! handler, not here, because russh wants their replies from inside its callbacks; a
//! request that wants a reply registers a one-shot in [`TargetSide::expect_reply`] which the
//! target-to-user pump resolves when the target's `SUCCESS`/`FAILURE` arrives.
//!
//! Why the channel buffers are large (`CHANNEL_BUFFER` messages): russh replenishes a
//! channel's window as soon as data arrives and pushes back only by blocking its session
//! loop on the channel's queue. A blocked loop also stops reading the peer's window
//! adjustments, so with both directions saturated (`ssh gw cat < big > out`) a short stall
//! could turn into a deadlock. A queue larger than what a well-behaved peer sends while its
//! own output is briefly stalled keeps the loops running; a peer that floods input while
//! never reading output stalls only its own session.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use psm_proxy::redact::EchoTracker;
use psm_proxy::tap::{
    ChannelInfo, ChannelType, Direction, ExitReport, FileOperationOutcome, RequestVerdict,
    StreamKind,
};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client, server};
use tokio::sync::{mpsc, oneshot};

use super::conn::{Conn, ForwardSlot, Live};
use super::sftp_gate::{self, SftpGate};
use super::transfer::TransferWatch;

/// Keys that submit a line (Enter, ^J, ^O): on a terminal channel each goes to the taps as
/// a chunk of its own, so a policy can hold exactly the Enter while the keys before it
/// reach the target and echo.
const SUBMIT_KEYS: [u8; 3] = [b'\r', b'\n', 0x0f];
/// At most one bell per this long answers input refused by a lock.
const BELL_EVERY: Duration = Duration::from_secs(1);

/// The target half of a bridged channel, shared by the handler (requests) and the pumps.
pub(crate) struct TargetSide {
    pub(crate) write: ChannelWriteHalf<client::Msg>,
    pending: Mutex<VecDeque<oneshot::Sender<bool>>>,
}

impl TargetSide {
    fn new(write: ChannelWriteHalf<client::Msg>) -> Self {
        Self {
            write,
            pending: Mutex::new(VecDeque::new()),
        }
    }

    /// Registers a request that wants a reply; the answer arrives on the receiver (false
    /// if the channel closes first).
    pub(crate) fn expect_reply(&self) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(tx);
        rx
    }

    fn resolve(&self, ok: bool) {
        let next = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if let Some(tx) = next {
            let _ = tx.send(ok);
        }
    }

    fn fail_all(&self) {
        let all: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for tx in all {
            let _ = tx.send(false);
        }
    }
}

/// Per-channel state the pumps share.
pub(crate) struct ChannelState {
    pub(crate) info: ChannelInfo,
    user_id: russh::ChannelId,
    pub(crate) target: Arc<TargetSide>,
    pub(crate) echo: Mutex<EchoTracker>,
    pub(crate) transfer: Mutex<Option<TransferWatch>>,
    /// An SFTP channel's gate: requests are judged before they reach the target.
    pub(crate) sftp: OnceLock<Arc<SftpGate>>,
    /// Record data (session channels) or only count it (port forwards).
    pub(crate) record_data: bool,
    /// The channel has a terminal (pty): its screen is kept and viewers may follow it.
    pty: AtomicBool,
    inject: mpsc::UnboundedSender<Bytes>,
    last_bell: Mutex<Option<Instant>>,
    /// The target closed and the user was sent the close: the user's half is done too.
    /// russh (0.65.4) does not pass on the user's answering CLOSE to a channel the gateway
    /// closed first, so the user-to-target pump would otherwise wait forever.
    closed_to_user: tokio::sync::Notify,
}

impl ChannelState {
    pub(crate) fn set_transfer(&self, watch: TransferWatch) {
        *self.transfer.lock().unwrap_or_else(|p| p.into_inner()) = Some(watch);
    }

    /// The channel got a terminal of this size.
    pub(crate) fn set_terminal(&self, conn: &Conn, cols: u16, rows: u16) {
        if !self.pty.swap(true, Ordering::SeqCst) {
            conn.control.channel_terminal(self.info.id, cols, rows);
        } else {
            conn.control.channel_resized(self.info.id, cols, rows);
        }
    }

    pub(crate) fn has_terminal(&self) -> bool {
        self.pty.load(Ordering::Relaxed)
    }

    /// Input written on behalf of the control side (a viewer with control, a policy's ^C):
    /// it goes through this channel's pump, so taps see it in order.
    pub(crate) fn inject(&self, bytes: Bytes) {
        let _ = self.inject.send(bytes);
    }
}

/// Starts bridging a session channel. Returns its shared state (for the handler).
pub(crate) fn spawn_session(
    conn: Arc<Conn>,
    live: Arc<Live>,
    info: ChannelInfo,
    user: russh::Channel<server::Msg>,
    target: russh::Channel<client::Msg>,
) -> Arc<ChannelState> {
    let (ur, uw) = user.split();
    spawn(conn, live, info, (ur, uw), target, true, None, None)
}

/// Starts bridging a session channel whose user side was already split (the menu), with
/// the terminal it already has.
pub(crate) fn spawn_session_split(
    conn: Arc<Conn>,
    live: Arc<Live>,
    info: ChannelInfo,
    user: (ChannelReadHalf, ChannelWriteHalf<server::Msg>),
    target: russh::Channel<client::Msg>,
    terminal: Option<(u16, u16)>,
) -> Arc<ChannelState> {
    spawn(conn, live, info, user, target, true, terminal, None)
}

/// Starts bridging a port-forward channel: its bytes go to the taps (a recorder counts
/// them and records its endpoints, not its content), never to echo or transfer tracking.
/// `slot` is its place in the connection's channel count, given back when it ends.
pub(crate) fn spawn_raw(
    conn: Arc<Conn>,
    live: Arc<Live>,
    info: ChannelInfo,
    user: russh::Channel<server::Msg>,
    target: russh::Channel<client::Msg>,
    slot: ForwardSlot,
) -> Arc<ChannelState> {
    let (ur, uw) = user.split();
    spawn(conn, live, info, (ur, uw), target, false, None, Some(slot))
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    conn: Arc<Conn>,
    live: Arc<Live>,
    info: ChannelInfo,
    user: (ChannelReadHalf, ChannelWriteHalf<server::Msg>),
    target: russh::Channel<client::Msg>,
    record_data: bool,
    terminal: Option<(u16, u16)>,
    forward: Option<ForwardSlot>,
) -> Arc<ChannelState> {
    let (ur, uw) = user;
    let (tr, tw) = target.split();
    let (inject, injected) = mpsc::unbounded_channel();
    let state = Arc::new(ChannelState {
        info,
        user_id: uw.id(),
        target: Arc::new(TargetSide::new(tw)),
        echo: Mutex::new(EchoTracker::default()),
        transfer: Mutex::new(None),
        sftp: OnceLock::new(),
        record_data,
        pty: AtomicBool::new(false),
        inject,
        last_bell: Mutex::new(None),
        closed_to_user: tokio::sync::Notify::new(),
    });
    if let Some((cols, rows)) = terminal {
        state.set_terminal(&conn, cols, rows);
    }
    if record_data {
        conn.bridged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(state.info.id, state.clone());
    }
    let up = tokio::spawn(user_to_target(
        conn.clone(),
        live.clone(),
        state.clone(),
        ur,
        injected,
    ));
    let down = tokio::spawn(target_to_user(
        conn.clone(),
        live.clone(),
        state.clone(),
        tr,
        uw,
    ));
    let st = state.clone();
    conn.bridges.send_modify(|n| *n += 1);
    tokio::spawn(async move {
        let _ = up.await;
        let _ = down.await;
        let watch = st.transfer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = watch {
            for ft in t.finish() {
                live.taps.file_transfer(&st.info, &ft).await;
            }
        }
        if let Some(gate) = st.sftp.get() {
            for op in gate.unanswered() {
                live.taps.file_operation(&st.info, &op).await;
            }
        }
        live.taps.channel_closed(&st.info).await;
        conn.control.channel_closed(st.info.id);
        conn.bridged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&st.info.id);
        conn.bridges.send_modify(|n| *n = n.saturating_sub(1));
        conn.session_channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&st.user_id);
        drop(forward);
    });
    state
}

async fn tap_data(
    conn: &Conn,
    live: &Live,
    state: &ChannelState,
    direction: Direction,
    stream: StreamKind,
    data: Bytes,
) -> Option<Bytes> {
    conn.control.wait_unpaused().await;
    conn.control.count(direction, data.len());
    if !state.record_data {
        // A port forward: the taps see its bytes (a recorder counts them), nothing here
        // reads them as terminal input or file transfers.
        return live
            .taps
            .data(&state.info, direction, stream, data, false)
            .await;
    }
    let hidden = {
        let mut echo = state.echo.lock().unwrap_or_else(|p| p.into_inner());
        match direction {
            Direction::ToTarget => echo.input(&data),
            Direction::ToUser => {
                echo.output(&data);
                false
            }
        }
    };
    let transfers = {
        let mut t = state.transfer.lock().unwrap_or_else(|p| p.into_inner());
        match t.as_mut() {
            Some(w) => w.feed(direction, &data),
            None => Vec::new(),
        }
    };
    for ft in &transfers {
        live.taps.file_transfer(&state.info, ft).await;
    }
    let out = live
        .taps
        .data(&state.info, direction, stream, data, hidden)
        .await?;
    if direction == Direction::ToUser && state.has_terminal() {
        conn.control.publish_output(state.info.id, &out);
    }
    Some(out)
}

/// Splits terminal input so that every submit key is a chunk of its own (zero-copy).
fn submit_segments(data: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if SUBMIT_KEYS.contains(b) {
            if i > start {
                out.push(data.slice(start..i));
            }
            out.push(data.slice(i..i + 1));
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push(data.slice(start..));
    }
    out
}

/// Passes input through the taps and writes what they let through. `Err` when the target
/// side is gone.
async fn forward_input(
    conn: &Conn,
    live: &Live,
    state: &ChannelState,
    stream: StreamKind,
    ext: u32,
    data: Bytes,
) -> Result<(), ()> {
    if stream == StreamKind::Stdout
        && let Some(gate) = state.sftp.get()
    {
        return forward_sftp(conn, live, state, gate, &data).await;
    }
    let pieces = if state.has_terminal() && stream == StreamKind::Stdout {
        submit_segments(&data)
    } else {
        vec![data]
    };
    for piece in pieces {
        let Some(out) = tap_data(conn, live, state, Direction::ToTarget, stream, piece).await
        else {
            continue;
        };
        let written = match stream {
            StreamKind::Stdout => state.target.write.data_bytes(out).await,
            StreamKind::Stderr => state.target.write.extended_data_bytes(ext, out).await,
        };
        if written.is_err() {
            return Err(());
        }
    }
    Ok(())
}

/// Passes whole SFTP packets from the user on, each request that changes or moves a file
/// judged first (see [`sftp_gate`]). `Err` when the target side is gone or the stream
/// cannot be followed (the channel then closes).
async fn forward_sftp(
    conn: &Conn,
    live: &Live,
    state: &ChannelState,
    gate: &SftpGate,
    data: &[u8],
) -> Result<(), ()> {
    let Ok(packets) = gate.user_bytes(data) else {
        tracing::warn!(
            channel = state.info.id,
            "an SFTP packet too large to judge: closing the channel"
        );
        return Err(());
    };
    let mut pass = bytes::BytesMut::new();
    for packet in packets {
        let judged = match sftp_gate::classify(&packet[4..]) {
            sftp_gate::Gate::Pass => {
                pass.extend_from_slice(&packet);
                continue;
            }
            sftp_gate::Gate::Malformed(id) => {
                forward_target(conn, live, state, pass.split().freeze()).await?;
                gate.refused(id);
                conn.write_user(
                    Some(state.info.id),
                    sftp_gate::permission_denied(id, "a request the gateway cannot read"),
                )
                .await;
                continue;
            }
            sftp_gate::Gate::Judge(judged) => judged,
        };
        // Earlier packets first: the target answers in order.
        forward_target(conn, live, state, pass.split().freeze()).await?;
        let mut refusal = None;
        'subjects: for subject in &judged.subjects {
            let resolved = if subject.resolve {
                let (probe, answer) = gate.probe(&subject.raw);
                if state.target.write.data_bytes(probe).await.is_err() {
                    return Err(());
                }
                answer.await.ok().flatten()
            } else {
                None
            };
            for request in sftp_gate::requests(subject, resolved.as_deref()) {
                if let RequestVerdict::Refuse(m) = live.taps.check_transfer(&request) {
                    refusal = Some(m);
                    break 'subjects;
                }
            }
        }
        match refusal {
            None => {
                if let Some(op) = judged.operation {
                    gate.forwarded(judged.id, op);
                }
                forward_target(conn, live, state, packet).await?;
            }
            Some(why) => {
                gate.refused(judged.id);
                tracing::info!(channel = state.info.id, "an SFTP request refused by policy");
                conn.write_user(
                    Some(state.info.id),
                    sftp_gate::permission_denied(judged.id, &why),
                )
                .await;
                if let Some(mut op) = judged.operation {
                    op.outcome = FileOperationOutcome::Refused(why);
                    live.taps.file_operation(&state.info, &op).await;
                }
            }
        }
    }
    forward_target(conn, live, state, pass.freeze()).await
}

/// Passes bytes through the taps to the target's standard input.
async fn forward_target(
    conn: &Conn,
    live: &Live,
    state: &ChannelState,
    data: Bytes,
) -> Result<(), ()> {
    if data.is_empty() {
        return Ok(());
    }
    let Some(out) = tap_data(
        conn,
        live,
        state,
        Direction::ToTarget,
        StreamKind::Stdout,
        data,
    )
    .await
    else {
        return Ok(());
    };
    state.target.write.data_bytes(out).await.map_err(|_| ())
}

/// The user typed while the session is locked: the bytes are dropped; a bell (at most one
/// a second) says so.
async fn refused(conn: &Conn, state: &ChannelState) {
    let ring = {
        let mut last = state.last_bell.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < BELL_EVERY) {
            false
        } else {
            *last = Some(now);
            true
        }
    };
    if ring {
        conn.write_user(Some(state.info.id), Bytes::from_static(b"\x07"))
            .await;
    }
}

async fn user_to_target(
    conn: Arc<Conn>,
    live: Arc<Live>,
    state: Arc<ChannelState>,
    mut ur: ChannelReadHalf,
    mut injected: mpsc::UnboundedReceiver<Bytes>,
) {
    let target = state.target.clone();
    let mut eof_sent = false;
    loop {
        tokio::select! {
            msg = ur.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if state.record_data && conn.control.is_locked() {
                        refused(&conn, &state).await;
                        continue;
                    }
                    if state.has_terminal() {
                        conn.control.user_typed();
                    }
                    if forward_input(&conn, &live, &state, StreamKind::Stdout, 0, data)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext }) => {
                    if state.record_data && conn.control.is_locked() {
                        refused(&conn, &state).await;
                        continue;
                    }
                    if forward_input(&conn, &live, &state, StreamKind::Stderr, ext, data)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Some(ChannelMsg::Eof) => {
                    if !eof_sent {
                        eof_sent = true;
                        // What a tap held until the input ended (a script's last line
                        // without a newline, judged now) goes before the end of input.
                        for rest in live.taps.input_ended(&state.info).await {
                            if target.write.data_bytes(rest).await.is_err() {
                                break;
                            }
                        }
                        let _ = target.write.eof().await;
                    }
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
            () = state.closed_to_user.notified() => break,
            Some(data) = injected.recv() => {
                if forward_input(&conn, &live, &state, StreamKind::Stdout, 0, data)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = target.write.close().await;
}

async fn target_to_user(
    conn: Arc<Conn>,
    live: Arc<Live>,
    state: Arc<ChannelState>,
    mut tr: ChannelReadHalf,
    uw: ChannelWriteHalf<server::Msg>,
) {
    let target = state.target.clone();
    let mut eof = UserEof::new(&state.info);
    loop {
        match tr.wait().await {
            Some(ChannelMsg::Data { data }) if state.sftp.get().is_some() => {
                let Some(gate) = state.sftp.get() else {
                    continue;
                };
                let Ok((packets, answered)) = gate.target_bytes(&data) else {
                    tracing::warn!(
                        channel = state.info.id,
                        "an SFTP answer too large to follow: closing the channel"
                    );
                    break;
                };
                for op in &answered {
                    live.taps.file_operation(&state.info, op).await;
                }
                if packets.is_empty() {
                    continue;
                }
                let data = if packets.len() == 1 {
                    packets.into_iter().next().unwrap_or_default()
                } else {
                    packets.concat().into()
                };
                if let Some(out) = tap_data(
                    &conn,
                    &live,
                    &state,
                    Direction::ToUser,
                    StreamKind::Stdout,
                    data,
                )
                .await
                    && uw.data_bytes(out).await.is_err()
                {
                    break;
                }
            }
            Some(ChannelMsg::Data { data }) => {
                if let Some(out) = tap_data(
                    &conn,
                    &live,
                    &state,
                    Direction::ToUser,
                    StreamKind::Stdout,
                    data,
                )
                .await
                    && uw.data_bytes(out).await.is_err()
                {
                    break;
                }
            }
            Some(ChannelMsg::ExtendedData { data, ext }) => {
                if let Some(out) = tap_data(
                    &conn,
                    &live,
                    &state,
                    Direction::ToUser,
                    StreamKind::Stderr,
                    data,
                )
                .await
                    && uw.extended_data_bytes(ext, out).await.is_err()
                {
                    break;
                }
            }
            Some(ChannelMsg::Eof) => eof.target_sent(&uw).await,
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                live.taps
                    .exit(&state.info, &ExitReport::Status(exit_status))
                    .await;
                let _ = uw.exit_status(exit_status).await;
                eof.exited(&uw).await;
            }
            Some(ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            }) => {
                live.taps
                    .exit(
                        &state.info,
                        &ExitReport::Signal {
                            signal: format!("{signal_name:?}"),
                            core_dumped,
                        },
                    )
                    .await;
                if let Some(h) = conn.server.get() {
                    let _ = h
                        .exit_signal_request(
                            uw.id(),
                            signal_name,
                            core_dumped,
                            error_message,
                            lang_tag,
                        )
                        .await;
                }
                eof.exited(&uw).await;
            }
            Some(ChannelMsg::Success) => target.resolve(true),
            Some(ChannelMsg::Failure) => target.resolve(false),
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    target.fail_all();
    // The close follows the exit status on this same ordered queue, and the EOF (held or
    // never sent) goes just before it.
    eof.send(&uw).await;
    let _ = uw.close().await;
    state.closed_to_user.notify_one();
}

/// When the target's EOF is passed on to the user.
///
/// On a session channel it waits for the target's `exit-status` or `exit-signal` (or its
/// close), so the user's client sees RFC 4254 §6.10's order: exit status, EOF, close. Why:
/// clients close a session channel as soon as both sides have sent EOF (PuTTY at once,
/// OpenSSH once its output is drained); russh answers that CLOSE on the spot and forgets
/// the channel, dropping any exit status sent after it without an error. sshd often sends
/// EOF a moment before `exit-status`, so an EOF passed on at once let the client's CLOSE
/// overtake the status and plink exit 0 for a failed command (issue 24). Port forwards
/// have no exit status: their EOF (a half-close) goes on at once.
struct UserEof {
    hold: bool,
    held: bool,
    sent: bool,
    exited: bool,
}

impl UserEof {
    fn new(info: &ChannelInfo) -> Self {
        Self {
            hold: matches!(info.kind, ChannelType::Session),
            held: false,
            sent: false,
            exited: false,
        }
    }

    /// The target sent EOF.
    async fn target_sent(&mut self, uw: &ChannelWriteHalf<server::Msg>) {
        if self.hold && !self.exited {
            self.held = true;
        } else {
            self.send(uw).await;
        }
    }

    /// The exit status or signal went to the user: a held EOF may follow it.
    async fn exited(&mut self, uw: &ChannelWriteHalf<server::Msg>) {
        self.exited = true;
        if self.held {
            self.send(uw).await;
        }
    }

    /// Exactly one EOF: strict clients (asyncssh) drop the connection on a second one.
    async fn send(&mut self, uw: &ChannelWriteHalf<server::Msg>) {
        if !self.sent {
            self.sent = true;
            let _ = uw.eof().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_keys_travel_alone() {
        let d = Bytes::from_static(b"ls -l\rpwd\r\n\x0fx");
        let parts: Vec<Vec<u8>> = submit_segments(&d).iter().map(|b| b.to_vec()).collect();
        assert_eq!(
            parts,
            vec![
                b"ls -l".to_vec(),
                b"\r".to_vec(),
                b"pwd".to_vec(),
                b"\r".to_vec(),
                b"\n".to_vec(),
                b"\x0f".to_vec(),
                b"x".to_vec()
            ]
        );
        assert_eq!(submit_segments(&Bytes::from_static(b"abc")).len(), 1);
        assert!(submit_segments(&Bytes::new()).is_empty());
    }
}
