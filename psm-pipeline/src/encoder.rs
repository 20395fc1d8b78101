//! The encoder: claims Ended sessions, verifies the raw `.psmr`, writes the configured exports,
//! gives an intact recording its seek index, writes the manifest, and commits Done-Encoded
//! with its fencing token.
//!
//! Outputs are idempotent: the exporters are deterministic and every file is written through
//! a hidden temporary and a rename, the manifest last, so an encoder that retakes a session
//! after a crash produces byte-identical files. With an index key
//! ([`EncoderSettings::index_key`]), a recording that verified whole (every frame sealed,
//! every chunk decoded) gets its seek index after the exports, through an indexed copy renamed
//! over the raw file ([`crate::seek_index`]); one that has an index already is left as it is,
//! and the manifest's checksum describes the raw file as it is stored. A damaged or truncated
//! recording is encoded as far as it is intact, the gaps are listed in the manifest (and
//! marked in the exports), and the raw file is kept as it was and uploaded with the rest.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use psm_core::{Completion, CoreError, Lease, RecordingCommitment, SessionId, WorkQueue};
use psm_recording::export::{self, AsciicastOptions, ExportSummary};
use psm_recording::index::IndexOptions;
use psm_recording::{
    Micros, ReadOptions, Reader, RecipientPublic, RecipientSecret, RecordedProtocol,
    RecordingError, SigningKey, VerifyingKey,
};
use psm_storage::Checksum;
use tokio::sync::watch;

use crate::error::PipelineError;
use crate::events::{EventSink, NoEvents, PipelineEvent, Step};
use crate::graphics::{SheetOptions, VideoOptions, export_contact_sheet, export_video};
use crate::layout::{LocalLayout, MANIFEST_FILE, RAW_OBJECT_NAME};
use crate::manifest::{Gap, IntegrityReport, Manifest, ManifestFile, sync_dir};
use crate::seek_index::{IndexOutcome, index_recording};
use crate::worker::{RunSummary, StepWorker, WorkerConfig, run_loop};

/// An export the encoder can write. Each applies to terminal sessions (SSH), graphical
/// sessions (RDP) or both; the encoder writes those of the configured kinds that apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ExportKind {
    /// asciicast v2 (`session.cast`), playable by asciinema. Terminal sessions.
    Asciicast,
    /// Plain text transcript with timestamps (`transcript.txt`). Any session.
    Transcript,
    /// Command index as JSON (`commands.json`): what was typed and run, for search. Any
    /// session.
    Commands,
    /// H.264 MP4 video of the screen (`session.mp4`), through ffmpeg. Graphical sessions.
    Video,
    /// A grid of thumbnails at even times (`contact-sheet.png`). Graphical sessions.
    ContactSheet,
}

impl ExportKind {
    /// Every kind, in the order they are written.
    pub const ALL: [ExportKind; 5] = [
        ExportKind::Asciicast,
        ExportKind::Transcript,
        ExportKind::Commands,
        ExportKind::Video,
        ExportKind::ContactSheet,
    ];

    /// The file name in the set.
    pub const fn file_name(self) -> &'static str {
        match self {
            ExportKind::Asciicast => "session.cast",
            ExportKind::Transcript => "transcript.txt",
            ExportKind::Commands => "commands.json",
            ExportKind::Video => "session.mp4",
            ExportKind::ContactSheet => "contact-sheet.png",
        }
    }

    /// The manifest's `kind`, and the name in settings and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExportKind::Asciicast => "asciicast",
            ExportKind::Transcript => "transcript",
            ExportKind::Commands => "commands",
            ExportKind::Video => "video",
            ExportKind::ContactSheet => "contact-sheet",
        }
    }

    /// Parses a name as GetPAMSettings' `PSMExportFormats` or `--exports` give it: the
    /// [`as_str`](Self::as_str) names, and `text` (transcript), `mp4` (video), `thumbnails`
    /// (contact sheet), in any case.
    ///
    /// ```
    /// use psm_pipeline::ExportKind;
    /// assert_eq!(ExportKind::from_name("text"), Some(ExportKind::Transcript));
    /// assert_eq!(ExportKind::from_name("MP4"), Some(ExportKind::Video));
    /// assert_eq!(ExportKind::from_name("pdf"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "asciicast" | "cast" => Some(ExportKind::Asciicast),
            "transcript" | "text" | "txt" => Some(ExportKind::Transcript),
            "commands" | "command-index" => Some(ExportKind::Commands),
            "video" | "mp4" => Some(ExportKind::Video),
            "contact-sheet" | "contactsheet" | "contact_sheet" | "thumbnails" => {
                Some(ExportKind::ContactSheet)
            }
            _ => None,
        }
    }

    /// Whether this export means anything for a recording of `protocol`.
    pub fn applies_to(self, protocol: &RecordedProtocol) -> bool {
        let graphical = protocol.is_graphical();
        match self {
            ExportKind::Asciicast => !graphical,
            ExportKind::Transcript | ExportKind::Commands => true,
            ExportKind::Video | ExportKind::ContactSheet => graphical,
        }
    }
}

/// What the encoder produces: the control plane's `PSMEncodingEnabled`, export list and
/// recipient key (see [`crate::settings`]), plus what it needs to read recordings and drive
/// ffmpeg.
#[derive(Clone, Debug)]
pub struct EncoderSettings {
    /// The exports to write, where they apply. Empty (encoding disabled): the raw recording
    /// is only verified, given its seek index (with an [`index_key`](Self::index_key)) and
    /// described in the manifest.
    pub exports: BTreeSet<ExportKind>,
    /// The recipient secret that decrypts encrypted recordings. Without it, an encrypted
    /// recording gets no exports (they would be plaintext) and is stored as it is.
    pub identity: Option<RecipientSecret>,
    /// Signers whose recordings are trusted, besides those in
    /// [`gateway_signers`](Self::gateway_signers); both empty (and no registry) accepts any
    /// signer.
    pub trusted_signers: Vec<VerifyingKey>,
    /// The registered gateways' keys (`DATA/keys/signers/gateways`), read at each encoding.
    /// A recording signed by a key neither here nor in
    /// [`trusted_signers`](Self::trusted_signers) is not encoded: it is stored as recorded,
    /// without exports or seek index, its manifest saying who signed it, and the session's
    /// note says it is not trusted.
    pub gateway_signers: Option<psm_recording::keys::SignerRegistry>,
    /// The encoder's key: it signs the seek index appended to every recording that
    /// verified whole (readers that trust only given keys need its public half too) and the
    /// manifest of every set (`manifest.sig`, which the uploader and the web UI check against
    /// the registered encoders' keys). `None`: recordings are stored as the gateway wrote
    /// them, seeking in them replays from the start, and manifests are unsigned. Encoders
    /// sharing a data directory should share this key, so that they index a recording
    /// identically.
    pub index_key: Option<SigningKey>,
    /// The deployment's recipient key (`PSMEncryptionKey`): a recording that is not encrypted
    /// for it is still encoded and stored, with a note on the session saying so.
    pub expected_recipient: Option<RecipientPublic>,
    /// How videos are encoded.
    pub video: VideoOptions,
    /// How contact sheets are laid out.
    pub sheet: SheetOptions,
}

impl Default for EncoderSettings {
    /// Every export, no decryption key, any signer, no seek index, no expected recipient.
    fn default() -> Self {
        Self {
            exports: ExportKind::ALL.into_iter().collect(),
            identity: None,
            trusted_signers: Vec::new(),
            gateway_signers: None,
            index_key: None,
            expected_recipient: None,
            video: VideoOptions::default(),
            sheet: SheetOptions::default(),
        }
    }
}

/// The encoder worker.
pub struct Encoder {
    cp: Arc<dyn WorkQueue>,
    layout: LocalLayout,
    settings: EncoderSettings,
    config: WorkerConfig,
    sink: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("layout", &self.layout)
            .field("exports", &self.settings.exports)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Whether `ffmpeg -version` runs and succeeds.
fn ffmpeg_runs(ffmpeg: &Path) -> bool {
    std::process::Command::new(ffmpeg)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Output of one encoding, before the manifest is written.
struct Encoded {
    manifest: Manifest,
    exports: Vec<PathBuf>,
}

impl Encoder {
    /// An encoder over a control plane and the node's local layout.
    pub fn new(
        cp: Arc<dyn WorkQueue>,
        layout: LocalLayout,
        settings: EncoderSettings,
        config: WorkerConfig,
    ) -> Self {
        Self {
            cp,
            layout,
            settings,
            config,
            sink: Arc::new(NoEvents),
        }
    }

    /// Sends events to `sink` too (progress bars).
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = sink;
        self
    }

    /// This encoder's process instance.
    pub fn instance(&self) -> &psm_core::ProcessInstance {
        &self.config.instance
    }

    /// The public half of the key it signs seek indexes and manifests with, if it signs.
    pub fn manifest_signer(&self) -> Option<psm_recording::VerifyingKey> {
        self.settings.index_key.as_ref().map(|k| k.verifying_key())
    }

    /// Serves until `stop` turns true, then finishes the sessions in hand.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> RunSummary {
        self.warn_without_ffmpeg().await;
        run_loop(self, stop, false).await
    }

    /// Says at start, rather than at the first RDP session, that the video export is
    /// configured (it is by default) but ffmpeg cannot be run: such sessions fail their
    /// encoding attempts, naming the package, until it is installed.
    async fn warn_without_ffmpeg(&self) {
        if !self.settings.exports.contains(&ExportKind::Video) {
            return;
        }
        let ffmpeg = self.settings.video.ffmpeg.clone();
        let probe = ffmpeg.clone();
        let runs = tokio::task::spawn_blocking(move || ffmpeg_runs(&probe))
            .await
            .unwrap_or(false);
        if !runs {
            tracing::warn!(ffmpeg = %ffmpeg.display(),
                "the video export is configured but ffmpeg cannot be run: RDP sessions will \
                 fail encoding (and be retried) until it is installed (apt-get install ffmpeg), \
                 its path is given, or video is left out of the exports");
        }
    }

    /// Encodes every session that can be claimed now, then returns (the `psm encode` command).
    pub async fn run_until_idle(self: Arc<Self>) -> RunSummary {
        let (_tx, rx) = watch::channel(false);
        run_loop(self, rx, true).await
    }

    /// Encodes one session into its exports directory and writes its manifest. Does not
    /// commit. Nothing is known of what its gateway committed to: see
    /// [`encode_committed`](Self::encode_committed).
    pub async fn encode(&self, session: SessionId) -> Result<Completion, PipelineError> {
        self.encode_committed(session, None).await
    }

    /// [`encode`](Self::encode) a session whose gateway committed to its recording at
    /// EndSession (the claim carries it): a recording that does not end at the committed
    /// chain value (changed, cut short or swapped after the session ended) is not encoded but
    /// stored as recorded, and the manifest says why.
    pub async fn encode_committed(
        &self,
        session: SessionId,
        committed: Option<RecordingCommitment>,
    ) -> Result<Completion, PipelineError> {
        let raw = self.layout.raw_recording(session);
        let size = match tokio::fs::metadata(&raw).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PipelineError::RawMissing { session, path: raw });
            }
            Err(e) => return Err(PipelineError::local(&raw)(e)),
        };
        let dir = self.layout.exports_dir(session);
        let passes = self.settings.exports.len().max(1) as u64;
        self.sink.event(&PipelineEvent::Started {
            step: Step::Encode,
            session,
            total_bytes: size.saturating_mul(passes + 1),
        });
        let settings = self.settings.clone();
        let sink = self.sink.clone();
        let (raw2, dir2) = (raw.clone(), dir.clone());
        let mut encoded = tokio::task::spawn_blocking(move || {
            encode_blocking(
                session,
                &raw2,
                &dir2,
                size,
                committed,
                &settings,
                sink.as_ref(),
            )
        })
        .await
        .map_err(|e| PipelineError::Recording {
            session,
            path: raw.clone(),
            reason: format!("encoding task failed: {e}"),
        })??;
        // The raw file as it will be stored: with its seek index, if it got one.
        let (checksum, hashed) = Checksum::of_file(&raw).await?;
        self.sink.event(&PipelineEvent::Progress {
            step: Step::Encode,
            session,
            bytes: hashed,
        });
        encoded.manifest.raw.size = hashed;
        encoded.manifest.raw.blake3 = checksum;
        // Anything in the directory that this encoding did not write is a leftover.
        let keep: BTreeSet<PathBuf> = encoded.exports.iter().cloned().collect();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_file() && !keep.contains(&path) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        encoded
            .manifest
            .write_signed(&dir, self.settings.index_key.as_ref())?;
        let m = &encoded.manifest;
        let note = m.note();
        if m.integrity.complete {
            tracing::info!(session_id = %session, exports = m.exports.len(), raw_bytes = m.raw.size,
                "recording verified and encoded");
        } else {
            tracing::error!(session_id = %session, gaps = m.integrity.gaps.len(),
                first_gap = %m.integrity.gaps.first().map_or("", |g| g.reason.as_str()),
                raw = %raw.display(),
                "recording damaged or truncated: encoded what is intact, gaps marked, raw file kept");
        }
        for w in &m.warnings {
            tracing::warn!(session_id = %session, warning = %w, "encoded with a warning");
        }
        Ok(Completion {
            recording_format: Some(".psmr".into()),
            ssh_logs_uploaded: None,
            note,
        })
    }
}

fn recording_err(session: SessionId, path: &Path) -> impl Fn(RecordingError) -> PipelineError + '_ {
    move |e| PipelineError::Recording {
        session,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The first 16 hex digits of a chain value, for messages.
fn short_hex(chain: &[u8; 32]) -> String {
    hex::encode(&chain[..8])
}

/// Writes one export through `.<name>.tmp`, fsync and a rename; returns its manifest entry,
/// or `None` when the export had nothing to write (a graphical session without a screen).
fn write_export(
    dir: &Path,
    kind: ExportKind,
    run: impl FnOnce(&Path) -> Result<Option<ExportSummary>, PipelineError>,
) -> Result<Option<(ManifestFile, ExportSummary, PathBuf)>, PipelineError> {
    let path = dir.join(kind.file_name());
    let temp = dir.join(format!(".{}.tmp", kind.file_name()));
    let result = (|| {
        let Some(summary) = run(&temp)? else {
            return Ok(None);
        };
        let file = std::fs::File::open(&temp).map_err(PipelineError::local(&temp))?;
        file.sync_all().map_err(PipelineError::local(&temp))?;
        drop(file);
        std::fs::rename(&temp, &path).map_err(PipelineError::local(&path))?;
        Ok(Some(summary))
    })();
    let summary = match result {
        Ok(Some(s)) => s,
        other => {
            let _ = std::fs::remove_file(&temp);
            return other.map(|_| None);
        }
    };
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(&path).map_err(PipelineError::local(&path))?;
    let size = std::io::copy(&mut file, &mut hasher).map_err(PipelineError::local(&path))?;
    let entry = ManifestFile {
        name: kind.file_name().into(),
        kind: kind.as_str().into(),
        size,
        blake3: Checksum::from_bytes(*hasher.finalize().as_bytes()),
    };
    Ok(Some((entry, summary, path)))
}

/// Runs a text exporter into a new file at `temp`.
fn text_export(
    temp: &Path,
    session: SessionId,
    raw: &Path,
    run: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<ExportSummary, RecordingError>,
) -> Result<Option<ExportSummary>, PipelineError> {
    let file = std::fs::File::create(temp).map_err(PipelineError::local(temp))?;
    let mut out = std::io::BufWriter::new(file);
    let summary = run(&mut out).map_err(|e| match e {
        RecordingError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            PipelineError::local(temp)(source)
        }
        other => recording_err(session, raw)(other),
    })?;
    out.flush().map_err(PipelineError::local(temp))?;
    Ok(Some(summary))
}

/// Adds `more` to `gaps`, each gap once.
fn merge_gaps(gaps: &mut Vec<Gap>, more: Vec<Gap>) {
    for g in more {
        if !gaps.contains(&g) {
            gaps.push(g);
        }
    }
}

/// Everything but hashing the raw file: the manifest's raw entry is filled in afterwards,
/// once the file is final.
fn encode_blocking(
    session: SessionId,
    raw: &Path,
    dir: &Path,
    size: u64,
    committed: Option<RecordingCommitment>,
    settings: &EncoderSettings,
    sink: &dyn EventSink,
) -> Result<Encoded, PipelineError> {
    std::fs::create_dir_all(dir).map_err(PipelineError::local(dir))?;
    // The directory is not closed while it is rewritten.
    match std::fs::remove_file(dir.join(MANIFEST_FILE)) {
        Ok(()) => sync_dir(dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PipelineError::local(dir)(e)),
    }
    let raw_entry = ManifestFile {
        name: RAW_OBJECT_NAME.into(),
        kind: "raw".into(),
        size,
        blake3: Checksum::of(b""),
    };
    let mut manifest = Manifest::new(session, raw_entry);
    manifest.committed = committed;
    // The signer is checked below, against the registry as it is now: the reader accepts
    // any, so that an untrusted recording is still described (and kept) rather than lost.
    let mut trusted = settings.trusted_signers.clone();
    let registered = settings
        .gateway_signers
        .as_ref()
        .map(|r| r.entries())
        .unwrap_or_default();
    trusted.extend(registered.iter().map(|(_, k)| *k));
    let check_signer = settings.gateway_signers.is_some() || !trusted.is_empty();
    let options = ReadOptions {
        identity: settings.identity.clone(),
        trusted_signers: Vec::new(),
        full_scan: true,
    };
    let mut reader = match Reader::open(raw, options.clone()) {
        Ok(r) => r,
        Err(RecordingError::Io { source, context })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(PipelineError::RawMissing {
                session,
                path: raw.to_owned(),
            })
            .inspect_err(|_| tracing::debug!(context, "raw recording vanished"));
        }
        Err(e) => {
            // Nothing is readable (no valid header): keep and upload the raw file as it is.
            manifest.integrity = IntegrityReport {
                complete: false,
                gaps: vec![Gap {
                    from: Micros(0),
                    to: None,
                    reason: format!("unreadable recording: {e}"),
                }],
            };
            return Ok(Encoded {
                manifest,
                exports: Vec::new(),
            });
        }
    };
    let header = reader.header().clone();
    if header.session_id != session {
        return Err(PipelineError::Recording {
            session,
            path: raw.to_owned(),
            reason: format!(
                "the file records session {}, not this one",
                header.session_id
            ),
        });
    }
    manifest.target = Some(header.target.clone());
    manifest.user = Some(header.user.clone());
    manifest.protocol = Some(header.protocol.as_str().to_owned());
    let signer = reader.signer();
    manifest.recording_signer = Some(signer.to_string());
    manifest.gateway = registered
        .iter()
        .find(|(_, k)| *k == signer)
        .map(|(n, _)| n.clone());
    if check_signer && !trusted.contains(&signer) {
        // Anyone can write a validly self-signed file: one no registered gateway signed is
        // kept as evidence, but nothing is derived from it that would look trusted.
        let reason = format!(
            "signed by {signer}, which is not a registered gateway's key: not encoded, \
             stored as recorded"
        );
        tracing::error!(session_id = %session, signer = %signer,
            "recording signed by an unknown key: stored without exports");
        manifest.integrity = IntegrityReport {
            complete: false,
            gaps: vec![Gap {
                from: Micros(0),
                to: None,
                reason,
            }],
        };
        return Ok(Encoded {
            manifest,
            exports: Vec::new(),
        });
    }
    let chain_end = reader.chain_end();
    manifest.recording_chain = Some(hex::encode(chain_end));
    if let Some(c) = committed
        && c.chain != chain_end
    {
        // Signed by a registered gateway, but not the recording that gateway committed to
        // when the session ended: changed, cut short or swapped since. Kept as evidence.
        let reason = format!(
            "does not match what its gateway committed to at EndSession ({} chunks, {} \
             events, chain {}): the file ends at chain {} after {} chunks, so it was changed, \
             cut short or replaced after the session ended: not encoded, stored as recorded",
            c.chunks,
            c.events,
            short_hex(&c.chain),
            short_hex(&chain_end),
            reader.chunks().len()
        );
        tracing::error!(session_id = %session, committed = %c, found = %hex::encode(chain_end),
            "recording does not match its gateway's commitment: stored without exports");
        manifest.integrity = IntegrityReport {
            complete: false,
            gaps: vec![Gap {
                from: Micros(0),
                to: None,
                reason,
            }],
        };
        return Ok(Encoded {
            manifest,
            exports: Vec::new(),
        });
    }
    let recipients = reader.recipients();
    if let Some(expected) = &settings.expected_recipient
        && !recipients.contains(expected)
    {
        manifest.warnings.push(format!(
            "the recording is not encrypted for the deployment's recipient key \
             (PSMEncryptionKey {expected}); stored as recorded"
        ));
    }
    let readable = !reader.is_encrypted()
        || settings
            .identity
            .as_ref()
            .is_some_and(|id| recipients.contains(&id.public()));
    if !readable {
        // Sealed for someone else: no exports (they would be plaintext); the signatures and
        // the chain were checked when it was opened.
        tracing::info!(session_id = %session, recipients = recipients.len(),
            "recording is encrypted and this encoder holds no key for it: stored without exports");
        let mut gaps: Vec<Gap> = reader
            .damaged_chunks()
            .iter()
            .map(|(seq, why)| Gap {
                from: Micros(0),
                to: None,
                reason: format!("chunk {seq} damaged: {why}"),
            })
            .collect();
        if !reader.integrity().is_intact() {
            gaps.push(Gap {
                from: reader.duration(),
                to: None,
                reason: reader.integrity().to_string(),
            });
        }
        manifest.integrity = IntegrityReport {
            complete: gaps.is_empty(),
            gaps,
        };
        return Ok(Encoded {
            manifest,
            exports: Vec::new(),
        });
    }
    let progress = |_done: usize, total: usize| {
        if total > 0 {
            // One event per chunk: bytes of raw recording this chunk stands for.
            sink.event(&PipelineEvent::Progress {
                step: Step::Encode,
                session,
                bytes: size / total as u64,
            });
        }
    };
    let mut gaps: Option<Vec<Gap>> = None;
    let mut exports = Vec::new();
    // Terminals the recording has (0: no screen, so no seek index), and what the exports
    // left out: each omission with the exports that left it out.
    let mut terminals = 0u32;
    let mut left_out: Vec<(String, Vec<&'static str>)> = Vec::new();
    let kinds = settings
        .exports
        .iter()
        .filter(|k| k.applies_to(&header.protocol));
    for kind in kinds {
        // Each export reads from the start: reopen so no exporter sees another's position.
        // The open above checked every frame; chunks are checked again as they are read.
        let lazy = ReadOptions {
            full_scan: false,
            ..options.clone()
        };
        let mut r = Reader::open(raw, lazy).map_err(recording_err(session, raw))?;
        let written = write_export(dir, *kind, |temp| match kind {
            ExportKind::Asciicast => text_export(temp, session, raw, |f| {
                export::export_asciicast(&mut r, f, &AsciicastOptions::default(), progress)
            }),
            ExportKind::Transcript => text_export(temp, session, raw, |f| {
                export::export_text(&mut r, f, progress)
            }),
            ExportKind::Commands => text_export(temp, session, raw, |f| {
                export::export_commands(&mut r, f, progress)
            }),
            ExportKind::Video => Ok(export_video(&mut r, temp, &settings.video, progress)?.map(
                |(summary, info)| {
                    tracing::debug!(session_id = %session, frames = info.frames,
                        width = info.width, height = info.height, "video written");
                    summary
                },
            )),
            ExportKind::ContactSheet => {
                let file = std::fs::File::create(temp).map_err(PipelineError::local(temp))?;
                let mut out = std::io::BufWriter::new(file);
                let sheet = export_contact_sheet(&mut r, &mut out, &settings.sheet, progress)?;
                out.flush().map_err(PipelineError::local(temp))?;
                Ok(sheet.map(|(summary, _)| summary))
            }
        })?;
        let Some((entry, summary, path)) = written else {
            tracing::info!(session_id = %session, export = kind.as_str(),
                "nothing to export (no screen in the recording)");
            continue;
        };
        merge_gaps(gaps.get_or_insert_with(Vec::new), summary.gaps.clone());
        terminals = terminals.max(summary.terminals);
        for o in &summary.omitted {
            let o = o.to_string();
            match left_out.iter_mut().find(|(text, _)| *text == o) {
                Some((_, kinds)) => kinds.push(kind.as_str()),
                None => left_out.push((o, vec![kind.as_str()])),
            }
        }
        manifest.exports.push(entry);
        exports.push(path);
    }
    let gaps = match gaps {
        Some(g) => g,
        // No exports: still read every chunk, to verify the recording and find its gaps.
        None => {
            let summary = export::walk(&mut reader, |_| Ok(()), progress)
                .map_err(recording_err(session, raw))?;
            terminals = summary.terminals;
            summary.gaps.clone()
        }
    };
    manifest.left_out = left_out
        .into_iter()
        .take(crate::manifest::MAX_WARNINGS)
        .map(|(text, kinds)| format!("{}: {text}", kinds.join(", ")))
        .collect();
    manifest.integrity = IntegrityReport {
        complete: reader.integrity().is_intact() && gaps.is_empty(),
        gaps,
    };
    if !reader.integrity().is_intact() && manifest.integrity.gaps.is_empty() {
        manifest.integrity.gaps.push(Gap {
            from: Micros(0),
            to: None,
            reason: reader.integrity().to_string(),
        });
    }
    drop(reader);
    // A recording with no terminal (exec channels without a pty, port forwards) has no
    // screen to seek in: its index would hold no keyframe, and building it costs a copy and
    // two more passes over the raw file.
    let screens = terminals > 0 || header.protocol.is_graphical();
    if let Some(key) = &settings.index_key
        && manifest.integrity.complete
    {
        if screens {
            add_index(session, raw, key, settings, &mut manifest)?;
        } else {
            tracing::info!(session_id = %session, "no terminal in the recording: no seek index");
        }
    }
    Ok(Encoded { manifest, exports })
}

/// Gives a recording that verified whole its seek index. A recording that cannot have one is
/// stored without it, with a warning; a file that cannot be written fails the attempt.
fn add_index(
    session: SessionId,
    raw: &Path,
    key: &SigningKey,
    settings: &EncoderSettings,
    manifest: &mut Manifest,
) -> Result<(), PipelineError> {
    let options = IndexOptions {
        identity: settings.identity.clone(),
        ..IndexOptions::new(key.clone())
    };
    match index_recording(raw, &options) {
        Ok(IndexOutcome::Added(s)) => {
            tracing::info!(session_id = %session, keyframes = s.keyframes, index_bytes = s.bytes,
                "seek index appended");
        }
        Ok(IndexOutcome::Present(i)) => {
            tracing::info!(session_id = %session, signer = %i.signer,
                "the recording has a seek index already: left as it is");
        }
        Err(e @ PipelineError::SeekIndex { .. }) => {
            tracing::warn!(session_id = %session, error = %e, "stored without a seek index");
            manifest
                .warnings
                .push(format!("stored without a seek index: {e}"));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

#[async_trait]
impl StepWorker for Encoder {
    fn step(&self) -> Step {
        Step::Encode
    }
    fn control_plane(&self) -> &Arc<dyn WorkQueue> {
        &self.cp
    }
    fn config(&self) -> &WorkerConfig {
        &self.config
    }
    fn sink(&self) -> &Arc<dyn EventSink> {
        &self.sink
    }
    async fn claim(&self, limit: u32) -> Result<Vec<Lease>, CoreError> {
        self.cp
            .claim_for_encoding(&self.config.instance, limit)
            .await
    }
    async fn claim_among(&self, limit: u32, among: &[SessionId]) -> Result<Vec<Lease>, CoreError> {
        self.cp
            .claim_for_encoding_among(&self.config.instance, limit, among)
            .await
    }
    fn local_candidates(&self) -> std::io::Result<Vec<SessionId>> {
        crate::affinity::local_raw_recordings(&self.layout)
    }
    async fn process(&self, lease: &Lease) -> Result<Completion, PipelineError> {
        self.encode_committed(lease.session, lease.recording).await
    }
    async fn after_commit(&self, session: SessionId) {
        self.sink.event(&PipelineEvent::Finished {
            step: Step::Encode,
            session,
            bytes: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ffmpeg_probe_tells_a_program_that_cannot_encode() {
        assert!(!ffmpeg_runs(Path::new("/nonexistent/ffmpeg")));
        assert!(!ffmpeg_runs(Path::new("false")));
        // Debian's ffmpeg, which scripts/test installs (the graphics tests need it too).
        assert!(ffmpeg_runs(Path::new("ffmpeg")));
    }
}
