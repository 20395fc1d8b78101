//! Authentication and authorisation of every API request, before any handler runs.

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use psm_core::CoreError;

use crate::auth::{Endpoint, Principal};
use crate::error::ApiError;
use crate::state::{AppState, PeerInfo};

fn bearer(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Authenticates the caller (API key, else client certificate), checks its role may call
/// the endpoint, audits refusals (those of unauthenticated callers once per client and
/// window, [`refusals`](crate::refusals)), and hands the [`Principal`] to the handler.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(endpoint) = Endpoint::from_path(req.uri().path()) else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .map(|c| c.0.clone());
    let peer_text = peer
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), |p| p.addr.ip().to_string());
    let principal: Option<Principal> = match bearer(&req) {
        Some(key) => state.keys.authenticate(key),
        None => peer.as_ref().and_then(|p| p.cert_principal.clone()),
    };
    let vault = state.cp.vault();
    let Some(principal) = principal else {
        let e = CoreError::Unauthenticated(if bearer(&req).is_some() {
            format!("the API key is not valid for {}", endpoint.name())
        } else {
            format!(
                "{} needs an API key (Authorization: Bearer KEY) or a client certificate",
                endpoint.name()
            )
        });
        // Anyone can send these: audited once per client and window, then counted.
        let actor = format!("anonymous@{peer_text}");
        let e = match &peer {
            Some(p) => {
                crate::refusals::refuse_unauthenticated(&state, p.addr.ip(), &actor, e.to_string())
                    .await;
                e
            }
            None => vault.refuse(None, &actor, e).await,
        };
        return ApiError::from(e).into_response();
    };
    if !endpoint.allows(principal.role) {
        let e = CoreError::Forbidden(format!(
            "role {} may not call {}",
            principal.role,
            endpoint.name()
        ));
        let e = vault.refuse(None, &principal.name, e).await;
        return ApiError::from(e).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}
