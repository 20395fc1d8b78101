//! Pipeline assembly shared by `psm upload`, `psm encode`, `psm up` and the `psm-encoder` /
//! `psm-uploader` binaries: arguments to typed configs, the control plane (a database, or a
//! remote one over HTTP), settings from GetPAMSettings, progress bars, and the one `main`
//! both worker binaries run. No logic of its own.

#![allow(dead_code)]

#[path = "remote.rs"]
pub mod remote;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use psm_core::clock::SystemClock;
use psm_core::store::{PostgresOptions, PostgresStore, SessionStore, SqliteStore};
use psm_core::vault::PamSettings;
use psm_core::{
    ControlPlane, Engine, EngineConfig, ProcessInstance, SessionId, Settings, WorkQueue,
};
use psm_pipeline::settings::{self, EncoderOverrides};
use psm_pipeline::{
    DiskGuard, Encoder, EncoderSettings, EventSink, LocalLayout, MinFreeSpace, PipelineEvent,
    Uploader, WorkerConfig,
};
use psm_storage::{SecretString, StoreConfig};

/// Where recordings are stored. Without `--store`, the control plane's PSMStorageMode and
/// PSMStorageLocation decide (docs/deployment.md); credentials always come from here.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// A directory or mounted UNC/SMB share, `s3://bucket[/prefix]` or
    /// `az://account/container[/prefix]`. Overrides the control plane's PSMStorageLocation.
    /// Default: the control plane's, else DATA/store.
    #[arg(long, env = "PSM_STORE")]
    pub store: Option<String>,
    /// Endpoint of an S3-compatible service (MinIO, Ceph, moto...).
    #[arg(long, env = "PSM_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// S3 session token.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub s3_session_token: Option<String>,
    /// Azure account URL when not the public cloud's (Azurite: http://127.0.0.1:10000/devstoreaccount1).
    #[arg(long, env = "PSM_AZURE_ENDPOINT")]
    pub azure_endpoint: Option<String>,
    /// Azure shared key.
    #[arg(long, env = "AZURE_STORAGE_KEY", hide_env_values = true)]
    pub azure_key: Option<String>,
    /// Allow plain http:// endpoints.
    #[arg(long)]
    pub allow_http: bool,
    /// Upload files from this size (MiB) in parts.
    #[arg(long, default_value_t = 16)]
    pub multipart_threshold_mib: u64,
    /// Part size (MiB).
    #[arg(long, default_value_t = 8)]
    pub part_size_mib: u64,
    /// Parts of one file in flight.
    #[arg(long, default_value_t = 8)]
    pub part_concurrency: usize,
}

impl StoreArgs {
    /// The store at `location` with this process's endpoints, credentials and tuning.
    pub fn config_at(&self, location: &str) -> anyhow::Result<StoreConfig> {
        let mut config = StoreConfig::parse(location)?;
        match &mut config {
            StoreConfig::S3(c) => {
                c.endpoint = self.s3_endpoint.clone();
                c.region = self.s3_region.clone();
                c.access_key_id = self.s3_access_key_id.clone();
                c.secret_access_key = self.s3_secret_access_key.clone().map(SecretString::from);
                c.session_token = self.s3_session_token.clone().map(SecretString::from);
                c.allow_http = self.allow_http;
            }
            StoreConfig::Azure(c) => {
                c.endpoint = self.azure_endpoint.clone();
                c.access_key = self.azure_key.clone().map(SecretString::from);
                c.allow_http = self.allow_http;
            }
            _ => {}
        }
        let t = config.tuning_mut();
        t.multipart_threshold = self.multipart_threshold_mib.max(5) << 20;
        t.part_size = self.part_size_mib.max(5) << 20;
        t.part_concurrency = self.part_concurrency.max(1);
        Ok(config)
    }

    /// The store: `--store`, else the control plane's location, else DATA/store.
    pub fn config(&self, data: &Path, pam: Option<&PamSettings>) -> anyhow::Result<StoreConfig> {
        let (location, warnings) =
            settings::store_location(pam, self.store.as_deref(), &data.join("store"))?;
        for w in warnings {
            tracing::warn!(warning = %w, "store setting");
        }
        self.config_at(&location)
    }
}

/// Which control plane, and the lifecycle thresholds every process sharing it must agree on.
#[derive(clap::Args, Clone, Debug)]
pub struct ControlPlaneArgs {
    /// `https://HOST:PORT` (a remote psm-controlplane; `http://` on loopback only),
    /// `sqlite:PATH` (default: DATA/psm.db) or `postgres://user@host/db` (direct).
    #[arg(long, env = "PSM_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// For a remote control plane: the file with this worker's role key
    /// (psm-controlplane's DATA/keys/encoder.key or uploader.key).
    #[arg(long, env = "PSM_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// For a remote control plane: a CA certificate (PEM) to trust for its TLS certificate.
    #[arg(long, env = "PSM_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL schema (direct mode).
    #[arg(long, env = "PSM_PG_SCHEMA")]
    pub pg_schema: Option<String>,
    /// Seconds a worker's claim lasts without renewal (the control plane's --lease-ttl).
    #[arg(long, default_value_t = 60)]
    pub lease_ttl_secs: u64,
    /// Attempts at a step before the session becomes Failed (direct mode).
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Seconds of backoff after the first failed attempt, doubling, capped at 300 (direct mode).
    #[arg(long, default_value_t = 5)]
    pub retry_backoff_secs: u64,
}

impl ControlPlaneArgs {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            lease_ttl: Duration::from_secs(self.lease_ttl_secs.max(1)),
            max_attempts: self.max_attempts.max(1),
            retry_backoff_base: Duration::from_secs(self.retry_backoff_secs),
            ..EngineConfig::default()
        }
    }

    fn url(&self, data: &Path) -> String {
        match &self.control_plane {
            Some(u) => u.clone(),
            None => format!("sqlite:{}", data.join("psm.db").display()),
        }
    }

    /// The remote control plane, if `--control-plane` is a URL.
    pub fn remote(&self) -> Option<remote::Remote> {
        let url = self
            .control_plane
            .as_deref()
            .filter(|u| remote::is_url(u))?;
        Some(remote::Remote {
            url: url.to_owned(),
            api_key_file: self.api_key_file.clone(),
            ca_file: self.ca_file.clone(),
            allow_plain_http: false,
        })
    }

    /// The control plane's roles a worker calls: over HTTP for a URL (queue and settings),
    /// else psm-core's engine over the database (the queue alone: no settings).
    pub async fn connect(&self, data: &Path) -> anyhow::Result<WorkerPlane> {
        if let Some(remote) = self.remote() {
            anyhow::ensure!(
                self.api_key_file.is_some(),
                "--control-plane {} needs --api-key-file (the worker's role key)",
                remote.url
            );
            tracing::info!(control_plane = %remote.url, "using a remote control plane");
            let cp = Arc::new(remote.control_plane()?);
            return Ok(WorkerPlane {
                queue: cp.clone(),
                settings: Some(cp),
            });
        }
        Ok(WorkerPlane {
            queue: self.engine(data).await?,
            settings: None,
        })
    }

    /// psm-core's engine directly over the database (not for a remote control plane).
    pub async fn engine(&self, data: &Path) -> anyhow::Result<Arc<Engine>> {
        let url = self.url(data);
        let store: Arc<dyn SessionStore> = if let Some(path) = url.strip_prefix("sqlite:") {
            Arc::new(
                SqliteStore::open(path)
                    .await
                    .with_context(|| format!("opening {path}"))?,
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = PostgresOptions::new(url);
            options.schema = self.pg_schema.clone();
            Arc::new(
                PostgresStore::connect(&options)
                    .await
                    .context("connecting to PostgreSQL")?,
            )
        } else {
            anyhow::bail!(
                "--control-plane must be https://HOST:PORT, sqlite:PATH or postgres://..."
            );
        };
        Ok(Arc::new(Engine::new(
            store,
            Arc::new(SystemClock),
            self.engine_config(),
        )))
    }
}

/// What a worker holds of the control plane.
pub struct WorkerPlane {
    /// Claims, leases, outcomes.
    pub queue: Arc<dyn WorkQueue>,
    /// GetPAMSettings, when the control plane serves it (a direct database does not).
    pub settings: Option<Arc<dyn Settings>>,
}

/// GetPAMSettings from the control plane (a direct database has none: the defaults and the
/// command line apply), waiting up to a minute for an unreachable one.
pub async fn pam_settings(cp: Option<&dyn Settings>) -> anyhow::Result<Option<PamSettings>> {
    let Some(cp) = cp else {
        return Ok(None);
    };
    let s = settings::fetch_pam_settings(cp, Duration::from_secs(60))
        .await
        .context("GetPAMSettings")?;
    if let Some(s) = &s {
        tracing::info!(storage_mode = %s.storage_mode,
            storage_location = s.storage_location.as_deref().unwrap_or("-"),
            encoding_enabled = s.encoding_enabled, export_formats = ?s.export_formats,
            encryption_key = s.encryption_key.is_some(), "settings from the control plane");
    }
    Ok(s)
}

/// A worker's own settings.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    /// This worker's name on the control plane. Default: ROLE-HOST-PID.
    #[arg(long, env = "PSM_INSTANCE")]
    pub instance: Option<String>,
    /// Sessions worked on at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Stop taking work while the guarded disk has less than this many MiB free (the
    /// gateways' `[recording] min_free_mib` default).
    #[arg(long, default_value_t = psm_core::files::MinFreeSpace::DEFAULT_MIB)]
    pub min_free_mib: u64,
    /// Stop taking work while the guarded disk has less than this percentage free (the
    /// gateways' `[recording] min_free_percent` default).
    #[arg(long, default_value_t = 0.0)]
    pub min_free_percent: f64,
    /// Seconds between looks for work when idle.
    #[arg(long, default_value_t = 2.0)]
    pub poll_secs: f64,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        Self {
            instance: None,
            concurrency: 2,
            min_free_mib: psm_core::files::MinFreeSpace::DEFAULT_MIB,
            min_free_percent: 0.0,
            poll_secs: 2.0,
        }
    }
}

impl WorkerArgs {
    pub fn config(
        &self,
        role: &str,
        lease_ttl: Duration,
        guard: Option<PathBuf>,
    ) -> anyhow::Result<WorkerConfig> {
        let name = match &self.instance {
            Some(n) => n.clone(),
            None => {
                let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                format!("{role}-{}-{}", host.trim(), std::process::id())
            }
        };
        let mut c = WorkerConfig::new(ProcessInstance::new(name)?);
        c.concurrency = self.concurrency.max(1);
        c.lease_ttl = lease_ttl;
        c.renew_every = (lease_ttl / 4).max(Duration::from_millis(100));
        c.poll_interval = Duration::from_secs_f64(self.poll_secs.clamp(0.01, 600.0));
        anyhow::ensure!(
            (0.0..=100.0).contains(&self.min_free_percent),
            "--min-free-percent must be between 0 and 100, not {}",
            self.min_free_percent
        );
        let min_free = MinFreeSpace {
            bytes: self.min_free_mib.saturating_mul(1 << 20),
            ratio: self.min_free_percent / 100.0,
        };
        c.disk_guard = guard.map(|p| DiskGuard::new(p, min_free));
        Ok(c)
    }
}

/// The disk the uploader guards: a local store's own directory (a full share or disk there
/// would fail every upload); cloud stores need no local room.
pub fn uploader_guard(store: &StoreConfig) -> Option<PathBuf> {
    match store {
        StoreConfig::Local(c) => Some(c.root.clone()),
        _ => None,
    }
}

/// What the encoder writes. Without these flags, the control plane's PSMEncodingEnabled,
/// PSMExportFormats and PSMEncryptionKey decide (docs/deployment.md).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct EncodeArgs {
    /// Exports to write (overrides PSMExportFormats): any of asciicast, transcript,
    /// commands, video, contact-sheet; each where it applies (video for RDP...).
    #[arg(long, value_delimiter = ',')]
    pub exports: Option<Vec<String>>,
    /// Only verify and store raw recordings (overrides PSMEncodingEnabled).
    #[arg(long)]
    pub no_exports: bool,
    /// The key recordings are expected to be encrypted for, `x25519:BASE64`, or `none`
    /// (overrides PSMEncryptionKey). A recording that is not is stored with a note.
    #[arg(long)]
    pub recipient_key: Option<String>,
    /// The recipient secret key (`psmr-recipient-secret:...`) that decrypts recordings for
    /// exports. Never taken from the control plane; without it encrypted recordings are
    /// stored without exports.
    #[arg(long, env = "PSM_RECORDING_IDENTITY_FILE")]
    pub recording_identity_file: Option<PathBuf>,
    /// The key that signs the seek index appended to every intact recording
    /// (`psmr-signing-secret:...`), created on first use with its public half beside it
    /// (`.pub`). Default: DATA/keys/index-signing.key; encoders sharing DATA share it.
    #[arg(long, env = "PSM_INDEX_KEY_FILE")]
    pub index_key_file: Option<PathBuf>,
    /// The ffmpeg program for video exports.
    #[arg(long, env = "PSM_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
    /// Frames per second of video exports.
    #[arg(long, default_value_t = 5)]
    pub video_fps: u32,
}

impl EncodeArgs {
    pub fn overrides(&self) -> EncoderOverrides {
        EncoderOverrides {
            encoding_enabled: self.no_exports.then_some(false),
            exports: self.exports.clone(),
            recipient_key: self.recipient_key.clone(),
        }
    }

    /// The encoder's settings: these flags over the control plane's `pam` over the defaults.
    pub fn settings(&self, pam: Option<&PamSettings>) -> anyhow::Result<EncoderSettings> {
        let mut base = EncoderSettings::default();
        if let Some(path) = &self.recording_identity_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            base.identity = Some(
                psm_recording::RecipientSecret::from_text(text.trim())
                    .with_context(|| format!("{} is not a recipient secret key", path.display()))?,
            );
        }
        base.video.ffmpeg = self.ffmpeg.clone();
        base.video.fps = self.video_fps;
        let (settings, warnings) = settings::encoder_settings(pam, &self.overrides(), base)?;
        for w in warnings {
            tracing::warn!(warning = %w, "encoder setting");
        }
        Ok(settings)
    }
}

/// Builds an encoder; it guards the data directory, where it writes exports.
pub fn encoder(
    cp: Arc<dyn WorkQueue>,
    data: &Path,
    encode: &EncodeArgs,
    worker: &WorkerArgs,
    lease_ttl: Duration,
    pam: Option<&PamSettings>,
) -> anyhow::Result<Encoder> {
    let layout = LocalLayout::new(data);
    layout
        .create()
        .with_context(|| format!("creating the data layout under {}", data.display()))?;
    let config = worker.config("encoder", lease_ttl, Some(data.to_owned()))?;
    let mut settings = encode.settings(pam)?;
    let key_path = encode
        .index_key_file
        .clone()
        .unwrap_or_else(|| data.join("keys").join("index-signing.key"));
    let (index_key, created) = psm_proxy::record::load_or_create_signing_key(&key_path)?;
    if created {
        tracing::info!(path = %key_path.display(), public = %index_key.verifying_key(),
            "created the key that signs seek indexes");
    }
    // The encoder's key signs manifests too; registering its public half lets this node's
    // uploader and web UI trust the sets it writes (docs/threat-model.md, M12).
    layout
        .encoder_signers()
        .register(config.instance.as_str(), &index_key.verifying_key())
        .with_context(|| format!("registering the encoder key of {}", config.instance))?;
    settings.index_key = Some(index_key);
    // Only recordings signed by a registered gateway are encoded.
    settings.gateway_signers = Some(layout.gateway_signers());
    let exports: Vec<&str> = settings.exports.iter().map(|k| k.as_str()).collect();
    tracing::info!(data = %data.display(), instance = %config.instance, exports = ?exports,
        expected_recipient = settings.expected_recipient.is_some(), "encoder ready");
    Ok(Encoder::new(cp, layout, settings, config))
}

/// Builds an uploader.
pub fn uploader(
    cp: Arc<dyn WorkQueue>,
    data: &Path,
    store: &StoreArgs,
    worker: &WorkerArgs,
    lease_ttl: Duration,
    pam: Option<&PamSettings>,
) -> anyhow::Result<Uploader> {
    let store_config = store.config(data, pam)?;
    let layout = LocalLayout::new(data);
    layout
        .create()
        .with_context(|| format!("creating the data layout under {}", data.display()))?;
    let config = worker.config("uploader", lease_ttl, uploader_guard(&store_config))?;
    let store = psm_storage::open(&store_config)?;
    tracing::info!(store = %store.describe(), data = %data.display(),
        instance = %config.instance, "uploader ready");
    let encoders = layout.encoder_signers();
    Ok(Uploader::new(cp, store, layout, config).with_manifest_signers(encoders))
}

/// The encoder and uploader of `psm up`, running in-process until stopped.
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<psm_pipeline::RunSummary>>,
    pub store: String,
}

impl Workers {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts one encoder and one uploader against `cp`, with its settings and `store`.
pub async fn start_workers(
    cp: Arc<dyn ControlPlane>,
    data: &Path,
    store: &StoreArgs,
    min_free: MinFreeSpace,
) -> anyhow::Result<Workers> {
    // The encoder stops at the bounds the node's gateways keep on the same disk.
    let worker = WorkerArgs {
        min_free_mib: min_free.bytes >> 20,
        min_free_percent: min_free.ratio * 100.0,
        ..WorkerArgs::default()
    };
    let ttl = EngineConfig::default().lease_ttl;
    let pam = pam_settings(Some(cp.as_ref() as &dyn Settings)).await?;
    let encode = EncodeArgs {
        ffmpeg: PathBuf::from("ffmpeg"),
        video_fps: 5,
        ..EncodeArgs::default()
    };
    let encoder = Arc::new(encoder(
        cp.clone(),
        data,
        &encode,
        &worker,
        ttl,
        pam.as_ref(),
    )?);
    let uploader = Arc::new(uploader(cp, data, store, &worker, ttl, pam.as_ref())?);
    let described = uploader.store().describe();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let tasks = vec![
        tokio::spawn(encoder.run(rx.clone())),
        tokio::spawn(uploader.run(rx)),
    ];
    Ok(Workers {
        stop,
        tasks,
        store: described,
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// What every worker process is given.
#[derive(clap::Args)]
pub struct WorkerProcess {
    /// The node's data directory (recordings/ and exports/).
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    pub data: PathBuf,
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

/// Which worker a process runs.
pub(crate) enum Role {
    /// `psm-encoder`.
    Encoder(EncodeArgs),
    /// `psm-uploader`.
    Uploader(StoreArgs),
}

/// The `main` of `psm-encoder` and `psm-uploader`: connect, read the settings, serve until
/// Ctrl-C or SIGTERM, then finish the sessions in hand.
pub async fn serve_process(process: WorkerProcess, role: Role) -> anyhow::Result<()> {
    init_logging();
    let data = &process.data;
    let plane = process.control_plane.connect(data).await?;
    let pam = pam_settings(plane.settings.as_deref()).await?;
    let cp = plane.queue;
    let ttl = process.control_plane.engine_config().lease_ttl;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (name, run) = match &role {
        Role::Encoder(encode) => {
            let w = Arc::new(encoder(
                cp,
                data,
                encode,
                &process.worker,
                ttl,
                pam.as_ref(),
            )?);
            // A remote control plane's web UI trusts only registered encoders' sets (M12).
            if let (Some(remote), Some(key)) = (process.control_plane.remote(), w.manifest_signer())
            {
                remote::register_signer(
                    &remote.client()?,
                    w.instance().as_str(),
                    psm_client::wire::SignerKind::Encoder,
                    &key,
                )
                .await?;
            }
            ("encoder", tokio::spawn(w.run(stop_rx)))
        }
        Role::Uploader(store) => {
            let w = Arc::new(uploader(
                cp,
                data,
                store,
                &process.worker,
                ttl,
                pam.as_ref(),
            )?);
            ("uploader", tokio::spawn(w.run(stop_rx)))
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate() => {}
    }
    tracing::info!("stopping: finishing the sessions in hand");
    let _ = stop_tx.send(true);
    let summary = run.await?;
    tracing::info!(
        completed = summary.completed.len(),
        failed = summary.failed.len(),
        lease_lost = summary.lease_lost.len(),
        "{name} stopped"
    );
    Ok(())
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending().await
}

/// Progress bars for manual runs: one per session in hand.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<std::collections::HashMap<SessionId, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(Default::default()),
        }
    }
}

impl EventSink for Bars {
    fn event(&self, event: &PipelineEvent) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        match event {
            PipelineEvent::Started {
                step,
                session,
                total_bytes,
            } => {
                let bar = self.multi.add(ProgressBar::new(*total_bytes));
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                ) {
                    bar.set_style(style);
                }
                bar.set_prefix(format!("{} {session}", step.as_str()));
                bars.insert(*session, bar);
            }
            PipelineEvent::Progress { session, bytes, .. } => {
                if let Some(bar) = bars.get(session) {
                    bar.inc(*bytes);
                }
            }
            PipelineEvent::Finished { session, .. } => {
                if let Some(bar) = bars.remove(session) {
                    bar.finish_with_message("done");
                }
            }
            PipelineEvent::Failed { session, error, .. } => {
                if let Some(bar) = bars.remove(session) {
                    bar.abandon_with_message(format!("failed: {error}"));
                } else {
                    let _ = self.multi.println(format!("{session}: failed: {error}"));
                }
            }
            PipelineEvent::DiskNearlyFull {
                path, free_bytes, ..
            } => {
                let _ = self.multi.println(format!(
                    "disk at {} nearly full ({} MiB free): waiting",
                    path.display(),
                    free_bytes >> 20
                ));
            }
            _ => {}
        }
    }
}

/// `psm upload` / `psm encode`: one manual drain of a queue, with progress bars.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Upload every session waiting for upload now (Done-Encoded), with progress bars.
    Upload(Box<ManualArgs>),
    /// Encode every session waiting for encoding now (Ended), with progress bars.
    Encode(Box<ManualArgs>),
}

#[derive(clap::Args)]
pub struct ManualArgs {
    /// The node's data directory.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    pub data: PathBuf,
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub encode: EncodeArgs,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let (args, encode) = match command {
        Command::Upload(args) => (args, false),
        Command::Encode(args) => (args, true),
    };
    let plane = args.control_plane.connect(&args.data).await?;
    let pam = pam_settings(plane.settings.as_deref()).await?;
    let cp = plane.queue;
    let ttl = args.control_plane.engine_config().lease_ttl;
    let bars = Arc::new(Bars::new());
    let (verb, summary) = if encode {
        let w = encoder(
            cp,
            &args.data,
            &args.encode,
            &args.worker,
            ttl,
            pam.as_ref(),
        )?
        .with_events(bars);
        ("encoded", Arc::new(w).run_until_idle().await)
    } else {
        let w = uploader(cp, &args.data, &args.store, &args.worker, ttl, pam.as_ref())?
            .with_events(bars);
        ("uploaded", Arc::new(w).run_until_idle().await)
    };
    println!(
        "{verb} {}, failed {}, lease lost {}",
        summary.completed.len(),
        summary.failed.len(),
        summary.lease_lost.len()
    );
    for (session, reason) in &summary.failed {
        println!("  {session}: {reason}");
    }
    anyhow::ensure!(summary.failed.is_empty(), "some sessions failed");
    Ok(())
}
