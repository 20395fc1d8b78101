//! Reaching a remote control plane over HTTP (psm-client), shared by `psm-encoder`,
//! `psm-uploader`, `psm-gateway` and the `psm` commands: flags to a configured client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;

/// How to reach a remote control plane.
#[derive(Clone, Debug, Default)]
pub struct Remote {
    /// `https://HOST:PORT` (or `http://` to a loopback address).
    pub url: String,
    /// The file holding this process's role key (`psm-controlplane` writes DATA/keys/ROLE.key).
    pub api_key_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the control plane's TLS certificate.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` to a non-loopback host (behind a TLS-terminating proxy only).
    pub allow_plain_http: bool,
}

/// Whether a `--control-plane` value names a remote control plane (rather than a database).
pub fn is_url(value: &str) -> bool {
    value.starts_with("https://") || value.starts_with("http://")
}

fn read_key(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API key file {}", path.display()))?;
    let key = text.trim();
    anyhow::ensure!(
        !key.is_empty(),
        "the API key file {} is empty",
        path.display()
    );
    Ok(key.to_owned())
}

impl Remote {
    /// The typed client (its `Debug` never shows the key).
    pub fn client(&self) -> anyhow::Result<psm_client::Client> {
        let mut config = psm_client::ClientConfig::new(self.url.clone());
        config.allow_plain_http = self.allow_plain_http;
        if let Some(path) = &self.api_key_file {
            config = config.with_api_key(read_key(path)?);
        }
        if let Some(path) = &self.ca_file {
            config.root_ca_pem =
                Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
        }
        psm_client::Client::new(config)
            .with_context(|| format!("configuring the control-plane client for {}", self.url))
    }

    /// psm-core's `ControlPlane` over HTTP.
    pub fn control_plane(&self) -> anyhow::Result<psm_client::HttpControlPlane> {
        Ok(psm_client::HttpControlPlane::new(self.client()?))
    }

    /// psm-core's `UserDirectory` over HTTP (the gateway role may read users).
    pub fn directory(&self) -> anyhow::Result<psm_client::HttpDirectory> {
        Ok(psm_client::HttpDirectory::new(self.client()?))
    }
}

/// Registers this process's public signing key with a remote control plane (RegisterSigner),
/// so its web UI trusts what the key signs (docs/threat-model.md M12).
pub async fn register_signer(
    client: &psm_client::Client,
    process_instance: &str,
    kind: psm_client::wire::SignerKind,
    key: &psm_recording::VerifyingKey,
) -> anyhow::Result<()> {
    let request = psm_client::wire::RegisterSignerRequest {
        process_instance: psm_core::ProcessInstance::new(process_instance)?,
        kind,
        key: key.to_string(),
    };
    client.register_signer(&request).await.with_context(|| {
        format!(
            "registering the {} key of {process_instance} with the control plane",
            kind.as_str()
        )
    })?;
    Ok(())
}
