//! The browser terminal: a websocket whose ticket names a user and a target becomes a
//! session that a protocol crate opens through its own gateway ([`TerminalOpener`]; the SSH
//! gateway's `psm_proxy_ssh::InternalConnector` logs in to itself in-process), so it is
//! authorized, recorded, policed, listed and ended exactly like `ssh user+target@gateway`.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use psm_core::live::Viewport;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::protocol::{ClientMessage, ServerMessage, mode_name};
use super::server::{LiveDeps, close};
use crate::error::ProxyError;
use crate::tap::TermSize;

/// Opens the interactive terminals of the browser terminal (`/terminal`). A protocol crate
/// implements it by opening a session through its own gateway, so that the session gets
/// the gateway's checks, taps and registry entry; the live server holds one as
/// [`LiveDeps::terminals`].
///
/// ```
/// use futures::StreamExt;
/// use futures::channel::mpsc;
/// use psm_proxy::live::{Terminal, TerminalInput, TerminalOpener, TerminalOutput};
/// use psm_proxy::{ProxyError, TermSize};
///
/// /// A terminal that prints back what is typed: a stand-in for a protocol's session.
/// struct Echo;
/// struct EchoInput(mpsc::UnboundedSender<TerminalOutput>);
///
/// #[async_trait::async_trait]
/// impl TerminalInput for EchoInput {
///     async fn write(&self, bytes: bytes::Bytes) -> Result<(), ProxyError> {
///         self.0.unbounded_send(TerminalOutput::Data(bytes)).map_err(|_| ProxyError::Io {
///             what: "typing into the terminal".into(),
///             source: std::io::ErrorKind::BrokenPipe.into(),
///         })
///     }
///     async fn resize(&self, _size: TermSize) {}
///     async fn close(&self, _reason: &str) {
///         self.0.close_channel();
///     }
/// }
///
/// #[async_trait::async_trait]
/// impl TerminalOpener for Echo {
///     async fn open(&self, _user: &str, _target: &str, _peer: std::net::SocketAddr,
///         _size: TermSize) -> Result<Terminal, ProxyError> {
///         let (tx, rx) = mpsc::unbounded();
///         Ok(Terminal { output: rx.boxed(), input: Box::new(EchoInput(tx)) })
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let size = TermSize { cols: 80, rows: 24 };
/// let mut term = Echo.open("alice", "web-01", "127.0.0.1:50000".parse()?, size).await?;
/// term.input.write("ls\r".into()).await?;
/// assert!(matches!(term.output.next().await, Some(TerminalOutput::Data(b)) if b == "ls\r"));
/// term.input.close("done").await;
/// assert!(term.output.next().await.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[async_trait]
pub trait TerminalOpener: Send + Sync {
    /// Opens a `size` terminal for `user` (already authenticated by the live server's
    /// ticket) on `target`, as if from `peer`: the session the gateway opens carries `peer`,
    /// which is how the live server finds it in the registry. If the user may not reach the
    /// target, the terminal may still open and print why (as an SSH login does); an error
    /// is shown to the browser with [`ProxyError::user_message`].
    async fn open(
        &self,
        user: &str,
        target: &str,
        peer: SocketAddr,
        size: TermSize,
    ) -> Result<Terminal, ProxyError>;
}

/// A terminal a [`TerminalOpener`] opened.
pub struct Terminal {
    /// What the terminal sends toward the user; it ends when the session closes.
    pub output: BoxStream<'static, TerminalOutput>,
    /// Typing into, resizing and ending the terminal.
    pub input: Box<dyn TerminalInput>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal").finish_non_exhaustive()
    }
}

/// What a [`Terminal`] sends toward the user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminalOutput {
    /// Bytes the program printed (standard output or error).
    Data(Bytes),
    /// The program exited with this status (the session closes after it).
    Exit(u32),
}

/// The user's side of a [`Terminal`] (see [`TerminalOpener`] for an example).
#[async_trait]
pub trait TerminalInput: Send + Sync {
    /// Sends keystrokes; an error means the session has ended.
    async fn write(&self, bytes: Bytes) -> Result<(), ProxyError>;
    /// The user's window changed size.
    async fn resize(&self, size: TermSize);
    /// Ends the session (`reason` is for the peer's logs).
    async fn close(&self, reason: &str);
}

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
    let Some(opener) = deps.terminals.as_ref() else {
        close_with(
            &mut ws,
            close::FORBIDDEN,
            "the browser terminal is not enabled on this gateway",
        )
        .await;
        return;
    };
    let (cols, rows) = super::server::terminal_size(viewport);
    let term = match opener
        .open(user, target, peer, TermSize { cols, rows })
        .await
    {
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
    let Terminal { mut output, input } = term;
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
        input.close("browser gone").await;
        return;
    }
    let mut exit: Option<u32> = None;
    let mut bad = 0u32;
    let reason = loop {
        tokio::select! {
            out = output.next() => match out {
                Some(TerminalOutput::Data(data)) => {
                    if !send(&mut ws, timeout, Message::binary(data)).await {
                        break None;
                    }
                }
                Some(TerminalOutput::Exit(status)) => exit = Some(status),
                None => {
                    break Some(match exit {
                        Some(s) => format!("the session ended (exit status {s})"),
                        None => "the session ended".to_owned(),
                    });
                }
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
                        } else if input.write(Bytes::from(bytes)).await.is_err() {
                            break Some("the session ended".to_owned());
                        } else {
                            None
                        }
                    }
                    Ok(ClientMessage::Resize { cols, rows }) => {
                        input.resize(TermSize { cols, rows }).await;
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
    input.close("browser terminal closed").await;
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
