//! Live sessions in the web UI: tickets from the control plane's live hub and the websocket
//! URLs of the gateways that redeem them (`docs/live.md`), and the origins the page's CSP
//! lets it open websockets to.

use psm_core::live::connection_url;

use super::WebState;

/// `scheme://host[:port]` of a URL, if it is a `ws`/`wss`/`http`/`https` URL.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "ws" | "wss" | "http" | "https") {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = !host.is_empty()
        && host.len() <= 261
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then(|| {
        let ws = match scheme.as_str() {
            "http" => "ws",
            "https" => "wss",
            s => s,
        };
        format!("{ws}://{host}")
    })
}

/// The websocket URL for `path_and_query` on the gateway at `advertised` (what the
/// session's gateway told the control plane), else the configured one.
pub(crate) fn gateway_url(
    state: &WebState,
    advertised: Option<&str>,
    path_and_query: &str,
) -> Result<String, crate::error::ApiError> {
    let base = match (advertised, state.config.live_gateway.as_deref()) {
        (Some(a), _) => a,
        (None, Some(c)) => c,
        (None, None) => {
            return Err(crate::error::ApiError::new(
                503,
                "no-gateway",
                "no gateway has advertised a live websocket address, and none is configured \
                 (WebConfig::live_gateway)",
            ));
        }
    };
    connection_url(base, None, path_and_query).map_err(Into::into)
}

/// The origins the page may open websockets to: the configured gateway, every gateway that
/// runs a live session now, and the configured extras.
pub(crate) async fn connect_sources(state: &WebState) -> Vec<String> {
    let mut out: Vec<String> = state
        .config
        .live_gateway
        .iter()
        .chain(state.config.connect_sources.iter())
        .filter_map(|u| origin_of(u))
        .collect();
    if let Ok(live) = state.app.cp.live_sessions().await {
        for (_, st) in live {
            if let Some(url) = st.and_then(|s| state.app.cp.live().gateway_url(&s.gateway))
                && let Some(o) = origin_of(&url)
            {
                out.push(o);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_port_only() {
        assert_eq!(
            origin_of("ws://127.0.0.1:2223/live/x?ticket=t").as_deref(),
            Some("ws://127.0.0.1:2223")
        );
        assert_eq!(
            origin_of("https://gw.example.com").as_deref(),
            Some("wss://gw.example.com")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("ws://a b/"), None);
        assert_eq!(origin_of("ws://x;script-src *"), None);
    }
}
