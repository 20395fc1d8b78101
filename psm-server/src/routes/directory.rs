//! The directory extension endpoints: psm-core's `UserDirectory` over HTTP, so a gateway on
//! another host authenticates users (password hash, SSH keys, TOTP) and learns their
//! reachable targets from the control plane. Reads: gateway and admin; writes: admin.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use psm_client::wire;
use psm_core::CoreError;
use psm_core::directory::{
    AuthorizedKey, NewUser, PasswordHash, TotpSecret, UserDirectory, UserUpdate,
};

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

/// GetUser: one user (with its password hash and TOTP secret), or null.
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
        user: user.as_ref().map(wire::UserDto::from_user),
    }))
}

/// ListUsers (admin).
#[utoipa::path(get, path = "/api/services/v1/secureaccessgateway/ListUsers",
    responses((status = 200, body = Vec<wire::UserDto>)),
    tag = "directory", security(("api_key" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
) -> Result<Json<Vec<wire::UserDto>>, ApiError> {
    let users = dir(&state)?.users().await?;
    Ok(Json(users.iter().map(wire::UserDto::from_user).collect()))
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
    let user = req.into_user()?;
    let name = user.name.to_string();
    let d = dir(&state)?;
    d.create_user(&NewUser {
        name: user.name,
        password: user.password,
        keys: user.keys,
        totp: user.totp,
        roles: user.roles,
    })
    .await?;
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
