//! TLS for the server (rustls), with optional client certificates (mTLS).
//!
//! A client certificate, when the server is configured with a client CA, is verified
//! against that CA; its SHA-256-free *fingerprint* (BLAKE3 of the DER certificate, hex, as
//! [`cert_fingerprint`] computes and `psm-controlplane fingerprint CERT.pem` prints) maps to
//! a [`Principal`]. Clients without a certificate may still connect and authenticate with an
//! API key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::auth::Principal;
use crate::error::ServerError;
use crate::state::PeerInfo;

/// TLS settings.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The server's certificate chain, PEM.
    pub cert_chain_pem: Vec<u8>,
    /// The server's private key, PEM.
    pub key_pem: psm_core::vault::Secret<Vec<u8>>,
    /// A CA whose client certificates are accepted (mTLS), PEM.
    pub client_ca_pem: Option<Vec<u8>>,
    /// Client certificate fingerprints ([`cert_fingerprint`]) and who they are.
    pub client_principals: HashMap<String, Principal>,
}

/// The fingerprint of a DER certificate: BLAKE3, lower-case hex.
pub fn cert_fingerprint(der: &[u8]) -> String {
    blake3::hash(der).to_hex().to_string()
}

/// The fingerprints of the certificates in a PEM file's text.
pub fn pem_fingerprints(pem: &[u8]) -> Result<Vec<String>, ServerError> {
    CertificateDer::pem_slice_iter(pem)
        .map(|c| {
            c.map(|c| cert_fingerprint(c.as_ref()))
                .map_err(|e| ServerError::Tls(format!("certificate PEM: {e}")))
        })
        .collect()
}

fn server_config(s: &TlsSettings) -> Result<rustls::ServerConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&s.cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("server certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ServerError::Tls("no certificate in the server PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(s.key_pem.expose_secret())
        .map_err(|_| ServerError::Tls("the server key is not a PEM private key".into()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let builder = match &s.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca) {
                let c = c.map_err(|e| ServerError::Tls(format!("client CA PEM: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| ServerError::Tls(format!("client CA: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ServerError::Tls(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(format!("server certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A listener that completes TLS handshakes off the accept loop (a slow client cannot hold
/// up others) and reports each connection's [`PeerInfo`].
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, PeerInfo)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    /// Wraps a bound TCP listener.
    pub fn new(tcp: TcpListener, settings: &TlsSettings) -> Result<Self, ServerError> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(settings)?));
        let local = tcp.local_addr().map_err(|e| ServerError::Io {
            what: "reading the listen address".into(),
            source: e,
        })?;
        let principals = Arc::new(settings.client_principals.clone());
        let (tx, rx) = mpsc::channel(128);
        let task = tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let principals = principals.clone();
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    let tls = match hs.await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %addr, "TLS handshake timed out");
                            return;
                        }
                    };
                    let cert_principal = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| principals.get(&cert_fingerprint(c.as_ref())).cloned());
                    let _ = tx
                        .send((
                            tls,
                            PeerInfo {
                                addr,
                                cert_principal,
                            },
                        ))
                        .await;
                });
            }
        });
        Ok(Self { rx, local, task })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended (it never does while the listener lives): wait forever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(PeerInfo {
            addr: self.local,
            cert_principal: None,
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}
