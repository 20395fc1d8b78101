//! GetPAMSettings: what every PSM process needs to know about the deployment, as typed
//! config handed to the control plane at assembly.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Where recordings go (the seed's `PSMStorageMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StorageMode {
    /// A local path or a UNC / SMB share mounted on the uploader.
    #[default]
    #[serde(rename = "UNC")]
    Unc,
    /// S3 or an S3-compatible store.
    #[serde(rename = "AWS")]
    Aws,
    /// Azure Blob storage.
    #[serde(rename = "Azure")]
    Azure,
}

impl StorageMode {
    /// The wire spelling: `UNC`, `AWS`, `Azure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StorageMode::Unc => "UNC",
            StorageMode::Aws => "AWS",
            StorageMode::Azure => "Azure",
        }
    }
}

impl fmt::Display for StorageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StorageMode {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "UNC" | "unc" | "local" => Ok(StorageMode::Unc),
            "AWS" | "aws" | "s3" => Ok(StorageMode::Aws),
            "Azure" | "azure" => Ok(StorageMode::Azure),
            _ => Err(CoreError::InvalidInput {
                field: "PSMStorageMode",
                reason: "must be UNC, AWS or Azure".into(),
            }),
        }
    }
}

/// The recordings' recipient **public** key (X25519, 32 bytes), as `x25519:BASE64`. Encoders
/// seal recordings to it; only whoever holds the matching private key (offline, never given
/// to PSM) can replay them. Text that looks like a private key is refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecipientKey([u8; 32]);

impl RecipientKey {
    /// From the 32 public-key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `x25519:BASE64` (the prefix may be omitted).
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let text = text.trim();
        let upper = text.to_ascii_uppercase();
        if upper.contains("PRIVATE") || upper.contains("SECRET") {
            return Err(CoreError::InvalidInput {
                field: "PSMEncryptionKey",
                reason: "this is a private key; give the recipient's public key (the private \
                         key never goes to PSM)"
                    .into(),
            });
        }
        let body = text.strip_prefix("x25519:").unwrap_or(text);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| CoreError::InvalidInput {
                field: "PSMEncryptionKey",
                reason: "must be x25519: followed by the base64 of a 32-byte public key".into(),
            })?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "x25519:{}",
            base64::engine::general_purpose::STANDARD.encode(self.0)
        )
    }
}

impl TryFrom<String> for RecipientKey {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RecipientKey> for String {
    fn from(k: RecipientKey) -> String {
        k.to_string()
    }
}

/// The deployment's settings, served by GetPAMSettings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PamSettings {
    /// `PSMStorageMode`.
    pub storage_mode: StorageMode,
    /// `PSMStorageLocation` (extension): where, for the mode: a path or mounted share (UNC),
    /// `s3://bucket[/prefix]` (AWS), `az://account/container[/prefix]` (Azure). Never a
    /// credential: uploaders hold those themselves. `None`: each uploader's own setting.
    pub storage_location: Option<String>,
    /// `PSMEncodingEnabled`: whether encoders produce exports (when off, raw recordings go
    /// straight to storage).
    pub encoding_enabled: bool,
    /// `PSMEncryptionKey`: the recordings' recipient public key, or none (not encrypted).
    pub encryption_key: Option<RecipientKey>,
    /// `PSMRecordKeyStrokes`: whether keystrokes are recorded and indexed (never passwords
    /// typed at a prompt with echo off).
    pub record_keystrokes: bool,
    /// Whether clipboard transfers are captured.
    pub capture_clipboard: bool,
    /// The export formats encoders produce (`asciicast`, `text`, `commands`, `video`,
    /// `contact-sheet`). Encoders write each one only where it applies, by what the recording
    /// holds: `asciicast` for terminal sessions, `video` and `contact-sheet` for graphical
    /// ones (RDP), the text exports for every session; so listing the video costs terminal
    /// sessions nothing. The default lists them all.
    pub export_formats: Vec<String>,
    /// How often gateways and workers should call Polling.
    pub polling_interval: Duration,
    /// How long before a checkout runs out a gateway warns the user.
    pub checkout_warning: Duration,
}

impl Default for PamSettings {
    fn default() -> Self {
        Self {
            storage_mode: StorageMode::Unc,
            storage_location: None,
            encoding_enabled: true,
            encryption_key: None,
            record_keystrokes: true,
            capture_clipboard: true,
            // Each where it applies: the video and contact sheet for RDP sessions, the
            // asciicast for SSH sessions (the web UI replays one or the other).
            export_formats: ["asciicast", "text", "commands", "video", "contact-sheet"]
                .map(String::from)
                .to_vec(),
            polling_interval: Duration::from_secs(20),
            checkout_warning: Duration::from_secs(5 * 60),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn recipient_key_text_and_private_key_refusal() {
        let k = RecipientKey::from_bytes([9; 32]);
        let text = k.to_string();
        assert!(text.starts_with("x25519:"));
        assert_eq!(RecipientKey::parse(&text).expect("parse"), k);
        assert!(RecipientKey::parse("AGE-SECRET-KEY-1QQQ").is_err());
        assert!(RecipientKey::parse("-----BEGIN PRIVATE KEY-----").is_err());
        assert!(RecipientKey::parse("x25519:AAAA").is_err());
    }
}
