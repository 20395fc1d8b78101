//! Sessions opened from inside the gateway (the browser terminal) through exactly the path
//! of an SSH login: an in-memory pipe to the gateway's own SSH server, logged in with a
//! one-time token, so the session gets the same directory checks, target authorization,
//! taps (policy, recorder), live registry, heartbeats and end as `ssh user+target@gateway`.
//! [`InternalConnector`] is the live server's browser-terminal opener
//! ([`TerminalOpener`]).

use std::net::SocketAddr;
use std::sync::Weak;

use async_trait::async_trait;
use futures::StreamExt;
use psm_proxy::ProxyError;
use psm_proxy::TermSize;
use psm_proxy::live::{Terminal, TerminalInput, TerminalOpener, TerminalOutput};
use russh::keys::PublicKeyOrCertificate;
use russh::{ChannelMsg, ChannelWriteHalf, client};

use super::Shared;

/// Opens in-process sessions on an [`SshGateway`](super::SshGateway) (see the module docs).
#[derive(Clone)]
pub struct InternalConnector {
    shared: Weak<Shared>,
}

impl std::fmt::Debug for InternalConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalConnector").finish_non_exhaustive()
    }
}

/// A terminal session opened by an [`InternalConnector`]: a shell channel with a pty. Read
/// it with `channel.wait()`, write with `channel.data(...)`, resize with
/// `channel.window_change(...)`.
pub struct InternalTerminal {
    /// The in-process SSH connection (drop it, or disconnect, to end the session).
    pub handle: client::Handle<Trusting>,
    /// The shell channel.
    pub channel: russh::Channel<client::Msg>,
}

impl std::fmt::Debug for InternalTerminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalTerminal").finish_non_exhaustive()
    }
}

/// The client side of an in-process connection: the server is the gateway itself, over a
/// pipe in memory, so its key is trusted.
#[derive(Debug)]
pub struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

impl InternalConnector {
    pub(crate) fn new(shared: Weak<Shared>) -> Self {
        Self { shared }
    }

    /// Opens a terminal session for `user` (already authenticated by the caller) on
    /// `target`, as if from `peer`, with a `cols`×`rows` xterm. If the user may not reach
    /// the target, the session still opens and its shell prints why and exits (as for an
    /// SSH login); an unknown or disabled user is an error.
    pub async fn open(
        &self,
        user: &str,
        target: &str,
        peer: SocketAddr,
        cols: u16,
        rows: u16,
    ) -> Result<InternalTerminal, ProxyError> {
        let shared = self
            .shared
            .upgrade()
            .ok_or_else(|| ProxyError::Config("the SSH gateway has stopped".into()))?;
        if *shared.shutdown.borrow() {
            return Err(ProxyError::Config(
                "the SSH gateway is shutting down".into(),
            ));
        }
        let permit = shared.unauth.clone().try_acquire_owned().map_err(|_| {
            ProxyError::Config("the gateway has too many connections starting".into())
        })?;
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        shared.add_internal_token(user, &token);
        let (server_end, client_end) = tokio::io::duplex(256 * 1024);
        super::spawn_serve(
            &shared,
            server_end,
            peer,
            super::limits::PreAuth::new(permit, None),
            true,
        );
        let ssh = |e: russh::Error| super::ssh_error("the gateway's own SSH server", e);
        let mut handle = client::connect_stream(shared.client_config.clone(), client_end, Trusting)
            .await
            .map_err(ssh)?;
        let auth = handle
            .authenticate_password(format!("{user}+{target}"), token)
            .await
            .map_err(ssh)?;
        if !auth.success() {
            return Err(ProxyError::NotAllowed {
                user: user.to_owned(),
                target: target.to_owned(),
            });
        }
        let channel = handle.channel_open_session().await.map_err(ssh)?;
        channel
            .request_pty(
                true,
                "xterm-256color",
                u32::from(cols.clamp(1, 1000)),
                u32::from(rows.clamp(1, 500)),
                0,
                0,
                &[],
            )
            .await
            .map_err(ssh)?;
        channel.request_shell(true).await.map_err(ssh)?;
        Ok(InternalTerminal { handle, channel })
    }
}

#[async_trait]
impl TerminalOpener for InternalConnector {
    async fn open(
        &self,
        user: &str,
        target: &str,
        peer: SocketAddr,
        size: TermSize,
    ) -> Result<Terminal, ProxyError> {
        let InternalTerminal { handle, channel } =
            InternalConnector::open(self, user, target, peer, size.cols, size.rows).await?;
        let (reader, writer) = channel.split();
        let output = futures::stream::unfold(reader, |mut reader| async move {
            loop {
                match reader.wait().await? {
                    ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                        return Some((TerminalOutput::Data(data), reader));
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        return Some((TerminalOutput::Exit(exit_status), reader));
                    }
                    ChannelMsg::Close => return None,
                    _ => {}
                }
            }
        });
        Ok(Terminal {
            output: output.boxed(),
            input: Box::new(InternalInput { handle, writer }),
        })
    }
}

/// The user's side of a browser terminal: the shell channel and its connection.
struct InternalInput {
    handle: client::Handle<Trusting>,
    writer: ChannelWriteHalf<client::Msg>,
}

#[async_trait]
impl TerminalInput for InternalInput {
    async fn write(&self, bytes: bytes::Bytes) -> Result<(), ProxyError> {
        self.writer
            .data_bytes(bytes)
            .await
            .map_err(|e| super::ssh_error("the gateway's own SSH server", e))
    }

    async fn resize(&self, size: TermSize) {
        let _ = self
            .writer
            .window_change(u32::from(size.cols), u32::from(size.rows), 0, 0)
            .await;
    }

    async fn close(&self, reason: &str) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, reason, "en")
            .await;
    }
}
