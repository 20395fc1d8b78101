//! The seed's save endpoints: saveclipboard, savescreenshot, savesessionrecording,
//! SaveKeyStrokes. Each stores only while the session is Connected and not asked to
//! terminate; otherwise it answers `{"Result":"Terminated","TerminateSession":true}` and
//! stores nothing (the seed: "Checks if TerminateSession is set; if so, ends early").

use axum::Json;
use axum::extract::{Extension, State};
use base64::Engine as _;
use psm_client::wire;
use psm_core::{CoreError, SessionId, Stage};

use super::session::check_holds;
use crate::artifacts::{TextEvent, decode_png};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::WireJson;
use crate::state::AppState;

/// Longest clipboard or keystroke text, in bytes.
pub const MAX_TEXT_LEN: usize = 1024 * 1024;

fn answer(result: &str, message: Option<&str>, terminate: Option<bool>) -> wire::ResultResponse {
    wire::ResultResponse {
        result: result.into(),
        message: message.map(str::to_owned),
        terminate_session: terminate,
    }
}

/// `None` if the session accepts data; otherwise the "Terminated" answer.
async fn gate(
    state: &AppState,
    principal: &Principal,
    session: SessionId,
) -> Result<Option<wire::ResultResponse>, ApiError> {
    let s = state.cp.engine().session(session).await?;
    check_holds(state, principal, &s).await?;
    if s.stage == Stage::Connected && !s.terminate {
        return Ok(None);
    }
    Ok(Some(answer(
        "Terminated",
        Some("the session is over or being terminated; nothing was stored"),
        Some(true),
    )))
}

fn check_text(field: &'static str, text: &str) -> Result<(), CoreError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(CoreError::InvalidInput {
            field,
            reason: format!("{} bytes, the limit is {MAX_TEXT_LEN}", text.len()),
        });
    }
    Ok(())
}

/// saveclipboard: records clipboard text, if clipboard capture is enabled.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/saveclipboard",
    request_body = wire::SaveClipboardRequest,
    responses((status = 200, description = "Success, Disabled or Terminated", body = wire::ResultResponse)),
    tag = "recording", security(("api_key" = [])))]
pub async fn save_clipboard(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::SaveClipboardRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    check_text("text", &req.text)?;
    if let Some(t) = gate(&state, &principal, req.session).await? {
        return Ok(Json(t));
    }
    if !state.cp.settings().capture_clipboard {
        return Ok(Json(answer(
            "Disabled",
            Some("clipboard capture is off"),
            None,
        )));
    }
    let now = state.cp.engine().now();
    state
        .artifacts
        .event(req.session, now, TextEvent::Clipboard, &req.text)
        .await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// SaveKeyStrokes: records keystrokes, if PSMRecordKeyStrokes is on.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/SaveKeyStrokes",
    request_body = wire::SaveKeyStrokesRequest,
    responses((status = 200, description = "Success, Disabled or Terminated", body = wire::ResultResponse)),
    tag = "recording", security(("api_key" = [])))]
pub async fn save_key_strokes(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::SaveKeyStrokesRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    check_text("keyStrokes", &req.key_strokes)?;
    if let Some(t) = gate(&state, &principal, req.session).await? {
        return Ok(Json(t));
    }
    if !state.cp.settings().record_keystrokes {
        return Ok(Json(answer(
            "Disabled",
            Some("keystroke recording is off"),
            None,
        )));
    }
    let now = state.cp.engine().now();
    state
        .artifacts
        .event(req.session, now, TextEvent::KeyStrokes, &req.key_strokes)
        .await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// savescreenshot: stores a PNG screenshot (a `data:image/png;base64,` URL or bare base64).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/savescreenshot",
    request_body = wire::SaveScreenshotRequest,
    responses((status = 200, description = "Success or Terminated", body = wire::ResultResponse)),
    tag = "recording", security(("api_key" = [])))]
pub async fn save_screenshot(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::SaveScreenshotRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let png = decode_png(&req.image)?;
    if let Some(t) = gate(&state, &principal, req.session).await? {
        return Ok(Json(t));
    }
    let now = state.cp.engine().now();
    state.artifacts.screenshot(req.session, now, &png).await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// savesessionrecording: appends base64 raw recording bytes to the session's recording.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/savesessionrecording",
    request_body = wire::SaveRecordingRequest,
    responses((status = 200, description = "Success or Terminated", body = wire::ResultResponse)),
    tag = "recording", security(("api_key" = [])))]
pub async fn save_session_recording(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::SaveRecordingRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(req.recording.trim())
        .map_err(|_| CoreError::InvalidInput {
            field: "recording",
            reason: "not valid base64".into(),
        })?;
    if let Some(t) = gate(&state, &principal, req.session).await? {
        return Ok(Json(t));
    }
    state.artifacts.recording(req.session, &bytes).await?;
    Ok(Json(wire::ResultResponse::success()))
}
