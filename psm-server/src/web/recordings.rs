//! Recordings for the web UI: where a session's files are (the gateway's raw `.psmr`, the
//! encoder's exports, or the store once uploaded), the asciicast the player plays (the
//! export, or converted from the `.psmr` on the fly; a window starting at any second,
//! rebuilt from the recording's keyframe index), the command index, the chunk index, the
//! screen at a given second, and downloads.

use std::io::Cursor;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use psm_core::SessionId;
use psm_recording::export::{self, AsciicastOptions};
use psm_recording::{
    ChannelId, EventKind, Integrity, Micros, ReadOptions, Reader, TermSize, Utf8Decoder,
};
use psm_storage::ObjectKey;
use serde::{Deserialize, Serialize};

use super::WebState;
use super::api::parse_id;
use super::guard::WebUser;
use crate::error::ApiError;

/// The files of a recording set, by their name in the set.
pub(crate) const RAW: &str = "recording.psmr";
pub(crate) const CAST: &str = "session.cast";
pub(crate) const TRANSCRIPT: &str = "transcript.txt";
pub(crate) const COMMANDS: &str = "commands.json";
pub(crate) const MANIFEST: &str = "manifest.json";
/// The encoder's video of a graphical (RDP) session.
pub(crate) const VIDEO: &str = "session.mp4";
/// The encoder's thumbnails of a graphical session.
pub(crate) const SHEET: &str = "contact-sheet.png";
/// The encoder's signature of the manifest.
pub(crate) const MANIFEST_SIG: &str = psm_recording::layout::MANIFEST_SIGNATURE_FILE;
const NAMES: [&str; 8] = [
    RAW,
    CAST,
    TRANSCRIPT,
    COMMANDS,
    MANIFEST,
    MANIFEST_SIG,
    VIDEO,
    SHEET,
];

/// Where a file was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Location {
    Local,
    Store,
}

/// A downloadable file of a session.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileView {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) location: Location,
}

fn local_path(state: &WebState, id: SessionId, name: &str) -> Option<std::path::PathBuf> {
    let id = id.to_string();
    if name == RAW {
        state
            .config
            .recordings_dir
            .as_ref()
            .map(|d| d.join(format!("{id}.psmr")))
    } else {
        state
            .config
            .exports_dir
            .as_ref()
            .map(|d| d.join(&id).join(name))
    }
}

fn store_key(id: SessionId, name: &str) -> Option<ObjectKey> {
    psm_storage::layout::session_prefix(&id.to_string())
        .and_then(|p| p.join(name))
        .ok()
}

/// The files of session `id` that exist (local copies first).
pub(crate) async fn list_files(state: &WebState, id: SessionId) -> Vec<FileView> {
    let mut out = Vec::new();
    for name in NAMES {
        if let Some(p) = local_path(state, id, name)
            && let Ok(meta) = tokio::fs::metadata(&p).await
            && meta.is_file()
        {
            out.push(FileView {
                name: name.to_owned(),
                size: meta.len(),
                location: Location::Local,
            });
            continue;
        }
        if let (Some(store), Some(key)) = (&state.config.store, store_key(id, name)) {
            match store.head(&key).await {
                Ok(Some(info)) => out.push(FileView {
                    name: name.to_owned(),
                    size: info.size,
                    location: Location::Store,
                }),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(session_id = %id, file = name, error = %e, "reading the store")
                }
            }
        }
    }
    out
}

/// The bytes of file `name` of session `id`, if it exists and is not larger than the limit.
pub(crate) async fn load(
    state: &WebState,
    id: SessionId,
    name: &str,
) -> Result<Option<Bytes>, ApiError> {
    let limit = state.config.max_recording_bytes;
    let too_big = |size: u64| {
        ApiError::new(
            413,
            "too-large",
            format!(
                "{name} of session {id} is {size} bytes, more than the web UI reads ({limit}); download it with psm"
            ),
        )
    };
    if let Some(p) = local_path(state, id, name) {
        match tokio::fs::metadata(&p).await {
            Ok(meta) if meta.is_file() => {
                if meta.len() > limit {
                    return Err(too_big(meta.len()));
                }
                match tokio::fs::read(&p).await {
                    Ok(b) => return Ok(Some(Bytes::from(b))),
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "reading a recording file")
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(store), Some(key)) = (&state.config.store, store_key(id, name)) {
        match store.head(&key).await {
            Ok(Some(info)) => {
                if info.size > limit {
                    return Err(too_big(info.size));
                }
                return store.get(&key, limit).await.map(Some).map_err(|e| {
                    tracing::error!(session_id = %id, file = name, error = %e, "reading the store");
                    ApiError::new(502, "store", "the recording store could not be read")
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(session_id = %id, file = name, error = %e, "reading the store");
                return Err(ApiError::new(
                    502,
                    "store",
                    "the recording store could not be read",
                ));
            }
        }
    }
    Ok(None)
}

/// What the set's signed manifest says about one of its files: `Ok(None)` when this UI
/// checks no sets (no encoder registry configured), `Ok(Some(Err(why)))` when the manifest
/// is missing, unsigned, signed by a key no registered encoder holds, changed since it was
/// signed, or does not list the file.
async fn manifest_entry(
    state: &WebState,
    id: SessionId,
    name: &str,
) -> Result<Option<Result<(u64, psm_storage::Checksum), String>>, ApiError> {
    let Some(registry) = &state.config.encoder_signers else {
        return Ok(None);
    };
    let Some(manifest) = load(state, id, MANIFEST).await? else {
        return Ok(Some(Err("the recording set has no manifest".into())));
    };
    let Some(sig) = load(state, id, MANIFEST_SIG).await? else {
        return Ok(Some(Err(
            "the recording set's manifest is not signed".into()
        )));
    };
    let verdict = std::str::from_utf8(&sig)
        .map_err(|_| "the manifest signature is not text".to_owned())
        .and_then(|t| {
            psm_recording::keys::DetachedSignature::from_text(t).map_err(|e| e.to_string())
        })
        .and_then(|sig| {
            sig.verify(
                psm_recording::layout::MANIFEST_SIGNATURE_CONTEXT,
                &manifest,
                &registry.keys(),
            )
            .map_err(|e| match e {
                psm_recording::RecordingError::UntrustedSigner { found } => {
                    format!("the manifest is signed by {found}, which no registered encoder holds")
                }
                other => format!("the manifest fails its signature: {other}"),
            })
        });
    if let Err(why) = verdict {
        return Ok(Some(Err(why)));
    }
    #[derive(Deserialize)]
    struct Entry {
        name: String,
        size: u64,
        blake3: psm_storage::Checksum,
    }
    #[derive(Deserialize)]
    struct Set {
        #[serde(default)]
        exports: Vec<Entry>,
    }
    let set: Set = match serde_json::from_slice(&manifest) {
        Ok(s) => s,
        Err(e) => return Ok(Some(Err(format!("the manifest cannot be read: {e}")))),
    };
    Ok(Some(
        set.exports
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| (e.size, e.blake3))
            .ok_or_else(|| format!("the signed manifest does not list {name}")),
    ))
}

/// An export of the encoder, only if the set's manifest is signed by a registered encoder
/// and the file's bytes are the ones it lists (see [`manifest_entry`]); `None` otherwise
/// (the caller converts from the `.psmr`, which carries its own signatures, or refuses).
async fn verified_export(
    state: &WebState,
    id: SessionId,
    name: &str,
) -> Result<Option<Bytes>, ApiError> {
    match manifest_entry(state, id, name).await? {
        None => load(state, id, name).await,
        Some(Err(why)) => {
            tracing::warn!(session_id = %id, file = name, reason = %why,
                "export not served as the encoder's: not verified");
            Ok(None)
        }
        Some(Ok((size, sum))) => match load(state, id, name).await? {
            Some(b) if b.len() as u64 == size && psm_storage::Checksum::of(&b) == sum => {
                Ok(Some(b))
            }
            Some(_) => {
                tracing::error!(session_id = %id, file = name,
                    "export changed since the encoder signed its manifest: not served");
                Ok(None)
            }
            None => Ok(None),
        },
    }
}

/// Refuses an export that [`verified_export`] would not serve, for the files served as
/// they are (media, downloads). `local` is the file's local path and size, if it is local.
async fn require_verified(
    state: &WebState,
    id: SessionId,
    name: &str,
    local: Option<&std::path::Path>,
    bytes: Option<&Bytes>,
) -> Result<(), ApiError> {
    let refused = |why: String| {
        tracing::error!(session_id = %id, file = name, reason = %why, "export refused");
        ApiError::new(
            409,
            "not-verified",
            format!("{name} of session {id} is not served: {why}"),
        )
    };
    let (size, sum) = match manifest_entry(state, id, name).await? {
        None => return Ok(()),
        Some(Err(why)) => return Err(refused(why)),
        Some(Ok(entry)) => entry,
    };
    let actual = match (local, bytes) {
        (_, Some(b)) => Some((psm_storage::Checksum::of(b), b.len() as u64)),
        (Some(p), None) => psm_storage::Checksum::of_file(p).await.ok(),
        (None, None) => None,
    };
    match actual {
        Some((c, n)) if c == sum && n == size => Ok(()),
        _ => Err(refused(
            "it changed since the encoder signed its manifest".into(),
        )),
    }
}

fn no_recording(id: SessionId) -> ApiError {
    ApiError::new(
        404,
        "no-recording",
        format!("no recording of session {id} is available here"),
    )
}

fn read_options(state: &WebState) -> ReadOptions {
    ReadOptions {
        identity: state.config.identity.clone(),
        ..ReadOptions::default()
    }
}

fn recording_error(e: psm_recording::RecordingError) -> ApiError {
    ApiError::new(
        422,
        "unreadable-recording",
        format!("the recording cannot be read: {}", error_text(&e)),
    )
}

/// A reader's error said for a person: the recipients of an encrypted recording as a list,
/// not Rust's debug text of a `Vec`.
pub(crate) fn error_text(e: &psm_recording::RecordingError) -> String {
    use psm_recording::RecordingError as E;
    match e {
        E::Encrypted { recipients } => format!(
            "it is encrypted for {}; the web UI needs the matching identity (WebConfig::identity)",
            recipients.join(", ")
        ),
        E::WrongRecipient { given, recipients } => format!(
            "it is encrypted for {}, and the web UI's identity ({given}) is not one of them",
            recipients.join(", ")
        ),
        other => other.to_string(),
    }
}

/// What checking the recording found, said for a person (the replay page shows it).
fn integrity_text(i: &Integrity) -> String {
    match i {
        Integrity::Intact {
            fully_checked: true,
        } => "Signature and hash chain intact (fully verified)".to_owned(),
        Integrity::Intact {
            fully_checked: false,
        } => "Signed and complete: header and signed trailer verified, each chunk verified as \
              it is read"
            .to_owned(),
        Integrity::Truncated {
            last_chunk: Some(k),
            at,
            ..
        } => format!(
            "Incomplete (still being recorded, or its writer stopped): signature and hash chain \
             intact up to chunk {k}, at {at}"
        ),
        Integrity::Truncated {
            last_chunk: None, ..
        } => "Incomplete (still being recorded, or its writer stopped): no complete chunk yet"
            .to_owned(),
        Integrity::Tampered {
            place,
            offset,
            reason,
        } => format!(
            "Changed after it was written: the {place} (byte {offset}) fails its check: {reason}"
        ),
    }
}

/// Runs `f` over the session's `.psmr` on a blocking thread.
pub(crate) async fn with_reader<T: Send + 'static>(
    state: &WebState,
    id: SessionId,
    f: impl FnOnce(&mut Reader<Cursor<Vec<u8>>>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let bytes = load(state, id, RAW)
        .await?
        .ok_or_else(|| no_recording(id))?;
    let options = read_options(state);
    tokio::task::spawn_blocking(move || {
        let mut r = Reader::from_bytes(bytes.to_vec(), options).map_err(recording_error)?;
        f(&mut r)
    })
    .await
    .map_err(|_| ApiError::new(500, "internal", "the recording reader failed"))?
}

/// The window of a cast.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CastQuery {
    /// Start the cast at this second (the screen at that moment first, rebuilt from the
    /// recording's nearest keyframe), instead of at the beginning.
    from: Option<f64>,
}

fn cast_response(bytes: Vec<u8>) -> Response {
    let mut res = Body::from(bytes).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-asciicast"),
    );
    res
}

/// GET /ui/api/recordings/{id}/cast[?from=SECONDS].
pub(crate) async fn cast(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
    Query(q): Query<CastQuery>,
) -> Result<Response, ApiError> {
    viewer.require_view(&state, "replay recordings").await?;
    let id = parse_id(&id)?;
    let from = match q.from {
        Some(f) if !f.is_finite() || f < 0.0 => {
            return Err(ApiError::new(
                400,
                "invalid-input",
                "from must be a number of seconds",
            ));
        }
        Some(f) if f > 0.0 => Some(Micros::from_secs_f64(f)),
        _ => None,
    };
    let live = state
        .app
        .cp
        .engine()
        .session(id)
        .await
        .map(|s| s.stage == psm_core::Stage::Connected)?;
    if from.is_none()
        && !live
        && let Some(b) = verified_export(&state, id, CAST).await?
    {
        return Ok(cast_response(b.to_vec()));
    }
    let out = with_reader(&state, id, move |r| {
        let mut out = Vec::new();
        match from {
            None => {
                export::export_asciicast(r, &mut out, &AsciicastOptions::default(), |_, _| {})
                    .map_err(recording_error)?;
            }
            Some(t) => window_cast(r, t, &mut out)?,
        }
        Ok(out)
    })
    .await?;
    Ok(cast_response(out))
}

fn secs(t: Micros) -> String {
    format!("{}.{:06}", t.0 / 1_000_000, t.0 % 1_000_000)
}

/// An asciicast that starts at `t`: the screen at `t` (from the nearest keyframe at or
/// before it, found through the chunk index), then every later event, times counted from
/// `t`.
fn window_cast(
    r: &mut Reader<Cursor<Vec<u8>>>,
    t: Micros,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    use std::io::Write as _;
    let mut tracker = r.screen_at(t).map_err(recording_error)?;
    let channel = tracker
        .channels()
        .into_iter()
        .next()
        .unwrap_or(ChannelId(0));
    let (size, dump) = match tracker.terminal(channel) {
        Some(term) => (term.size(), term.dump()),
        None => (
            r.header().terminal.unwrap_or(TermSize::new(80, 24)),
            String::new(),
        ),
    };
    let header = serde_json::json!({
        "version": 2,
        "width": size.cols,
        "height": size.rows,
        "title": format!("{}@{} from {}", r.header().user, r.header().target, secs(t)),
    });
    let io = |e: std::io::Error| ApiError::new(500, "internal", format!("writing a cast: {e}"));
    writeln!(out, "{header}").map_err(io)?;
    let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    writeln!(out, "[0.000000, \"o\", {}]", json(&dump)).map_err(io)?;
    let Some(first) = r.chunk_at(t) else {
        return Ok(());
    };
    let mut decoder = Utf8Decoder::new();
    for i in first..r.chunks().len() {
        let Ok(c) = r.read_chunk(i) else {
            // A damaged chunk: the rest of the window is what can be read after it.
            continue;
        };
        for e in &c.events {
            if e.time <= t {
                continue;
            }
            let at = secs(Micros(e.time.0 - t.0));
            match &e.kind {
                EventKind::Output {
                    channel: ch, data, ..
                } if *ch == channel => {
                    let mut text = String::new();
                    decoder.decode(data, &mut text);
                    if !text.is_empty() {
                        writeln!(out, "[{at}, \"o\", {}]", json(&text)).map_err(io)?;
                    }
                }
                EventKind::Resize { channel: ch, size } if *ch == channel => {
                    writeln!(out, "[{at}, \"r\", \"{}x{}\"]", size.cols, size.rows).map_err(io)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// GET /ui/api/recordings/{id}/commands: the command index (the encoder's export, or built
/// from the recording now).
pub(crate) async fn commands(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    viewer.require_view(&state, "replay recordings").await?;
    let id = parse_id(&id)?;
    let live = state
        .app
        .cp
        .engine()
        .session(id)
        .await
        .map(|s| s.stage == psm_core::Stage::Connected)?;
    let bytes = match (live, verified_export(&state, id, COMMANDS).await?) {
        (false, Some(b)) => b.to_vec(),
        _ => {
            with_reader(&state, id, |r| {
                let mut out = Vec::new();
                export::export_commands(r, &mut out, |_, _| {}).map_err(recording_error)?;
                Ok(out)
            })
            .await?
        }
    };
    let mut res = Body::from(bytes).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// One chunk of the recording's index.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChunkView {
    seq: u64,
    start: f64,
    end: f64,
    events: u64,
    keyframe: bool,
}

/// The recording's index: what the player seeks by.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexView {
    duration: f64,
    chunks: Vec<ChunkView>,
    /// What checking the recording found, as a sentence.
    integrity: String,
    /// Finished by its writer and every check made passed.
    intact: bool,
    ending: Option<String>,
    encrypted: bool,
    user: String,
    target: String,
    /// The key that signed the recording (`psmr-signing-public:...`).
    signer: String,
    /// Whether a registered gateway holds it (`None`: this UI checks no registry).
    signer_trusted: Option<bool>,
    /// The name it is registered under.
    gateway: Option<String>,
    /// Whether the recording ends at the chain value its gateway committed to at EndSession
    /// (`None`: nothing was committed, e.g. the gateway died and the watchdog ended it).
    committed: Option<bool>,
}

fn f(t: Micros) -> f64 {
    t.0 as f64 / 1e6
}

/// GET /ui/api/recordings/{id}/index.
pub(crate) async fn index(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
) -> Result<axum::Json<IndexView>, ApiError> {
    viewer.require_view(&state, "replay recordings").await?;
    let id = parse_id(&id)?;
    let gateways = state.config.gateway_signers.clone();
    let commitment = state
        .app
        .cp
        .engine()
        .session(id)
        .await?
        .recording_commitment;
    let v = with_reader(&state, id, move |r| {
        let signer = r.signer();
        let gateway = gateways.as_ref().and_then(|g| g.name_of(&signer));
        let trusted = gateways.as_ref().map(|_| gateway.is_some());
        let committed = commitment.map(|c| c.chain == r.chain_end());
        let mut integrity = integrity_text(r.integrity());
        if let (Some(false), Some(c)) = (committed, commitment) {
            integrity = format!(
                "Not what its gateway committed to: when the session ended the gateway told \
                 the control plane its recording has {} chunk(s) and {} event(s) and ends at \
                 chain {}; this file has {} chunk(s) and ends elsewhere, so it was changed, \
                 cut short or replaced since. {integrity}",
                c.chunks,
                c.events,
                &c.chain_hex()[..16],
                r.chunks().len()
            );
        }
        if trusted == Some(false) {
            integrity = format!(
                "Not trusted: signed by {signer}, which no registered gateway holds (anyone \
                 can sign a recording with a key of their own). {integrity}"
            );
        }
        Ok(IndexView {
            duration: f(r.duration()),
            chunks: r
                .chunks()
                .iter()
                .map(|c| ChunkView {
                    seq: c.seq,
                    start: f(c.t_start),
                    end: f(c.t_end),
                    events: c.event_count,
                    keyframe: c.has_keyframes,
                })
                .collect(),
            integrity,
            intact: r.integrity().is_intact() && trusted != Some(false) && committed != Some(false),
            ending: r.ending().map(|e| e.reason.clone()),
            encrypted: r.is_encrypted(),
            user: r.header().user.clone(),
            target: r.header().target.clone(),
            signer: signer.to_string(),
            signer_trusted: trusted,
            gateway,
            committed,
        })
    })
    .await?;
    Ok(axum::Json(v))
}

/// The moment to show.
#[derive(Debug, Deserialize)]
pub(crate) struct ScreenQuery {
    t: f64,
}

/// The screen at a moment, as text.
#[derive(Serialize)]
pub(crate) struct ScreenView {
    t: f64,
    lines: Vec<String>,
}

/// GET /ui/api/recordings/{id}/screen?t=SECONDS: the terminal's text at that moment.
pub(crate) async fn screen(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
    Query(q): Query<ScreenQuery>,
) -> Result<axum::Json<ScreenView>, ApiError> {
    viewer.require_view(&state, "replay recordings").await?;
    let id = parse_id(&id)?;
    if !q.t.is_finite() || q.t < 0.0 {
        return Err(ApiError::new(
            400,
            "invalid-input",
            "t must be a number of seconds",
        ));
    }
    let t = Micros::from_secs_f64(q.t);
    let v = with_reader(&state, id, move |r| {
        let mut tracker = r.screen_at(t).map_err(recording_error)?;
        let ch = tracker.channels().into_iter().next();
        let lines = ch
            .and_then(|c| tracker.terminal(c).map(|term| term.lines()))
            .unwrap_or_default();
        Ok(ScreenView { t: q.t, lines })
    })
    .await?;
    Ok(axum::Json(v))
}

/// GET /ui/api/recordings/{id}/files.
pub(crate) async fn files(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<FileView>>, ApiError> {
    viewer.require_view(&state, "download recordings").await?;
    let id = parse_id(&id)?;
    Ok(axum::Json(list_files(&state, id).await))
}

/// One `Range: bytes=A-B` request (`A-`, `-N` too); `None`: the whole file. Several ranges
/// or a malformed header: the whole file (a server may ignore Range).
fn byte_range(headers: &axum::http::HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => (start, end.min(len.saturating_sub(1))),
        (Ok(start), Err(_)) if b.is_empty() => (start, len.saturating_sub(1)),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => (len.saturating_sub(n), len.saturating_sub(1)),
        _ => return Ok(None),
    };
    if len == 0 || range.0 >= len {
        return Err(());
    }
    Ok(Some(range))
}

/// GET /ui/api/recordings/{id}/media/{name}: the video (`session.mp4`) or the contact sheet
/// (`contact-sheet.png`) of a graphical session, shown in the replay page: served inline
/// with its media type and byte ranges (so the browser's player can seek), `nosniff`.
/// Viewing is audited once per playback (the request without a range or from byte 0).
pub(crate) async fn media(
    State(state): State<WebState>,
    viewer: WebUser,
    Path((id, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    viewer.require_view(&state, "replay recordings").await?;
    let id = parse_id(&id)?;
    let content_type = match name.as_str() {
        VIDEO => "video/mp4",
        SHEET => "image/png",
        _ => {
            return Err(ApiError::new(
                404,
                "not-found",
                "no such media in a recording set",
            ));
        }
    };
    // A local file is read only in the requested range (a player asks for many ranges);
    // one in the store is read whole (bounded by `max_recording_bytes`).
    let local = match local_path(&state, id, &name) {
        Some(p) => match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_file() => Some((p, m.len())),
            _ => None,
        },
        None => None,
    };
    let (source, len) = match local {
        Some((path, len)) => {
            require_verified(&state, id, &name, Some(&path), None).await?;
            (Err(path), len)
        }
        None => {
            let bytes = load(&state, id, &name)
                .await?
                .ok_or_else(|| no_recording(id))?;
            require_verified(&state, id, &name, None, Some(&bytes)).await?;
            let len = bytes.len() as u64;
            (Ok(bytes), len)
        }
    };
    let range = byte_range(&headers, len);
    let read = |start: u64, end: u64| {
        let source = source.clone();
        async move {
            match source {
                Ok(bytes) => Ok(bytes.slice(start as usize..=end as usize)),
                Err(path) => read_range(&path, start, end).await,
            }
        }
    };
    let limit = state.config.max_recording_bytes;
    if matches!(range, Ok(None) | Ok(Some((0, _)))) {
        super::guard::audit(
            &state,
            Some(id),
            &viewer.actor(),
            psm_core::AuditAction::Other,
            format!("viewed {name} in the web UI"),
        )
        .await;
    }
    let mut res = match range {
        Ok(None) if len > limit => {
            return Err(ApiError::new(
                413,
                "too-large",
                format!("{name} of session {id} is {len} bytes; ask for byte ranges"),
            ));
        }
        Ok(None) if len == 0 => Body::empty().into_response(),
        Ok(None) => Body::from(read(0, len - 1).await?).into_response(),
        Ok(Some((start, end))) if end - start >= limit => {
            return Err(ApiError::new(
                413,
                "too-large",
                format!(
                    "a range of {} bytes is more than the web UI reads",
                    end - start + 1
                ),
            ));
        }
        Ok(Some((start, end))) => {
            let part = read(start, end).await?;
            let mut r = Body::from(part).into_response();
            *r.status_mut() = axum::http::StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        Err(()) => {
            let mut r = Body::empty().into_response();
            *r.status_mut() = axum::http::StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// Bytes `start..=end` of a local file.
async fn read_range(path: &std::path::Path, start: u64, end: u64) -> Result<Bytes, ApiError> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let failed = |e: std::io::Error| {
        tracing::warn!(path = %path.display(), error = %e, "reading a recording file");
        ApiError::new(500, "io", "the file could not be read")
    };
    let mut f = tokio::fs::File::open(path).await.map_err(failed)?;
    f.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(failed)?;
    let mut buf = vec![0u8; usize::try_from(end - start + 1).unwrap_or(0)];
    f.read_exact(&mut buf).await.map_err(failed)?;
    Ok(Bytes::from(buf))
}

/// GET /ui/api/recordings/{id}/files/{name}: a download (always an attachment, never
/// rendered by the browser).
pub(crate) async fn download(
    State(state): State<WebState>,
    viewer: WebUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    viewer.require_view(&state, "download recordings").await?;
    let id = parse_id(&id)?;
    let Some(name) = NAMES.into_iter().find(|n| *n == name) else {
        return Err(ApiError::new(
            404,
            "not-found",
            "no such file in a recording set",
        ));
    };
    let bytes = load(&state, id, name)
        .await?
        .ok_or_else(|| no_recording(id))?;
    // The raw recording carries its own signatures, and the manifest and its signature are
    // the evidence; an export is handed out only as the encoder signed it.
    if ![RAW, MANIFEST, MANIFEST_SIG].contains(&name) {
        require_verified(&state, id, name, None, Some(&bytes)).await?;
    }
    super::guard::audit(
        &state,
        Some(id),
        &viewer.actor(),
        psm_core::AuditAction::Other,
        format!("downloaded {name} from the web UI"),
    )
    .await;
    let mut res = Body::from(bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[cfg(test)]
mod range_tests {
    use super::byte_range;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn with(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn ranges_are_read_and_bounded() {
        assert_eq!(byte_range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(byte_range(&with("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(byte_range(&with("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(&with("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(&with("bytes=-1000"), 100), Ok(Some((0, 99))));
        assert_eq!(byte_range(&with("bytes=50-1000"), 100), Ok(Some((50, 99))));
        assert_eq!(byte_range(&with("bytes=100-"), 100), Err(()));
        assert_eq!(byte_range(&with("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(byte_range(&with("bytes=9-1"), 100), Ok(None));
        assert_eq!(byte_range(&with("items=0-1"), 100), Ok(None));
        assert_eq!(byte_range(&with("bytes=-0"), 100), Ok(None));
        assert_eq!(byte_range(&with("bytes=0-0"), 0), Err(()));
    }
}
