//! The workers' calls: EncoderClaim, UploderClaim, GetRecordingProcessStatus,
//! UpdateRecordingProcessStatus, FailRecordingProcess.

use axum::Json;
use axum::extract::{Extension, State};
use psm_client::wire;
use psm_core::{FencingToken, Lease, RecordingStatusUpdate};

use super::session::{check_acts_as, check_role_stage};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::WireJson;
use crate::state::AppState;

fn claim_answer(leases: Vec<Lease>) -> wire::ClaimResponse {
    wire::ClaimResponse {
        session_ids: leases.iter().map(|l| l.session).collect(),
        leases: leases.iter().map(wire::LeaseDto::from).collect(),
    }
}

/// EncoderClaim: moves up to `limit` (default 1) Ended sessions to Encoding, leased to the
/// caller; with `privSessionIds`, only among those sessions.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/EncoderClaim",
    request_body = wire::ClaimRequest,
    responses((status = 200, body = wire::ClaimResponse)),
    tag = "workers", security(("api_key" = [])))]
pub async fn encoder_claim(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::ClaimRequest>,
) -> Result<Json<wire::ClaimResponse>, ApiError> {
    check_acts_as(&state, &principal, &req.process_instance, None).await?;
    let engine = state.cp.engine();
    let limit = req.limit.unwrap_or(1);
    let leases = match &req.among {
        Some(among) => {
            engine
                .claim_for_encoding_among(&req.process_instance, limit, among)
                .await?
        }
        None => {
            engine
                .claim_for_encoding(&req.process_instance, limit)
                .await?
        }
    };
    Ok(Json(claim_answer(leases)))
}

/// UploderClaim (sic): moves up to `limit` (default 1) Done-Encoded sessions to Uploading;
/// with `privSessionIds`, only among those sessions.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/UploderClaim",
    request_body = wire::ClaimRequest,
    responses((status = 200, body = wire::ClaimResponse)),
    tag = "workers", security(("api_key" = [])))]
pub async fn uploder_claim(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::ClaimRequest>,
) -> Result<Json<wire::ClaimResponse>, ApiError> {
    check_acts_as(&state, &principal, &req.process_instance, None).await?;
    let engine = state.cp.engine();
    let limit = req.limit.unwrap_or(1);
    let leases = match &req.among {
        Some(among) => {
            engine
                .claim_for_upload_among(&req.process_instance, limit, among)
                .await?
        }
        None => {
            engine
                .claim_for_upload(&req.process_instance, limit)
                .await?
        }
    };
    Ok(Json(claim_answer(leases)))
}

/// GetRecordingProcessStatus: the stage of each session, in request order.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/GetRecordingProcessStatus",
    request_body = wire::RecordingStatusRequest,
    responses((status = 200, body = Vec<wire::RecordingStatusEntry>)),
    tag = "workers", security(("api_key" = [])))]
pub async fn get_recording_process_status(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::RecordingStatusRequest>,
) -> Result<Json<Vec<wire::RecordingStatusEntry>>, ApiError> {
    let statuses = state
        .cp
        .engine()
        .recording_status(&req.priv_session_ids)
        .await?;
    Ok(Json(
        statuses
            .into_iter()
            .map(|s| wire::RecordingStatusEntry {
                session: s.session,
                status: s.stage,
                failure_reason: s.failure_reason,
            })
            .collect(),
    ))
}

/// UpdateRecordingProcessStatus (PUT): the holder reports on its session; reporting the
/// step's done stage completes it.
#[utoipa::path(put, path = "/api/services/v1/secureaccessgateway/UpdateRecordingProcessStatus",
    request_body = wire::UpdateRecordingStatusRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "workers", security(("api_key" = [])))]
pub async fn update_recording_process_status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::UpdateRecordingStatusRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    check_acts_as(
        &state,
        &principal,
        &req.process_instance,
        Some(req.priv_session_id),
    )
    .await?;
    let engine = state.cp.engine();
    let current = engine.session(req.priv_session_id).await?;
    check_role_stage(&state, &principal, &current, "UpdateRecordingProcessStatus").await?;
    engine
        .update_recording_status(RecordingStatusUpdate {
            session: req.priv_session_id,
            process_instance: req.process_instance,
            status: req.recording_status,
            token: req.fencing_token.map(FencingToken),
            ssh_logs_uploaded: req.ssh_logs_uploaded,
            recording_format: req.recording_format,
            note: req.note,
        })
        .await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// FailRecordingProcess (extension): the holder gives up its attempt; the session goes back
/// to its queue with a backoff, or to Failed after the last allowed attempt.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/FailRecordingProcess",
    request_body = wire::FailRecordingRequest,
    responses((status = 200, body = wire::FailRecordingResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn fail_recording_process(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::FailRecordingRequest>,
) -> Result<Json<wire::FailRecordingResponse>, ApiError> {
    check_acts_as(
        &state,
        &principal,
        &req.process_instance,
        Some(req.priv_session_id),
    )
    .await?;
    let engine = state.cp.engine();
    let current = engine.session(req.priv_session_id).await?;
    check_role_stage(&state, &principal, &current, "FailRecordingProcess").await?;
    if !current.stage.is_leased() {
        // Requeued by the watchdog, or claimed again by another worker: the attempt is gone.
        return Err(if current.fencing_token.0 != req.fencing_token {
            psm_core::CoreError::StaleToken {
                session: current.id,
                presented: FencingToken(req.fencing_token),
                current: current.fencing_token,
            }
        } else {
            psm_core::CoreError::LeaseLost {
                session: current.id,
                stage: current.stage,
            }
        }
        .into());
    }
    let lease = Lease {
        session: current.id,
        stage: current.stage,
        owner: req.process_instance,
        token: FencingToken(req.fencing_token),
        expires: current.lease_expires.unwrap_or(current.last_reported),
        attempt: current.attempts,
        recording: current.recording_commitment,
    };
    let s = engine.fail(&lease, &req.reason).await?;
    Ok(Json(wire::FailRecordingResponse {
        result: wire::SUCCESS.into(),
        status: s.stage,
    }))
}
