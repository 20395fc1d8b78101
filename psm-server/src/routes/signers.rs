//! RegisterSigner (extension): the control plane's registry of the keys gateways sign
//! recordings with and encoders sign recording sets with, which its web UI trusts
//! (docs/threat-model.md M12). On one node the processes share the data directory's registry;
//! across nodes each gateway and encoder registers its key here when it starts.

use axum::Json;
use axum::extract::{Extension, State};
use psm_client::wire::{self, SignerKind};
use psm_core::CoreError;
use psm_recording::keys::SignerRegistry;
use psm_recording::layout::LocalLayout;
use psm_recording::{RecordingError, VerifyingKey};

use super::session::check_acts_as;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::extract::WireJson;
use crate::state::AppState;

/// RegisterSigner: registers a gateway's or an encoder's public signing key under its
/// process instance (replacing what that name held; the audit trail keeps every key ever
/// registered).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/RegisterSigner",
    request_body = wire::RegisterSignerRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn register_signer(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<wire::RegisterSignerRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    let Some(data) = &state.config.signers_data_dir else {
        return Err(CoreError::Unsupported {
            operation: "RegisterSigner",
        }
        .into());
    };
    let allowed = match req.kind {
        SignerKind::Gateway => Role::Gateway,
        SignerKind::Encoder => Role::Encoder,
    };
    if principal.role != allowed && principal.role != Role::Admin {
        let e = CoreError::Forbidden(format!(
            "only a {} key (or an admin's) may register {} signers",
            req.kind.as_str(),
            req.kind.as_str()
        ));
        return Err(state
            .cp
            .vault()
            .refuse(None, &principal.name, e)
            .await
            .into());
    }
    check_acts_as(&state, &principal, &req.process_instance, None).await?;
    let key = VerifyingKey::from_text(&req.key).map_err(|e| CoreError::InvalidInput {
        field: "key",
        reason: e.to_string(),
    })?;
    let layout = LocalLayout::new(data);
    let registry = match req.kind {
        SignerKind::Gateway => layout.gateway_signers(),
        SignerKind::Encoder => layout.encoder_signers(),
    };
    let name = req.process_instance.as_str();
    let done = register_audited(
        state.cp.engine(),
        &registry,
        req.kind.as_str(),
        name,
        &key,
        &principal.name,
    )
    .await
    .map_err(|e| match e {
        RegistrationError::Core(e) => ApiError::from(e),
        RegistrationError::Registry(RecordingError::InvalidKey(reason)) => {
            ApiError::from(CoreError::InvalidInput {
                field: "processInstance",
                reason,
            })
        }
        RegistrationError::Registry(other) => {
            tracing::error!(error = %other, "registering a signer");
            ApiError::new(500, "internal", "the signer registry could not be written")
        }
    })?;
    if done != SignerRegistration::Unchanged {
        tracing::info!(kind = req.kind.as_str(), process_instance = name, key = %key,
            "signer registered");
    }
    Ok(Json(wire::ResultResponse::success()))
}

/// What [`register_audited`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerRegistration {
    /// The name held this key already: nothing changed, nothing was audited.
    Unchanged,
    /// The key is registered, replacing the one the name held, if any.
    Registered {
        /// The key it replaced.
        replaced: Option<VerifyingKey>,
    },
}

/// Why [`register_audited`] failed; the registry is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The audit row could not be written.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The name cannot name a key, or the registry could not be written.
    #[error(transparent)]
    Registry(#[from] RecordingError),
}

/// Registers `key` as `name` in `registry` (`kind`: `gateway` or `encoder`), replacing what
/// the name held, with the audit row written first (`signer registered: KIND NAME KEY`, and
/// the key it replaces): a key is trusted only once its registration is on record. The one
/// way RegisterSigner and `psm signers add` register keys.
pub async fn register_audited(
    engine: &psm_core::Engine,
    registry: &SignerRegistry,
    kind: &str,
    name: &str,
    key: &VerifyingKey,
    actor: &str,
) -> Result<SignerRegistration, RegistrationError> {
    SignerRegistry::check_name(name)?;
    let replaced = registry.key_of(name);
    if replaced == Some(*key) {
        return Ok(SignerRegistration::Unchanged);
    }
    let detail = match replaced {
        None => format!("signer registered: {kind} {name} {key}"),
        Some(old) => format!("signer registered: {kind} {name} {key} (replacing {old})"),
    };
    engine.note(None, actor, detail).await?;
    registry.register(name, key)?;
    Ok(SignerRegistration::Registered { replaced })
}
