//! SIEM flags shared by `psm up` and `psm-controlplane`: every audit event streamed as
//! RFC 5424 syslog with CEF (TCP or TLS) and as signed JSON to webhooks (docs/siem.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use psm_core::store::SessionStore;
use psm_core::vault::Secret;
use psm_server::siem::{
    FileCursorStore, SiemConfig, SiemForwarder, SiemHandle, SinkConfig, SyslogConfig, WebhookConfig,
};

#[derive(clap::Args, Debug, Default)]
pub struct SiemArgs {
    /// Stream every audit event as RFC 5424 syslog with CEF to HOST:PORT over plain TCP
    /// (repeatable).
    #[arg(long = "siem-syslog", value_name = "HOST:PORT")]
    syslog: Vec<String>,
    /// The same over TLS, trusting the CA certificates in --siem-ca (repeatable).
    #[arg(long = "siem-syslog-tls", value_name = "HOST:PORT", requires = "ca")]
    syslog_tls: Vec<String>,
    /// PEM file of the CA that signs the TLS syslog receivers' (and webhooks') certificates.
    #[arg(long = "siem-ca", value_name = "PEM")]
    ca: Option<PathBuf>,
    /// POST every audit event as HMAC-signed JSON batches to URL (repeatable).
    #[arg(
        long = "siem-webhook",
        value_name = "URL",
        requires = "webhook_secret_file"
    )]
    webhook: Vec<String>,
    /// File holding the webhooks' HMAC key (first line).
    #[arg(long = "siem-webhook-secret-file", value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "psm".into())
}

impl SiemArgs {
    /// The forwarder's configuration, or `None` when no sink is configured.
    fn config(&self) -> anyhow::Result<Option<SiemConfig>> {
        let host = hostname();
        let ca = match &self.ca {
            Some(path) => {
                Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
            }
            None => None,
        };
        let mut sinks = Vec::new();
        for (i, addr) in self.syslog.iter().enumerate() {
            sinks.push(SinkConfig::Syslog {
                name: format!("syslog-{}", i + 1),
                config: SyslogConfig::tcp(addr.clone(), host.clone()),
            });
        }
        for (i, addr) in self.syslog_tls.iter().enumerate() {
            let ca = ca.clone().context("--siem-syslog-tls needs --siem-ca")?;
            sinks.push(SinkConfig::Syslog {
                name: format!("syslog-tls-{}", i + 1),
                config: SyslogConfig::tls(addr.clone(), host.clone(), ca),
            });
        }
        if !self.webhook.is_empty() {
            let path = self
                .webhook_secret_file
                .as_ref()
                .context("--siem-webhook needs --siem-webhook-secret-file")?;
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let key = key.lines().next().unwrap_or("").trim().to_owned();
            anyhow::ensure!(!key.is_empty(), "{} holds no key", path.display());
            for (i, url) in self.webhook.iter().enumerate() {
                let mut config =
                    WebhookConfig::new(url.clone(), Secret::new(key.clone()), host.clone());
                config.ca_pem = ca.clone();
                sinks.push(SinkConfig::Webhook {
                    name: format!("webhook-{}", i + 1),
                    config,
                });
            }
        }
        Ok((!sinks.is_empty()).then(|| SiemConfig {
            sinks,
            ..SiemConfig::default()
        }))
    }

    /// Starts the forwarder over `store`'s audit log, with its cursors under DATA/siem, if
    /// any sink is configured; returns the handle and a line describing it.
    pub fn start(
        &self,
        store: Arc<dyn SessionStore>,
        data: &Path,
    ) -> anyhow::Result<Option<(SiemHandle, String)>> {
        let Some(config) = self.config()? else {
            return Ok(None);
        };
        let describe = format!(
            "{} syslog, {} syslog/TLS, {} webhook sink(s); cursors in {}",
            self.syslog.len(),
            self.syslog_tls.len(),
            self.webhook.len(),
            data.join("siem").display()
        );
        let cursors = Arc::new(FileCursorStore::new(data.join("siem")));
        let handle = SiemForwarder::spawn(store, cursors, config)
            .map_err(|e| anyhow::anyhow!("starting the SIEM forwarder: {e}"))?;
        Ok(Some((handle, describe)))
    }
}
