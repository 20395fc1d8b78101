//! The russh server handler facing users: authentication against the directory (key,
//! password, keyboard-interactive, TOTP as a second factor), then every channel and request
//! forwarded to the target through the bridge.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use psm_core::directory::{DirectoryUser, LoginThrottle};
use psm_core::vault::Secret;
use psm_proxy::login::{LoginName, parse_login};
use psm_proxy::tap::{
    ChannelInfo, ChannelPurpose, ChannelRequest, ChannelType, RequestVerdict, TermSize,
};
use russh::keys::PublicKey;
use russh::server::{Auth, Msg, Response, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Pty, Sig};

use super::bridge::{self, ChannelState};
use super::conn::Conn;
use super::menu;
use super::transfer::{self, SftpWatch, TransferWatch};

/// Longest `TERM` forwarded.
const MAX_TERM: usize = 256;
/// Largest terminal dimension forwarded.
const MAX_DIM: u32 = 10_000;
/// Longest environment variable name and value forwarded.
const MAX_ENV_NAME: usize = 256;
const MAX_ENV_VALUE: usize = 32 * 1024;
/// Most environment variables per channel.
const MAX_ENV: usize = 64;
/// How long a request waits for the target's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KbdStage {
    Start,
    AskedPassword,
    AskedCode,
}

/// A pseudo-terminal asked for before the target exists (menu channels).
#[derive(Clone, Debug)]
pub(crate) struct PtyReq {
    pub(crate) term: String,
    pub(crate) cols: u32,
    pub(crate) rows: u32,
    pub(crate) pix_width: u32,
    pub(crate) pix_height: u32,
    pub(crate) modes: Vec<(Pty, u32)>,
}

/// A session channel without a target yet: it shows the menu, then becomes a bridge.
pub(crate) struct MenuChannel {
    pub(crate) pty: Mutex<Option<PtyReq>>,
    pub(crate) env: Mutex<Vec<(String, String)>>,
    pub(crate) channel: Mutex<Option<Channel<Msg>>>,
    pub(crate) bridged: std::sync::OnceLock<Arc<ChannelState>>,
}

enum Chan {
    Bridged {
        state: Arc<ChannelState>,
        env: usize,
    },
    Menu(Arc<MenuChannel>),
    /// No usable target: show this and exit 1 on the first shell/exec/subsystem.
    Failed(String),
}

/// One user connection's russh handler.
pub(crate) struct Handler {
    conn: Arc<Conn>,
    login: Option<LoginName>,
    user: Option<DirectoryUser>,
    first_factor: bool,
    kbd: KbdStage,
    channels: HashMap<ChannelId, Chan>,
    failure: Option<String>,
}

impl Handler {
    pub(crate) fn new(conn: Arc<Conn>) -> Self {
        Self {
            conn,
            login: None,
            user: None,
            first_factor: false,
            kbd: KbdStage::Start,
            channels: HashMap::new(),
            failure: None,
        }
    }

    /// Loads the user named by `login` (once per connection, or again if the login changes).
    async fn load_user(&mut self, login: &str) -> Option<DirectoryUser> {
        let parsed = match parse_login(login) {
            Ok(l) => l,
            Err(e) => {
                tracing::info!(peer = %self.conn.peer_text(), error = %e, "refused login name");
                return None;
            }
        };
        if self.login.as_ref() != Some(&parsed) {
            self.login = Some(parsed.clone());
            self.user = None;
            self.first_factor = false;
            self.kbd = KbdStage::Start;
        }
        if self.user.is_none() {
            match self.conn.shared.deps.directory.user(&parsed.user).await {
                Ok(u) => self.user = u.filter(|u| !u.disabled),
                Err(e) => {
                    tracing::error!(error = %e, "user directory unavailable");
                    return None;
                }
            }
        }
        self.user.clone()
    }

    /// The first factor passed: accept, or ask for the TOTP code.
    fn after_first_factor(&mut self, user: &DirectoryUser) -> Auth {
        self.first_factor = true;
        if user.needs_totp() {
            self.kbd = KbdStage::Start;
            return Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
                partial_success: true,
            };
        }
        self.accept(user)
    }

    fn accept(&mut self, user: &DirectoryUser) -> Auth {
        self.conn
            .shared
            .config
            .logins
            .succeeded(&LoginThrottle::user_key(user.name.as_str()));
        match self.conn.shared.sessions.clone().try_acquire_owned() {
            Ok(permit) => {
                *self
                    .conn
                    .session_permit
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(permit);
                tracing::info!(user = %user.name, peer = %self.conn.peer_text(), "user authenticated");
                Auth::Accept
            }
            Err(_) => {
                tracing::warn!(user = %user.name, limit = self.conn.shared.config.max_sessions,
                    "session limit reached; refusing login");
                Auth::reject()
            }
        }
    }

    /// Asks the directory, which holds the hash (in-process, or the control plane for a
    /// remote directory): the record the gateway read never carries it from a remote one.
    async fn check_password(&self, user: &DirectoryUser, password: &str) -> bool {
        self.throttled(user, self.verify_password(user, password))
            .await
    }

    /// Runs `check` unless `user`'s name is locked out after too many failed logins. The
    /// attempt is counted before the check runs ([`LoginThrottle::reserve`]), so concurrent
    /// connections cannot all pass the lockout check before any failure is counted; a right
    /// answer takes its attempt back, and a complete login clears the count
    /// ([`Self::accept`]).
    async fn throttled(
        &self,
        user: &DirectoryUser,
        check: impl std::future::Future<Output = bool>,
    ) -> bool {
        let logins = &self.conn.shared.config.logins;
        let key = LoginThrottle::user_key(user.name.as_str());
        if !logins.reserve(&key) {
            tracing::warn!(user = %user.name, peer = %self.conn.peer_text(),
                "too many failed logins: the name is locked out");
            return false;
        }
        let ok = check.await;
        if ok {
            logins.release(&key);
        }
        ok
    }

    async fn verify_password(&self, user: &DirectoryUser, password: &str) -> bool {
        // argon2 is deliberately slow and memory-hungry (and a remote check holds a request
        // open): bound how many run at once.
        let Ok(_permit) = self.conn.shared.hashing.acquire().await else {
            return false;
        };
        let password = Secret::new(password.to_owned());
        match self
            .conn
            .shared
            .deps
            .directory
            .verify_password(user.name.as_str(), &password)
            .await
        {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(user = %user.name, error = %e, "cannot verify the password");
                false
            }
        }
    }

    /// A password for a name that is no usable user: the directory checks it anyway (an
    /// unknown name costs the same argon2 run as a known one, under the same bound and
    /// lockout count), so neither the prompts nor the time tell whether the user exists.
    async fn decoy(&self, login: &str, password: &str) {
        let name: String = parse_login(login)
            .map_or_else(|_| login.to_owned(), |l| l.user)
            .chars()
            .take(256)
            .collect();
        let name = name.as_str();
        let logins = &self.conn.shared.config.logins;
        let key = LoginThrottle::user_key(name);
        // Counted before the check, as for a real name ([`Self::throttled`]).
        if !logins.reserve(&key) {
            return;
        }
        if let Ok(_permit) = self.conn.shared.hashing.acquire().await {
            let secret = Secret::new(password.to_owned());
            let _ = self
                .conn
                .shared
                .deps
                .directory
                .verify_password(name, &secret)
                .await;
        }
        self.conn.preauth_strike();
    }

    /// Asks the directory whether `code` is the user's current TOTP code.
    async fn check_totp(&self, user: &DirectoryUser, code: &str) -> bool {
        self.throttled(user, self.verify_totp(user, code)).await
    }

    async fn verify_totp(&self, user: &DirectoryUser, code: &str) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match self
            .conn
            .shared
            .deps
            .directory
            .verify_totp(user.name.as_str(), code, now)
            .await
        {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(user = %user.name, error = %e, "cannot verify the TOTP code");
                false
            }
        }
    }

    fn chan_info(id: ChannelId, kind: ChannelType) -> ChannelInfo {
        ChannelInfo::new(u32::from(id), kind)
    }

    async fn reply(
        &self,
        channel: ChannelId,
        rx: tokio::sync::oneshot::Receiver<bool>,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let ok = matches!(tokio::time::timeout(REPLY_TIMEOUT, rx).await, Ok(Ok(true)));
        if ok {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    /// Shows `message` on a channel that cannot reach a target, then ends it with status 1.
    fn fail_channel(&self, channel: ChannelId, message: String) {
        let Some(handle) = self.conn.server.get().cloned() else {
            return;
        };
        tokio::spawn(async move {
            let text = format!("PSM: {message}\r\n");
            let _ = handle
                .extended_data(channel, 1, bytes::Bytes::from(text.into_bytes()))
                .await;
            let _ = handle.exit_status_request(channel, 1).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
    }

    fn usage_hint(&self) -> String {
        let user = self.login.as_ref().map_or("USER", |l| l.user.as_str());
        format!(
            "no target selected. Name one in the login: ssh {user}+TARGET@gateway (or log in \
             with a terminal for the menu)"
        )
    }
}

fn bounded_size(cols: u32, rows: u32) -> Option<TermSize> {
    if cols > MAX_DIM || rows > MAX_DIM {
        return None;
    }
    Some(TermSize {
        cols: cols.min(u32::from(u16::MAX)) as u16,
        rows: rows.min(u32::from(u16::MAX)) as u16,
    })
}

impl russh::server::Handler for Handler {
    type Error = russh::Error;

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(self.conn.shared.config.banner.clone())
    }

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if crate::algorithms::is_sha1_rsa(offer.algorithm) {
            tracing::info!(peer = %self.conn.peer_text(), "ssh-rsa (SHA-1) signature refused");
            return Ok(Auth::reject());
        }
        let Some(u) = self.load_user(user).await else {
            return Ok(Auth::reject());
        };
        Ok(if key_known(&u, offer.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if crate::algorithms::is_sha1_rsa(key.algorithm) {
            return Ok(Auth::reject());
        }
        let Some(u) = self.load_user(user).await else {
            return Ok(Auth::reject());
        };
        if !key_known(&u, key.public_key) {
            return Ok(Auth::reject());
        }
        Ok(self.after_first_factor(&u))
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let Some(u) = self.load_user(user).await else {
            if !self.conn.internal {
                self.decoy(user, password).await;
            }
            return Ok(Auth::reject());
        };
        if self.conn.internal {
            // The browser terminal: the web side authenticated the user (password and second
            // factor) and the gateway handed this in-process connection a one-time token.
            // Network connections never take this path.
            return Ok(
                if self
                    .conn
                    .shared
                    .take_internal_token(u.name.as_str(), password)
                {
                    self.first_factor = true;
                    self.accept(&u)
                } else {
                    Auth::reject()
                },
            );
        }
        if !self.check_password(&u, password).await {
            tracing::info!(user = %u.name, peer = %self.conn.peer_text(), "wrong password");
            self.conn.preauth_strike();
            return Ok(Auth::reject());
        }
        Ok(self.after_first_factor(&u))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        // Whoever the name is (unknown, disabled, without a password), the exchange looks
        // the same: a password prompt, an answer that costs one argon2 run, a refusal. Only
        // the second factor's prompt comes after a correct password.
        let u = self.load_user(user).await;
        let code_prompt = || Auth::Partial {
            name: Cow::Borrowed("PSM"),
            instructions: Cow::Borrowed("Second factor"),
            prompts: Cow::Owned(vec![(Cow::Borrowed("Verification code: "), false)]),
        };
        let password_prompt = || Auth::Partial {
            name: Cow::Borrowed("PSM"),
            instructions: Cow::Borrowed(""),
            prompts: Cow::Owned(vec![(Cow::Borrowed("Password: "), false)]),
        };
        let answer = response.and_then(|mut r| r.next()).map(|b| {
            let b = &b[..b.len().min(2048)];
            String::from_utf8_lossy(b).into_owned()
        });
        match (self.kbd, answer) {
            (KbdStage::Start, _) | (_, None) => {
                if self.first_factor
                    && let Some(u) = &u
                {
                    if !u.needs_totp() {
                        return Ok(self.accept(u));
                    }
                    self.kbd = KbdStage::AskedCode;
                    return Ok(code_prompt());
                }
                self.kbd = KbdStage::AskedPassword;
                Ok(password_prompt())
            }
            (KbdStage::AskedPassword, Some(pw)) => {
                let ok = match &u {
                    // A user without a password goes through the same check (the
                    // directory answers no after the decoy hash).
                    Some(u) => self.check_password(u, &pw).await,
                    None => {
                        self.decoy(user, &pw).await;
                        false
                    }
                };
                let Some(u) = u.filter(|_| ok) else {
                    self.kbd = KbdStage::Start;
                    tracing::info!(login = %user, peer = %self.conn.peer_text(), "wrong password");
                    self.conn.preauth_strike();
                    return Ok(Auth::reject());
                };
                self.first_factor = true;
                if u.needs_totp() {
                    self.kbd = KbdStage::AskedCode;
                    return Ok(code_prompt());
                }
                Ok(self.accept(&u))
            }
            (KbdStage::AskedCode, Some(code)) => match u {
                Some(u) if self.first_factor && self.check_totp(&u, &code).await => {
                    Ok(self.accept(&u))
                }
                _ => {
                    tracing::info!(login = %user, peer = %self.conn.peer_text(), "wrong verification code");
                    self.kbd = KbdStage::Start;
                    self.conn.preauth_strike();
                    Ok(Auth::reject())
                }
            },
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let conn = self.conn.clone();
        conn.authenticated.store(true, Ordering::SeqCst);
        let preauth = conn
            .unauth_permit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut p) = preauth {
            p.logged_in();
        }
        let _ = conn.server.set(session.handle());
        let (Some(user), Some(login)) = (self.user.clone(), self.login.clone()) else {
            return Ok(());
        };
        if let Some(target) = &login.target
            && let Err(e) = conn.establish(&user, target).await
        {
            tracing::warn!(user = %user.name, target_name = %target, error = %e,
                "cannot start the session");
            let mut message = e.user_message();
            // A target that takes access requests: say how to ask for it.
            if matches!(e, psm_proxy::ProxyError::NotAllowed { .. })
                && let Ok(Some(rule)) = conn.shared.deps.directory.approval_rule(target).await
            {
                message = format!(
                    "{message}. {target} can be requested: run\r\n  psm request {target} \
                     --for 1h --reason \"why you need it\"\r\nthen connect again once {} \
                     member{} of role {} approve{}",
                    rule.approvals,
                    if rule.approvals == 1 { "" } else { "s" },
                    rule.approver_role,
                    if rule.approvals == 1 { "s" } else { "" },
                );
            }
            self.failure = Some(message);
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() + self.conn.forward_count() >= self.conn.shared.config.max_channels {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let id = channel.id();
        let chan = if let Some(msg) = &self.failure {
            Chan::Failed(msg.clone())
        } else if let Some(live) = self.conn.live.get().cloned() {
            let opened = tokio::time::timeout(
                self.conn.shared.config.target_connect_timeout,
                live.upstream.handle.channel_open_session(),
            )
            .await;
            match opened {
                Ok(Ok(target)) => {
                    let info = Self::chan_info(id, ChannelType::Session);
                    live.taps.channel_opened(&info).await;
                    self.conn
                        .session_channels
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id);
                    reply.accept().await;
                    let state =
                        bridge::spawn_session(self.conn.clone(), live, info, channel, target);
                    self.channels.insert(id, Chan::Bridged { state, env: 0 });
                    return Ok(());
                }
                Ok(Err(e)) => Chan::Failed(format!("the target refused a new channel: {e}")),
                Err(_) => Chan::Failed("the target did not open a channel in time".into()),
            }
        } else {
            let menu = Arc::new(MenuChannel {
                pty: Mutex::new(None),
                env: Mutex::new(Vec::new()),
                channel: Mutex::new(Some(channel)),
                bridged: std::sync::OnceLock::new(),
            });
            self.conn
                .session_channels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
            Chan::Menu(menu)
        };
        reply.accept().await;
        self.channels.insert(id, chan);
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let cfg = &self.conn.shared.config;
        if !cfg.allow_local_forwarding {
            tracing::info!(peer = %self.conn.peer_text(), "local port forwarding refused by policy");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let Some(live) = self.conn.live.get().cloned() else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        if host_to_connect.len() > 255
            || !cfg
                .forward_destinations
                .iter()
                .any(|d| d.allows(&live.info.target, host_to_connect, port_to_connect))
        {
            tracing::info!(peer = %self.conn.peer_text(), target_name = %live.info.target,
                host = %host_to_connect.chars().take(255).collect::<String>(),
                port = port_to_connect, "port forward to a destination not allowed");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        // Forward channels count against the same per-connection cap as session channels.
        let Some(slot) = self.conn.reserve_forward(self.channels.len()) else {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        let opened = tokio::time::timeout(
            cfg.target_connect_timeout,
            live.upstream.handle.channel_open_direct_tcpip(
                host_to_connect.to_owned(),
                port_to_connect,
                originator_address.to_owned(),
                originator_port,
            ),
        )
        .await;
        match opened {
            Ok(Ok(target)) => {
                let info = Self::chan_info(
                    channel.id(),
                    ChannelType::DirectTcpip {
                        host: host_to_connect.to_owned(),
                        port: port_to_connect,
                    },
                );
                live.taps.channel_opened(&info).await;
                reply.accept().await;
                bridge::spawn_raw(self.conn.clone(), live, info, channel, target, slot);
            }
            _ => reply.reject(ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Chan::Menu(_) | Chan::Failed(_)) = self.channels.get(&channel) {
            self.conn
                .session_channels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&channel);
        }
        self.channels.remove(&channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(size) = bounded_size(col_width, row_height).filter(|_| term.len() <= MAX_TERM)
        else {
            return session.channel_failure(channel);
        };
        match self.channels.get(&channel) {
            Some(Chan::Bridged { state, .. }) => {
                let state = state.clone();
                if let Some(live) = self.conn.live.get() {
                    live.taps
                        .request(
                            &state.info,
                            &ChannelRequest::Pty {
                                term: term.to_owned(),
                                size,
                            },
                        )
                        .await;
                }
                state.set_terminal(&self.conn, size.cols, size.rows);
                let rx = state.target.expect_reply();
                if state
                    .target
                    .write
                    .request_pty(
                        true, term, col_width, row_height, pix_width, pix_height, modes,
                    )
                    .await
                    .is_err()
                {
                    return session.channel_failure(channel);
                }
                self.reply(channel, rx, session).await
            }
            Some(Chan::Menu(menu)) => {
                *menu.pty.lock().unwrap_or_else(|p| p.into_inner()) = Some(PtyReq {
                    term: term.to_owned(),
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                    modes: modes.to_vec(),
                });
                session.channel_success(channel)
            }
            Some(Chan::Failed(_)) => session.channel_success(channel),
            None => session.channel_failure(channel),
        }
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.conn.shared.config.allow_env
            || variable_name.len() > MAX_ENV_NAME
            || variable_value.len() > MAX_ENV_VALUE
        {
            return session.channel_failure(channel);
        }
        match self.channels.get_mut(&channel) {
            Some(Chan::Bridged { state, env }) if *env < MAX_ENV => {
                *env += 1;
                if let Some(live) = self.conn.live.get() {
                    live.taps
                        .request(
                            &state.info,
                            &ChannelRequest::Env {
                                name: variable_name.to_owned(),
                            },
                        )
                        .await;
                }
                // The target's answer is not awaited: OpenSSH sends env without want-reply,
                // and sshd refuses silently what AcceptEnv does not list.
                let _ = state
                    .target
                    .write
                    .set_env(false, variable_name, variable_value)
                    .await;
                session.channel_success(channel)
            }
            Some(Chan::Menu(menu)) => {
                let mut env = menu.env.lock().unwrap_or_else(|p| p.into_inner());
                if env.len() < MAX_ENV {
                    env.push((variable_name.to_owned(), variable_value.to_owned()));
                    drop(env);
                    session.channel_success(channel)
                } else {
                    drop(env);
                    session.channel_failure(channel)
                }
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get(&channel) {
            Some(Chan::Bridged { state, .. }) => {
                let state = state.clone();
                state.info.set_purpose(ChannelPurpose::Shell);
                if let Some(live) = self.conn.live.get() {
                    if let RequestVerdict::Refuse(m) =
                        live.taps.check(&state.info, &ChannelRequest::Shell).await
                    {
                        session.channel_success(channel)?;
                        self.fail_channel(channel, m);
                        return Ok(());
                    }
                    live.taps.request(&state.info, &ChannelRequest::Shell).await;
                }
                let rx = state.target.expect_reply();
                if state.target.write.request_shell(true).await.is_err() {
                    return session.channel_failure(channel);
                }
                self.reply(channel, rx, session).await
            }
            Some(Chan::Menu(menu)) => {
                let menu = menu.clone();
                let taken = menu
                    .channel
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let (Some(user_channel), Some(user)) = (taken, self.user.clone()) else {
                    return session.channel_failure(channel);
                };
                session.channel_success(channel)?;
                tokio::spawn(menu::run(self.conn.clone(), user, menu, user_channel));
                Ok(())
            }
            Some(Chan::Failed(msg)) => {
                let msg = msg.clone();
                session.channel_success(channel)?;
                self.fail_channel(channel, msg);
                Ok(())
            }
            None => session.channel_failure(channel),
        }
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get(&channel) {
            Some(Chan::Bridged { state, .. }) => {
                let state = state.clone();
                let command = String::from_utf8_lossy(data).into_owned();
                state.info.set_purpose(transfer::exec_purpose(&command));
                if let Some(live) = self.conn.live.get() {
                    let request = ChannelRequest::Exec(command.clone());
                    if let RequestVerdict::Refuse(m) = live.taps.check(&state.info, &request).await
                    {
                        session.channel_success(channel)?;
                        self.fail_channel(channel, m);
                        return Ok(());
                    }
                    live.taps.request(&state.info, &request).await;
                }
                if let Some(w) = TransferWatch::for_exec(&command) {
                    state.set_transfer(w);
                }
                let rx = state.target.expect_reply();
                if state.target.write.exec(true, data.to_vec()).await.is_err() {
                    return session.channel_failure(channel);
                }
                self.reply(channel, rx, session).await
            }
            Some(Chan::Menu(_)) => {
                session.channel_success(channel)?;
                self.fail_channel(channel, self.usage_hint());
                Ok(())
            }
            Some(Chan::Failed(msg)) => {
                let msg = msg.clone();
                session.channel_success(channel)?;
                self.fail_channel(channel, msg);
                Ok(())
            }
            None => session.channel_failure(channel),
        }
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get(&channel) {
            Some(Chan::Bridged { state, .. }) => {
                let state = state.clone();
                if name == "sftp" && !self.conn.shared.config.allow_sftp {
                    tracing::info!(peer = %self.conn.peer_text(), "sftp refused by policy");
                    return session.channel_failure(channel);
                }
                state
                    .info
                    .set_purpose(ChannelPurpose::Subsystem(name.to_owned()));
                if let Some(live) = self.conn.live.get() {
                    let request = ChannelRequest::Subsystem(name.to_owned());
                    if let RequestVerdict::Refuse(m) = live.taps.check(&state.info, &request).await
                    {
                        session.channel_success(channel)?;
                        self.fail_channel(channel, m);
                        return Ok(());
                    }
                    live.taps.request(&state.info, &request).await;
                }
                if name == "sftp" {
                    state.set_transfer(TransferWatch::Sftp(SftpWatch::new()));
                    if self.conn.live.get().is_some_and(|l| !l.taps.is_empty()) {
                        let _ = state.sftp.set(Arc::new(super::sftp_gate::SftpGate::new()));
                    }
                }
                let rx = state.target.expect_reply();
                if state
                    .target
                    .write
                    .request_subsystem(true, name)
                    .await
                    .is_err()
                {
                    return session.channel_failure(channel);
                }
                self.reply(channel, rx, session).await
            }
            Some(Chan::Menu(_)) => {
                session.channel_success(channel)?;
                self.fail_channel(channel, self.usage_hint());
                Ok(())
            }
            Some(Chan::Failed(msg)) => {
                let msg = msg.clone();
                session.channel_success(channel)?;
                self.fail_channel(channel, msg);
                Ok(())
            }
            None => session.channel_failure(channel),
        }
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(size) = bounded_size(col_width, row_height) else {
            return Ok(());
        };
        let state = match self.channels.get(&channel) {
            Some(Chan::Bridged { state, .. }) => Some(state.clone()),
            Some(Chan::Menu(menu)) => {
                if let Some(p) = menu.pty.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    p.cols = col_width;
                    p.rows = row_height;
                }
                menu.bridged.get().cloned()
            }
            _ => None,
        };
        if let Some(state) = state {
            if let Some(live) = self.conn.live.get() {
                live.taps
                    .request(&state.info, &ChannelRequest::WindowChange(size))
                    .await;
            }
            if state.has_terminal() {
                state.set_terminal(&self.conn, size.cols, size.rows);
            }
            let _ = state
                .target
                .write
                .window_change(col_width, row_height, pix_width, pix_height)
                .await;
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Chan::Bridged { state, .. }) = self.channels.get(&channel) {
            if let Some(live) = self.conn.live.get() {
                live.taps
                    .request(&state.info, &ChannelRequest::Signal(format!("{signal:?}")))
                    .await;
            }
            let _ = state.target.write.signal(signal).await;
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // Agent forwarding through a PAM gateway would hand the target a way to use the
        // user's keys; it is off.
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if !self.conn.shared.config.allow_remote_forwarding {
            tracing::info!(peer = %self.conn.peer_text(), "remote port forwarding refused by policy");
            return Ok(false);
        }
        let Some(live) = self.conn.live.get() else {
            return Ok(false);
        };
        match live
            .upstream
            .handle
            .tcpip_forward(address.to_owned(), *port)
            .await
        {
            Ok(bound) => {
                if *port == 0 {
                    *port = bound;
                }
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(live) = self.conn.live.get() else {
            return Ok(false);
        };
        Ok(live
            .upstream
            .handle
            .cancel_tcpip_forward(address.to_owned(), port)
            .await
            .is_ok())
    }
}

fn key_known(user: &DirectoryUser, key: &PublicKey) -> bool {
    match key.to_openssh() {
        Ok(line) => user.has_key(&line),
        Err(_) => false,
    }
}
