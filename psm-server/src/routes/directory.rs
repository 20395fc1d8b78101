//! The directory extension endpoints: psm-core's `UserDirectory` over HTTP, so a gateway on
//! another host authenticates users (SSH keys, and passwords and TOTP codes through
//! VerifyUser) and learns their reachable targets from the control plane. Password hashes
//! and TOTP secrets go in (CreateUser, UpdateUser) but never come out: GetUser and ListUsers
//! say only whether a user has them. Reads: gateway and admin; VerifyUser: gateway;
//! writes and listing: admin.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::{Extension, State};
use psm_client::wire;
use psm_core::CoreError;
use psm_core::directory::{
    AuthorizedKey, LoginThrottle, PasswordHash, TotpSecret, UserDirectory, UserUpdate,
    is_valid_name,
};
use psm_core::vault::Secret;
use tokio::sync::Semaphore;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::WireJson;
use crate::state::AppState;

fn dir(state: &AppState) -> Result<&Arc<dyn UserDirectory>, ApiError> {
    state.directory.as_ref().ok_or_else(|| {
        CoreError::Unsupported {
            operation: "GetUser",
        }
        .into()
    })
}

fn existed(existed: bool) -> Json<wire::ExistedResponse> {
    Json(wire::ExistedResponse {
        result: wire::SUCCESS.into(),
        existed,
    })
}

/// GetUser: one user, or null. Whether the user has a password and a second factor, never
/// the password hash or the TOTP secret (VerifyUser checks them here).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/GetUser",
    request_body = wire::UserNameRequest,
    responses((status = 200, body = wire::GetUserResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::UserNameRequest>,
) -> Result<Json<wire::GetUserResponse>, ApiError> {
    let user = dir(&state)?.user(&req.name).await?;
    Ok(Json(wire::GetUserResponse {
        result: wire::SUCCESS.into(),
        user: user.as_ref().map(wire::UserInfoDto::from_user),
    }))
}

/// ListUsers (admin): every user as GetUser shows one, without hashes or TOTP secrets.
#[utoipa::path(get, path = "/api/services/v1/secureaccessgateway/ListUsers",
    responses((status = 200, body = Vec<wire::UserInfoDto>)),
    tag = "directory", security(("api_key" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
) -> Result<Json<Vec<wire::UserInfoDto>>, ApiError> {
    let users = dir(&state)?.users().await?;
    Ok(Json(
        users.iter().map(wire::UserInfoDto::from_user).collect(),
    ))
}

/// Argon2 is slow and memory-hard on purpose (about 19 MiB each with the default
/// parameters): VerifyUser runs at most this many password checks per core at once, and
/// further requests wait their turn instead of exhausting the blocking pool's memory.
const VERIFICATIONS_PER_CORE: usize = 2;

fn verifications() -> &'static Semaphore {
    static LIMIT: OnceLock<Semaphore> = OnceLock::new();
    LIMIT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Semaphore::new(cores * VERIFICATIONS_PER_CORE)
    })
}

/// VerifyUser (gateway): whether the password and/or the TOTP code are the user's, checked
/// here against the secrets the directory holds (argon2 and TOTP comparisons are constant
/// time; the TOTP code is judged by this server's clock). The answer is only accepted or
/// refused, `200` either way: an unknown user, a disabled one, a missing factor and a wrong
/// answer all read `"Accepted":false`, and an unknown user costs the same argon2 run. Every
/// refusal is audited (`Refused`, actor = the gateway). After five refusals in five minutes
/// a name is refused without a check until the five minutes are over
/// ([`AppState::logins`](crate::state::AppState::logins)); an accepted answer clears the
/// count. Errors are for malformed requests and an unavailable directory only.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/VerifyUser",
    request_body = wire::VerifyUserRequest,
    responses((status = 200, body = wire::VerifyUserResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn verify_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::VerifyUserRequest>,
) -> Result<Json<wire::VerifyUserResponse>, ApiError> {
    let d = dir(&state)?;
    if req.password.is_none() && req.totp_code.is_none() {
        return Err(CoreError::InvalidInput {
            field: "password",
            reason: "VerifyUser needs a password, a totpCode or both".into(),
        }
        .into());
    }
    let key = LoginThrottle::user_key(&req.name);
    // Counted before the check, so concurrent requests cannot all pass the lockout check
    // before the first failure is counted; an accepted answer clears the count.
    if !state.logins.reserve(&key) {
        let reason = CoreError::Unauthenticated(format!(
            "VerifyUser refused user {}: locked out after {} failed attempts",
            shown_name(&req.name),
            state.logins.max_failures()
        ));
        let _ = state.cp.vault().refuse(None, &principal.name, reason).await;
        return Ok(Json(wire::VerifyUserResponse {
            result: wire::SUCCESS.into(),
            accepted: false,
        }));
    }
    let mut accepted = true;
    let mut checked = Vec::new();
    if let Some(password) = req.password {
        let password = Secret::new(password);
        let _permit = verifications()
            .acquire()
            .await
            .map_err(|_| CoreError::Unavailable {
                message: "the password checks are closed".into(),
                source: None,
            })?;
        accepted &= d.verify_password(&req.name, &password).await?;
        checked.push("password");
    }
    // The code is checked only after a right password (or alone): a wrong password must not
    // use up the user's current code, which is accepted once.
    if let Some(code) = req.totp_code.filter(|_| accepted) {
        let code = Secret::new(code);
        let now = u64::try_from(state.cp.engine().now().as_micros() / 1_000_000).unwrap_or(0);
        accepted &= d.verify_totp(&req.name, code.expose_secret(), now).await?;
        checked.push("TOTP code");
    }
    if accepted {
        state.logins.succeeded(&key);
    } else {
        let reason = CoreError::Unauthenticated(format!(
            "VerifyUser refused user {} (checked: {})",
            shown_name(&req.name),
            checked.join(" and ")
        ));
        let _ = state.cp.vault().refuse(None, &principal.name, reason).await;
    }
    Ok(Json(wire::VerifyUserResponse {
        result: wire::SUCCESS.into(),
        accepted,
    }))
}

/// A user name as audit events may show it.
fn shown_name(name: &str) -> &str {
    if is_valid_name(name) {
        name
    } else {
        "(not a valid user name)"
    }
}

/// CreateUser (admin): the password arrives already hashed (argon2 PHC string).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/CreateUser",
    request_body = wire::UserDto,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::UserDto>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let disabled = req.disabled;
    let user = req.into_new_user()?;
    let name = user.name.to_string();
    let d = dir(&state)?;
    d.create_user(&user).await?;
    if disabled {
        d.update_user(
            &name,
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
        )
        .await?;
    }
    Ok(Json(wire::ResultResponse::success()))
}

/// UpdateUser (admin).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/UpdateUser",
    request_body = wire::UpdateUserRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::UpdateUserRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let update = UserUpdate {
        password: req
            .password_hash
            .map(|p| p.as_deref().map(PasswordHash::from_phc).transpose())
            .transpose()?,
        totp: req
            .totp
            .map(|t| t.as_deref().map(TotpSecret::from_base32).transpose())
            .transpose()?,
        roles: req.roles,
        disabled: req.disabled,
    };
    dir(&state)?.update_user(&req.name, &update).await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// DeleteUser (admin).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/DeleteUser",
    request_body = wire::UserNameRequest,
    responses((status = 200, body = wire::ExistedResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::UserNameRequest>,
) -> Result<Json<wire::ExistedResponse>, ApiError> {
    Ok(existed(dir(&state)?.delete_user(&req.name).await?))
}

/// AddUserKey (admin).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/AddUserKey",
    request_body = wire::UserKeyRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn add_user_key(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::UserKeyRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let key = AuthorizedKey::parse(&req.key)?;
    dir(&state)?.add_key(&req.name, &key).await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// RemoveUserKey (admin).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/RemoveUserKey",
    request_body = wire::UserKeyRequest,
    responses((status = 200, body = wire::ExistedResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn remove_user_key(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::UserKeyRequest>,
) -> Result<Json<wire::ExistedResponse>, ApiError> {
    let key = AuthorizedKey::parse(&req.key)?;
    Ok(existed(dir(&state)?.remove_key(&req.name, &key).await?))
}

/// GrantRole (admin): `role` may reach `target` (`*`: every target).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/GrantRole",
    request_body = wire::RoleGrantRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn grant_role(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::RoleGrantRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    dir(&state)?.grant(&req.role, &req.target).await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// RevokeRole (admin).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/RevokeRole",
    request_body = wire::RoleGrantRequest,
    responses((status = 200, body = wire::ExistedResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn revoke_role(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::RoleGrantRequest>,
) -> Result<Json<wire::ExistedResponse>, ApiError> {
    Ok(existed(dir(&state)?.revoke(&req.role, &req.target).await?))
}

/// TargetsOfRoles: the targets any of the roles may reach.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/TargetsOfRoles",
    request_body = wire::TargetsOfRolesRequest,
    responses((status = 200, body = wire::TargetsResponse)),
    tag = "directory", security(("api_key" = [])))]
pub async fn targets_of_roles(
    State(state): State<AppState>,
    WireJson(req): WireJson<wire::TargetsOfRolesRequest>,
) -> Result<Json<wire::TargetsResponse>, ApiError> {
    if req.roles.len() > 1000 {
        return Err(CoreError::InvalidInput {
            field: "roles",
            reason: format!("{} roles, the limit is 1000", req.roles.len()),
        }
        .into());
    }
    let targets = dir(&state)?.targets_of_roles(&req.roles).await?;
    Ok(Json(wire::TargetsResponse {
        result: wire::SUCCESS.into(),
        targets,
    }))
}
