//! The gateway's SSH client toward a target: connect, verify the host key, log in with the
//! vaulted credential, and accept the target's forwarded-tcpip channels for `ssh -R`.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use psm_proxy::error::ProxyError;
use psm_proxy::target::{Authorization, HostKeyCheck, TargetCredential, TargetSecret};
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::conn::Conn;

/// A logged-in connection to a target.
pub(crate) struct Upstream {
    pub(crate) handle: client::Handle<UpstreamHandler>,
}

impl Upstream {
    pub(crate) async fn disconnect(&self, reason: &str) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, reason, "en")
            .await;
    }
}

/// The client-side handler: host-key verification and target-initiated channels.
pub(crate) struct UpstreamHandler {
    target: String,
    host: String,
    port: u16,
    check: HostKeyCheck,
    verdict: Arc<Mutex<Option<ProxyError>>>,
    conn: Weak<Conn>,
}

/// SHA256 fingerprint as `ssh-keygen -lf` prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Whether `key` matches one pin: a `SHA256:` fingerprint, an OpenSSH public key line or a
/// known_hosts line (the algorithm and base64 tokens are compared).
pub(crate) fn pin_matches(pin: &str, key: &PublicKey) -> bool {
    let pin = pin.trim();
    if pin.starts_with("SHA256:") {
        return pin == fingerprint(key);
    }
    let Ok(ours) = key.to_openssh() else {
        return false;
    };
    let mut ours = ours.split_whitespace();
    let (Some(alg), Some(blob)) = (ours.next(), ours.next()) else {
        return false;
    };
    let tokens: Vec<&str> = pin.split_whitespace().collect();
    tokens.windows(2).any(|w| w[0] == alg && w[1] == blob)
}

impl client::Handler for UpstreamHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                self.set_verdict(ProxyError::HostKeyUnknown {
                    target: self.target.clone(),
                    presented: "an OpenSSH host certificate (not supported; pin the key)".into(),
                });
                return Ok(false);
            }
        };
        let presented = fingerprint(key);
        let ok = match &self.check {
            HostKeyCheck::Pinned(pins) => {
                if pins.iter().any(|p| pin_matches(p, key)) {
                    true
                } else {
                    self.set_verdict(if pins.is_empty() {
                        ProxyError::HostKeyUnknown {
                            target: self.target.clone(),
                            presented,
                        }
                    } else {
                        ProxyError::HostKeyMismatch {
                            target: self.target.clone(),
                            presented,
                        }
                    });
                    false
                }
            }
            HostKeyCheck::AcceptAny => {
                tracing::warn!(target_name = %self.target, fingerprint = %presented,
                    "accepting the target's host key unchecked (no pin)");
                true
            }
            HostKeyCheck::KnownHosts { path, learn } => {
                match russh::keys::check_known_hosts_path(&self.host, self.port, key, path) {
                    Ok(true) => true,
                    Ok(false) if *learn => {
                        match russh::keys::known_hosts::learn_known_hosts_path(
                            &self.host, self.port, key, path,
                        ) {
                            Ok(()) => {
                                tracing::warn!(target_name = %self.target, fingerprint = %presented,
                                    "trusting a target's host key on first use");
                                true
                            }
                            Err(e) => {
                                self.set_verdict(ProxyError::Io {
                                    what: format!("recording the host key of {}", self.target),
                                    source: std::io::Error::other(e.to_string()),
                                });
                                false
                            }
                        }
                    }
                    Ok(false) => {
                        self.set_verdict(ProxyError::HostKeyUnknown {
                            target: self.target.clone(),
                            presented,
                        });
                        false
                    }
                    Err(_) => {
                        self.set_verdict(ProxyError::HostKeyMismatch {
                            target: self.target.clone(),
                            presented,
                        });
                        false
                    }
                }
            }
        };
        Ok(ok)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let Some(conn) = self.conn.upgrade() else {
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        let connected_address = connected_address.to_owned();
        let originator_address = originator_address.to_owned();
        tokio::spawn(async move {
            conn.forwarded_tcpip(
                channel,
                reply,
                connected_address,
                connected_port,
                originator_address,
                originator_port,
            )
            .await;
        });
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }
}

impl UpstreamHandler {
    fn set_verdict(&self, e: ProxyError) {
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

/// The client configuration toward targets: large channel buffers so a stalled direction
/// never blocks the other (see `bridge`), the algorithms of [`crate::algorithms::client`]
/// (AES-GCM first, hardware-accelerated; never `ssh-rsa` host keys).
pub(crate) fn client_config(keepalive: Option<Duration>) -> Arc<client::Config> {
    let preferred = crate::algorithms::client();
    Arc::new(client::Config {
        preferred,
        channel_buffer_size: super::CHANNEL_BUFFER,
        keepalive_interval: keepalive,
        keepalive_max: 3,
        nodelay: true,
        window_size: super::WINDOW,
        ..client::Config::default()
    })
}

/// Connects to the target of `auth`, verifies its host key and logs in with `cred`.
pub(crate) async fn connect(
    auth: &Authorization,
    cred: &TargetCredential,
    timeout: Duration,
    conn: Weak<Conn>,
    config: Arc<client::Config>,
) -> Result<Upstream, ProxyError> {
    let address = format!("{}:{}", auth.host, auth.port);
    let unreachable = |reason: String| ProxyError::TargetUnreachable {
        target: auth.target.clone(),
        address: address.clone(),
        reason,
    };
    let verdict = Arc::new(Mutex::new(None));
    let handler = UpstreamHandler {
        target: auth.target.clone(),
        host: auth.host.clone(),
        port: auth.port,
        check: auth.host_key.clone(),
        verdict: verdict.clone(),
        conn,
    };
    let connecting = async {
        let socket = tokio::net::TcpStream::connect((auth.host.as_str(), auth.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = socket.set_nodelay(true);
        client::connect_stream(config, socket, handler)
            .await
            .map_err(|e| {
                verdict
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_else(|| unreachable(format!("SSH handshake failed: {e}")))
            })
    };
    let mut handle = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| unreachable(format!("no SSH answer within {} s", timeout.as_secs())))??;

    let login = async {
        match &cred.secret {
            TargetSecret::Password(pw) => handle
                .authenticate_password(cred.account.clone(), pw.clone())
                .await
                .map(|r| r.success()),
            TargetSecret::PrivateKey { key, passphrase } => {
                let key = russh::keys::decode_secret_key(key, passphrase.as_deref()).map_err(|e| {
                    ProxyError::BadCredential {
                        target: auth.target.clone(),
                        reason: format!("the private key does not decode ({e})"),
                    }
                });
                let key = match key {
                    Ok(k) => k,
                    Err(e) => return Ok(Err(e)),
                };
                let hash = if key.algorithm().is_rsa() {
                    handle
                        .best_supported_rsa_hash()
                        .await
                        .ok()
                        .flatten()
                        .flatten()
                } else {
                    None
                };
                handle
                    .authenticate_publickey(
                        cred.account.clone(),
                        PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                    )
                    .await
                    .map(|r| r.success())
            }
        }
        .map(Ok)
    };
    let accepted = tokio::time::timeout(timeout, login)
        .await
        .map_err(|_| unreachable(format!("no login answer within {} s", timeout.as_secs())))?
        .map_err(|e| unreachable(format!("SSH error during login: {e}")))??;
    if !accepted {
        return Err(ProxyError::TargetAuthFailed {
            target: auth.target.clone(),
            account: cred.account.clone(),
        });
    }
    Ok(Upstream { handle })
}

struct KeyGrabber(Arc<Mutex<Option<PublicKey>>>);

impl client::Handler for KeyGrabber {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        }
        Ok(false)
    }
}

/// Connects to an SSH server only to read its host key (nothing is authenticated); returns
/// the key as an OpenSSH line and its SHA256 fingerprint. For an administrator pinning a new
/// target: show the fingerprint, compare it out of band, then store the line.
pub async fn fetch_host_key(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(String, String), ProxyError> {
    let seen = Arc::new(Mutex::new(None));
    let address = format!("{host}:{port}");
    let unreachable = |reason: String| ProxyError::TargetUnreachable {
        target: address.clone(),
        address: address.clone(),
        reason,
    };
    let attempt = async {
        let socket = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = client::connect_stream(client_config(None), socket, KeyGrabber(seen.clone())).await;
        Ok::<(), ProxyError>(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| unreachable("no SSH answer in time".into()))??;
    let key = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| unreachable("the server showed no host key".into()))?;
    let line = key
        .to_openssh()
        .map_err(|e| unreachable(format!("unreadable host key: {e}")))?;
    Ok((line, fingerprint(&key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_match_fingerprints_and_lines() {
        let key =
            russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .expect("key");
        let public = key.public_key().clone();
        let line = public.to_openssh().expect("openssh");
        assert!(pin_matches(&line, &public));
        assert!(pin_matches(&format!("[127.0.0.1]:2222 {line}"), &public));
        assert!(pin_matches(&fingerprint(&public), &public));
        assert!(!pin_matches("SHA256:nope", &public));
        assert!(!pin_matches("ssh-ed25519 AAAAnope", &public));
    }
}
