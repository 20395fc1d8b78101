//! TLS on both sides: the gateway's own certificate toward users, and a verifier toward
//! targets that pins the target's certificate by SHA-256 fingerprint (RDP servers nearly
//! always present self-signed certificates, so a CA check would mean nothing). Fingerprints,
//! pins and the verifier are the session layer's ([`psm_proxy::tls`]), shared with the
//! database gateways.

use std::path::Path;
use std::sync::Arc;

use psm_proxy::HostKeyCheck;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::RdpError;

/// The gateway's certificate and key, loaded once.
#[derive(Clone)]
pub struct ServerIdentity {
    /// The TLS acceptor users connect to.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// The certificate's SubjectPublicKey bytes (CredSSP binds to them).
    pub public_key: Vec<u8>,
    /// SHA-256 of the certificate, hex (what users pin, e.g. FreeRDP's `/cert:` prompt).
    pub fingerprint: String,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads a PEM certificate chain and its PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, RdpError> {
        let cert_pem = std::fs::read(cert)
            .map_err(|e| RdpError::io(format!("reading {}", cert.display()), e))?;
        let key_pem = std::fs::read(key)
            .map_err(|e| RdpError::io(format!("reading {}", key.display()), e))?;
        Self::from_pem(&cert_pem, &key_pem)
    }

    /// From PEM text.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, RdpError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| RdpError::Config(format!("certificate PEM: {e}")))?;
        let first = chain
            .first()
            .ok_or_else(|| RdpError::Config("the certificate file holds no certificate".into()))?;
        let public_key = subject_public_key(first)?;
        let fingerprint = psm_proxy::tls::fingerprint(first.as_ref());
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| RdpError::Config(format!("private key PEM: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(psm_proxy::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| RdpError::Config(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| RdpError::Config(format!("certificate and key: {e}")))?;
        // CredSSP binds to the TLS channel; resumption would skip the certificate.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            public_key,
            fingerprint,
        })
    }
}

/// The SubjectPublicKey BIT STRING's bytes of a DER certificate (what CredSSP signs).
pub fn subject_public_key(cert: &[u8]) -> Result<Vec<u8>, RdpError> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(cert)
        .map_err(|e| RdpError::Config(format!("certificate DER: {e}")))?;
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| RdpError::Config("the certificate's public key is not byte-aligned".into()))
}

/// The certificate pins of a target's identity check, as lower-case hex SHA-256s; `None`
/// accepts any certificate ([`HostKeyCheck::AcceptAny`]). Refused: no pin (the vault has
/// none and unpinned targets are not accepted), a pin that is not a SHA-256 fingerprint, and
/// a known_hosts file (SSH host keys).
///
/// ```
/// use psm_proxy::HostKeyCheck;
/// use psm_proxy_rdp::tls::certificate_pins;
/// let pin = "AB:".repeat(31) + "AB";
/// assert_eq!(certificate_pins(&HostKeyCheck::Pinned(vec![format!("sha256:{pin}")])).unwrap(),
///            Some(vec!["ab".repeat(32)]));
/// assert_eq!(certificate_pins(&HostKeyCheck::AcceptAny).unwrap(), None);
/// assert!(certificate_pins(&HostKeyCheck::Pinned(vec![])).is_err());
/// ```
pub fn certificate_pins(check: &HostKeyCheck) -> Result<Option<Vec<String>>, RdpError> {
    match check {
        HostKeyCheck::AcceptAny => Ok(None),
        HostKeyCheck::Pinned(pins) if pins.is_empty() => Err(RdpError::Config(
            "the target has no certificate pin and unpinned targets are not allowed".into(),
        )),
        HostKeyCheck::Pinned(given) => {
            let pins = psm_proxy::tls::normalize_pins(given);
            if pins.is_empty() || pins.iter().any(|p| p.len() != 64) {
                return Err(RdpError::Config(
                    "a target certificate pin must be a SHA-256 fingerprint (64 hex digits)".into(),
                ));
            }
            Ok(Some(pins))
        }
        HostKeyCheck::KnownHosts { .. } => Err(RdpError::Config(
            "a known_hosts file holds SSH host keys; an RDP target needs a certificate pin".into(),
        )),
    }
}

/// A TLS connector toward a target that checks its certificate with `check` (see
/// [`certificate_pins`]).
pub fn target_connector(check: &HostKeyCheck) -> Result<tokio_rustls::TlsConnector, RdpError> {
    let pins = certificate_pins(check)?;
    if pins.is_none() {
        tracing::warn!("accepting the target's certificate unchecked (no pin)");
    }
    let mut config = psm_proxy::tls::pinned_client_config(pins)?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A TLS listener for `axum::serve` (the browser gateway's HTTPS): TCP connections are
/// accepted here and each TLS handshake runs in a task of its own, bounded in time and in
/// number, so a client that stalls its handshake holds up nobody else; finished
/// connections are handed to the server.
pub struct HttpsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    addr: std::net::SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HttpsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsListener")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpsListener {
    /// Accepts on `listener`; each handshake must finish within `timeout`, and at most
    /// `max_handshakes` run at once (connections beyond are dropped).
    pub fn new(
        listener: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
        timeout: std::time::Duration,
        max_handshakes: usize,
    ) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(max_handshakes.max(1)));
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "browser gateway accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::warn!(peer = %peer, "too many TLS handshakes in progress; dropped one");
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        _ => tracing::debug!(peer = %peer, "browser TLS handshake failed"),
                    }
                });
            }
        });
        Self {
            ready,
            addr,
            accepting,
        }
    }
}

impl Drop for HttpsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalize() {
        assert_eq!(
            psm_proxy::tls::normalize_fingerprint("SHA256:AB:cd"),
            "abcd"
        );
        let pinned = |p: &str| HostKeyCheck::Pinned(vec![p.to_owned()]);
        assert!(certificate_pins(&pinned("abc")).is_err());
        assert!(certificate_pins(&HostKeyCheck::Pinned(Vec::new())).is_err());
        assert!(
            certificate_pins(&HostKeyCheck::KnownHosts {
                path: "/x".into(),
                learn: true
            })
            .is_err()
        );
        assert_eq!(
            certificate_pins(&HostKeyCheck::AcceptAny).expect("any"),
            None
        );
        let pin = "a".repeat(64);
        assert_eq!(
            certificate_pins(&pinned(&pin)).expect("pin"),
            Some(vec![pin.clone()])
        );
        assert_eq!(
            certificate_pins(&pinned(&format!("{pin}, {}", "b".repeat(64))))
                .expect("two pins")
                .map(|p| p.len()),
            Some(2)
        );
    }
}
