//! Search across recordings: commands, terminal output and event notes, through
//! psm-recording's search, newest sessions first, each hit with the second it happened at
//! (the UI opens the replay there).
//!
//! Bounded (issue 17 L5): sessions are read from the store a batch at a time; a local
//! recording is searched from its file as the reader walks it (never read whole into
//! memory), one in the store is fetched up to `max_recording_bytes`; one search reads at
//! most `search_sessions` recordings and `search_bytes` bytes, keeps at most 2000 hits, and
//! says when it stopped early; at most `max_concurrent_searches` run at once.

use axum::Json;
use axum::extract::{Query, State};
use psm_core::SessionId;
use psm_core::store::{ListCursor, ListQuery};
use psm_recording::search::{HitKind, search as search_recording};
use serde::{Deserialize, Serialize};

use super::WebState;
use super::guard::WebUser;
use super::recordings::{self, RAW};
use crate::error::ApiError;

/// Longest search text, in characters (a pasted line of output fits; the page sends what
/// was typed whole and shows this limit's error rather than cutting the text).
const MAX_QUERY_CHARS: usize = 1000;
/// Longest user, target or session filter, in bytes.
const MAX_FILTER: usize = 256;
/// Most hits returned per session and in all.
const MAX_HITS_PER_SESSION: usize = 200;
const MAX_HITS: usize = 2000;
/// Sessions read from the store at a time.
const LIST_BATCH: u32 = 200;

/// A search.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    /// The text (or regular expression with `regex=true`).
    q: String,
    #[serde(default)]
    regex: bool,
    /// `command`, `output`, `event` or `all` (default).
    #[serde(default)]
    kind: Option<String>,
    /// Only sessions whose user contains this.
    #[serde(default)]
    user: Option<String>,
    /// Only sessions whose target contains this.
    #[serde(default)]
    target: Option<String>,
    /// Only this session.
    #[serde(default)]
    session: Option<String>,
}

/// One hit.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HitView {
    time: f64,
    offset: String,
    kind: &'static str,
    text: String,
}

/// The hits of one session.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionHits {
    id: String,
    user: String,
    target: String,
    start: String,
    stage: String,
    hits: Vec<HitView>,
    truncated: bool,
}

/// What a search found.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchResult {
    query: String,
    searched: usize,
    sessions: Vec<SessionHits>,
    skipped: Vec<Skipped>,
    truncated: bool,
    /// Why the search stopped before the oldest session, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped: Option<String>,
}

/// A recording that could not be searched.
#[derive(Serialize)]
pub(crate) struct Skipped {
    id: String,
    reason: String,
}

fn offset(t: f64) -> String {
    let ms = (t * 1000.0) as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// GET /ui/api/search?q=TEXT[&regex=true][&kind=command][&user=][&target=][&session=].
pub(crate) async fn search(
    State(state): State<WebState>,
    viewer: WebUser,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchResult>, ApiError> {
    viewer.require_view(&state, "search recordings").await?;
    let text = q.q.trim();
    if text.is_empty() {
        return Err(ApiError::new(
            400,
            "invalid-input",
            "type something to search for",
        ));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::new(
            400,
            "invalid-input",
            format!("the search is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    if [&q.user, &q.target, &q.session]
        .into_iter()
        .flatten()
        .any(|s| s.len() > MAX_FILTER)
    {
        return Err(ApiError::new(
            400,
            "invalid-input",
            format!("a user, target or session filter is longer than {MAX_FILTER} bytes"),
        ));
    }
    let pattern = if q.regex {
        text.to_owned()
    } else {
        regex::escape(text)
    };
    let re = regex::RegexBuilder::new(&pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|_| {
            ApiError::new(
                400,
                "invalid-input",
                "the regular expression is not valid (or too large)",
            )
        })?;
    let kind = match q.kind.as_deref().unwrap_or("all") {
        "all" | "" => None,
        "command" => Some(HitKind::Command),
        "statement" => Some(HitKind::Statement),
        "output" => Some(HitKind::Output),
        "event" => Some(HitKind::Event),
        _ => {
            return Err(ApiError::new(
                400,
                "invalid-input",
                "kind must be command, statement, output, event or all",
            ));
        }
    };
    let only = match q.session.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(super::api::parse_id(s)?),
        None => None,
    };
    let _permit = state.searches.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            503,
            "busy",
            format!(
                "{} searches are running, the most at once; try again in a moment",
                state.config.max_concurrent_searches.max(1)
            ),
        )
    })?;
    let engine = state.app.cp.engine();
    let has = |hay: &str, needle: &Option<String>| {
        needle
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .is_none_or(|n| hay.to_lowercase().contains(&n.to_lowercase()))
    };
    let mut result = SearchResult {
        query: text.to_owned(),
        searched: 0,
        sessions: Vec::new(),
        skipped: Vec::new(),
        truncated: false,
        stopped: None,
    };
    let mut total = 0usize;
    let mut bytes_read = 0u64;
    let mut after = None;
    'sessions: loop {
        let batch = engine
            .list(&ListQuery {
                ids: only.into_iter().collect(),
                limit: LIST_BATCH,
                after,
                ..ListQuery::default()
            })
            .await?;
        let exhausted = batch.len() < LIST_BATCH as usize;
        for s in &batch {
            after = Some(ListCursor::of(s));
            if !(has(&s.user, &q.user) && has(&s.target, &q.target)) {
                continue;
            }
            let stop = if result.searched >= state.config.search_sessions {
                Some(format!(
                    "stopped after {} recordings, the most one search reads",
                    result.searched
                ))
            } else if total >= MAX_HITS {
                Some(format!(
                    "stopped at {MAX_HITS} hits, the most one search keeps"
                ))
            } else if bytes_read >= state.config.search_bytes {
                Some(format!(
                    "stopped after {} MiB of recordings, the most one search reads",
                    bytes_read >> 20
                ))
            } else {
                None
            };
            if let Some(why) = stop {
                result.truncated = true;
                result.stopped = Some(format!(
                    "{why}; sessions older than {} were not searched: narrow the search by \
                     user, target or session",
                    s.start_time
                ));
                break 'sessions;
            }
            let id = s.id;
            let source = match open(&state, id).await {
                Ok(Some(src)) => src,
                Ok(None) => continue,
                Err(e) => {
                    result.skipped.push(Skipped {
                        id: id.to_string(),
                        reason: e.0.content.clone(),
                    });
                    continue;
                }
            };
            bytes_read = bytes_read.saturating_add(source.len());
            result.searched += 1;
            let options = psm_recording::ReadOptions {
                identity: state.config.identity.clone(),
                ..psm_recording::ReadOptions::default()
            };
            let re = re.clone();
            let hits = tokio::task::spawn_blocking(move || match source {
                Source::File(path, _) => {
                    let mut r = psm_recording::Reader::open(&path, options)?;
                    search_recording(&mut r, &re, |_, _| {})
                }
                Source::Bytes(bytes) => {
                    let mut r = psm_recording::Reader::from_bytes(bytes.to_vec(), options)?;
                    search_recording(&mut r, &re, |_, _| {})
                }
            })
            .await;
            let hits = match hits {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    result.skipped.push(Skipped {
                        id: id.to_string(),
                        reason: format!("unreadable: {}", recordings::error_text(&e)),
                    });
                    continue;
                }
                Err(_) => continue,
            };
            if let Some(found) = session_hits(s, hits, kind) {
                total += found.hits.len();
                result.sessions.push(found);
            }
        }
        if exhausted || only.is_some() {
            break;
        }
    }
    Ok(Json(result))
}

/// Where a recording is searched from.
enum Source {
    /// The gateway's local file, read as the search walks it.
    File(std::path::PathBuf, u64),
    /// Fetched from the store (at most `max_recording_bytes`).
    Bytes(bytes::Bytes),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::File(_, n) => *n,
            Source::Bytes(b) => b.len() as u64,
        }
    }
}

/// The raw recording of `id`: its local file if there is one (the layout of
/// `recordings::load`: `recordings_dir/ID.psmr`), else the store's copy.
async fn open(state: &WebState, id: SessionId) -> Result<Option<Source>, ApiError> {
    if let Some(dir) = &state.config.recordings_dir {
        let path = dir.join(format!("{id}.psmr"));
        if let Ok(meta) = tokio::fs::metadata(&path).await
            && meta.is_file()
        {
            return Ok(Some(Source::File(path, meta.len())));
        }
    }
    Ok(recordings::load(state, id, RAW).await?.map(Source::Bytes))
}

/// The hits of one session as the page shows them; `None` when nothing matched.
fn session_hits(
    s: &psm_core::PrivSession,
    hits: Vec<psm_recording::search::Hit>,
    kind: Option<HitKind>,
) -> Option<SessionHits> {
    let mut views: Vec<HitView> = hits
        .into_iter()
        .filter(|h| h.kind == HitKind::Gap || kind.is_none_or(|k| k == h.kind))
        .map(|h| {
            let t = h.time.0 as f64 / 1e6;
            HitView {
                time: t,
                offset: offset(t),
                kind: h.kind.as_str(),
                text: h.text.chars().take(500).collect(),
            }
        })
        .collect();
    if views.iter().all(|h| h.kind == "gap") {
        return None;
    }
    let truncated = views.len() > MAX_HITS_PER_SESSION;
    views.truncate(MAX_HITS_PER_SESSION);
    Some(SessionHits {
        id: s.id.to_string(),
        user: s.user.clone(),
        target: s.target.clone(),
        start: s.start_time.to_string(),
        stage: s.stage.as_str().to_owned(),
        hits: views,
        truncated,
    })
}
