//! The sessions API of the web UI: list with filters, one session with its audit trail,
//! terminate, live control and join, and the targets of the browser terminal.

use std::collections::HashMap;
use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, Query, State};
use psm_core::store::{ListCursor, ListQuery, StageSet};
use psm_core::{AuditAction, PrivSession, SessionId, Stage};
use serde::{Deserialize, Serialize};

use super::WebState;
use super::guard::{WebUser, audit};
use super::live::gateway_url;
use super::recordings;
use crate::error::ApiError;
use crate::extract::WireJson;
use psm_core::live::{
    LiveAction, LiveMode, LiveSessionState, PendingApproval, ViewerInfo, Viewport,
};

/// Longest free-text filter or reason accepted.
const MAX_TEXT: usize = 500;
/// Default and largest page of sessions.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;
/// Sessions read from the store per batch while filling a page, and at most per request:
/// a filter that matches little answers with a cursor to go on from rather than reading
/// the whole history.
const SCAN_BATCH: u32 = 500;
const MAX_SCAN: usize = 5_000;

pub(crate) fn parse_id(id: &str) -> Result<SessionId, ApiError> {
    SessionId::from_str(id)
        .map_err(|_| ApiError::new(400, "invalid-input", "the session id is not a GUID"))
}

/// Filters of the sessions list.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListFilter {
    /// Comma-separated stages (`Connected,Ended`).
    stage: Option<String>,
    /// User name contains this (case-insensitive).
    user: Option<String>,
    /// Target name contains this (case-insensitive).
    target: Option<String>,
    /// `live` (Connected) or `ended` (any other stage).
    state: Option<String>,
    /// Protocol (`ssh`, `rdp`).
    protocol: Option<String>,
    /// Most sessions returned (a page; default 50, at most 500).
    limit: Option<u32>,
    /// Start after this position (the previous page's `next`).
    after: Option<String>,
}

/// A page's position as the API carries it: `MICROS_SESSIONID`.
fn cursor_text(c: &ListCursor) -> String {
    format!("{}_{}", c.start_time.as_micros(), c.id)
}

fn parse_cursor(text: &str) -> Result<ListCursor, ApiError> {
    let bad = || ApiError::new(400, "invalid-input", "after is not a page position");
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    Ok(ListCursor {
        start_time: psm_core::Timestamp::from_micros(micros.parse().map_err(|_| bad())?),
        id: SessionId::from_str(id).map_err(|_| bad())?,
    })
}

/// One session as the UI shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionView {
    id: SessionId,
    stage: String,
    user: String,
    target: String,
    protocol: String,
    start: String,
    end: Option<String>,
    last_reported: String,
    duration_seconds: u64,
    live: bool,
    terminate_requested: bool,
    terminate_reason: Option<String>,
    failure_reason: Option<String>,
    /// What the session's gateway last reported (absent if it reported nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    viewers: Option<Vec<ViewerInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approvals: Option<Vec<PendingApproval>>,
    /// The gateway that ran the session. Once it ended, the encoder and uploader take the
    /// session over (`owner`), so this comes from the session's Opened audit event; the list
    /// has it only for live sessions (whose owner is their gateway), the details always.
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    /// The process that owns the session's stage now (or owned it last): the gateway while
    /// Connected, then the encoder, then the uploader.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

/// The gateway that opened the session, from its trail (the Opened event is written with
/// the session, its actor the gateway's process instance).
fn opened_by(trail: &[psm_core::AuditEvent]) -> Option<String> {
    trail
        .iter()
        .find(|e| e.record.action == AuditAction::Opened)
        .map(|e| e.record.actor.clone())
}

fn view(
    s: &PrivSession,
    now: psm_core::Timestamp,
    live: Option<&LiveSessionState>,
    gateway: Option<String>,
) -> SessionView {
    let is_live = s.stage == Stage::Connected;
    let owner = s.process_instance.as_ref().map(|p| p.to_string());
    let end = if is_live {
        now
    } else {
        s.end_time.unwrap_or(s.last_reported)
    };
    SessionView {
        id: s.id,
        stage: s.stage.as_str().to_owned(),
        user: s.user.clone(),
        target: s.target.clone(),
        protocol: s.protocol.as_str().to_owned(),
        start: s.start_time.to_string(),
        end: s.end_time.map(|t| t.to_string()),
        last_reported: s.last_reported.to_string(),
        duration_seconds: end.since(s.start_time).as_secs(),
        live: is_live,
        terminate_requested: s.terminate,
        terminate_reason: s.terminate_reason.clone(),
        failure_reason: s.failure_reason.clone(),
        paused: live.map(|l| l.paused),
        locked: live.map(|l| l.locked),
        viewers: live.map(|l| l.viewers.clone()),
        approvals: live.map(|l| l.approvals.clone()),
        // While Connected only the gateway reports on a session, so its owner is its gateway.
        gateway: gateway.or_else(|| owner.clone().filter(|_| is_live)),
        owner,
    }
}

async fn live_map(state: &WebState) -> HashMap<SessionId, LiveSessionState> {
    match state.app.cp.live_sessions().await {
        Ok(v) => v
            .into_iter()
            .filter_map(|(s, st)| st.map(|st| (s.id, st)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing live sessions for the web UI");
            HashMap::new()
        }
    }
}

fn contains(hay: &str, needle: &Option<String>) -> bool {
    needle
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .is_none_or(|n| hay.to_lowercase().contains(&n.to_lowercase()))
}

/// The page of sessions.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionList {
    now: String,
    sessions: Vec<SessionView>,
    /// More sessions match after this page.
    truncated: bool,
    /// Where the next page starts (`after=`), when there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// GET /ui/api/sessions.
pub(crate) async fn list_sessions(
    State(state): State<WebState>,
    viewer: WebUser,
    Query(f): Query<ListFilter>,
) -> Result<Json<SessionList>, ApiError> {
    viewer.require_view(&state, "list sessions").await?;
    for t in [&f.user, &f.target, &f.stage, &f.state, &f.protocol]
        .into_iter()
        .flatten()
    {
        if t.len() > MAX_TEXT {
            return Err(ApiError::new(400, "invalid-input", "a filter is too long"));
        }
    }
    let mut stages = StageSet::default();
    if let Some(list) = f.stage.as_deref().filter(|s| !s.trim().is_empty()) {
        for name in list.split(',') {
            let stage = Stage::from_str(name.trim()).map_err(|_| {
                ApiError::new(400, "invalid-input", "unknown stage in the stage filter")
            })?;
            stages = stages.with(stage);
        }
    }
    match f.state.as_deref() {
        Some("live") => stages = StageSet::one(Stage::Connected),
        Some("ended") if stages.is_empty() => {
            stages = StageSet::of(
                &Stage::ALL
                    .into_iter()
                    .filter(|s| *s != Stage::Connected)
                    .collect::<Vec<_>>(),
            );
        }
        Some("ended" | "" | "all") | None => {}
        Some(_) => {
            return Err(ApiError::new(
                400,
                "invalid-input",
                "state must be live, ended or all",
            ));
        }
    }
    let limit = f.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
    let mut after = f
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(parse_cursor)
        .transpose()?;
    let engine = state.app.cp.engine();
    let keep = |s: &PrivSession| {
        contains(&s.user, &f.user)
            && contains(&s.target, &f.target)
            && f.protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .is_none_or(|p| s.protocol.as_str().eq_ignore_ascii_case(p))
    };
    // Keyset paging over the store: one small read for an unfiltered page; a filter that
    // matches little reads batches up to MAX_SCAN and then hands back where it stopped.
    let mut page: Vec<PrivSession> = Vec::new();
    let mut scanned = 0usize;
    let mut next = None;
    let mut truncated = false;
    'scan: loop {
        let want = (limit + 1 - page.len()).max(1);
        let batch_limit = if f.user.is_some() || f.target.is_some() || f.protocol.is_some() {
            SCAN_BATCH
        } else {
            u32::try_from(want).unwrap_or(SCAN_BATCH).min(SCAN_BATCH)
        };
        let batch = engine
            .list(&ListQuery {
                ids: Vec::new(),
                stages,
                limit: batch_limit,
                after,
            })
            .await?;
        let exhausted = batch.len() < batch_limit as usize;
        for s in batch {
            scanned += 1;
            after = Some(ListCursor::of(&s));
            if !keep(&s) {
                continue;
            }
            if page.len() == limit {
                truncated = true;
                next = page.last().map(|l| cursor_text(&ListCursor::of(l)));
                break 'scan;
            }
            page.push(s);
        }
        if exhausted {
            break;
        }
        if scanned >= MAX_SCAN {
            // Not known whether more match: the caller may go on from here.
            truncated = true;
            next = after.as_ref().map(cursor_text);
            break;
        }
    }
    let live = live_map(&state).await;
    let now = engine.now();
    let sessions = page
        .iter()
        .map(|s| view(s, now, live.get(&s.id), None))
        .collect();
    Ok(Json(SessionList {
        now: now.to_string(),
        sessions,
        truncated,
        next,
    }))
}

/// One audit event as the UI shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditView {
    at: String,
    actor: String,
    action: String,
    from_stage: Option<String>,
    to_stage: Option<String>,
    detail: String,
}

/// One session with its trail and recording files.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionDetail {
    session: SessionView,
    audit: Vec<AuditView>,
    files: Vec<recordings::FileView>,
    recording: bool,
}

/// GET /ui/api/sessions/{id}.
pub(crate) async fn session_detail(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    viewer.require_view(&state, "see sessions").await?;
    let id = parse_id(&id)?;
    let engine = state.app.cp.engine();
    let s = engine.session(id).await?;
    let trail = engine.audit_trail(id).await?;
    let live = live_map(&state).await;
    let files = recordings::list_files(&state, id).await;
    let recording = files
        .iter()
        .any(|f| f.name == "recording.psmr" || f.name == "session.cast");
    Ok(Json(SessionDetail {
        session: view(&s, engine.now(), live.get(&id), opened_by(&trail)),
        audit: trail
            .into_iter()
            .map(|e| AuditView {
                at: e.record.at.to_string(),
                actor: e.record.actor,
                action: e.record.action.as_str().to_owned(),
                from_stage: e.record.from_stage.map(|s| s.as_str().to_owned()),
                to_stage: e.record.to_stage.map(|s| s.as_str().to_owned()),
                detail: e.record.detail,
            })
            .collect(),
        files,
        recording,
    }))
}

/// A terminate request.
#[derive(Debug, Deserialize)]
pub(crate) struct TerminateForm {
    reason: String,
}

fn check_reason(reason: &str) -> Result<String, ApiError> {
    let reason: String = reason.trim().chars().filter(|c| !c.is_control()).collect();
    if reason.is_empty() {
        return Err(ApiError::new(
            400,
            "invalid-input",
            "give a reason (the user sees it)",
        ));
    }
    if reason.len() > MAX_TEXT {
        return Err(ApiError::new(
            400,
            "invalid-input",
            "the reason is longer than 500 bytes",
        ));
    }
    Ok(reason)
}

/// What a control request did.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControlResult {
    result: &'static str,
    /// Whether the gateway confirmed it (false: queued; a terminate still happens on the
    /// gateway's next Polling).
    applied: bool,
    message: String,
}

/// POST /ui/api/sessions/{id}/terminate: queued for the session's gateway (which ends it
/// at once) and flagged on the session (so a gateway that misses the command ends it on its
/// next Polling).
pub(crate) async fn terminate(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
    WireJson(form): WireJson<TerminateForm>,
) -> Result<Json<ControlResult>, ApiError> {
    let id = parse_id(&id)?;
    viewer
        .require_control(&state, Some(id), "terminate sessions")
        .await?;
    let reason = check_reason(&form.reason)?;
    run_control(
        &state,
        &viewer,
        id,
        LiveAction::Terminate,
        Some(reason),
        None,
    )
    .await
}

async fn run_control(
    state: &WebState,
    viewer: &WebUser,
    id: SessionId,
    action: LiveAction,
    reason: Option<String>,
    approval: Option<u64>,
) -> Result<Json<ControlResult>, ApiError> {
    let actor = viewer.actor();
    let s = state.app.cp.engine().session(id).await?;
    if s.stage != Stage::Connected {
        return Err(ApiError::new(
            409,
            "not-live",
            format!("the session is {}; it is not live", s.stage),
        ));
    }
    let (applied, message) = state
        .app
        .cp
        .live_control(
            id,
            action,
            &actor,
            reason,
            approval,
            state.config.control_wait,
        )
        .await?;
    audit(
        state,
        Some(id),
        &actor,
        AuditAction::Other,
        format!(
            "web: {} requested ({})",
            action.as_str(),
            if applied { "applied" } else { "queued" }
        ),
    )
    .await;
    tracing::info!(session_id = %id, actor = %actor, action = action.as_str(), applied, "live control from the web UI");
    Ok(Json(ControlResult {
        result: "Success",
        applied,
        message,
    }))
}

/// A control request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControlForm {
    action: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    approval_id: Option<u64>,
}

/// POST /ui/api/sessions/{id}/control: pause, resume, lock, unlock, terminate, approve, deny.
pub(crate) async fn control(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
    WireJson(form): WireJson<ControlForm>,
) -> Result<Json<ControlResult>, ApiError> {
    let id = parse_id(&id)?;
    let action = LiveAction::from_str(&form.action)
        .ok()
        .filter(|a| *a != LiveAction::Disconnect)
        .ok_or_else(|| {
            ApiError::new(
                400,
                "invalid-input",
                "action must be pause, resume, lock, unlock, terminate, approve or deny",
            )
        })?;
    viewer
        .require_control(&state, Some(id), action.as_str())
        .await?;
    let reason = match form
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        Some(r) => Some(check_reason(r)?),
        None if action == LiveAction::Terminate => {
            return Err(ApiError::new(
                400,
                "invalid-input",
                "give a reason (the user sees it)",
            ));
        }
        None => None,
    };
    run_control(&state, &viewer, id, action, reason, form.approval_id).await
}

/// A join request.
#[derive(Debug, Deserialize)]
pub(crate) struct JoinForm {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    cols: Option<u32>,
    #[serde(default)]
    rows: Option<u32>,
}

/// A ticket: the websocket URL to open, ticket included (single use, short-lived).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TicketView {
    url: String,
    expires_in: u64,
}

/// POST /ui/api/sessions/{id}/join: a ticket to watch the session live through its gateway.
pub(crate) async fn join(
    State(state): State<WebState>,
    viewer: WebUser,
    Path(id): Path<String>,
    WireJson(form): WireJson<JoinForm>,
) -> Result<Json<TicketView>, ApiError> {
    let id = parse_id(&id)?;
    let mode = LiveMode::from_str(form.mode.as_deref().unwrap_or("view"))?;
    // Tickets let their holder moderate (docs/live.md), so watching needs control rights.
    viewer
        .require_control(&state, Some(id), "watch live sessions")
        .await?;
    let viewport = Viewport {
        width: form.cols.unwrap_or(120).clamp(1, 1000),
        height: form.rows.unwrap_or(40).clamp(1, 500),
        dpi: 0,
    };
    let (ticket, s) = state
        .app
        .cp
        .join_session(id, mode, &viewer.user, Some(viewport))
        .await?;
    let advertised = s
        .process_instance
        .as_ref()
        .and_then(|p| state.app.cp.live().gateway_url(p));
    let url = gateway_url(
        &state,
        advertised.as_deref(),
        &format!("/live/{id}?ticket={}", ticket.as_str()),
    )?;
    audit(
        &state,
        Some(id),
        &viewer.actor(),
        AuditAction::Other,
        format!("web: join ticket issued ({})", mode.as_str()),
    )
    .await;
    Ok(Json(TicketView {
        url,
        expires_in: state.app.cp.live().config().ticket_ttl.as_secs(),
    }))
}

/// A target the viewer may open in the browser terminal.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TargetView {
    name: String,
    host: String,
    port: u16,
    protocol: String,
}

/// GET /ui/api/targets: the targets the viewer's roles reach.
pub(crate) async fn targets(
    State(state): State<WebState>,
    viewer: WebUser,
) -> Result<Json<Vec<TargetView>>, ApiError> {
    let Some(directory) = &state.app.directory else {
        return Ok(Json(Vec::new()));
    };
    let Some(user) = directory.user(&viewer.user).await? else {
        return Err(ApiError::new(
            401,
            "unauthenticated",
            "the user no longer exists",
        ));
    };
    let mut out = Vec::new();
    for t in state.app.cp.vault().targets().await? {
        if directory.may_reach(&user, &t.name).await? {
            out.push(TargetView {
                name: t.name,
                host: t.host,
                port: t.port,
                protocol: t.protocol.as_str().to_owned(),
            });
        }
    }
    Ok(Json(out))
}

/// A terminal request.
#[derive(Debug, Deserialize)]
pub(crate) struct TerminalForm {
    target: String,
    #[serde(default)]
    cols: Option<u32>,
    #[serde(default)]
    rows: Option<u32>,
}

/// POST /ui/api/terminal: a ticket for a browser terminal to `target`, as the logged-in
/// user (the gateway applies the same checks as an SSH login when it redeems it).
pub(crate) async fn terminal(
    State(state): State<WebState>,
    viewer: WebUser,
    WireJson(form): WireJson<TerminalForm>,
) -> Result<Json<TicketView>, ApiError> {
    if form.target.is_empty() || form.target.len() > 256 {
        return Err(ApiError::new(400, "invalid-input", "name a target"));
    }
    if let Some(directory) = &state.app.directory {
        let user = directory.user(&viewer.user).await?;
        let ok = match &user {
            Some(u) => directory.may_reach(u, &form.target).await?,
            None => false,
        };
        if !ok {
            let reason = format!("{} may not reach target {:?}", viewer.user, form.target);
            audit(
                &state,
                None,
                &viewer.actor(),
                AuditAction::Refused,
                reason.clone(),
            )
            .await;
            return Err(ApiError::new(403, "forbidden", reason));
        }
    }
    let viewport = Viewport {
        width: form.cols.unwrap_or(120).clamp(1, 1000),
        height: form.rows.unwrap_or(40).clamp(1, 500),
        dpi: 0,
    };
    let ticket = state
        .app
        .cp
        .terminal_ticket(&viewer.user, &form.target, Some(viewport))
        .await?;
    let url = gateway_url(
        &state,
        None,
        &format!("/terminal?ticket={}", ticket.as_str()),
    )?;
    audit(
        &state,
        None,
        &viewer.actor(),
        AuditAction::Other,
        format!(
            "web: terminal ticket issued for target {}",
            psm_core::live::cut(&form.target)
        ),
    )
    .await;
    Ok(Json(TicketView {
        url,
        expires_in: state.app.cp.live().config().ticket_ttl.as_secs(),
    }))
}
