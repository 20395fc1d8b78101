//! TLS on both sides: the gateway's certificate toward users (created on first start, like
//! the SSH host key), and the check of a target's certificate (its SHA-256 pinned in the
//! vault's `host_key`, or accepted as a lab setting). Both come from the session layer's
//! [`psm_proxy::tls`], which the RDP gateway uses too.

use std::path::Path;
use std::sync::Arc;

use psm_proxy::ProxyError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn config_error(what: &str, e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Config(format!("{what}: {e}"))
}

/// The gateway's TLS identity toward users.
#[derive(Clone, Debug)]
pub struct GatewayCertificate {
    /// The server configuration to accept TLS with.
    pub config: Arc<rustls::ServerConfig>,
    /// The certificate's SHA-256, `sha256:` and hex (what a user pins).
    pub fingerprint: String,
    /// Whether this start created the certificate.
    pub created: bool,
}

/// Loads the certificate and key at `cert` and `key` (PEM), or, when neither exists,
/// creates a self-signed pair there (the key readable by its owner only) for `names`
/// ([`psm_proxy::tls::ensure_self_signed`]).
pub fn load_or_create_certificate(
    cert: &Path,
    key: &Path,
    names: &[String],
) -> Result<GatewayCertificate, ProxyError> {
    let created = psm_proxy::tls::ensure_self_signed(cert, key, names)?;
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| config_error(&format!("reading {}", cert.display()), e))?;
    let first = certs
        .first()
        .ok_or_else(|| ProxyError::Config(format!("{} holds no certificate", cert.display())))?;
    let fingerprint = format!("sha256:{}", psm_proxy::tls::fingerprint(first.as_ref()));
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| config_error(&format!("reading {}", key.display()), e))?;
    let config = rustls::ServerConfig::builder_with_provider(psm_proxy::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| config_error("the certificate and key do not match", e))?;
    Ok(GatewayCertificate {
        config: Arc::new(config),
        fingerprint,
        created,
    })
}

/// The client configuration toward a target: its certificate must match one of `pins`
/// (SHA-256, written as users write them); no pins accepts any certificate.
pub fn target_client_config(pins: &[String]) -> Result<Arc<rustls::ClientConfig>, ProxyError> {
    let pins = psm_proxy::tls::normalize_pins(pins);
    let config = psm_proxy::tls::pinned_client_config((!pins.is_empty()).then_some(pins))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("pg.crt"), dir.path().join("pg.key"));
        let first = load_or_create_certificate(&c, &k, &["localhost".into()]).unwrap();
        assert!(first.created);
        assert_eq!(first.fingerprint.len(), "sha256:".len() + 64);
        let again = load_or_create_certificate(&c, &k, &["localhost".into()]).unwrap();
        assert!(!again.created);
        assert_eq!(first.fingerprint, again.fingerprint);
        std::fs::remove_file(&k).unwrap();
        assert!(load_or_create_certificate(&c, &k, &[]).is_err());
    }
}
