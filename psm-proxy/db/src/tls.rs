//! TLS on both sides: the gateway's certificate toward users (created on first start, like
//! the SSH host key), and the check of a target's certificate (its SHA-256 pinned in the
//! vault's `host_key`, or accepted as a lab setting).

use std::path::Path;
use std::sync::Arc;

use psm_proxy::ProxyError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

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
/// creates a self-signed pair there (the key readable by its owner only) for `names`.
pub fn load_or_create_certificate(
    cert: &Path,
    key: &Path,
    names: &[String],
) -> Result<GatewayCertificate, ProxyError> {
    let created = match (cert.exists(), key.exists()) {
        (true, true) => false,
        (false, false) => {
            if let Some(dir) = cert.parent() {
                std::fs::create_dir_all(dir).map_err(|source| ProxyError::Io {
                    what: format!("creating {}", dir.display()),
                    source,
                })?;
            }
            let generated = rcgen::generate_simple_self_signed(names.to_vec())
                .map_err(|e| config_error("generating the PostgreSQL gateway's certificate", e))?;
            psm_proxy::keyfile::write_private(
                key,
                generated.signing_key.serialize_pem().as_bytes(),
            )?;
            std::fs::write(cert, generated.cert.pem()).map_err(|source| ProxyError::Io {
                what: format!("writing {}", cert.display()),
                source,
            })?;
            true
        }
        _ => {
            return Err(ProxyError::Config(format!(
                "{} and {} go together: give both or neither",
                cert.display(),
                key.display()
            )));
        }
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| config_error(&format!("reading {}", cert.display()), e))?;
    let first = certs
        .first()
        .ok_or_else(|| ProxyError::Config(format!("{} holds no certificate", cert.display())))?;
    let fingerprint = fingerprint(first.as_ref());
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| config_error(&format!("reading {}", key.display()), e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
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

/// `sha256:` and the hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    let digest = sha2::Sha256::digest(der);
    let mut s = String::from("sha256:");
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Normalises pins: `sha256:` prefix, `:` separators and case ignored; several in one
/// string separated by `,` or spaces.
fn normalise_pins(pins: &[String]) -> Vec<String> {
    pins.iter()
        .flat_map(|p| p.split([',', ' ']))
        .map(|p| {
            let p = p.trim();
            let p = p
                .strip_prefix("sha256:")
                .or_else(|| p.strip_prefix("SHA256:"))
                .unwrap_or(p);
            p.replace(':', "").to_ascii_lowercase()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// How the gateway checks a target's certificate.
#[derive(Debug)]
struct TargetVerifier {
    /// Hex SHA-256 pins; empty: any certificate (logged).
    pins: Vec<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for TargetVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pins.is_empty() {
            return Ok(ServerCertVerified::assertion());
        }
        let presented = fingerprint(end_entity.as_ref());
        let hex = presented.trim_start_matches("sha256:");
        if self.pins.iter().any(|p| p == hex) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the target presented certificate {presented}, which is not its pinned one"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client configuration toward a target: its certificate must match one of `pins`
/// (SHA-256, as [`fingerprint`] prints them); no pins accepts any certificate.
pub fn target_client_config(pins: &[String]) -> Result<Arc<rustls::ClientConfig>, ProxyError> {
    let provider = provider();
    let verifier = TargetVerifier {
        pins: normalise_pins(pins),
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
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

    #[test]
    fn pins_are_normalised() {
        assert_eq!(
            normalise_pins(&["SHA256:AB:cd, ef".into()]),
            vec!["abcd".to_owned(), "ef".to_owned()]
        );
    }
}
