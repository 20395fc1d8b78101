//! Compliance reports from the web UI: the same report as `psm report`
//! ([`crate::report`]), built over this node's sessions, directory and recordings, sealed
//! with the node's report key, handed out as a download. Administrators and auditors only;
//! each report made is audited.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::WebState;
use super::guard::WebUser;
use crate::error::ApiError;
use crate::report::{self, ReportError, ReportFormat, ReportQuery, ReportSources, seal};

/// Longest filter accepted, in bytes.
const MAX_FILTER: usize = 256;

/// GET /ui/api/report's parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct ReportParams {
    from: String,
    to: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    role: Option<String>,
    format: String,
}

fn bad(e: ReportError) -> ApiError {
    match e {
        ReportError::Invalid(m) => ApiError::new(400, "invalid-input", m),
        other => {
            tracing::error!(error = %other, "building a report");
            ApiError::new(
                500,
                "report",
                format!("the report could not be made: {other}"),
            )
        }
    }
}

fn filter(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// GET /ui/api/report?from=DATE&to=DATE&format=pdf[&user=][&target=][&role=]: the sealed
/// report as a file.
pub(crate) async fn report(
    State(state): State<WebState>,
    viewer: WebUser,
    Query(p): Query<ReportParams>,
) -> Result<Response, ApiError> {
    viewer
        .require_view(&state, "make compliance reports")
        .await?;
    let Some(data) = state.config.reports_data_dir.clone() else {
        return Err(ApiError::new(
            503,
            "no-report-key",
            "this web UI has no report key (WebConfig::reports_data_dir): use psm report",
        ));
    };
    if [&p.user, &p.target, &p.role]
        .into_iter()
        .flatten()
        .any(|s| s.len() > MAX_FILTER)
        || p.from.len() > 64
        || p.to.len() > 64
    {
        return Err(ApiError::new(
            400,
            "invalid-input",
            "a parameter is too long",
        ));
    }
    let format: ReportFormat = p.format.parse().map_err(bad)?;
    let mut query = ReportQuery::period(&p.from, &p.to).map_err(bad)?;
    query.user = filter(p.user);
    query.target = filter(p.target);
    query.role = filter(p.role);
    let mut sources = ReportSources::new(state.app.cp.engine().store().clone());
    sources.directory = state.app.directory.clone();
    sources.recordings_dir = state.config.recordings_dir.clone();
    sources.store = state.config.store.clone();
    sources.identity = state.config.identity.clone();
    sources.gateway_signers = state.config.gateway_signers.clone();
    sources.max_recording_bytes = state.config.max_recording_bytes;
    let by = format!("{} (web UI)", viewer.user);
    let built = report::build(&sources, &query, &by).await.map_err(bad)?;
    let file = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ReportError> {
        let key = seal::node_key(&data)?;
        seal::seal(&built, format, &key)
    })
    .await
    .map_err(|_| ApiError::new(500, "internal", "the report renderer failed"))?
    .map_err(bad)?;
    super::guard::audit(
        &state,
        None,
        &viewer.actor(),
        psm_core::AuditAction::Other,
        format!(
            "made a {} compliance report for {} to {} in the web UI",
            format.as_str(),
            query.from,
            query.to
        ),
    )
    .await;
    let mut res = Body::from(file).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.mime()),
    );
    let name = format!(
        "psm-report-{}-{}.{}",
        p.from
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect::<String>(),
        p.to.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect::<String>(),
        format.as_str()
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
