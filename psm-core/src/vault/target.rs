//! Targets: the machines PSM logs in to on a user's behalf.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::truncate_for_error;
use crate::session::{MAX_NAME_LEN, Protocol};

/// Longest host name, in bytes (DNS's limit).
pub const MAX_HOST_LEN: usize = 253;
/// Longest host-key pin, in bytes (a known_hosts line with an RSA-4096 key fits).
pub const MAX_HOST_KEY_LEN: usize = 4096;

/// A target: where a gateway connects once a user is allowed in. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Its name, as sessions and checkouts refer to it (e.g. `web-01`).
    pub name: String,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// For SSH: the pinned host key, either a fingerprint (`SHA256:...`, as `ssh-keygen -lf`
    /// prints it) or a known_hosts line (`[host]:port ssh-ed25519 AAAA...`). A gateway refuses
    /// a target whose key does not match; `None` means "not pinned" (the gateway's policy
    /// decides whether that is allowed).
    pub host_key: Option<String>,
}

fn bad(field: &'static str, value: &str, rule: &str) -> CoreError {
    CoreError::InvalidInput {
        field,
        reason: format!("{:?} {rule}", truncate_for_error(value)),
    }
}

/// Checks a target name: 1 to 256 bytes, no control characters (the same rule as a session's
/// target).
pub fn validate_target_name(name: &str) -> Result<(), CoreError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(bad(
            "target",
            name,
            "must be 1 to 256 bytes without control characters",
        ));
    }
    Ok(())
}

impl Target {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), CoreError> {
        validate_target_name(&self.name)?;
        if self.host.is_empty()
            || self.host.len() > MAX_HOST_LEN
            || !self.host.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(bad(
                "host",
                &self.host,
                "must be 1 to 253 printable ASCII characters",
            ));
        }
        if self.port == 0 {
            return Err(bad("port", "0", "is not a TCP port"));
        }
        if let Some(key) = &self.host_key
            && (key.is_empty() || key.len() > MAX_HOST_KEY_LEN || key.chars().any(char::is_control))
        {
            return Err(bad(
                "hostKey",
                key,
                "must be 1 to 4096 bytes on one line (a fingerprint or a known_hosts line)",
            ));
        }
        Ok(())
    }
}
