//! Compliance reports (issue 20, item 5): who reached which target, when, from where, under
//! which checkout, what they ran, what policy did, what went over the session, and whether
//! each recording is intact and signed by a registered gateway; sessions without a
//! recording or with gaps; refusals outside the access windows; dormant accounts. Rendered
//! as HTML, CSV, JSON or PDF ([`ReportFormat`]), each carrying the SHA-256 of every recording it
//! cites, and sealed with an Ed25519 signature ([`seal`]) that `psm report verify` checks.
//!
//! The gathering lives here, in psm-server, because this is where the session store, the
//! user directory, the recording files (local or in the store) and the trusted signer
//! registries already meet (the web UI's replay and search read the same things); the
//! `psm report` command and the web UI's download both call [`build`].
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::store::MemoryStore;
//! use psm_server::report::{self, ReportFormat, ReportQuery, ReportSources};
//! let sources = ReportSources::new(Arc::new(MemoryStore::new()));
//! let query = ReportQuery::period("2026-12-01", "2026-12-31")?;
//! let report = report::build(&sources, &query, "auditor").await?;
//! assert!(report.sessions.is_empty());
//! let key = psm_recording::SigningKey::generate()?;
//! let file = report::seal::seal(&report, ReportFormat::Json, &key)?;
//! let verified = report::seal::verify(&file, &[key.verifying_key()])?;
//! assert_eq!(verified.format, ReportFormat::Json);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use psm_core::directory::UserDirectory;
use psm_core::store::{AuditQuery, ListCursor, ListQuery, SessionStore};
use psm_core::{AuditAction, PrivSession, SessionId, Timestamp};
use psm_recording::event::EventKind;
use psm_recording::export::{CommandIndex, Item, walk};
use psm_recording::keys::SignerRegistry;
use psm_recording::reader::{Integrity, VerifyOptions, verify_reader};
use psm_recording::{ReadOptions, Reader, RecipientSecret};
use psm_storage::RecordingStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod csv_table;
mod html;
mod pdf;
pub mod seal;

/// What can go wrong making or checking a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A bad request (a date that does not parse, an unknown format).
    #[error("{0}")]
    Invalid(String),
    /// The control plane's store failed.
    #[error(transparent)]
    Core(#[from] psm_core::CoreError),
    /// Rendering failed.
    #[error("rendering the report: {0}")]
    Render(String),
    /// The file is not a sealed PSM report, or its seal does not hold.
    #[error("{0}")]
    Refused(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The formats a report is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// A self-contained page (no script).
    Html,
    /// One row per session (and per refusal, per dormant account), for spreadsheets.
    Csv,
    /// The whole report as one JSON document.
    Json,
    /// A printable A4 document.
    Pdf,
}

impl ReportFormat {
    /// `html`, `csv`, `json` or `pdf`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Html => "html",
            ReportFormat::Csv => "csv",
            ReportFormat::Json => "json",
            ReportFormat::Pdf => "pdf",
        }
    }

    /// The MIME type of the file.
    pub const fn mime(self) -> &'static str {
        match self {
            ReportFormat::Html => "text/html; charset=utf-8",
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Json => "application/json",
            ReportFormat::Pdf => "application/pdf",
        }
    }
}

impl std::str::FromStr for ReportFormat {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, ReportError> {
        match s.to_ascii_lowercase().as_str() {
            "html" => Ok(ReportFormat::Html),
            "csv" => Ok(ReportFormat::Csv),
            "json" => Ok(ReportFormat::Json),
            "pdf" => Ok(ReportFormat::Pdf),
            _ => Err(ReportError::Invalid(format!(
                "unknown report format {:?}: html, csv, json or pdf",
                s.chars().take(20).collect::<String>()
            ))),
        }
    }
}

/// Where a report reads from.
#[derive(Clone)]
pub struct ReportSources {
    /// Sessions and the audit log.
    pub sessions: Arc<dyn SessionStore>,
    /// Users and roles (dormant accounts, the role filter). `None`: those parts say so.
    pub directory: Option<Arc<dyn UserDirectory>>,
    /// Raw recordings (`DATA/recordings`).
    pub recordings_dir: Option<PathBuf>,
    /// The store uploaded recording sets went to (`sessions/<id>/recording.psmr`).
    pub store: Option<Arc<dyn RecordingStore>>,
    /// Opens encrypted recordings (without it their commands are not listed; their
    /// integrity is still checked).
    pub identity: Option<RecipientSecret>,
    /// The registered gateways' keys: a recording signed by another key is `untrusted`.
    pub gateway_signers: Option<SignerRegistry>,
    /// Largest recording read, in bytes (a larger one is listed as not read).
    pub max_recording_bytes: u64,
    /// Most sessions one report covers; past it the report says it stopped.
    pub max_sessions: usize,
    /// Most commands, statements, policy events and transfers listed per session.
    pub max_items_per_session: usize,
}

impl ReportSources {
    /// Sources with only a session store (no directory, no recordings).
    pub fn new(sessions: Arc<dyn SessionStore>) -> Self {
        Self {
            sessions,
            directory: None,
            recordings_dir: None,
            store: None,
            identity: None,
            gateway_signers: None,
            max_recording_bytes: 512 << 20,
            max_sessions: 10_000,
            max_items_per_session: 500,
        }
    }
}

/// Which sessions a report covers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportQuery {
    /// Sessions that started at or after this.
    pub from: Timestamp,
    /// ... and before this.
    pub to: Timestamp,
    /// Only this user's sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only sessions to this target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only sessions of users who hold this role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Parses `2026-12-07` (the start of that day, UTC; with `end`, the start of the next day)
/// or an RFC 3339 time (`2026-12-07T15:00:00Z`).
pub fn parse_time(s: &str, end: bool) -> Result<Timestamp, ReportError> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(Timestamp::from_offset_date_time(t));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt).map_err(|_| {
        ReportError::Invalid(format!(
            "{:?} is not a date (2026-12-07) or an RFC 3339 time (2026-12-07T15:00:00Z)",
            s.chars().take(40).collect::<String>()
        ))
    })?;
    let d = if end {
        d.next_day()
            .ok_or_else(|| ReportError::Invalid("the date is out of range".into()))?
    } else {
        d
    };
    Ok(Timestamp::from_offset_date_time(d.midnight().assume_utc()))
}

impl ReportQuery {
    /// From the start of day `from` to the end of day `to` (dates or RFC 3339 times).
    pub fn period(from: &str, to: &str) -> Result<Self, ReportError> {
        let q = Self {
            from: parse_time(from, false)?,
            to: parse_time(to, true)?,
            user: None,
            target: None,
            role: None,
        };
        if q.to <= q.from {
            return Err(ReportError::Invalid(format!(
                "the period is empty: {} is not before {}",
                q.from, q.to
            )));
        }
        Ok(q)
    }
}

/// One line of what happened in a session, at its offset from the start.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Activity {
    /// `HH:MM:SS` from the start of the recording.
    pub offset: String,
    /// What: a command, a statement, a policy decision, a transfer.
    pub text: String,
}

/// What checking a session's recording found.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordingVerdict {
    /// Complete, every signature and hash holds, signed by a registered gateway.
    Intact,
    /// Its writer stopped (crash, still recording): valid up to a point.
    Truncated,
    /// Changed after it was written.
    Tampered,
    /// Signed by a key no registered gateway holds.
    Untrusted,
    /// No recording of the session was found.
    Missing,
    /// Found but not read (too large, the store failed, not a recording).
    Unreadable,
}

impl RecordingVerdict {
    /// The spelling in every format.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordingVerdict::Intact => "intact",
            RecordingVerdict::Truncated => "truncated",
            RecordingVerdict::Tampered => "tampered",
            RecordingVerdict::Untrusted => "untrusted",
            RecordingVerdict::Missing => "missing",
            RecordingVerdict::Unreadable => "unreadable",
        }
    }
}

/// A session's recording as the report saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingCheck {
    /// The verdict.
    pub status: RecordingVerdict,
    /// The verdict in a sentence.
    pub detail: String,
    /// SHA-256 of the raw recording's bytes as read, when read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Its size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The key that signed it, and the gateway registered with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Parts that could not be read.
    pub gaps: Vec<String>,
}

/// One session.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEntry {
    /// The session id.
    pub id: String,
    /// The PSM user.
    pub user: String,
    /// The target.
    pub target: String,
    /// ssh, rdp, postgres...
    pub protocol: String,
    /// The client's address as the gateway saw it (from the recording's header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// When it opened.
    pub start: String,
    /// When it ended (none while open).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Seconds, to the end or to the last report while open.
    pub duration_secs: u64,
    /// Its lifecycle stage now.
    pub stage: String,
    /// The credential checkout it ran under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout: Option<String>,
    /// Why it was ended by someone else (admin, checkin, window), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated: Option<String>,
    /// Commands typed or run (and database statements).
    pub commands: Vec<Activity>,
    /// Policy alerts, blocks, pauses, terminations.
    pub policy: Vec<Activity>,
    /// Files that went over the session.
    pub transfers: Vec<Activity>,
    /// Whether one of the lists above was cut at the per-session limit.
    pub items_truncated: bool,
    /// The recording.
    pub recording: RecordingCheck,
}

/// A session refused by the control plane (outside the access windows, from a network not
/// allowed): from the audit log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedSession {
    /// When.
    pub at: String,
    /// The session id the gateway had given it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Who refused (the gateway's process).
    pub actor: String,
    /// What the audit log says (user, target, source, the window's reason).
    pub detail: String,
}

/// The per-user view ("privileged access by user").
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    /// The user.
    pub user: String,
    /// Their roles, if the directory knows them.
    pub roles: Vec<String>,
    /// Sessions in the period.
    pub sessions: usize,
    /// Distinct targets.
    pub targets: Vec<String>,
    /// Total seconds connected.
    pub duration_secs: u64,
    /// Policy events in their sessions.
    pub policy_events: usize,
    /// Their sessions whose recording is not intact.
    pub recordings_not_intact: usize,
}

/// A recording the report cites, with the hash an auditor checks later.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CitedRecording {
    /// The session.
    pub session: String,
    /// SHA-256 of the raw recording, hex.
    pub sha256: String,
}

/// A compliance report.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `PSM compliance report`.
    pub title: String,
    /// When it was made.
    pub generated_at: String,
    /// Who made it (a web user, or `psm report` on a data directory).
    pub generated_by: String,
    /// The period and filters.
    pub query: ReportQuery,
    /// Every session in the period that matched, newest first.
    pub sessions: Vec<SessionEntry>,
    /// Privileged access by user.
    pub by_user: Vec<UserSummary>,
    /// Sessions refused by access windows (preventive: they never reached the target).
    pub refusals: Vec<RefusedSession>,
    /// Sessions ended because an access window closed.
    pub window_closures: Vec<RefusedSession>,
    /// Users of the directory with no session in the period (`None`: no directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dormant_users: Option<Vec<String>>,
    /// Sessions without a usable recording, or whose recording has gaps, or is not intact.
    pub recording_exceptions: Vec<String>,
    /// Every recording cited, with its SHA-256.
    pub recordings: Vec<CitedRecording>,
    /// What the report could not cover, in sentences.
    pub notes: Vec<String>,
}

/// Micros to `HH:MM:SS`.
fn hms(us: u64) -> String {
    let s = us / 1_000_000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn contains(hay: &str, needle: &Option<String>) -> bool {
    needle
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .is_none_or(|n| hay.eq_ignore_ascii_case(n))
}

/// The raw recording of `id`: the local file, else the store's copy.
async fn load_recording(sources: &ReportSources, id: SessionId) -> Result<Option<Vec<u8>>, String> {
    let limit = sources.max_recording_bytes;
    if let Some(dir) = &sources.recordings_dir {
        let path = psm_recording::layout::raw_recording_in(dir, id);
        if let Ok(meta) = tokio::fs::metadata(&path).await
            && meta.is_file()
        {
            if meta.len() > limit {
                return Err(format!(
                    "the recording is {} bytes, more than a report reads ({limit})",
                    meta.len()
                ));
            }
            return tokio::fs::read(&path)
                .await
                .map(Some)
                .map_err(|e| format!("reading {}: {e}", path.display()));
        }
    }
    if let Some(store) = &sources.store {
        let key = psm_storage::layout::session_prefix(&id.to_string())
            .and_then(|p| p.join("recording.psmr"))
            .map_err(|e| e.to_string())?;
        match store.head(&key).await {
            Ok(Some(info)) if info.size > limit => {
                return Err(format!(
                    "the stored recording is {} bytes, more than a report reads ({limit})",
                    info.size
                ));
            }
            Ok(Some(_)) => {
                return store
                    .get(&key, limit)
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| format!("reading the store: {e}"));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("reading the store: {e}")),
        }
    }
    Ok(None)
}

/// What reading one recording found.
struct Read {
    client: Option<String>,
    commands: Vec<Activity>,
    policy: Vec<Activity>,
    transfers: Vec<Activity>,
    truncated: bool,
    check: RecordingCheck,
}

/// Verifies and walks a recording (on a blocking thread: it is CPU work).
fn read_recording(
    bytes: Vec<u8>,
    committed: Option<psm_core::RecordingCommitment>,
    trusted: Option<(Vec<psm_recording::VerifyingKey>, SignerRegistry)>,
    identity: Option<RecipientSecret>,
    max_items: usize,
) -> Read {
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    let unreadable = |why: String| Read {
        client: None,
        commands: Vec::new(),
        policy: Vec::new(),
        transfers: Vec::new(),
        truncated: false,
        check: RecordingCheck {
            status: RecordingVerdict::Unreadable,
            detail: why,
            sha256: Some(sha256.clone()),
            bytes: Some(size),
            signer: None,
            gaps: Vec::new(),
        },
    };
    let verified = match verify_reader(
        Cursor::new(bytes.as_slice()),
        &VerifyOptions {
            trusted_signers: trusted.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
            identity: identity.clone(),
            decode: true,
        },
    ) {
        Ok(v) => v,
        Err(e) => return unreadable(format!("not a readable recording: {e}")),
    };
    let signer_name = trusted
        .as_ref()
        .and_then(|(_, reg)| reg.name_of(&verified.signer));
    let signer = match &signer_name {
        Some(n) => format!("{} (gateway {n})", verified.signer),
        None => verified.signer.to_string(),
    };
    let (mut status, mut detail) = match &verified.status {
        Integrity::Intact { .. } => (
            RecordingVerdict::Intact,
            "complete; every signature and hash-chain link verified".to_owned(),
        ),
        Integrity::Truncated { last_chunk, at, .. } => (
            RecordingVerdict::Truncated,
            match last_chunk {
                Some(k) => format!(
                    "incomplete (its writer stopped): verified up to chunk {k}, at {}",
                    hms(at.0)
                ),
                None => "incomplete (its writer stopped): no complete chunk".to_owned(),
            },
        ),
        Integrity::Tampered {
            place,
            offset,
            reason,
        } => (
            RecordingVerdict::Tampered,
            format!("changed after it was written: the {place} (byte {offset}) fails: {reason}"),
        ),
    };
    if verified.signer_trusted == Some(false) && status != RecordingVerdict::Tampered {
        status = RecordingVerdict::Untrusted;
        detail = format!(
            "signed by {}, which no registered gateway holds; {detail}",
            verified.signer
        );
    }
    match committed {
        Some(c) if c.chain != verified.chain_end => {
            status = RecordingVerdict::Tampered;
            detail = format!(
                "not what its gateway committed to at EndSession ({} chunks, {} events): \
                 changed, cut short or replaced after the session ended; {detail}",
                c.chunks, c.events
            );
        }
        Some(_) => detail.push_str("; matches its gateway's commitment at EndSession"),
        None => detail.push_str("; its gateway committed to nothing at EndSession"),
    }
    if trusted.is_none() {
        detail.push_str(" (no gateway registry given: the signer was not checked)");
    }
    let mut out = Read {
        client: verified.header.metadata.get("client").cloned(),
        commands: Vec::new(),
        policy: Vec::new(),
        transfers: Vec::new(),
        truncated: false,
        check: RecordingCheck {
            status,
            detail,
            sha256: Some(sha256),
            bytes: Some(size),
            signer: Some(signer),
            gaps: Vec::new(),
        },
    };
    let mut reader = match Reader::from_bytes(
        bytes,
        ReadOptions {
            identity,
            ..ReadOptions::default()
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            out.check.gaps.push(format!("events not read: {e}"));
            return out;
        }
    };
    let header = reader.header().clone();
    let mut index = CommandIndex::new(&header);
    let mut statements = Vec::new();
    let mut policy = Vec::new();
    let mut transfers = Vec::new();
    let mut gaps = Vec::new();
    let walked = walk(
        &mut reader,
        |item| {
            match item {
                Item::Gap(g) => gaps.push(format!(
                    "{}{}: {}",
                    hms(g.from.0),
                    g.to.map_or(String::new(), |t| format!("-{}", hms(t.0))),
                    g.reason
                )),
                Item::Event(e) => {
                    index.apply(e);
                    let at = hms(e.time.0);
                    match &e.kind {
                        EventKind::Policy {
                            action,
                            rule,
                            detail,
                        } => policy.push(Activity {
                            offset: at,
                            text: format!("{} (rule {rule}): {detail}", action.as_str()),
                        }),
                        EventKind::FileTransfer(t) => transfers.push(Activity {
                            offset: at,
                            text: format!(
                                "{} {} {} over {}",
                                match t.direction {
                                    psm_recording::event::TransferDirection::Upload => "upload",
                                    psm_recording::event::TransferDirection::Download => "download",
                                },
                                t.path,
                                t.size.map_or("(size unknown)".to_owned(), |n| format!(
                                    "({n} bytes)"
                                )),
                                t.protocol
                            ),
                        }),
                        EventKind::DbStatement(s) => statements.push(Activity {
                            offset: at,
                            text: if s.database.is_empty() {
                                s.text.clone()
                            } else {
                                format!("[{}] {}", s.database, s.text)
                            },
                        }),
                        _ => {}
                    }
                }
            }
            Ok(())
        },
        |_, _| {},
    );
    if let Err(e) = walked {
        gaps.push(format!("events not read past an error: {e}"));
    }
    let mut commands: Vec<Activity> = index
        .commands()
        .iter()
        .map(|c| Activity {
            offset: hms(c.time_us),
            text: c.command.clone(),
        })
        .collect();
    commands.extend(statements);
    commands.sort_by(|a, b| a.offset.cmp(&b.offset));
    for list in [&mut commands, &mut policy, &mut transfers] {
        for a in list.iter_mut() {
            if a.text.chars().count() > 500 {
                a.text = a.text.chars().take(500).collect::<String>() + "...";
            }
        }
        if list.len() > max_items {
            list.truncate(max_items);
            out.truncated = true;
        }
    }
    out.commands = commands;
    out.policy = policy;
    out.transfers = transfers;
    out.check.gaps = gaps;
    out
}

async fn entry(sources: &ReportSources, s: &PrivSession) -> SessionEntry {
    let end = s.end_time.unwrap_or(s.last_reported);
    let mut e = SessionEntry {
        id: s.id.to_string(),
        user: s.user.clone(),
        target: s.target.clone(),
        protocol: s.protocol.to_string(),
        client: None,
        start: s.start_time.to_string(),
        end: s.end_time.map(|t| t.to_string()),
        duration_secs: end.since(s.start_time).as_secs(),
        stage: s.stage.as_str().to_owned(),
        checkout: s.checkout_id.as_ref().map(|c| c.as_str().to_owned()),
        terminated: s.terminate_reason.clone(),
        commands: Vec::new(),
        policy: Vec::new(),
        transfers: Vec::new(),
        items_truncated: false,
        recording: RecordingCheck {
            status: RecordingVerdict::Missing,
            detail: "no recording of this session was found".into(),
            sha256: None,
            bytes: None,
            signer: None,
            gaps: Vec::new(),
        },
    };
    let bytes = match load_recording(sources, s.id).await {
        Ok(Some(b)) => b,
        Ok(None) => return e,
        Err(why) => {
            e.recording.status = RecordingVerdict::Unreadable;
            e.recording.detail = why;
            return e;
        }
    };
    let trusted = sources
        .gateway_signers
        .as_ref()
        .map(|reg| (reg.keys(), reg.clone()));
    let identity = sources.identity.clone();
    let max = sources.max_items_per_session;
    let committed = s.recording_commitment;
    let read = tokio::task::spawn_blocking(move || {
        read_recording(bytes, committed, trusted, identity, max)
    })
    .await;
    match read {
        Ok(r) => {
            e.client = r.client;
            e.commands = r.commands;
            e.policy = r.policy;
            e.transfers = r.transfers;
            e.items_truncated = r.truncated;
            e.recording = r.check;
        }
        Err(_) => {
            e.recording.status = RecordingVerdict::Unreadable;
            e.recording.detail = "the recording reader failed".into();
        }
    }
    e
}

/// Users holding `role`, when a role filter is given.
async fn users_with_role(
    sources: &ReportSources,
    role: &str,
) -> Result<BTreeSet<String>, ReportError> {
    let dir = sources.directory.as_ref().ok_or_else(|| {
        ReportError::Invalid(
            "a role filter needs the user directory, which is not available".into(),
        )
    })?;
    Ok(dir
        .users()
        .await?
        .into_iter()
        .filter(|u| u.roles.iter().any(|r| r == role))
        .map(|u| u.name.to_string())
        .collect())
}

/// Builds the report of `query` from `sources`; `by` says who asked.
pub async fn build(
    sources: &ReportSources,
    query: &ReportQuery,
    by: &str,
) -> Result<Report, ReportError> {
    let role_users = match query.role.as_deref().filter(|r| !r.trim().is_empty()) {
        Some(r) => Some(users_with_role(sources, r.trim()).await?),
        None => None,
    };
    let matches = |user: &str, target: &str| {
        contains(user, &query.user)
            && contains(target, &query.target)
            && role_users.as_ref().is_none_or(|u| u.contains(user))
    };
    let mut notes = Vec::new();
    let mut sessions = Vec::new();
    let mut after = None;
    'pages: loop {
        let page = sources
            .sessions
            .list(&ListQuery {
                limit: 500,
                after,
                ..ListQuery::default()
            })
            .await?;
        let last_page = page.len() < 500;
        for s in &page {
            after = Some(ListCursor::of(s));
            if s.start_time >= query.to {
                continue;
            }
            if s.start_time < query.from {
                break 'pages;
            }
            if !matches(&s.user, &s.target) {
                continue;
            }
            if sessions.len() >= sources.max_sessions {
                notes.push(format!(
                    "stopped after {} sessions, the most one report covers; sessions that \
                     started before {} are not in it: narrow the period or filter",
                    sources.max_sessions, s.start_time
                ));
                break 'pages;
            }
            sessions.push(entry(sources, s).await);
        }
        if last_page {
            break;
        }
    }

    // The audit log: refusals by access windows, and sessions a closing window ended.
    let mut refusals = Vec::new();
    let mut window_closures = Vec::new();
    let mut after_seq = None;
    loop {
        let events = sources
            .sessions
            .audit_events(&AuditQuery {
                session: None,
                after_seq,
                limit: 5000,
            })
            .await?;
        let last = events.len() < 5000;
        for ev in &events {
            after_seq = Some(ev.seq);
            let r = &ev.record;
            if r.at < query.from || r.at >= query.to {
                continue;
            }
            let row = || RefusedSession {
                at: r.at.to_string(),
                session: r.session.map(|s| s.to_string()),
                actor: r.actor.clone(),
                detail: r.detail.clone(),
            };
            // "session of USER to TARGET from ADDR refused: ..." (psm-core's windows check).
            if r.action == AuditAction::Refused
                && let Some(rest) = r.detail.strip_prefix("session of ")
                && let Some((user, rest)) = rest.split_once(" to ")
                && let Some((target, _)) = rest.split_once(" from ")
            {
                if matches(user, target) {
                    refusals.push(row());
                }
            } else if r.action == AuditAction::TerminateRequested
                && r.detail.contains("window")
                && r.session
                    .is_some_and(|id| sessions.iter().any(|e| e.id == id.to_string()))
            {
                window_closures.push(row());
            }
        }
        if last {
            break;
        }
    }

    // Per user, and dormant accounts.
    let directory_users = match &sources.directory {
        Some(d) => Some(d.users().await?),
        None => None,
    };
    let roles_of = |user: &str| -> Vec<String> {
        directory_users
            .as_ref()
            .and_then(|us| us.iter().find(|u| u.name.as_str() == user))
            .map(|u| u.roles.clone())
            .unwrap_or_default()
    };
    let mut per: BTreeMap<String, UserSummary> = BTreeMap::new();
    for e in &sessions {
        let u = per.entry(e.user.clone()).or_insert_with(|| UserSummary {
            user: e.user.clone(),
            roles: roles_of(&e.user),
            sessions: 0,
            targets: Vec::new(),
            duration_secs: 0,
            policy_events: 0,
            recordings_not_intact: 0,
        });
        u.sessions += 1;
        if !u.targets.contains(&e.target) {
            u.targets.push(e.target.clone());
        }
        u.duration_secs += e.duration_secs;
        u.policy_events += e.policy.len();
        if e.recording.status != RecordingVerdict::Intact {
            u.recordings_not_intact += 1;
        }
    }
    let dormant_users = match &directory_users {
        Some(users) => Some(
            users
                .iter()
                .filter(|u| {
                    query.user.as_deref().is_none_or(|n| u.name.as_str() == n)
                        && role_users
                            .as_ref()
                            .is_none_or(|r| r.contains(u.name.as_str()))
                        && !per.contains_key(u.name.as_str())
                })
                .map(|u| {
                    if u.disabled {
                        format!("{} (disabled)", u.name)
                    } else {
                        u.name.to_string()
                    }
                })
                .collect(),
        ),
        None => {
            notes.push("dormant accounts: no user directory was available to this report".into());
            None
        }
    };
    if query.target.is_some() {
        notes.push(
            "dormant accounts are users with no session at all in the period (the target \
             filter does not apply to them)"
                .into(),
        );
    }
    notes.push(
        "targets carry no tags (pci, sox...) in this version of PSM: a view of tagged \
         targets is not available; filter by target instead"
            .into(),
    );
    let recording_exceptions = sessions
        .iter()
        .filter(|e| e.recording.status != RecordingVerdict::Intact || !e.recording.gaps.is_empty())
        .map(|e| {
            let mut s = format!(
                "{} ({} to {}): {} - {}",
                e.id,
                e.user,
                e.target,
                e.recording.status.as_str(),
                e.recording.detail
            );
            if !e.recording.gaps.is_empty() {
                s.push_str(&format!("; gaps: {}", e.recording.gaps.join("; ")));
            }
            s
        })
        .collect();
    let recordings = sessions
        .iter()
        .filter_map(|e| {
            e.recording.sha256.as_ref().map(|h| CitedRecording {
                session: e.id.clone(),
                sha256: h.clone(),
            })
        })
        .collect();
    Ok(Report {
        title: "PSM compliance report".into(),
        generated_at: Timestamp::now_utc().to_string(),
        generated_by: by.to_owned(),
        query: query.clone(),
        sessions,
        by_user: per.into_values().collect(),
        refusals,
        window_closures,
        dormant_users,
        recording_exceptions,
        recordings,
        notes,
    })
}

impl Report {
    /// The report's body in `format`, before sealing (see [`seal::seal`]).
    pub fn render(&self, format: ReportFormat) -> Result<Vec<u8>, ReportError> {
        match format {
            ReportFormat::Json => {
                let mut v = serde_json::to_vec_pretty(self)
                    .map_err(|e| ReportError::Render(e.to_string()))?;
                v.push(b'\n');
                Ok(v)
            }
            ReportFormat::Csv => Ok(csv_table::render(self).into_bytes()),
            ReportFormat::Html => Ok(html::render(self).into_bytes()),
            ReportFormat::Pdf => pdf::render(self),
        }
    }

    /// The header lines every format starts with.
    pub(crate) fn summary_lines(&self) -> Vec<String> {
        let q = &self.query;
        let mut filters = Vec::new();
        for (k, v) in [("user", &q.user), ("target", &q.target), ("role", &q.role)] {
            if let Some(v) = v {
                filters.push(format!("{k} {v}"));
            }
        }
        let not_intact = self
            .sessions
            .iter()
            .filter(|s| s.recording.status != RecordingVerdict::Intact)
            .count();
        vec![
            format!("Period: {} to {}", q.from, q.to),
            format!(
                "Filters: {}",
                if filters.is_empty() {
                    "none".to_owned()
                } else {
                    filters.join(", ")
                }
            ),
            format!("Generated {} by {}", self.generated_at, self.generated_by),
            format!(
                "{} sessions, {} recordings cited, {} not intact, {} refused by access windows",
                self.sessions.len(),
                self.recordings.len(),
                not_intact,
                self.refusals.len()
            ),
        ]
    }
}

/// The hours, minutes and seconds of a duration.
pub(crate) fn duration_text(secs: u64) -> String {
    hms(secs * 1_000_000)
}

/// What a cited recording is now, against the hash a report lists for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CitedCheck {
    /// Its bytes still have the listed SHA-256.
    Matches,
    /// Its bytes changed: their SHA-256 now.
    Changed(String),
    /// Neither the recordings directory nor the store holds it.
    Missing,
    /// It could not be read (the store failed, too large, not a session id).
    Unreadable(String),
}

/// Checks each recording `cited` lists (from [`seal::verify`]) against `sources`.
pub async fn check_cited(
    sources: &ReportSources,
    cited: &[CitedRecording],
) -> Vec<(CitedRecording, CitedCheck)> {
    let mut out = Vec::with_capacity(cited.len());
    for c in cited {
        let verdict = match c.session.parse::<SessionId>() {
            Err(_) => CitedCheck::Unreadable("not a session id".into()),
            Ok(id) => match load_recording(sources, id).await {
                Ok(Some(bytes)) => {
                    let sum = hex::encode(Sha256::digest(&bytes));
                    if sum == c.sha256 {
                        CitedCheck::Matches
                    } else {
                        CitedCheck::Changed(sum)
                    }
                }
                Ok(None) => CitedCheck::Missing,
                Err(why) => CitedCheck::Unreadable(why),
            },
        };
        out.push((c.clone(), verdict));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use psm_recording::{
        BlockingWriter, ChannelId, FsyncPolicy, Header, MemorySink, Micros, SigningKey, Stream,
        WriterConfig,
    };

    /// A two-chunk recording and what its gateway would commit to.
    fn recording() -> (Vec<u8>, psm_core::RecordingCommitment) {
        let sink = MemorySink::new();
        let header = Header::new(
            psm_core::SessionId::new(),
            psm_recording::Protocol::Ssh,
            "alice",
            "web-01",
            "test",
        );
        let config = WriterConfig {
            fsync: FsyncPolicy::Never,
            ..WriterConfig::default()
        };
        let mut w = BlockingWriter::with_sink(
            Box::new(sink.clone()),
            header,
            SigningKey::generate().unwrap(),
            config,
        )
        .unwrap();
        w.output_at(Micros(1000), ChannelId(0), Stream::Stdout, b"$ id\r\n")
            .unwrap();
        w.flush().unwrap();
        w.output_at(Micros(2000), ChannelId(0), Stream::Stdout, b"uid=0\r\n")
            .unwrap();
        let done = w.finish("done").unwrap();
        let c = psm_core::RecordingCommitment {
            chain: done.final_hash,
            chunks: done.chunks,
            events: done.events,
        };
        (sink.bytes(), c)
    }

    /// M12 in reports: a recording that ends where its gateway's commitment says is intact
    /// and says so; one cut back to its first chunk is `tampered`, not merely truncated.
    #[test]
    fn a_recording_cut_after_its_commitment_is_reported_tampered() {
        let (bytes, c) = recording();
        let read = read_recording(bytes.clone(), Some(c), None, None, 10);
        assert_eq!(
            read.check.status,
            RecordingVerdict::Intact,
            "{}",
            read.check.detail
        );
        assert!(
            read.check
                .detail
                .contains("matches its gateway's commitment")
        );

        let second = Reader::from_bytes(bytes.clone(), ReadOptions::default())
            .unwrap()
            .chunks()[1]
            .offset as usize;
        let cut = bytes[..second].to_vec();
        let alone = read_recording(cut.clone(), None, None, None, 10);
        assert_eq!(alone.check.status, RecordingVerdict::Truncated);
        let read = read_recording(cut, Some(c), None, None, 10);
        assert_eq!(read.check.status, RecordingVerdict::Tampered);
        assert!(
            read.check
                .detail
                .starts_with("not what its gateway committed to at EndSession"),
            "{}",
            read.check.detail
        );
    }
}
