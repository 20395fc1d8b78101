//! GetUserPlatform, GetIP, health, readiness, and the fallbacks.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Uri};
use psm_client::wire;
use psm_core::SessionId;

use crate::error::ApiError;
use crate::state::{AppState, PeerInfo};

/// The operating system a User-Agent names.
pub fn platform_of(user_agent: &str) -> &'static str {
    let ua = user_agent;
    if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iOS") {
        "iOS"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        "Unknown"
    }
}

/// GetUserPlatform: the caller's OS, from its `User-Agent`.
#[utoipa::path(get, path = "/api/services/v1/secureaccessgateway/GetUserPlatform",
    responses((status = 200, body = wire::UserPlatformResponse)),
    tag = "utilities", security(("api_key" = [])))]
pub async fn get_user_platform(headers: HeaderMap) -> Json<wire::UserPlatformResponse> {
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Json(wire::UserPlatformResponse {
        result: wire::SUCCESS.into(),
        platform: platform_of(ua).into(),
    })
}

/// The client address: when the direct peer is a trusted proxy, the right-most address of
/// `X-Forwarded-For` that is not itself a trusted proxy (or `X-Real-IP`); otherwise the
/// peer. Headers from untrusted peers are ignored (anyone can send them).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    if let Some(ip) = forwarded.iter().rev().find(|ip| !trusted.contains(ip)) {
        return *ip;
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(peer)
}

/// GetIP: the caller's address, proxy headers first when the proxy is trusted.
#[utoipa::path(get, path = "/api/services/v1/secureaccessgateway/GetIP",
    responses((status = 200, body = wire::IpResponse)),
    tag = "utilities", security(("api_key" = [])))]
pub async fn get_ip(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Json<wire::IpResponse> {
    let ip = client_ip(peer.addr.ip(), &headers, &state.config.trusted_proxies);
    Json(wire::IpResponse {
        result: wire::SUCCESS.into(),
        ip: ip.to_string(),
    })
}

/// Health: the process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "up", body = serde_json::Value)), tag = "operations")]
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"Status": "ok"}))
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "ready", body = serde_json::Value),
        (status = 503, description = "the database does not answer", body = wire::ErrorBody)),
    tag = "operations")]
pub async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let probe = SessionId::from_uuid(uuid::Uuid::nil());
    match state.cp.engine().store().get(probe).await {
        Ok(_) => Ok(Json(serde_json::json!({"Status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness probe failed");
            Err(ApiError::new(
                503,
                "unavailable",
                "the database does not answer",
            ))
        }
    }
}

/// Any path that is not an endpoint.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        404,
        "not-found",
        format!("no endpoint {method} {}", truncate(uri.path())),
    )
}

/// An endpoint called with the wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        405,
        "method-not-allowed",
        format!("{} does not take {method}", truncate(uri.path())),
    )
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(
            platform_of("Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
            "Windows"
        );
        assert_eq!(
            platform_of("Mozilla/5.0 (Linux; Android 14; Pixel 8)"),
            "Android"
        );
        assert_eq!(platform_of("Mozilla/5.0 (X11; Linux x86_64)"), "Linux");
        assert_eq!(
            platform_of("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)"),
            "macOS"
        );
        assert_eq!(
            platform_of("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"),
            "iOS"
        );
        assert_eq!(platform_of("curl/8.0"), "Unknown");
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let proxy: IpAddr = "127.0.0.2".parse().expect("ip");
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 127.0.0.2".parse().expect("hv"),
        );
        assert_eq!(
            client_ip(proxy, &h, &[]),
            proxy,
            "untrusted peer: header ignored"
        );
        assert_eq!(
            client_ip(proxy, &h, &[proxy]),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
    }
}
