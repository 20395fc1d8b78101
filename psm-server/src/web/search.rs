//! Search across recordings: commands, terminal output and event notes, through
//! psm-recording's search, newest sessions first, each hit with the second it happened at
//! (the UI opens the replay there).

use axum::Json;
use axum::extract::{Query, State};
use psm_core::store::ListQuery;
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
        "output" => Some(HitKind::Output),
        "event" => Some(HitKind::Event),
        _ => {
            return Err(ApiError::new(
                400,
                "invalid-input",
                "kind must be command, output, event or all",
            ));
        }
    };
    let only = match q.session.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(super::api::parse_id(s)?),
        None => None,
    };
    let engine = state.app.cp.engine();
    let sessions = engine
        .list(&ListQuery {
            ids: only.into_iter().collect(),
            ..ListQuery::default()
        })
        .await?;
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
    };
    let mut total = 0usize;
    for s in sessions
        .iter()
        .filter(|s| has(&s.user, &q.user) && has(&s.target, &q.target))
    {
        if result.searched >= state.config.search_sessions || total >= MAX_HITS {
            result.truncated = true;
            break;
        }
        let id = s.id;
        let bytes = match recordings::load(&state, id, RAW).await {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                result.skipped.push(Skipped {
                    id: id.to_string(),
                    reason: e.0.content.clone(),
                });
                continue;
            }
        };
        result.searched += 1;
        let options = psm_recording::ReadOptions {
            identity: state.config.identity.clone(),
            ..psm_recording::ReadOptions::default()
        };
        let re = re.clone();
        let hits = tokio::task::spawn_blocking(move || {
            let mut r = psm_recording::Reader::from_bytes(bytes.to_vec(), options)?;
            search_recording(&mut r, &re, |_, _| {})
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
            continue;
        }
        let truncated = views.len() > MAX_HITS_PER_SESSION;
        views.truncate(MAX_HITS_PER_SESSION);
        total += views.len();
        result.sessions.push(SessionHits {
            id: id.to_string(),
            user: s.user.clone(),
            target: s.target.clone(),
            start: s.start_time.to_string(),
            stage: s.stage.as_str().to_owned(),
            hits: views,
            truncated,
        });
    }
    Ok(Json(result))
}
