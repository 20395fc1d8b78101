//! Live control (`docs/live.md`): JoinSession (the seed's endpoint) and PSM's extensions,
//! TerminalTicket, LiveSessions and LiveControl for administrators; RedeemLiveTicket,
//! LiveCommands (the gateways' long poll) and LiveReport for gateways. Backed by the
//! [`LiveHub`](psm_core::live::LiveHub) of the server's `LocalControlPlane`.
//!
//! The extension endpoints have their own authorisation table ([`LiveEndpoint`]), checked
//! by [`authorize`] exactly like the contract's: an API key (or client certificate) of the
//! right role, every refusal audited.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use psm_client::live::{
    ApprovalDto, LiveCommandsRequest, LiveCommandsResponse, LiveControlRequest,
    LiveControlResponse, LiveJoinRequest, LiveReportRequest, LiveSessionDto, LiveSessionsResponse,
    RedeemLiveTicketRequest, RedeemLiveTicketResponse, TerminalTicketRequest, ViewerDto, path,
};
use psm_client::wire::{self, ErrorBody};
use psm_core::live::{LiveAction, LiveMode, LiveTicket, Viewport, connection_url};
use psm_core::{CoreError, LiveLinkApi};

use super::session::check_acts_as;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::extract::WireJson;
use crate::state::{AppState, PeerInfo};

/// How long LiveControl waits for the gateway to confirm.
pub const CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// The live extension endpoints and who may call them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveEndpoint {
    /// POST TerminalTicket.
    TerminalTicket,
    /// POST LiveSessions.
    LiveSessions,
    /// POST LiveControl.
    LiveControl,
    /// POST RedeemLiveTicket.
    RedeemLiveTicket,
    /// POST LiveCommands.
    LiveCommands,
    /// POST LiveReport.
    LiveReport,
}

impl LiveEndpoint {
    /// Every endpoint.
    pub const ALL: [LiveEndpoint; 6] = [
        LiveEndpoint::TerminalTicket,
        LiveEndpoint::LiveSessions,
        LiveEndpoint::LiveControl,
        LiveEndpoint::RedeemLiveTicket,
        LiveEndpoint::LiveCommands,
        LiveEndpoint::LiveReport,
    ];

    /// Its path.
    pub const fn path(self) -> &'static str {
        match self {
            LiveEndpoint::TerminalTicket => path::TERMINAL_TICKET,
            LiveEndpoint::LiveSessions => path::LIVE_SESSIONS,
            LiveEndpoint::LiveControl => path::LIVE_CONTROL,
            LiveEndpoint::RedeemLiveTicket => path::REDEEM_LIVE_TICKET,
            LiveEndpoint::LiveCommands => path::LIVE_COMMANDS,
            LiveEndpoint::LiveReport => path::LIVE_REPORT,
        }
    }

    /// The role that may call it.
    pub const fn role(self) -> Role {
        match self {
            LiveEndpoint::TerminalTicket
            | LiveEndpoint::LiveSessions
            | LiveEndpoint::LiveControl => Role::Admin,
            LiveEndpoint::RedeemLiveTicket
            | LiveEndpoint::LiveCommands
            | LiveEndpoint::LiveReport => Role::Gateway,
        }
    }

    fn from_path(p: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.path() == p)
    }
}

/// The live extension endpoints, with their authorisation layer.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(path::TERMINAL_TICKET, post(terminal_ticket))
        .route(path::LIVE_SESSIONS, post(live_sessions))
        .route(path::LIVE_CONTROL, post(live_control))
        .route(path::REDEEM_LIVE_TICKET, post(redeem_live_ticket))
        .route(path::LIVE_COMMANDS, post(live_commands))
        .route(path::LIVE_REPORT, post(live_report))
        .route_layer(axum::middleware::from_fn_with_state(state, authorize))
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Authenticates the caller of a live endpoint and checks its role; refusals are audited.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(endpoint) = LiveEndpoint::from_path(req.uri().path()) else {
        return next.run(req).await;
    };
    let name = endpoint.path().rsplit('/').next().unwrap_or_default();
    let peer = req
        .extensions()
        .get::<ConnectInfo<PeerInfo>>()
        .map(|c| c.0.clone());
    let peer_text = peer
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), |p| p.addr.ip().to_string());
    let principal: Option<Principal> = match bearer(&req) {
        Some(key) => state.keys.authenticate(key),
        None => peer.and_then(|p| p.cert_principal),
    };
    let vault = state.cp.vault();
    let Some(principal) = principal else {
        let e = CoreError::Unauthenticated(format!(
            "{name} needs an API key (Authorization: Bearer KEY) or a client certificate"
        ));
        let e = vault
            .refuse(None, &format!("anonymous@{peer_text}"), e)
            .await;
        return ApiError::from(e).into_response();
    };
    if principal.role != endpoint.role() {
        let e = CoreError::Forbidden(format!("role {} may not call {name}", principal.role));
        let e = vault.refuse(None, &principal.name, e).await;
        return ApiError::from(e).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

fn bounded_number(field: &'static str, value: &str, max: u32) -> Result<u32, CoreError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| CoreError::InvalidInput {
            field,
            reason: format!("must be a whole number from 1 to {max}"),
        })
}

/// The actor of an admin call: the named human (`Actor`, checked) or the key's principal.
fn actor_of(principal: &Principal, named: Option<&str>) -> Result<String, CoreError> {
    match named.map(str::trim).filter(|a| !a.is_empty()) {
        None => Ok(principal.name.clone()),
        Some(a) if a.len() <= 128 && !a.chars().any(char::is_control) => {
            Ok(format!("{a} (via {})", principal.name))
        }
        Some(_) => Err(CoreError::InvalidInput {
            field: "Actor",
            reason: "must be 1 to 128 characters without control characters".into(),
        }),
    }
}

/// JoinSession (admin): a single-use ticket for a live session and the URL that carries
/// it: `wss://GATEWAY/live/SESSION?ticket=psmt_…&width=W&height=H&dpi=D`.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/JoinSession",
    request_body = LiveJoinRequest,
    responses((status = 200, description = "the connection string", body = String),
        (status = 409, description = "the session is not Connected", body = ErrorBody)),
    tag = "sessions", security(("api_key" = [])))]
pub async fn join_session(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<LiveJoinRequest>,
) -> Result<Json<String>, ApiError> {
    let width = bounded_number("Width", &req.width, 16_384)?;
    let height = bounded_number("Height", &req.height, 16_384)?;
    let dpi = bounded_number("Dpi", &req.dpi, 1_200)?;
    let mode: LiveMode = req.mode.as_deref().unwrap_or("view").parse()?;
    let actor = actor_of(&principal, req.actor.as_deref())?;
    let session = state.cp.engine().session(req.session).await?;
    let advertised = session
        .process_instance
        .as_ref()
        .and_then(|g| state.cp.live().gateway_url(g));
    // Check the address before a ticket exists.
    connection_url(&req.gateway_server_address, advertised.as_deref(), "/")?;
    let issued = state
        .cp
        .join_session(
            req.session,
            mode,
            &actor,
            Some(Viewport { width, height, dpi }),
        )
        .await;
    let (ticket, _) = match issued {
        Ok(t) => t,
        Err(e @ CoreError::Forbidden(_)) => {
            return Err(state
                .cp
                .vault()
                .refuse(Some(req.session), &actor, e)
                .await
                .into());
        }
        Err(e) => return Err(e.into()),
    };
    let url = connection_url(
        &req.gateway_server_address,
        advertised.as_deref(),
        &format!(
            "/live/{}?ticket={}&width={width}&height={height}&dpi={dpi}",
            req.session,
            ticket.as_str()
        ),
    )?;
    state
        .cp
        .engine()
        .note(
            Some(req.session),
            &actor,
            format!(
                "live: join ticket issued ({}, {width}x{height} at {dpi} dpi)",
                mode.as_str()
            ),
        )
        .await?;
    Ok(Json(url))
}

/// TerminalTicket (admin, extension): a browser terminal's websocket URL for a user the
/// caller authenticated.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/TerminalTicket",
    request_body = TerminalTicketRequest,
    responses((status = 200, description = "the connection string", body = String)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn terminal_ticket(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<TerminalTicketRequest>,
) -> Result<Json<String>, ApiError> {
    let cols = req.width.unwrap_or(80).clamp(1, 1000);
    let rows = req.height.unwrap_or(24).clamp(1, 500);
    // Without an address: the first gateway that advertised a websocket URL.
    let advertised = if req.gateway_server_address.trim().is_empty() {
        state
            .cp
            .live_sessions()
            .await?
            .into_iter()
            .filter_map(|(_, st)| st)
            .find_map(|st| state.cp.live().gateway_url(&st.gateway))
    } else {
        None
    };
    connection_url(&req.gateway_server_address, advertised.as_deref(), "/")?;
    let ticket: LiveTicket = state
        .cp
        .terminal_ticket(
            &req.user_name,
            &req.target,
            Some(Viewport {
                width: cols,
                height: rows,
                dpi: 0,
            }),
        )
        .await?;
    let url = connection_url(
        &req.gateway_server_address,
        advertised.as_deref(),
        &format!("/terminal?ticket={}", ticket.as_str()),
    )?;
    state
        .cp
        .engine()
        .note(
            None,
            &principal.name,
            format!(
                "live: browser terminal ticket issued for user {} on target {}",
                psm_core::live::cut(&req.user_name),
                psm_core::live::cut(&req.target)
            ),
        )
        .await?;
    Ok(Json(url))
}

/// LiveSessions (admin, extension): every Connected session with its live state.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/LiveSessions",
    responses((status = 200, body = LiveSessionsResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn live_sessions(
    State(state): State<AppState>,
) -> Result<Json<LiveSessionsResponse>, ApiError> {
    let sessions = state
        .cp
        .live_sessions()
        .await?
        .into_iter()
        .map(|(s, st)| {
            let (paused, locked, viewers, approvals) = match st {
                Some(st) => (st.paused, st.locked, st.viewers, st.approvals),
                None => (false, false, Vec::new(), Vec::new()),
            };
            LiveSessionDto {
                session: s.id,
                user: s.user.clone(),
                target: s.target.clone(),
                protocol: s.protocol,
                start_time: s.start_time,
                gateway: s.process_instance.as_ref().map(ToString::to_string),
                live_url: s
                    .process_instance
                    .as_ref()
                    .and_then(|g| state.cp.live().gateway_url(g)),
                paused,
                locked,
                viewers: viewers
                    .into_iter()
                    .map(|v| ViewerDto {
                        name: v.name,
                        mode: v.mode.as_str().into(),
                    })
                    .collect(),
                approvals: approvals
                    .into_iter()
                    .map(|a| ApprovalDto {
                        id: a.id,
                        command: a.command,
                        rule: a.rule,
                        message: a.message,
                        requested_at: a.requested_at,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(LiveSessionsResponse {
        result: wire::SUCCESS.into(),
        sessions,
    }))
}

/// LiveControl (admin, extension): pause, resume, lock, unlock, terminate, approve or deny,
/// delivered to the session's gateway at once through its long poll.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/LiveControl",
    request_body = LiveControlRequest,
    responses((status = 200, body = LiveControlResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn live_control(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<LiveControlRequest>,
) -> Result<Json<LiveControlResponse>, ApiError> {
    let action: LiveAction = req.action.parse()?;
    if action == LiveAction::Disconnect {
        // Sent by the control plane itself when a viewer's account changes.
        return Err(CoreError::InvalidInput {
            field: "action",
            reason: "disconnect is not an admin's action: a viewer is disconnected when their \
                     account is removed, disabled or changed"
                .into(),
        }
        .into());
    }
    let actor = actor_of(&principal, req.actor.as_deref())?;
    if let Some(r) = &req.reason
        && r.chars().count() > psm_core::live::MAX_TEXT
    {
        return Err(CoreError::InvalidInput {
            field: "reason",
            reason: format!("at most {} characters", psm_core::live::MAX_TEXT),
        }
        .into());
    }
    let (applied, message) = state
        .cp
        .live_control(
            req.session,
            action,
            &actor,
            req.reason.clone(),
            req.approval_id,
            CONFIRM_WAIT,
        )
        .await?;
    Ok(Json(LiveControlResponse {
        result: wire::SUCCESS.into(),
        applied,
        message,
    }))
}

/// RedeemLiveTicket (gateway, extension): a ticket, once.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/RedeemLiveTicket",
    request_body = RedeemLiveTicketRequest,
    responses((status = 200, body = RedeemLiveTicketResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn redeem_live_ticket(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<RedeemLiveTicketRequest>,
) -> Result<Json<RedeemLiveTicketResponse>, ApiError> {
    check_acts_as(&state, &principal, &req.process_instance, None).await?;
    let ticket = LiveTicket::parse(&req.ticket);
    let redeemed = match ticket {
        Ok(t) => state.cp.redeem_live_ticket(&t, &req.process_instance).await,
        Err(e) => Err(e),
    };
    match redeemed {
        Ok(grant) => Ok(Json(RedeemLiveTicketResponse {
            result: wire::SUCCESS.into(),
            grant,
        })),
        Err(e @ (CoreError::Unauthenticated(_) | CoreError::Forbidden(_))) => Err(state
            .cp
            .vault()
            .refuse(None, &principal.name, e)
            .await
            .into()),
        Err(e) => Err(e.into()),
    }
}

/// LiveCommands (gateway, extension): the commands queued for the calling gateway, as
/// soon as there is one, else after `waitSeconds`.
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/LiveCommands",
    request_body = LiveCommandsRequest,
    responses((status = 200, body = LiveCommandsResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn live_commands(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<LiveCommandsRequest>,
) -> Result<Json<LiveCommandsResponse>, ApiError> {
    // Another gateway's queue is not the caller's to drain, nor its live URL to rewrite.
    check_acts_as(&state, &principal, &req.process_instance, None).await?;
    if let Some(url) = &req.live_url {
        connection_url(url, None, "/")?;
    }
    let commands = state
        .cp
        .live_commands(
            &req.process_instance,
            Duration::from_secs(u64::from(req.wait_seconds.min(60))),
            req.live_url.as_deref(),
        )
        .await?;
    Ok(Json(LiveCommandsResponse {
        result: wire::SUCCESS.into(),
        commands,
    }))
}

/// LiveReport (gateway, extension): what happened in the gateway's live sessions; each
/// report becomes an audit event (and so a SIEM event).
#[utoipa::path(post, path = "/api/services/v1/secureaccessgateway/LiveReport",
    request_body = LiveReportRequest,
    responses((status = 200, body = wire::ResultResponse)),
    tag = "extensions", security(("api_key" = [])))]
pub async fn live_report(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    WireJson(req): WireJson<LiveReportRequest>,
) -> Result<Json<wire::ResultResponse>, ApiError> {
    check_acts_as(&state, &principal, &req.process_instance, None).await?;
    state
        .cp
        .live_report(&req.process_instance, &req.events)
        .await?;
    Ok(Json(wire::ResultResponse::success()))
}

/// The OpenAPI paths of this module (merged into the server's document).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    join_session,
    terminal_ticket,
    live_sessions,
    live_control,
    redeem_live_ticket,
    live_commands,
    live_report
))]
pub struct LiveApiDoc;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_live_endpoint_has_one_role_and_a_path() {
        for e in LiveEndpoint::ALL {
            assert_eq!(LiveEndpoint::from_path(e.path()), Some(e));
        }
        assert_eq!(LiveEndpoint::LiveControl.role(), Role::Admin);
        assert_eq!(LiveEndpoint::LiveCommands.role(), Role::Gateway);
        let admin = Principal::shared("admin", Role::Admin);
        assert_eq!(actor_of(&admin, None).unwrap(), "admin");
        assert_eq!(actor_of(&admin, Some("bob")).unwrap(), "bob (via admin)");
        assert!(actor_of(&admin, Some("bob\r\nforged")).is_err());
    }
}
