//! The vault's calls: Checkin, GetRemainingMinutesForCheckout, GetCredential, GetPAMSettings,
//! and the extensions Checkout, GetTarget, ListTargets, PutTarget, DeleteTarget,
//! SetCredential.

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, State};
use psm_client::wire;
use psm_core::CoreError;
use psm_core::vault::{CheckoutRequest, Credential, Target};

use super::session::check_acts_as;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::WireJson;
use crate::state::AppState;

/// Checkin: ends the checkout; its live sessions are asked to terminate. Repeating it is a
/// success.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/Checkin",
    request_body = wire::CheckinRequest,
    responses((status = 200, body = wire::CheckinResponse)),
    tag = "vault", security(("api_key" = [])))]
pub async fn checkin(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::CheckinRequest>,
) -> Result<Json<wire::CheckinResponse>, ApiError> {
    let done = state
        .cp
        .vault()
        .checkin(&req.checkout_id, &principal.name)
        .await?;
    let message = if done.already_ended {
        format!("checkout {} had already ended", req.checkout_id)
    } else {
        format!(
            "checkout {} checked in; {} live sessions asked to terminate",
            req.checkout_id,
            done.sessions_terminated.len()
        )
    };
    Ok(Json(wire::CheckinResponse {
        result: wire::SUCCESS.into(),
        message,
        already_checked_in: done.already_ended,
        sessions_terminated: done.sessions_terminated,
        checkout: Some(wire::CheckoutDto::from(&done.checkout)),
    }))
}

/// GetRemainingMinutesForCheckout: whole minutes left (rounded up; 0 once over).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/GetRemainingMinutesForCheckout",
    request_body = wire::CheckinRequest,
    responses((status = 200, body = wire::RemainingMinutesResponse)),
    tag = "vault", security(("api_key" = [])))]
pub async fn get_remaining_minutes(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::CheckinRequest>,
) -> Result<Json<wire::RemainingMinutesResponse>, ApiError> {
    let st = state.cp.vault().checkout_status(&req.checkout_id).await?;
    Ok(Json(wire::RemainingMinutesResponse {
        result: wire::SUCCESS.into(),
        remaining_minutes: st.remaining_minutes,
        remaining_seconds: st.remaining.as_secs(),
        active: st.active,
        checkout: Some(wire::CheckoutDto::from(&st.checkout)),
    }))
}

/// GetCredential: the session's target credential, to the gateway that owns the Connected
/// session, while its checkout is valid. The only answer that carries a secret.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/GetCredential",
    request_body = wire::CredentialRequest,
    responses((status = 200, body = wire::CredentialResponse),
        (status = 429, body = wire::ErrorBody,
         description = "too many refused calls from this caller in this window; try again later")),
    tag = "vault", security(("api_key" = [])))]
pub async fn get_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::CredentialRequest>,
) -> Result<Json<wire::CredentialResponse>, ApiError> {
    if state.credential_refusals.is_limited(&principal.name) {
        tracing::warn!(actor = %principal.name, session_id = %req.session,
            "GetCredential refused: too many refusals in this window");
        return Err(ApiError::new(
            429,
            "rate-limited",
            "too many refused GetCredential calls from this caller; try again later",
        ));
    }
    let vault = state.cp.vault();
    let released =
        match check_acts_as(&state, &principal, &req.process_instance, Some(req.session)).await {
            Ok(()) => vault
                .get_credential(req.session, &req.process_instance)
                .await
                .map_err(ApiError::from),
            Err(e) => Err(e),
        };
    let credential = match released {
        Ok(c) => c,
        Err(e) => {
            // A refusal (403, 404, 409), not a failure of the control plane itself.
            if (400..500).contains(&e.0.status_code)
                && let Some(count) = state.credential_refusals.note(&principal.name)
            {
                crate::refusals::alert_credential_probing(&state, &principal.name, count).await;
            }
            return Err(e);
        }
    };
    let session = state.cp.engine().session(req.session).await?;
    let target = vault.target(&session.target).await.ok();
    Ok(Json(wire::CredentialResponse::from_credential(
        &credential,
        target.as_ref(),
    )))
}

/// GetPAMSettings.
#[utoipa::path(get, path = "/api/services/v1/secureaccessgateway/GetPAMSettings",
    responses((status = 200, body = wire::PamSettingsDto)),
    tag = "settings", security(("api_key" = [])))]
pub async fn get_pam_settings(State(state): State<AppState>) -> Json<wire::PamSettingsDto> {
    Json(wire::PamSettingsDto::from(state.cp.settings()))
}

/// Checkout (extension): a just-in-time checkout of a target's credential for a user.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/Checkout",
    request_body = wire::CheckoutRequestDto,
    responses((status = 200, body = wire::CheckoutResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn checkout(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::CheckoutRequestDto>,
) -> Result<Json<wire::CheckoutResponse>, ApiError> {
    let c = state
        .cp
        .vault()
        .checkout(
            CheckoutRequest {
                user: req.user_name,
                target: req.target,
                duration: Duration::from_secs(u64::from(req.duration_minutes) * 60),
            },
            &principal.name,
        )
        .await?;
    Ok(Json(wire::CheckoutResponse {
        result: wire::SUCCESS.into(),
        checkout: wire::CheckoutDto::from(&c),
    }))
}

/// GetTarget (extension): a target's connection details (no secret).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/GetTarget",
    request_body = wire::TargetRequest,
    responses((status = 200, body = wire::TargetDto)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn get_target(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::TargetRequest>,
) -> Result<Json<wire::TargetDto>, ApiError> {
    let t = state.cp.vault().target(&req.target).await?;
    Ok(Json(wire::TargetDto::from(&t)))
}

/// ListTargets (extension, admin).
#[utoipa::path(get, path = "/api/services/v1/secureaccessgateway/ListTargets",
    responses((status = 200, body = Vec<wire::TargetDto>)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn list_targets(
    State(state): State<AppState>,
) -> Result<Json<Vec<wire::TargetDto>>, ApiError> {
    let all = state.cp.vault().targets().await?;
    Ok(Json(all.iter().map(wire::TargetDto::from).collect()))
}

/// PutTarget (extension, admin): creates or replaces a target.
#[utoipa::path(put, path = "/api/services/v1/secureaccessgateway/PutTarget",
    request_body = wire::PutTargetRequest,
    responses((status = 200, body = wire::TargetDto)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn put_target(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::PutTargetRequest>,
) -> Result<Json<wire::TargetDto>, ApiError> {
    let t = state
        .cp
        .vault()
        .put_target(
            Target {
                name: req.name,
                host: req.host,
                port: req.port,
                protocol: req.protocol,
                host_key: req.host_key,
            },
            &principal.name,
        )
        .await?;
    Ok(Json(wire::TargetDto::from(&t)))
}

/// DeleteTarget (extension, admin): removes a target and its credential.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/DeleteTarget",
    request_body = wire::TargetRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn delete_target(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::TargetRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    state
        .cp
        .vault()
        .remove_target(&req.target, &principal.name)
        .await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// SetCredential (extension, admin): seals and stores a target's credential (exactly one of
/// `password` and `privateKey`). The answer never echoes it.
#[utoipa::path(put, path = "/api/services/v1/secureaccessgateway/SetCredential",
    request_body = wire::SetCredentialRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn set_credential(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::SetCredentialRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let credential = match (req.password, req.private_key) {
        (Some(p), None) if req.passphrase.is_none() => Credential::password(req.user_name, p),
        (None, Some(k)) => Credential::private_key(req.user_name, k, req.passphrase),
        _ => {
            return Err(CoreError::InvalidInput {
                field: "password",
                reason: "give exactly one of password and privateKey (passphrase only with \
                         privateKey)"
                    .into(),
            }
            .into());
        }
    };
    state
        .cp
        .vault()
        .set_credential(&req.target, credential, &principal.name)
        .await?;
    Ok(Json(wire::ResultResponse::success()))
}
