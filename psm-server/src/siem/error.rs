//! [`SiemError`]: what can go wrong while streaming audit events out.

/// An error of the SIEM forwarder or one of its sinks. Messages name the sink and the
/// step, never an event's content or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiemError {
    /// The configuration is unusable.
    #[error("SIEM configuration: {0}")]
    Config(String),
    /// A network step failed (connect, TLS handshake, write, close).
    #[error("sink {sink}: {step}: {source}")]
    Io {
        /// The sink's name.
        sink: String,
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A step took longer than allowed.
    #[error("sink {sink}: {step} timed out after {after:?}")]
    Timeout {
        /// The sink's name.
        sink: String,
        /// What was being done.
        step: &'static str,
        /// The limit.
        after: std::time::Duration,
    },
    /// The webhook answered something other than 2xx.
    #[error("sink {sink}: webhook answered HTTP {status}")]
    HttpStatus {
        /// The sink's name.
        sink: String,
        /// The status code.
        status: u16,
    },
    /// The webhook request failed before an answer.
    #[error("sink {sink}: webhook request: {source}")]
    Http {
        /// The sink's name.
        sink: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The cursor could not be read or written.
    #[error("cursor of sink {sink}: {reason}")]
    Cursor {
        /// The sink's name.
        sink: String,
        /// What went wrong.
        reason: String,
    },
    /// Reading the audit log failed.
    #[error("reading the audit log: {0}")]
    Store(#[from] psm_core::CoreError),
}
