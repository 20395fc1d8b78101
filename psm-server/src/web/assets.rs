//! The front end, embedded: `psm-server/web-dist/` (built by `scripts/build-web` from
//! `web/` and the npm packages asciinema-player, @xterm/xterm and @xterm/addon-fit;
//! committed, so building the server needs no npm).

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::UI_PREFIX;

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        mime: "text/html; charset=utf-8",
        bytes: include_bytes!("../../web-dist/index.html"),
    },
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web-dist/app.js"),
    },
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web-dist/app.css"),
    },
];

/// The pages of the single-page front end (each serves `index.html`; `app.js` routes).
const PAGES: &[&str] = &[
    "", "login", "sessions", "session", "replay", "search", "terminal", "reports",
];

fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &blake3::hash(a.bytes).to_hex()[..32]))
            .collect()
    })
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let a = &ASSETS[i];
    let tag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Body::from(a.bytes).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    res
}

/// `/` and `/ui`: to the sessions page.
pub(crate) async fn root_redirect() -> Redirect {
    Redirect::to(&format!("{UI_PREFIX}/"))
}

/// `/ui/`: the page shell.
pub(crate) async fn index_page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `/ui/PAGE`: the page shell.
pub(crate) async fn page(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if !PAGES.contains(&name.as_str()) {
        return (StatusCode::NOT_FOUND, "no such page").into_response();
    }
    serve(0, &headers)
}

/// `/ui/assets/NAME`.
pub(crate) async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(i, &headers),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_no_inline_script() {
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap_or("");
        assert!(html.contains("/ui/assets/app.js"), "the shell loads app.js");
        // Every <script> has a src: the CSP forbids inline script, so one would not run.
        for part in html.split("<script").skip(1) {
            let tag = part.split('>').next().unwrap_or("");
            assert!(tag.contains("src="), "inline script in index.html: {tag}");
        }
        // No inline event handlers (` onload=`, ` onclick=`...).
        for (i, _) in html.match_indices(" on") {
            let rest = &html[i + 3..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !rest[word.len()..].starts_with('='),
                "inline handler on{word} in index.html"
            );
        }
    }
}
