//! Identifiers: sessions, the processes that own them, checkouts and fencing tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::CoreError;

/// The GUID of a `PrivSession` (the seed's `session` / `PrivSessionID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A new random (v4) session id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lower case, as in the seed's examples.
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for SessionId {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| CoreError::InvalidInput {
                field: "session",
                reason: format!("{:?} is not a session GUID", truncate_for_error(s)),
            })
    }
}

/// Maximum length of a process instance name, in bytes.
pub const MAX_PROCESS_INSTANCE_LEN: usize = 200;

/// The name of one running process (gateway, encoder, uploader) that owns sessions: the seed's
/// `processInstance`. Non-empty, at most [`MAX_PROCESS_INSTANCE_LEN`] bytes, printable ASCII
/// without spaces, so it is safe in logs and SQL text columns alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProcessInstance(String);

impl ProcessInstance {
    /// Validates and wraps a process instance name.
    pub fn new(name: impl Into<String>) -> Result<Self, CoreError> {
        let name = name.into();
        if name.is_empty() {
            return Err(CoreError::MissingProcessInstance);
        }
        if name.len() > MAX_PROCESS_INSTANCE_LEN {
            return Err(CoreError::InvalidInput {
                field: "processInstance",
                reason: format!(
                    "{} bytes long, the limit is {MAX_PROCESS_INSTANCE_LEN}",
                    name.len()
                ),
            });
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CoreError::InvalidInput {
                field: "processInstance",
                reason: format!(
                    "{:?} holds a character outside printable ASCII",
                    truncate_for_error(&name)
                ),
            });
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ProcessInstance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ProcessInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProcessInstance {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A credential checkout (the seed's `checkOutId`): a user's time-bounded right to use a
/// vaulted credential on one target.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckoutId(String);

impl CheckoutId {
    /// Wraps a checkout id; it must be non-empty and at most 200 printable ASCII bytes.
    pub fn new(id: impl Into<String>) -> Result<Self, CoreError> {
        let id = id.into();
        if id.is_empty() || id.len() > 200 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CoreError::InvalidInput {
                field: "checkOutId",
                reason: format!(
                    "{:?} is not 1 to 200 printable ASCII characters",
                    truncate_for_error(&id)
                ),
            });
        }
        Ok(Self(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckoutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fencing token: a per-session counter that grows by one on every claim. Completing or
/// failing a claimed stage is accepted only with the session's current token, so a worker
/// whose lease expired (and whose session was claimed again) can never commit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Cuts untrusted text to a short prefix for an error message.
pub(crate) fn truncate_for_error(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_round_trips_through_text() {
        let id = SessionId::new();
        let back: SessionId = id.to_string().parse().expect("parse");
        assert_eq!(id, back);
        let seed: SessionId = "123e4567-e89b-12d3-a456-426614174000"
            .parse()
            .expect("seed example");
        assert_eq!(seed.to_string(), "123e4567-e89b-12d3-a456-426614174000");
    }

    #[test]
    fn bad_session_id_is_a_clear_error() {
        let err = "not-a-guid".parse::<SessionId>().unwrap_err();
        assert!(err.to_string().contains("not a session GUID"), "{err}");
        let long = "x".repeat(10_000);
        let err = long.parse::<SessionId>().unwrap_err().to_string();
        assert!(err.len() < 200, "error echoes at most a prefix: {err}");
    }

    #[test]
    fn process_instance_is_validated() {
        assert!(matches!(
            ProcessInstance::new(""),
            Err(CoreError::MissingProcessInstance)
        ));
        assert!(ProcessInstance::new("a b").is_err());
        assert!(ProcessInstance::new("x".repeat(201)).is_err());
        assert!(ProcessInstance::new("enc\u{0}").is_err());
        assert_eq!(
            ProcessInstance::new("Uploader_01").expect("ok").as_str(),
            "Uploader_01"
        );
        let parsed: Result<ProcessInstance, _> = serde_json::from_str("\"\"");
        assert!(parsed.is_err());
    }
}
