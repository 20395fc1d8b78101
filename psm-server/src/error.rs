//! The server's errors: [`ServerError`] for starting up, [`ApiError`] for answering a
//! request in the contract's error shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use psm_client::wire::ErrorBody;
use psm_core::CoreError;

/// What can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The control plane failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
}

/// An error answer: `{"StatusCode":N,"Content":"..."}` plus PSM's `Code`/`Detail`.
#[derive(Debug)]
pub struct ApiError(pub Box<ErrorBody>);

impl ApiError {
    /// An answer with a status, code and message.
    pub fn new(status: u16, code: &str, content: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody {
            status_code: status,
            content: content.into(),
            code: Some(code.to_owned()),
            detail: None,
        }))
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let body = psm_client::error::error_body(&e);
        if body.status_code >= 500 {
            // The answer is generic for internal errors; the details go to the log.
            tracing::error!(error = %e, code = body.code.as_deref().unwrap_or(""), "request failed");
        }
        Self(Box::new(body))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(*self.0)).into_response()
    }
}
