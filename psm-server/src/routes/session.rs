//! The gateway's and the admin's session calls: UpdateSession, EndSession, Polling,
//! OpenSession, TerminateSession (JoinSession is in [`live`](super::live)).

use axum::Json;
use axum::extract::{Extension, State};
use psm_client::wire::{self, ErrorBody};
use psm_core::{CoreError, Lease, NewSession, ProcessInstance, SessionId, Stage};

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::extract::WireJson;
use crate::state::AppState;

/// The stage a role's process owns sessions in.
pub(crate) fn role_stage(role: Role) -> Option<Stage> {
    match role {
        Role::Gateway => Some(Stage::Connected),
        Role::Encoder => Some(Stage::Encoding),
        Role::Uploader => Some(Stage::Uploading),
        Role::Admin => None,
    }
}

/// Refuses a process acting on a session held in another role's stage (an encoder polling
/// a gateway's session, say); other stages are left to the engine's own errors.
pub(crate) async fn check_role_stage(
    state: &AppState,
    principal: &Principal,
    session: &psm_core::PrivSession,
    endpoint: &str,
) -> Result<(), ApiError> {
    let owned_stages = [Stage::Connected, Stage::Encoding, Stage::Uploading];
    if owned_stages.contains(&session.stage) && role_stage(principal.role) != Some(session.stage) {
        let e = CoreError::Forbidden(format!(
            "a process of role {} may not call {endpoint} on session {}, which is {}",
            principal.role, session.id, session.stage
        ));
        return Err(state
            .cp
            .vault()
            .refuse(Some(session.id), &principal.name, e)
            .await
            .into());
    }
    Ok(())
}

/// Refuses a caller acting as a process instance its key or certificate does not stand
/// for (issue 17 M7): an instance key acts as its own instance only, a shared role key as
/// any instance without a key of its own. The answer names only what the caller sent.
pub(crate) async fn check_acts_as(
    state: &AppState,
    principal: &Principal,
    instance: &ProcessInstance,
    session: Option<SessionId>,
) -> Result<(), ApiError> {
    if principal.role == Role::Admin || state.keys.may_act_as(principal, instance) {
        return Ok(());
    }
    let e = CoreError::Forbidden(format!(
        "this API key or certificate may not act as process instance {instance}"
    ));
    Err(state
        .cp
        .vault()
        .refuse(session, &principal.name, e)
        .await
        .into())
}

/// Refuses a caller acting on a session held by a process instance it may not act as
/// (the session endpoints that carry no `processInstance`). The answer never names the
/// holder.
pub(crate) async fn check_holds(
    state: &AppState,
    principal: &Principal,
    session: &psm_core::PrivSession,
) -> Result<(), ApiError> {
    match &session.process_instance {
        Some(owner) if !state.keys.may_act_as(principal, owner) => {
            let e = CoreError::Forbidden(format!(
                "session {} is not held by the caller's process instance",
                session.id
            ));
            Err(state
                .cp
                .vault()
                .refuse(Some(session.id), &principal.name, e)
                .await
                .into())
        }
        _ => Ok(()),
    }
}

/// UpdateSession: sets the session's EndTime to now.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/UpdateSession",
    request_body = wire::SessionRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "sessions", security(("api_key" = [])))]
pub async fn update_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::SessionRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    if principal.instance.is_some() || state.keys.has_instance_bindings() {
        let current = state.cp.engine().session(req.session).await?;
        check_holds(&state, &principal, &current).await?;
    }
    state.cp.engine().update_session(req.session).await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// EndSession: the owning gateway ends a Connected session (idempotent).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/EndSession",
    request_body = wire::EndSessionRequest,
    responses((status = 200, body = wire::ResultResponse),
        (status = 400, description = "Process instance not supplied", body = ErrorBody)),
    tag = "sessions", security(("api_key" = [])))]
pub async fn end_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::EndSessionRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    check_acts_as(&state, &principal, &req.process_instance, Some(req.session)).await?;
    state
        .cp
        .engine()
        .end_session_committed(req.session, &req.process_instance, req.recording.as_ref())
        .await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// Polling: the owner reports the session alive (LastReported = now); a worker sending its
/// fencing token renews its lease and gets it back.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/Polling",
    request_body = wire::PollingRequest,
    responses((status = 200, body = wire::PollingResponse)),
    tag = "sessions", security(("api_key" = [])))]
pub async fn polling(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::PollingRequest>,
) -> Result<Json<wire::PollingResponse>, ApiError> {
    check_acts_as(&state, &principal, &req.process_instance, Some(req.session)).await?;
    let engine = state.cp.engine();
    // Fast path: one guarded write narrowed to the stage the caller's role owns. Only a
    // refusal reads the session, to answer with the precise error (and audit it).
    if let Some(stage) = role_stage(principal.role) {
        match req.fencing_token {
            Some(token) if stage.is_leased() => {
                let lease = Lease {
                    session: req.session,
                    stage,
                    owner: req.process_instance.clone(),
                    token: psm_core::FencingToken(token),
                    expires: psm_core::Timestamp::EPOCH, // not part of the guard
                    attempt: 0,                          // not part of the guard
                    recording: None,
                };
                if let Ok(renewed) = engine.renew(&lease).await {
                    return Ok(Json(wire::PollingResponse {
                        result: wire::SUCCESS.into(),
                        terminate_session: false,
                        terminate_reason: None,
                        lease: Some(wire::LeaseDto::from(&renewed)),
                    }));
                }
            }
            None => {
                let owned = psm_core::store::StageSet::one(stage);
                if let Ok(s) = engine
                    .heartbeat_in(req.session, &req.process_instance, owned)
                    .await
                {
                    return Ok(Json(polling_answer(s)));
                }
            }
            Some(_) => {}
        }
    }
    let current = engine.session(req.session).await?;
    check_role_stage(&state, &principal, &current, "Polling").await?;
    if let Some(token) = req.fencing_token {
        let lease = Lease {
            session: req.session,
            stage: current.stage,
            owner: req.process_instance,
            token: psm_core::FencingToken(token),
            expires: current.lease_expires.unwrap_or(current.last_reported),
            attempt: current.attempts,
            recording: current.recording_commitment,
        };
        if !current.stage.is_leased() {
            // The token says "worker"; the session is no longer leased.
            return Err(if current.fencing_token.0 != token {
                CoreError::StaleToken {
                    session: current.id,
                    presented: psm_core::FencingToken(token),
                    current: current.fencing_token,
                }
            } else {
                CoreError::LeaseLost {
                    session: current.id,
                    stage: current.stage,
                }
            }
            .into());
        }
        let renewed = engine.renew(&lease).await?;
        return Ok(Json(wire::PollingResponse {
            result: wire::SUCCESS.into(),
            terminate_session: false,
            terminate_reason: None,
            lease: Some(wire::LeaseDto::from(&renewed)),
        }));
    }
    let s = engine.heartbeat(req.session, &req.process_instance).await?;
    Ok(Json(polling_answer(s)))
}

fn polling_answer(s: psm_core::PrivSession) -> wire::PollingResponse {
    wire::PollingResponse {
        result: wire::SUCCESS.into(),
        terminate_session: s.stage == Stage::Connected && s.terminate,
        terminate_reason: s.terminate_reason.filter(|_| s.terminate),
        lease: None,
    }
}

/// OpenSession (extension): a gateway opens a Connected session for a user who connected
/// to it directly. A checkout, if named, must be valid and granted to that user for that
/// target.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/OpenSession",
    request_body = wire::OpenSessionRequest,
    responses((status = 200, body = wire::OpenSessionResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn open_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::OpenSessionRequest>,
) -> Result<Json<wire::OpenSessionResponse>, ApiError> {
    check_acts_as(&state, &principal, &req.process_instance, Some(req.session)).await?;
    if let Some(id) = &req.checkout_id {
        let checkout = state.cp.vault().get_checkout(id).await?;
        let now = state.cp.engine().now();
        let problem = if !checkout.is_active(now) {
            Some(CoreError::CheckoutEnded {
                checkout: id.clone(),
                reason: checkout
                    .end_reason
                    .map_or("expired".into(), |r| r.to_string()),
            })
        } else if checkout.user != req.user_name || checkout.target != req.target {
            Some(CoreError::Forbidden(format!(
                "checkout {id} is not for user {} on target {}",
                req.user_name, req.target
            )))
        } else {
            None
        };
        if let Some(e) = problem {
            return Err(state
                .cp
                .vault()
                .refuse(Some(req.session), &principal.name, e)
                .await
                .into());
        }
    }
    let s = state
        .cp
        .engine()
        .open_session_from(
            NewSession {
                id: req.session,
                user: req.user_name,
                target: req.target,
                protocol: req.protocol,
                checkout_id: req.checkout_id,
                process_instance: req.process_instance,
            },
            req.client_address,
        )
        .await?;
    Ok(Json(wire::OpenSessionResponse {
        result: wire::SUCCESS.into(),
        session: wire::SessionDto::from(&s),
    }))
}

/// TerminateSession (extension, admin): asks the session's gateway to close it; the
/// gateway sees `TerminateSession` on its next Polling.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/TerminateSession",
    request_body = wire::TerminateSessionRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn terminate_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::TerminateSessionRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let s = state
        .cp
        .engine()
        .request_termination(req.session, &principal.name, &req.reason)
        .await?;
    let message = if s.stage == Stage::Connected {
        "the gateway will close the session on its next Polling".to_owned()
    } else {
        format!("the session is {}; nothing to terminate", s.stage)
    };
    Ok(Json(wire::ResultResponse {
        result: wire::SUCCESS.into(),
        message: Some(message),
        terminate_session: None,
    }))
}
