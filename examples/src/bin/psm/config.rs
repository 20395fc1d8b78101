//! The configuration file, one type for every binary: `psm up --config psm.toml` reads all of
//! it; `psm-gateway --config` reads the same file and uses the sections a gateway runs
//! (`[ssh]`, `[live]`, `[policy]`, `[recording]`, `[control_plane]`, `[directory]`).
//! Every key is documented in `docs/configuration.md`; `psm.example.toml` at the root of the
//! repository is a commented example. A file is parsed into these DTOs (unknown keys are
//! refused, naming the key), then turned into runtime values here, where every error names
//! the key it came from.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use psm_core::vault::{PamSettings, RecipientKey};

/// The whole file. Every section is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfFile {
    /// The node's data directory (`--data` overrides it).
    pub data: Option<PathBuf>,
    /// The control-plane API and admin web UI (`psm up`).
    pub api: ApiSection,
    /// The SSH gateway (`[gateway]` is accepted as its older name).
    #[serde(alias = "gateway")]
    pub ssh: SshSection,
    /// The live listener: watching, joining and controlling sessions, the browser terminal.
    pub live: LiveSection,
    /// The command policy every gateway enforces.
    pub policy: PolicySection,
    /// What gateways do with recordings beyond the control plane's settings.
    pub recording: RecordingSection,
    /// The deployment's settings served by GetPAMSettings (`psm up`'s own control plane).
    pub settings: SettingsSection,
    /// The RDP gateway `psm up` supervises.
    pub rdp: RdpSection,
    /// The PostgreSQL gateway (`psm up`).
    pub postgres: DbSection,
    /// The MySQL/MariaDB gateway (`psm up`).
    pub mysql: DbSection,
    /// A gateway's control plane (`psm-gateway`): remote over HTTP, or the node in `data`.
    pub control_plane: ControlPlaneSection,
    /// A gateway's user directory (`psm-gateway`).
    pub directory: DirectorySection,
    /// Access windows: what the control plane does when one closes on a session
    /// (`psm up`, `psm-controlplane`; the windows themselves: `psm windows`).
    pub access: AccessSection,
}

/// `[access]`: how the control plane treats a Connected session whose access window closes
/// (docs/governance.md).
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessSection {
    /// Seconds before a window closes that the user is warned (0: no warning; at most a
    /// day). Default 300.
    pub window_warning_secs: u64,
    /// `end` (the default) or `lock` once the window has closed.
    pub window_close: String,
}

impl Default for AccessSection {
    fn default() -> Self {
        Self {
            window_warning_secs: 300,
            window_close: "end".into(),
        }
    }
}

impl AccessSection {
    /// The engine's setting; errors name the key.
    pub fn windows(&self) -> anyhow::Result<psm_core::access::WindowsConfig> {
        let warning = std::time::Duration::from_secs(self.window_warning_secs);
        anyhow::ensure!(
            warning <= psm_core::access::MAX_WARNING,
            "access.window_warning_secs: at most {} (a day)",
            psm_core::access::MAX_WARNING.as_secs()
        );
        Ok(psm_core::access::WindowsConfig {
            warning,
            on_close: self.window_close.parse().context("access.window_close")?,
        })
    }
}

impl ConfFile {
    /// Reads and parses `path`; the error names the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// `[api]`.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Where the control-plane API and the admin web UI listen.
    pub listen: SocketAddr,
    /// A certificate chain (PEM) to serve HTTPS with; with `tls_key`. Without them the
    /// listener must be a loopback address.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Host names the admin web UI answers to besides IP addresses and `localhost`
    /// (DNS rebinding, docs/web.md); `*` for any.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` the server believes (login lockout, audit
    /// trail, GetIP).
    pub trusted_proxies: Vec<IpAddr>,
    /// Accept the shared `DATA/keys/{gateway,encoder,uploader}.key` (default true). Turn it
    /// off once every process has its own key (`psm keys issue`).
    pub shared_role_keys: bool,
    /// Most open (Connected) sessions one user may have at once across every gateway of
    /// this control plane; 0 for no cap (the default).
    pub max_sessions_per_user: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            shared_role_keys: true,
            max_sessions_per_user: 0,
        }
    }
}

/// `[ssh]`: the SSH gateway.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshSection {
    /// Where users connect.
    pub listen: SocketAddr,
    /// This gateway's process instance.
    pub process_instance: String,
    /// The host key file (created on first start).
    pub host_key: Option<PathBuf>,
    /// Where raw recordings go (`DATA/recordings`).
    pub recordings: Option<PathBuf>,
    /// The recording signing key (created on first start).
    pub recording_key: Option<PathBuf>,
    /// How long a session's checkout lasts, in minutes.
    pub checkout_minutes: u64,
    /// known_hosts file for targets without a pinned key.
    pub known_hosts: Option<PathBuf>,
    /// Trust a target's key on first use (recorded in `known_hosts`).
    pub trust_on_first_use: bool,
    /// Allow `ssh -L`.
    pub allow_local_forwarding: bool,
    /// Allow `ssh -R`.
    pub allow_remote_forwarding: bool,
    /// Allow sftp (and default-mode scp).
    pub allow_sftp: bool,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Most connections not yet authenticated.
    pub max_unauthenticated: usize,
    /// Where `ssh -L` may lead, `[TARGET/]HOST:PORT` with `*` wildcards (default: the
    /// target's own loopback; empty: nowhere).
    pub forward_destinations: Vec<String>,
    /// Most unauthenticated connections from one source (IPv4 address, IPv6 /64).
    pub max_unauthenticated_per_source: usize,
    /// New connections per second per source that never log in (0: no limit).
    pub source_connection_rate: u32,
    /// Burst of new connections per source before the rate applies.
    pub source_connection_burst: u32,
    /// Seconds a source is refused after `source_penalty_after` connections in a row timed
    /// out or failed authentication (0: no penalty).
    pub source_penalty_secs: u64,
    /// Connections in a row that earn the penalty.
    pub source_penalty_after: u32,
    /// Seconds between heartbeats (a terminate takes effect within one).
    pub heartbeat_secs: u64,
    /// Unanswered heartbeats in a row before `heartbeat_unreachable` applies.
    pub heartbeat_max_missed: u32,
    /// `lock` (default), `terminate` or `continue`.
    pub heartbeat_unreachable: String,
    /// Seconds a connection has to authenticate.
    pub auth_timeout_secs: u64,
    /// Text shown before login.
    pub banner: Option<String>,
}

impl Default for SshSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 2222)),
            process_instance: "gateway-1".into(),
            host_key: None,
            recordings: None,
            recording_key: None,
            checkout_minutes: 60,
            known_hosts: None,
            trust_on_first_use: false,
            allow_local_forwarding: false,
            allow_remote_forwarding: false,
            allow_sftp: true,
            max_sessions: 10_000,
            max_unauthenticated: 256,
            forward_destinations: vec![
                "localhost:*".into(),
                "127.0.0.1:*".into(),
                "[::1]:*".into(),
            ],
            max_unauthenticated_per_source: 10,
            source_connection_rate: 10,
            source_connection_burst: 10,
            source_penalty_secs: 30,
            source_penalty_after: 10,
            heartbeat_secs: 10,
            heartbeat_max_missed: 3,
            heartbeat_unreachable: "lock".into(),
            auth_timeout_secs: 30,
            banner: None,
        }
    }
}

/// `[live]`.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSection {
    /// Serve live viewing, control and the browser terminal.
    pub enabled: bool,
    /// Where the websocket listener listens.
    pub listen: SocketAddr,
    /// The URL browsers reach it at (`wss://gw.example.com:2223`), advertised to the control
    /// plane; default `ws://` (or `wss://` with TLS) and the listen address.
    pub public_url: Option<String>,
    /// Origins a browser may open it from (the admin web UI's); `psm up` adds its own UI.
    pub allowed_origins: Vec<String>,
    /// A certificate chain (PEM) to serve `wss://` with; with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
}

impl Default for LiveSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 2223)),
            public_url: None,
            allowed_origins: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[policy]`.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySection {
    /// The command-policy file (TOML, `docs/policy.md`); unset: no policy.
    pub file: Option<PathBuf>,
    /// Milliseconds an Enter waits for the echo of its line before it is judged without it.
    pub echo_timeout_ms: u64,
    /// Seconds a held command waits for approval before it is denied (0: forever).
    pub approval_timeout_secs: u64,
}

impl Default for PolicySection {
    fn default() -> Self {
        let d = psm_proxy::policy_tap::Enforcement::default();
        Self {
            file: None,
            echo_timeout_ms: d.echo_timeout.as_millis() as u64,
            approval_timeout_secs: d.approval_timeout.map_or(0, |t| t.as_secs()),
        }
    }
}

/// A compiled command policy and how the gateways enforce it.
pub type LoadedPolicy = (
    Arc<psm_core::policy::Policy>,
    psm_proxy::policy_tap::Enforcement,
);

impl PolicySection {
    /// The compiled policy and how to enforce it, or `None` without a file.
    pub fn load(&self) -> anyhow::Result<Option<LoadedPolicy>> {
        self.load_with(Vec::new())
    }

    /// As [`load`](Self::load), with `extra` rules after the file's (the database gateways'
    /// default rules); without a file, a policy of `extra` alone, or `None` if it is empty.
    /// The file is read and parsed once.
    pub fn load_with(
        &self,
        extra: Vec<psm_core::policy::RuleConfig>,
    ) -> anyhow::Result<Option<LoadedPolicy>> {
        let (mut config, what) = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("policy.file: reading {}", path.display()))?;
                let config = psm_core::policy::PolicyConfig::from_toml(&text)
                    .with_context(|| format!("policy.file: {}", path.display()))?;
                (config, format!("policy.file: {}", path.display()))
            }
            None if extra.is_empty() => return Ok(None),
            None => (
                psm_core::policy::PolicyConfig::default(),
                "the default rules".to_owned(),
            ),
        };
        config.rules.extend(extra);
        let policy = psm_core::policy::Policy::new(&config).context(what)?;
        let enforcement = psm_proxy::policy_tap::Enforcement {
            echo_timeout: Duration::from_millis(self.echo_timeout_ms.max(1)),
            approval_timeout: (self.approval_timeout_secs > 0)
                .then(|| Duration::from_secs(self.approval_timeout_secs)),
            ..Default::default()
        };
        Ok(Some((policy, enforcement)))
    }
}

/// `[recording]`.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingSection {
    /// More recipient public keys (`x25519:BASE64` or `psmr-recipient-public:HEX`) every recording is encrypted for, besides
    /// the control plane's `PSMEncryptionKey`.
    pub recipients: Vec<String>,
    /// Most MiB one session may record (before compression); a session that reaches it is
    /// ended with the reason. 0: no quota.
    pub quota_mib: u64,
    /// Free MiB the recordings disk must keep: below it (or below `min_free_percent`) new
    /// sessions are refused and running ones locked until there is room. 0 and 0: not
    /// watched.
    pub min_free_mib: u64,
    /// Free percentage of the recordings disk, as `min_free_mib`.
    pub min_free_percent: f64,
}

impl Default for RecordingSection {
    fn default() -> Self {
        Self {
            recipients: Vec::new(),
            quota_mib: 0,
            min_free_mib: psm_core::files::MinFreeSpace::DEFAULT_MIB,
            min_free_percent: 0.0,
        }
    }
}

impl RecordingSection {
    /// Puts the quota and the disk guard into a gateway's recorder settings; the error names
    /// the key.
    pub fn apply_limits(
        &self,
        recorder: &mut psm_proxy::record::RecorderConfig,
    ) -> anyhow::Result<()> {
        if !(0.0..=100.0).contains(&self.min_free_percent) {
            anyhow::bail!(
                "recording.min_free_percent must be between 0 and 100, not {}",
                self.min_free_percent
            );
        }
        recorder.quota_bytes = (self.quota_mib > 0).then(|| self.quota_mib.saturating_mul(1 << 20));
        recorder.disk_guard = (self.min_free_mib > 0 || self.min_free_percent > 0.0).then(|| {
            psm_proxy::record::RecordingDiskGuard {
                min_free: self.min_free(),
                ..psm_proxy::record::RecordingDiskGuard::default()
            }
        });
        Ok(())
    }

    /// The free space the node's recordings disk keeps: the gateways' recorders and the
    /// encoder of `psm up` stop at the same bounds (0 and 0: not watched).
    pub fn min_free(&self) -> psm_core::files::MinFreeSpace {
        psm_core::files::MinFreeSpace {
            bytes: self.min_free_mib.saturating_mul(1 << 20),
            ratio: self.min_free_percent / 100.0,
        }
    }

    /// The parsed recipients; the error names the key.
    pub fn recipients(&self) -> anyhow::Result<Vec<psm_recording::RecipientPublic>> {
        self.recipients
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let key = recipient_key(text, &format!("recording.recipients[{i}]"))?;
                Ok(psm_recording::RecipientPublic::from_bytes(*key.as_bytes()))
            })
            .collect()
    }
}

/// `[settings]`: GetPAMSettings of `psm up`'s own control plane. Unset keys keep the defaults.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsSection {
    /// `PSMEncryptionKey`: the recipient **public** key (`x25519:BASE64`, or the
    /// `psmr-recipient-public:HEX` that `psm recording-keygen --kind recipient` prints) recordings are encrypted for. Gateways refuse sessions they
    /// cannot encrypt for it.
    pub encryption_key: Option<String>,
    /// `PSMEncodingEnabled`.
    pub encoding_enabled: Option<bool>,
    /// `PSMRecordKeyStrokes`.
    pub record_keystrokes: Option<bool>,
    /// Clipboard capture.
    pub capture_clipboard: Option<bool>,
    /// `PSMExportFormats`: asciicast, text, commands, video, contact-sheet.
    pub export_formats: Option<Vec<String>>,
}

impl SettingsSection {
    /// These settings over the defaults.
    pub fn apply(&self, mut base: PamSettings) -> anyhow::Result<PamSettings> {
        if let Some(k) = &self.encryption_key {
            base.encryption_key = Some(recipient_key(k, "settings.encryption_key")?);
        }
        if let Some(v) = self.encoding_enabled {
            base.encoding_enabled = v;
        }
        if let Some(v) = self.record_keystrokes {
            base.record_keystrokes = v;
        }
        if let Some(v) = self.capture_clipboard {
            base.capture_clipboard = v;
        }
        if let Some(v) = &self.export_formats {
            base.export_formats = v.clone();
        }
        Ok(base)
    }
}

/// `[rdp]`: the RDP gateway (`psm-rdp-gateway`, built in its own workspace) that `psm up`
/// starts as its child, restarts if it dies and stops with itself.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RdpSection {
    /// Start it (when the binary is found).
    pub enabled: bool,
    /// The `psm-rdp-gateway` program; default: `$PSM_RDP_GATEWAY`, else beside `psm`, else
    /// `psm-rdp-gateway` on PATH.
    pub binary: Option<PathBuf>,
    /// Where native RDP clients connect.
    pub listen: SocketAddr,
    /// Where browsers open RDP sessions (websocket page); unset: none.
    pub web_listen: Option<SocketAddr>,
    /// Where the RDP gateway's live listener listens (Watch and Join with control of RDP
    /// sessions in the admin web UI); it takes `[live]`'s origins and TLS certificate.
    /// Unset, or `[live] enabled = false`: no live viewing of RDP sessions.
    pub live_listen: Option<SocketAddr>,
    /// The URL browsers reach it at; default `ws://` (or `wss://`) and `live_listen`.
    pub live_public_url: Option<String>,
    /// The gateway's TLS certificate and key (PEM); default: a self-signed pair created in
    /// `DATA/rdp/` on first start.
    pub tls_cert: Option<PathBuf>,
    /// See `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Its process instance name.
    pub process_instance: String,
    /// Accept a target certificate the vault has no pin for.
    pub allow_unpinned_targets: bool,
    /// Bridge the clipboard (text, size-limited, recorded).
    pub allow_clipboard: bool,
    /// Give targets the per-session drive held by the gateway.
    pub allow_drive: bool,
    /// Give targets the print-to-file printer.
    pub allow_printer: bool,
    /// What RDP recordings keep of the keyboard (`psm-rdp-gateway --keystrokes`).
    pub keystrokes: RdpKeystrokes,
}

/// `[rdp] keystrokes`: what an RDP recording keeps of the keyboard (docs/rdp.md,
/// "Redaction"). The target account's password is never recorded, whichever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RdpKeystrokes {
    /// Keys as typed, except the line typed after a lock or secure-attention shortcut.
    #[default]
    RedactPasswords,
    /// Every key as typed.
    RecordAll,
    /// Only that keys were pressed.
    RedactAll,
}

impl RdpKeystrokes {
    /// The `psm-rdp-gateway --keystrokes` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RdpKeystrokes::RedactPasswords => "redact-passwords",
            RdpKeystrokes::RecordAll => "record-all",
            RdpKeystrokes::RedactAll => "redact-all",
        }
    }
}

impl Default for RdpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            binary: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 3390)),
            web_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8390))),
            live_listen: Some(SocketAddr::from(([127, 0, 0, 1], 2224))),
            live_public_url: None,
            tls_cert: None,
            tls_key: None,
            process_instance: "rdp-gateway-1".into(),
            allow_unpinned_targets: false,
            allow_clipboard: false,
            allow_drive: false,
            allow_printer: false,
            keystrokes: RdpKeystrokes::default(),
        }
    }
}

/// `[postgres]` and `[mysql]`: the database gateways `psm up` runs (docs/database.md), with
/// the same keys.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbSection {
    /// Run it.
    pub enabled: bool,
    /// Where users' clients connect; default 127.0.0.1:15432 for PostgreSQL (`psql
    /// "host=H port=15432 user=alice+TARGET sslmode=require"`), 127.0.0.1:13306 for MySQL
    /// (`mariadb --ssl -h H -P 13306 -u alice+TARGET -p`).
    pub listen: Option<SocketAddr>,
    /// Its process instance name; default (empty): the SSH gateway's, so the node's one live
    /// link carries the control plane's commands and reports for database sessions too.
    pub process_instance: String,
    /// The gateway's TLS certificate and key (PEM); default: a self-signed pair created in
    /// `DATA/postgres/` or `DATA/mysql/` on first start.
    pub tls_cert: Option<PathBuf>,
    /// See `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Refuse users' connections without TLS (their PSM password would cross the network
    /// in the clear; MySQL asks for it with the `mysql_clear_password` plugin).
    pub require_tls: bool,
    /// TLS toward targets: `prefer` (when offered), `require` or `disable`. A target whose
    /// certificate SHA-256 is pinned (`psm targets add --host-key sha256:...`) always gets
    /// verified TLS.
    pub target_tls: String,
    /// Minutes a session's checkout lasts.
    pub checkout_minutes: u64,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// The built-in query rules (DROP, TRUNCATE, DELETE/UPDATE without WHERE, ALTER SYSTEM,
    /// COPY ... PROGRAM and, for MySQL, LOAD DATA LOCAL need approval; GRANT and REVOKE
    /// alert), added after `[policy] file`'s.
    pub default_rules: bool,
}

impl Default for DbSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            process_instance: String::new(),
            tls_cert: None,
            tls_key: None,
            require_tls: true,
            target_tls: "prefer".into(),
            checkout_minutes: 60,
            max_sessions: 1000,
            default_rules: false,
        }
    }
}

impl DbSection {
    /// Where the gateway listens: `listen`, else its protocol's `default`.
    pub fn listen_or(&self, default: SocketAddr) -> SocketAddr {
        self.listen.unwrap_or(default)
    }
}

/// `[control_plane]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlPlaneSection {
    /// A remote control plane (`https://...`); unset: the node in the data directory.
    pub url: Option<String>,
    /// The gateway-role API key file for the remote control plane.
    pub api_key_file: Option<PathBuf>,
    /// Allow `http://` (tests, loopback).
    pub allow_plain_http: bool,
    /// For the local node: a PostgreSQL URL instead of DATA/psm.db.
    pub database: Option<String>,
}

/// `[directory]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectorySection {
    /// `sqlite:PATH` or `postgres://...`; default DATA/psm.db.
    pub database: Option<String>,
    /// PostgreSQL schema.
    pub schema: Option<String>,
}

/// A recipient public key in either text form: `x25519:BASE64` (PSMEncryptionKey) or
/// `psmr-recipient-public:HEX` (what `psm recording-keygen --kind recipient` prints).
pub fn recipient_key(text: &str, key: &str) -> anyhow::Result<RecipientKey> {
    let text = text.trim();
    if text.starts_with("psmr-recipient-public:") {
        let public = psm_recording::RecipientPublic::from_text(text).context(key.to_owned())?;
        return Ok(RecipientKey::from_bytes(public.to_bytes()));
    }
    RecipientKey::parse(text).context(key.to_owned())
}

/// A rustls server configuration from PEM files; errors name the key.
pub fn tls_server_config(
    cert: &Path,
    key: &Path,
    section: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{section}.tls_cert: reading {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{section}.tls_key: reading {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .with_context(|| format!("{section}: certificate and key do not match"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_unknown_keys_are_named() {
        let example = include_str!("../../../../psm.example.toml");
        let conf: ConfFile = toml::from_str(example).unwrap();
        assert!(conf.live.enabled);
        let err = toml::from_str::<ConfFile>("[live]\nlisten_addr = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
        let old: ConfFile = toml::from_str("[gateway]\nallow_sftp = false\n").unwrap();
        assert!(!old.ssh.allow_sftp);
    }

    #[test]
    fn rdp_keystrokes_take_the_gateway_s_three_policies_and_name_a_bad_one() {
        let example: ConfFile =
            toml::from_str(include_str!("../../../../psm.example.toml")).unwrap();
        assert_eq!(example.rdp.keystrokes, RdpKeystrokes::RedactPasswords);
        for (text, want) in [
            ("redact-passwords", RdpKeystrokes::RedactPasswords),
            ("record-all", RdpKeystrokes::RecordAll),
            ("redact-all", RdpKeystrokes::RedactAll),
        ] {
            let conf: ConfFile =
                toml::from_str(&format!("[rdp]\nkeystrokes = \"{text}\"\n")).unwrap();
            assert_eq!(conf.rdp.keystrokes, want);
            assert_eq!(want.as_str(), text);
        }
        let err = toml::from_str::<ConfFile>("[rdp]\nkeystrokes = \"everything\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("keystrokes") && err.contains("redact-all"),
            "{err}"
        );
    }

    #[test]
    fn settings_and_recipients_name_the_bad_key() {
        let conf: ConfFile =
            toml::from_str("[settings]\nencryption_key = \"x25519:nope\"\n").unwrap();
        let err = format!(
            "{:#}",
            conf.settings.apply(PamSettings::default()).unwrap_err()
        );
        assert!(err.contains("settings.encryption_key"), "{err}");
        let conf: ConfFile =
            toml::from_str("[recording]\nrecipients = [\"PRIVATE KEY\"]\n").unwrap();
        let err = format!("{:#}", conf.recording.recipients().unwrap_err());
        assert!(err.contains("recording.recipients[0]"), "{err}");
    }
}
