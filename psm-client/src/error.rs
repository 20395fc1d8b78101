//! The client's error type, and the one mapping between [`CoreError`] and the wire's error
//! answer (used by the server to answer and by the client to rebuild the error).

use psm_core::{CheckoutId, CoreError, FencingToken, ProcessInstance};

use crate::wire::{ErrorBody, ErrorDetail};

/// What can go wrong calling the control plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error in the contract's shape.
    #[error("{endpoint} answered {status}: {}", body.content)]
    Api {
        /// The endpoint, by its contract name.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// The answer.
        body: Box<ErrorBody>,
    },
    /// The request did not complete (connect, TLS, timeout, reset).
    #[error("{endpoint}: {source}")]
    Transport {
        /// The endpoint.
        endpoint: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The answer is not what the contract says.
    #[error("{endpoint} answered {status} out of contract: {reason}")]
    Decode {
        /// The endpoint.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// What was wrong (never the body itself: it might hold a credential).
        reason: String,
    },
    /// The client's configuration is unusable.
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Whether a retry may succeed: transport failures, 502/503/504 and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// A [`CoreError`]'s HTTP status and wire answer. Internal failures (database, corrupt rows)
/// are answered with a generic message: their details go to the server's log only.
pub fn error_body(e: &CoreError) -> ErrorBody {
    let mut d = ErrorDetail::default();
    let (status, code, content) = match e {
        CoreError::MissingProcessInstance => (400, "missing-process-instance", e.to_string()),
        CoreError::InvalidInput { field, .. } => {
            d.field = Some((*field).to_owned());
            (400, "invalid-input", e.to_string())
        }
        CoreError::UnknownSession(s) => {
            d.session = Some(*s);
            (404, "unknown-session", e.to_string())
        }
        CoreError::SessionExists(s) => {
            d.session = Some(*s);
            (409, "session-exists", e.to_string())
        }
        CoreError::NotOwner {
            session,
            stage,
            caller,
            owner,
        } => {
            d.session = Some(*session);
            d.stage = Some(*stage);
            d.caller = Some(caller.to_string());
            // The owner stays out of the answer (issue 17 M7): another process's name is
            // not the caller's business. `Owner` remains in the wire shape, unset.
            let _ = owner;
            (409, "not-owner", e.to_string())
        }
        CoreError::StaleToken {
            session,
            presented,
            current,
        } => {
            d.session = Some(*session);
            d.presented_token = Some(presented.0);
            d.current_token = Some(current.0);
            (409, "stale-token", e.to_string())
        }
        CoreError::LeaseLost { session, stage } => {
            d.session = Some(*session);
            d.stage = Some(*stage);
            (409, "lease-lost", e.to_string())
        }
        CoreError::WrongStage {
            session,
            operation,
            expected,
            actual,
        } => {
            d.session = Some(*session);
            d.operation = Some((*operation).to_owned());
            d.expected = Some(expected.clone());
            d.stage = Some(*actual);
            (409, "wrong-stage", e.to_string())
        }
        CoreError::IllegalTransition { from, to } => {
            d.from_stage = Some(*from);
            d.stage = Some(*to);
            (409, "illegal-transition", e.to_string())
        }
        CoreError::Contended(s) => {
            d.session = Some(*s);
            (503, "contended", e.to_string())
        }
        CoreError::Unauthenticated(_) => (401, "unauthenticated", e.to_string()),
        CoreError::Forbidden(_) => (403, "forbidden", e.to_string()),
        CoreError::UnknownUser(n) => {
            d.name = Some(n.clone());
            (404, "unknown-user", e.to_string())
        }
        CoreError::UserExists(n) => {
            d.name = Some(n.clone());
            (409, "user-exists", e.to_string())
        }
        CoreError::UnknownTarget(n) => {
            d.name = Some(n.clone());
            (404, "unknown-target", e.to_string())
        }
        CoreError::UnknownCheckout(c) => {
            d.name = Some(c.to_string());
            (404, "unknown-checkout", e.to_string())
        }
        CoreError::CheckoutEnded { checkout, reason } => {
            d.name = Some(checkout.to_string());
            d.reason = Some(reason.clone());
            (403, "checkout-ended", e.to_string())
        }
        CoreError::NoCredential { target } => {
            d.name = Some(target.clone());
            (404, "no-credential", e.to_string())
        }
        CoreError::Unsupported { operation } => {
            d.operation = Some((*operation).to_owned());
            (501, "unsupported", e.to_string())
        }
        CoreError::Unavailable { .. } => (502, "unavailable", e.to_string()),
        CoreError::Vault { .. } => (
            500,
            "vault",
            "the vault could not open the credential; see the control plane's log".to_owned(),
        ),
        _ => (
            500,
            "internal",
            "internal error; see the control plane's log".to_owned(),
        ),
    };
    ErrorBody {
        status_code: status,
        content,
        code: Some(code.to_owned()),
        detail: (d != ErrorDetail::default()).then_some(d),
    }
}

/// Request field names the contract uses, as `'static` strings for
/// [`CoreError::InvalidInput`].
const FIELDS: &[&str] = &[
    "session",
    "processInstance",
    "privSessionIds",
    "privSessionId",
    "checkOutId",
    "recordingStatus",
    "recordingFormat",
    "sshLogsUploaded",
    "fencingToken",
    "text",
    "image",
    "recording",
    "keyStrokes",
    "limit",
    "reason",
    "userName",
    "user",
    "target",
    "protocol",
    "durationMinutes",
    "name",
    "host",
    "port",
    "hostKey",
    "password",
    "privateKey",
    "passphrase",
    "PrivSessionID",
    "GatewayServerAddress",
    "Width",
    "Height",
    "Dpi",
    "stage",
    "body",
    "key",
    "role",
    "roles",
    "totp",
    "passwordHash",
    "schema",
    "database",
];

/// Operation names the engine uses, as `'static` strings.
const OPERATIONS: &[&str] = &[
    "Polling",
    "UpdateSession",
    "EndSession",
    "UpdateRecordingProcessStatus",
    "renew",
    "complete",
    "fail",
    "requeue",
    "GetCredential",
    "GetTarget",
    "Checkout",
    "Checkin",
    "GetRemainingMinutesForCheckout",
    "GetPAMSettings",
    "TerminateSession",
    "OpenSession",
    "FailRecordingProcess",
    "GetUser",
    "ListUsers",
    "CreateUser",
    "UpdateUser",
    "DeleteUser",
    "AddUserKey",
    "RemoveUserKey",
    "GrantRole",
    "RevokeRole",
    "TargetsOfRoles",
];

fn intern(table: &[&'static str], s: &str, fallback: &'static str) -> &'static str {
    table.iter().find(|t| **t == s).copied().unwrap_or(fallback)
}

/// Rebuilds the [`CoreError`] an answer stands for. `endpoint` names the call; an answer
/// without PSM's `Code` (a seed-only product) maps by status.
pub fn core_error(endpoint: &'static str, status: u16, body: ErrorBody) -> CoreError {
    let d = body.detail.clone().unwrap_or_default();
    let unavailable = |body: &ErrorBody| CoreError::Unavailable {
        message: format!("{endpoint} answered {status}: {}", body.content),
        source: None,
    };
    let rebuilt =
        match body.code.as_deref() {
            Some("missing-process-instance") => Some(CoreError::MissingProcessInstance),
            Some("invalid-input") => Some(CoreError::InvalidInput {
                field: intern(FIELDS, d.field.as_deref().unwrap_or(""), "request"),
                reason: strip_invalid_prefix(&body.content),
            }),
            Some("unknown-session") => d.session.map(CoreError::UnknownSession),
            Some("session-exists") => d.session.map(CoreError::SessionExists),
            Some("not-owner") => match (d.session, d.stage, d.caller.as_deref()) {
                (Some(session), Some(stage), Some(caller)) => ProcessInstance::new(caller)
                    .ok()
                    .map(|caller| CoreError::NotOwner {
                        session,
                        stage,
                        caller,
                        owner: d
                            .owner
                            .as_deref()
                            .and_then(|o| ProcessInstance::new(o).ok()),
                    }),
                _ => None,
            },
            Some("stale-token") => match (d.session, d.presented_token, d.current_token) {
                (Some(session), Some(p), Some(c)) => Some(CoreError::StaleToken {
                    session,
                    presented: FencingToken(p),
                    current: FencingToken(c),
                }),
                _ => None,
            },
            Some("lease-lost") => match (d.session, d.stage) {
                (Some(session), Some(stage)) => Some(CoreError::LeaseLost { session, stage }),
                _ => None,
            },
            Some("wrong-stage") => match (d.session, d.stage) {
                (Some(session), Some(actual)) => Some(CoreError::WrongStage {
                    session,
                    operation: intern(OPERATIONS, d.operation.as_deref().unwrap_or(""), endpoint),
                    expected: d.expected.clone().unwrap_or_default(),
                    actual,
                }),
                _ => None,
            },
            Some("illegal-transition") => match (d.from_stage, d.stage) {
                (Some(from), Some(to)) => Some(CoreError::IllegalTransition { from, to }),
                _ => None,
            },
            Some("contended") => d.session.map(CoreError::Contended),
            Some("unauthenticated") => Some(CoreError::Unauthenticated(strip_prefix(
                &body.content,
                "not authenticated: ",
            ))),
            Some("forbidden") => Some(CoreError::Forbidden(strip_prefix(
                &body.content,
                "forbidden: ",
            ))),
            Some("unknown-user") => d.name.clone().map(CoreError::UnknownUser),
            Some("user-exists") => d.name.clone().map(CoreError::UserExists),
            Some("unknown-target") => d.name.clone().map(CoreError::UnknownTarget),
            Some("unknown-checkout") => d
                .name
                .as_deref()
                .and_then(|n| CheckoutId::new(n).ok())
                .map(CoreError::UnknownCheckout),
            Some("checkout-ended") => {
                d.name
                    .as_deref()
                    .and_then(|n| CheckoutId::new(n).ok())
                    .map(|checkout| CoreError::CheckoutEnded {
                        checkout,
                        reason: d.reason.clone().unwrap_or_default(),
                    })
            }
            Some("no-credential") => d
                .name
                .clone()
                .map(|target| CoreError::NoCredential { target }),
            Some("unsupported") => Some(CoreError::Unsupported {
                operation: intern(OPERATIONS, d.operation.as_deref().unwrap_or(""), endpoint),
            }),
            Some("vault") => Some(CoreError::Vault {
                reason: body.content.clone(),
            }),
            _ => None,
        };
    if let Some(e) = rebuilt {
        return e;
    }
    match status {
        400 if body.content == "Process instance not supplied" => CoreError::MissingProcessInstance,
        400 | 413 | 422 => CoreError::InvalidInput {
            field: "request",
            reason: body.content.clone(),
        },
        401 => CoreError::Unauthenticated(body.content.clone()),
        403 => CoreError::Forbidden(body.content.clone()),
        // A product without this (extension) endpoint.
        404 | 405 | 501 if body.code.is_none() => CoreError::Unsupported {
            operation: endpoint,
        },
        _ => unavailable(&body),
    }
}

fn strip_prefix(s: &str, prefix: &str) -> String {
    s.strip_prefix(prefix).unwrap_or(s).to_owned()
}

fn strip_invalid_prefix(content: &str) -> String {
    // "invalid FIELD: REASON" -> "REASON", so the rebuilt error displays the same text.
    match content.strip_prefix("invalid ") {
        Some(rest) => match rest.split_once(": ") {
            Some((_, reason)) => reason.to_owned(),
            None => content.to_owned(),
        },
        None => content.to_owned(),
    }
}

impl ClientError {
    /// The [`CoreError`] this stands for.
    pub fn into_core(self) -> CoreError {
        match self {
            ClientError::Api {
                endpoint,
                status,
                body,
            } => core_error(endpoint, status, *body),
            other => CoreError::Unavailable {
                message: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use psm_core::{SessionId, Stage};

    /// Every error the engine and vault produce survives the trip through the wire: same
    /// variant, same text.
    #[test]
    fn errors_round_trip_through_the_wire() {
        let s = SessionId::new();
        let pi = ProcessInstance::new("enc-1").unwrap();
        let co = CheckoutId::new("123").unwrap();
        let cases = vec![
            CoreError::MissingProcessInstance,
            CoreError::InvalidInput {
                field: "session",
                reason: "\"x\" is not a session GUID".into(),
            },
            CoreError::UnknownSession(s),
            CoreError::SessionExists(s),
            CoreError::NotOwner {
                session: s,
                stage: Stage::Encoding,
                caller: pi.clone(),
                owner: Some(ProcessInstance::new("enc-2").unwrap()),
            },
            CoreError::StaleToken {
                session: s,
                presented: FencingToken(3),
                current: FencingToken(4),
            },
            CoreError::LeaseLost {
                session: s,
                stage: Stage::Ended,
            },
            CoreError::WrongStage {
                session: s,
                operation: "Polling",
                expected: "Connected or Encoding".into(),
                actual: Stage::Ended,
            },
            CoreError::IllegalTransition {
                from: Stage::Ended,
                to: Stage::Connected,
            },
            CoreError::Contended(s),
            CoreError::Unauthenticated("no API key".into()),
            CoreError::Forbidden("an encoder may not call GetCredential".into()),
            CoreError::UnknownTarget("web-01".into()),
            CoreError::UnknownCheckout(co.clone()),
            CoreError::CheckoutEnded {
                checkout: co,
                reason: "expired".into(),
            },
            CoreError::NoCredential {
                target: "db".into(),
            },
            CoreError::Unsupported {
                operation: "GetCredential",
            },
        ];
        for e in cases {
            let body = error_body(&e);
            let json = serde_json::to_string(&body).unwrap();
            let back: ErrorBody = serde_json::from_str(&json).unwrap();
            let rebuilt = core_error("X", body.status_code, back);
            assert_eq!(rebuilt.to_string(), e.to_string(), "{json}");
            assert_eq!(
                std::mem::discriminant(&rebuilt),
                std::mem::discriminant(&e),
                "{json}"
            );
        }
    }

    #[test]
    fn a_not_owner_answer_does_not_name_the_owner() {
        let e = CoreError::NotOwner {
            session: SessionId::new(),
            stage: Stage::Connected,
            caller: ProcessInstance::new("gw-2").unwrap(),
            owner: Some(ProcessInstance::new("gw-1").unwrap()),
        };
        let json = serde_json::to_string(&error_body(&e)).unwrap();
        assert!(json.contains("gw-2"), "{json}");
        assert!(!json.contains("gw-1"), "issue 17 M7: {json}");
    }

    #[test]
    fn seed_shape_of_the_missing_process_instance_error() {
        let body = error_body(&CoreError::MissingProcessInstance);
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["StatusCode"], 400);
        assert_eq!(v["Content"], "Process instance not supplied");
        // A seed-only server's answer (no Code) maps too.
        let seed: ErrorBody =
            serde_json::from_str(r#"{"StatusCode":400,"Content":"Process instance not supplied"}"#)
                .unwrap();
        assert!(matches!(
            core_error("EndSession", 400, seed),
            CoreError::MissingProcessInstance
        ));
    }
}
