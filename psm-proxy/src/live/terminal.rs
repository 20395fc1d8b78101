//! The browser terminal: a websocket whose ticket names a user and a target becomes an SSH
//! session through the gateway's own SSH server ([`InternalConnector`]), so it is
//! authorized, recorded, policed, listed and ended exactly like `ssh user+target@gateway`.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use psm_core::live::Viewport;
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::protocol::{ClientMessage, ServerMessage, mode_name};
use super::server::{LiveDeps, close};
use crate::ssh::InternalConnector;

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    timeout: Duration,
    msg: Message,
) -> bool {
    use futures::SinkExt;
    matches!(
        tokio::time::timeout(timeout, ws.send(msg)).await,
        Ok(Ok(()))
    )
}

async fn close_with<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    code: u16,
    reason: &str,
) {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.chars().take(120).collect::<String>().into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
}

/// Serves one browser terminal until the session or the websocket ends.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<S>(
    deps: &LiveDeps,
    timeout: Duration,
    max_bad: u32,
    mut ws: WebSocketStream<S>,
    peer: SocketAddr,
    user: &str,
    target: &str,
    viewport: Option<Viewport>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(connector): Option<&InternalConnector> = deps.terminals.as_ref() else {
        close_with(
            &mut ws,
            close::FORBIDDEN,
            "the browser terminal is not enabled on this gateway",
        )
        .await;
        return;
    };
    let (cols, rows) = super::server::terminal_size(viewport);
    let term = match connector.open(user, target, peer, cols, rows).await {
        Ok(t) => t,
        Err(e) => {
            let message = e.user_message();
            let _ = send(
                &mut ws,
                timeout,
                super::server::text(&ServerMessage::Error {
                    message: message.clone(),
                }),
            )
            .await;
            close_with(&mut ws, close::FORBIDDEN, &message).await;
            return;
        }
    };
    let handle = term.handle;
    let (mut reader, writer) = term.channel.split();
    // The session the gateway opened for this connection (none if the user may not reach
    // the target: the shell then prints why and exits).
    let mut info = None;
    for _ in 0..40 {
        info = deps
            .registry
            .list()
            .into_iter()
            .find(|i| i.peer == Some(peer));
        if info.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hello = ServerMessage::Hello {
        session: info.as_ref().map(|i| i.id.to_string()),
        user: user.to_owned(),
        target: target.to_owned(),
        account: info
            .as_ref()
            .map(|i| i.target_account.clone())
            .unwrap_or_default(),
        mode: mode_name(None).into(),
        viewer: user.to_owned(),
        started: info
            .as_ref()
            .map(|i| i.started.to_string())
            .unwrap_or_default(),
        paused: false,
        locked: false,
        viewers: Vec::new(),
        approvals: Vec::new(),
        viewport,
    };
    if !send(&mut ws, timeout, super::server::text(&hello)).await {
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "browser gone", "en")
            .await;
        return;
    }
    let mut exit: Option<u32> = None;
    let mut bad = 0u32;
    let reason = loop {
        tokio::select! {
            msg = reader.wait() => match msg {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    if !send(&mut ws, timeout, Message::binary(data)).await {
                        break None;
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(exit_status),
                Some(ChannelMsg::Close) | None => {
                    break Some(match exit {
                        Some(s) => format!("the session ended (exit status {s})"),
                        None => "the session ended".to_owned(),
                    });
                }
                Some(_) => {}
            },
            incoming = ws.next() => {
                let parsed = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                    Some(Ok(Message::Text(t))) => ClientMessage::parse(t.as_str()),
                    Some(Ok(Message::Binary(b))) => Ok(ClientMessage::Input(b.to_vec())),
                    Some(Ok(_)) => continue,
                };
                let refused = match parsed {
                    Ok(ClientMessage::Input(bytes)) => {
                        if bytes.len() > super::protocol::MAX_INPUT {
                            Some("input is at most 16 KiB a message".to_owned())
                        } else if writer.data_bytes(bytes).await.is_err() {
                            break Some("the session ended".to_owned());
                        } else {
                            None
                        }
                    }
                    Ok(ClientMessage::Resize { cols, rows }) => {
                        let _ = writer.window_change(u32::from(cols), u32::from(rows), 0, 0).await;
                        None
                    }
                    Ok(ClientMessage::Ping) => {
                        let _ = send(&mut ws, timeout, super::server::text(&ServerMessage::Pong)).await;
                        None
                    }
                    Ok(other) => Some(format!("{} is not available in a browser terminal", other.name())),
                    Err(e) => Some(e.0),
                };
                if let Some(message) = refused {
                    bad += 1;
                    if bad > max_bad {
                        close_with(&mut ws, close::MALFORMED, "too many refused messages").await;
                        break None;
                    }
                    if !send(&mut ws, timeout, super::server::text(&ServerMessage::Error { message })).await {
                        break None;
                    }
                }
            }
        }
    };
    let _ = handle
        .disconnect(
            russh::Disconnect::ByApplication,
            "browser terminal closed",
            "en",
        )
        .await;
    if let Some(reason) = reason {
        let _ = send(
            &mut ws,
            timeout,
            super::server::text(&ServerMessage::Ended { reason }),
        )
        .await;
        close_with(&mut ws, 1000, "the session ended").await;
    }
}
