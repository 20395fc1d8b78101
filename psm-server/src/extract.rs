//! [`WireJson`]: the request-body extractor. Every way a body can be wrong (too large, not
//! JSON, wrong types, missing fields) becomes an answer in the contract's error shape, and
//! never echoes values from the body (they may be credentials).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use psm_core::CoreError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body of type `T`.
#[derive(Debug, Clone)]
pub struct WireJson<T>(pub T);

/// Turns a serde error into a clear message that names the place and, for missing or
/// unknown fields, the field, but never a value.
pub fn describe_json_error(e: &serde_json::Error) -> ApiError {
    let msg = e.to_string();
    if msg.starts_with("Process instance not supplied")
        || (msg.starts_with("missing field") && msg.contains("field `processInstance`"))
    {
        return CoreError::MissingProcessInstance.into();
    }
    // A process instance is a name, not a secret: its own validation message is the clearest.
    if let Some(reason) = msg.strip_prefix("invalid processInstance: ") {
        let reason = reason.split(" at line ").next().unwrap_or(reason);
        return CoreError::InvalidInput {
            field: "processInstance",
            reason: reason.to_owned(),
        }
        .into();
    }
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "the body is not valid JSON".to_owned(),
        serde_json::error::Category::Eof => "the body ends before the JSON does".to_owned(),
        serde_json::error::Category::Io => "the body could not be read".to_owned(),
        serde_json::error::Category::Data => {
            if let Some(field) = msg
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                format!("field {field} is required")
            } else if msg.starts_with("unknown variant") {
                "a field has a value outside its allowed set".to_owned()
            } else {
                "a field has the wrong type or an invalid value".to_owned()
            }
        }
    };
    ApiError::new(
        400,
        "invalid-input",
        format!(
            "invalid body: {what} (line {} column {})",
            e.line(),
            e.column()
        ),
    )
}

impl<S, T> FromRequest<S> for WireJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    413,
                    "payload-too-large",
                    "the request body is larger than the server's limit",
                )
            } else {
                ApiError::new(400, "invalid-input", "the request body could not be read")
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(WireJson)
            .map_err(|e| describe_json_error(&e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use psm_client::wire::{EndSessionRequest, SetCredentialRequest};

    fn err<T: DeserializeOwned + std::fmt::Debug>(json: &str) -> psm_client::wire::ErrorBody {
        *describe_json_error(&serde_json::from_str::<T>(json).unwrap_err()).0
    }

    #[test]
    fn missing_process_instance_is_the_seed_error() {
        let sid = "123e4567-e89b-12d3-a456-426614174000";
        for body in [
            format!(r#"{{"session":"{sid}"}}"#),
            format!(r#"{{"session":"{sid}","processInstance":""}}"#),
        ] {
            let e = err::<EndSessionRequest>(&body);
            assert_eq!(e.status_code, 400);
            assert_eq!(e.content, "Process instance not supplied");
        }
    }

    #[test]
    fn errors_never_echo_values() {
        let e = err::<SetCredentialRequest>(
            r#"{"target":"t","userName":"u","password":{"x":"hunter2-secret"}}"#,
        );
        assert!(!e.content.contains("hunter2"), "{}", e.content);
        let e = err::<SetCredentialRequest>(r#"{"target":"t","userName":7}"#);
        assert!(e.content.contains("wrong type"), "{}", e.content);
        let e = err::<EndSessionRequest>(r#"{"session":"hunter2-secret","processInstance":"p"}"#);
        assert!(!e.content.contains("hunter2"), "{}", e.content);
        let e = err::<EndSessionRequest>("{not json");
        assert!(e.content.contains("not valid JSON"), "{}", e.content);
    }

    proptest::proptest! {
        #[test]
        fn any_body_gets_an_answer_without_its_text(body in ".{0,200}") {
            if let Err(e) = serde_json::from_str::<SetCredentialRequest>(&body) {
                let answer = describe_json_error(&e).0;
                proptest::prop_assert!(answer.content.len() < 200);
            }
        }
    }
}
