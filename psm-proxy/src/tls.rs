//! TLS the gateways share: the SHA-256 certificate fingerprint users and operators pin, a
//! client configuration that checks a target's certificate against such pins (RDP servers and
//! databases nearly always present self-signed certificates, so a CA check would mean
//! nothing), and the gateway's own certificate, created self-signed on first start as an SSH
//! host key is.
//!
//! ```
//! use psm_proxy::tls::{fingerprint, normalize_pins};
//! assert_eq!(fingerprint(b"").len(), 64);
//! assert_eq!(normalize_pins(&["SHA256:AB:cd, ef".into()]), ["abcd", "ef"]);
//! ```

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest as _;

use crate::error::ProxyError;

/// The crypto provider every gateway's TLS uses (aws-lc-rs, as the rest of the workspace).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The SHA-256 of a DER certificate: 64 lower-case hex digits, without a prefix.
pub fn fingerprint(der: &[u8]) -> String {
    use std::fmt::Write as _;
    sha2::Sha256::digest(der)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A fingerprint as [`fingerprint`] writes it, from how people write them: a `sha256:`
/// (or `SHA256:`) prefix, `:` separators and upper case are ignored.
pub fn normalize_fingerprint(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .unwrap_or(s);
    s.chars()
        .filter(|c| *c != ':')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Pins, normalised ([`normalize_fingerprint`]); one string may hold several, separated by
/// `,` or spaces. Empty entries are dropped.
pub fn normalize_pins(pins: &[String]) -> Vec<String> {
    pins.iter()
        .flat_map(|p| p.split([',', ' ']))
        .map(normalize_fingerprint)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Checks a target's certificate against pins; `None` accepts any certificate.
#[derive(Debug)]
struct PinVerifier {
    pins: Option<Vec<String>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pins) = &self.pins else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented = fingerprint(end_entity.as_ref());
        if pins.contains(&presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the target presented certificate sha256:{presented}, which matches no pin"
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

/// The client configuration toward a target whose certificate must match one of `pins`
/// (normalised, as [`normalize_pins`] gives them); `None` accepts any certificate (the
/// caller says so in its log). The signature of the handshake is always checked.
pub fn pinned_client_config(pins: Option<Vec<String>>) -> Result<rustls::ClientConfig, ProxyError> {
    let provider = provider();
    let verifier = PinVerifier {
        pins,
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Makes sure a gateway certificate and key exist at `cert` and `key` (PEM): when neither
/// does, creates a self-signed pair for `names` (the key readable by its owner only) and
/// returns `true`; when both do, leaves them and returns `false`; one without the other is
/// an error (a half-configured identity is never replaced silently).
pub fn ensure_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<bool, ProxyError> {
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(false),
        (false, false) => {
            if let Some(dir) = cert.parent() {
                std::fs::create_dir_all(dir).map_err(|source| ProxyError::Io {
                    what: format!("creating {}", dir.display()),
                    source,
                })?;
            }
            let generated = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| {
                ProxyError::Config(format!("generating a self-signed certificate: {e}"))
            })?;
            crate::keyfile::write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
            std::fs::write(cert, generated.cert.pem()).map_err(|source| ProxyError::Io {
                what: format!("writing {}", cert.display()),
                source,
            })?;
            Ok(true)
        }
        _ => Err(ProxyError::Config(format!(
            "{} and {} go together: give both or neither",
            cert.display(),
            key.display()
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject as _;

    #[test]
    fn a_self_signed_pair_is_created_once_and_a_half_pair_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("sub/gw.crt"), dir.path().join("sub/gw.key"));
        assert!(ensure_self_signed(&c, &k, &["localhost".into()]).unwrap());
        let der = CertificateDer::from_pem_file(&c).unwrap();
        let first = fingerprint(der.as_ref());
        assert!(!ensure_self_signed(&c, &k, &["localhost".into()]).unwrap());
        assert_eq!(
            fingerprint(CertificateDer::from_pem_file(&c).unwrap().as_ref()),
            first
        );
        std::fs::remove_file(&k).unwrap();
        let err = ensure_self_signed(&c, &k, &[]).unwrap_err().to_string();
        assert!(err.contains("go together"), "{err}");
    }

    #[test]
    fn fingerprints_and_pins_are_normalised() {
        let f = fingerprint(b"certificate");
        assert_eq!(f.len(), 64);
        assert!(
            f.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let written = format!(
            "SHA256:{}",
            f.to_ascii_uppercase()
                .as_bytes()
                .chunks(2)
                .map(|p| std::str::from_utf8(p).unwrap())
                .collect::<Vec<_>>()
                .join(":")
        );
        assert_eq!(normalize_fingerprint(&written), f);
        assert_eq!(
            normalize_pins(&[format!("{written}, sha256:ab"), " ".into()]),
            vec![f, "ab".to_owned()]
        );
    }

    #[test]
    fn the_verifier_accepts_a_pinned_certificate_only() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("gw.crt"), dir.path().join("gw.key"));
        ensure_self_signed(&c, &k, &["localhost".into()]).unwrap();
        let der = CertificateDer::from_pem_file(&c).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let check = |pins: Option<Vec<String>>| {
            PinVerifier {
                pins,
                provider: provider(),
            }
            .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
            .map(|_| ())
        };
        assert!(check(Some(vec![fingerprint(der.as_ref())])).is_ok());
        assert!(check(None).is_ok());
        let err = check(Some(vec!["00".repeat(32)])).unwrap_err().to_string();
        assert!(err.contains("matches no pin"), "{err}");
        assert!(pinned_client_config(None).is_ok());
    }
}
