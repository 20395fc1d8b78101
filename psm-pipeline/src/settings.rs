//! The workers' settings from the control plane (GetPAMSettings), with the command line's
//! overrides on top.
//!
//! Precedence, for every setting: a value given on the worker's command line (or its
//! environment variable), then the control plane's GetPAMSettings answer, then the built-in
//! default. Credentials are never taken from the control plane: storage keys and the
//! recipient's private key stay with the worker that uses them.
//!
//! | setting | command line | GetPAMSettings | default |
//! |---|---|---|---|
//! | exports written | `--exports`, `--no-exports` | `PSMEncodingEnabled`, `PSMExportFormats` | every export that applies |
//! | expected recipient key | `--recipient-key` (`none` to ignore) | `PSMEncryptionKey` | none |
//! | store | `--store` | `PSMStorageMode` + `PSMStorageLocation` | `DATA/store` |
//!
//! ```
//! use psm_core::vault::{PamSettings, StorageMode};
//! use psm_pipeline::settings::{EncoderOverrides, encoder_settings, store_location};
//! use psm_pipeline::{EncoderSettings, ExportKind};
//!
//! let pam = PamSettings {
//!     storage_mode: StorageMode::Aws,
//!     storage_location: Some("s3://recordings/psm".into()),
//!     export_formats: vec!["text".into(), "video".into()],
//!     ..PamSettings::default()
//! };
//! let (enc, _warnings) = encoder_settings(Some(&pam), &EncoderOverrides::default(),
//!     EncoderSettings::default())?;
//! assert_eq!(enc.exports.into_iter().collect::<Vec<_>>(), [ExportKind::Transcript, ExportKind::Video]);
//!
//! let (store, _) = store_location(Some(&pam), None, "/var/lib/psm/store".as_ref())?;
//! assert_eq!(store, "s3://recordings/psm");
//! let (store, warnings) = store_location(Some(&pam), Some("/mnt/share"), "/x".as_ref())?;
//! assert_eq!(store, "/mnt/share"); // the command line wins, with a warning
//! assert_eq!(warnings.len(), 1);
//! # Ok::<(), psm_pipeline::PipelineError>(())
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use psm_core::vault::{PamSettings, StorageMode};
use psm_core::{CoreError, Settings};
use psm_recording::RecipientPublic;
use psm_storage::StoreConfig;

use crate::encoder::{EncoderSettings, ExportKind};
use crate::error::PipelineError;

/// What an encoder's command line said; `None` leaves the setting to the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncoderOverrides {
    /// `--no-exports` (`Some(false)`): verify and store raw recordings only.
    pub encoding_enabled: Option<bool>,
    /// `--exports a,b,c`: exactly these exports (names as [`ExportKind::from_name`]).
    pub exports: Option<Vec<String>>,
    /// `--recipient-key x25519:...` (or `none`): the key recordings are expected to be
    /// encrypted for.
    pub recipient_key: Option<String>,
}

fn parse_recipient(text: &str) -> Result<Option<RecipientPublic>, PipelineError> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let key = psm_core::vault::RecipientKey::parse(text)
        .map_err(|e| PipelineError::Settings(format!("recipient key: {e}")))?;
    Ok(Some(RecipientPublic::from_bytes(*key.as_bytes())))
}

/// The encoder's settings: `base` (keys, video and sheet options set by the caller) with the
/// exports and the expected recipient decided by `overrides`, then `pam`, then the defaults.
/// Returns warnings to log (export names the control plane gave that this encoder does not
/// know, a recipient secret that does not match the deployment's key).
///
/// A name on the command line that is not an export is an error; one from the control plane
/// is skipped with a warning (a newer control plane may know more exports). An empty
/// `PSMExportFormats` (a control plane that does not say) means every export.
pub fn encoder_settings(
    pam: Option<&PamSettings>,
    overrides: &EncoderOverrides,
    mut base: EncoderSettings,
) -> Result<(EncoderSettings, Vec<String>), PipelineError> {
    let mut warnings = Vec::new();
    let all: BTreeSet<ExportKind> = ExportKind::ALL.into_iter().collect();
    let from_pam = |warnings: &mut Vec<String>| -> BTreeSet<ExportKind> {
        let names = pam.map(|p| p.export_formats.as_slice()).unwrap_or(&[]);
        if names.is_empty() {
            return all.clone();
        }
        let mut kinds = BTreeSet::new();
        for name in names {
            match ExportKind::from_name(name) {
                Some(k) => {
                    kinds.insert(k);
                }
                None => warnings.push(format!(
                    "the control plane asks for export {:?}, which this encoder does not \
                     produce; skipped",
                    name.chars().take(64).collect::<String>()
                )),
            }
        }
        kinds
    };
    base.exports = match (overrides.encoding_enabled, &overrides.exports) {
        (Some(false), _) => BTreeSet::new(),
        (_, Some(names)) => names
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                ExportKind::from_name(n).ok_or_else(|| {
                    PipelineError::Settings(format!(
                        "unknown export {n:?}: asciicast, transcript, commands, video or \
                         contact-sheet"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        (Some(true), None) => from_pam(&mut warnings),
        (None, None) => match pam {
            Some(p) if !p.encoding_enabled => BTreeSet::new(),
            _ => from_pam(&mut warnings),
        },
    };
    base.expected_recipient = match &overrides.recipient_key {
        Some(text) => parse_recipient(text)?,
        None => pam
            .and_then(|p| p.encryption_key.as_ref())
            .map(|k| RecipientPublic::from_bytes(*k.as_bytes())),
    };
    if let (Some(identity), Some(expected)) = (&base.identity, &base.expected_recipient)
        && identity.public() != *expected
    {
        warnings.push(format!(
            "this encoder's recipient secret is not the one for {expected}: recordings \
             encrypted for the deployment will be stored without exports"
        ));
    }
    Ok((base, warnings))
}

/// The storage mode a location names.
pub fn mode_of(location: &StoreConfig) -> StorageMode {
    match location {
        StoreConfig::S3(_) => StorageMode::Aws,
        StoreConfig::Azure(_) => StorageMode::Azure,
        _ => StorageMode::Unc,
    }
}

/// Where the uploader stores recordings: `cli` (`--store`), else the control plane's
/// `PSMStorageLocation` (which must agree with its `PSMStorageMode`), else, when the mode is
/// UNC or there is no control-plane answer, `default_local`. Returns the location (for
/// [`StoreConfig::parse`]) and warnings to log.
///
/// Errors when the control plane asks for AWS or Azure but names no location and the command
/// line gives none: the uploader cannot guess a bucket.
pub fn store_location(
    pam: Option<&PamSettings>,
    cli: Option<&str>,
    default_local: &Path,
) -> Result<(String, Vec<String>), PipelineError> {
    let parse = |loc: &str, whence: &str| {
        StoreConfig::parse(loc)
            .map_err(|e| PipelineError::Settings(format!("{whence} store location: {e}")))
    };
    let mut warnings = Vec::new();
    if let Some(loc) = cli {
        let config = parse(loc, "--store")?;
        if let Some(p) = pam
            && mode_of(&config) != p.storage_mode
        {
            warnings.push(format!(
                "--store {loc} is {} storage, the control plane's PSMStorageMode is {}: using \
                 --store",
                mode_of(&config),
                p.storage_mode
            ));
        }
        return Ok((loc.to_owned(), warnings));
    }
    let Some(p) = pam else {
        return Ok((default_local.display().to_string(), warnings));
    };
    match (&p.storage_location, p.storage_mode) {
        (Some(loc), mode) => {
            let config = parse(loc, "the control plane's PSMStorageLocation")?;
            if mode_of(&config) != mode {
                return Err(PipelineError::Settings(format!(
                    "the control plane's PSMStorageLocation is {} storage but its \
                     PSMStorageMode is {mode}; fix the control plane or pass --store",
                    mode_of(&config)
                )));
            }
            Ok((loc.clone(), warnings))
        }
        (None, StorageMode::Unc) => Ok((default_local.display().to_string(), warnings)),
        (None, mode) => Err(PipelineError::Settings(format!(
            "the control plane's PSMStorageMode is {mode} but it names no PSMStorageLocation: \
             pass --store {}",
            match mode {
                StorageMode::Azure => "az://ACCOUNT/CONTAINER[/PREFIX]",
                _ => "s3://BUCKET[/PREFIX]",
            }
        ))),
    }
}

/// Asks the control plane for its settings (GetPAMSettings), retrying while it is
/// unreachable for up to `patience`. A control plane that does not offer the call gives
/// `None` (the defaults apply); a refusal (a wrong API key) is an error at once.
pub async fn fetch_pam_settings(
    cp: &dyn Settings,
    patience: Duration,
) -> Result<Option<PamSettings>, PipelineError> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(200);
    loop {
        match cp.pam_settings().await {
            Ok(s) => return Ok(Some(s)),
            Err(CoreError::Unsupported { .. }) => {
                tracing::warn!("the control plane does not offer GetPAMSettings: defaults apply");
                return Ok(None);
            }
            Err(e) if e.is_transient() && tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                    "GetPAMSettings failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(PipelineError::ControlPlane(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use psm_core::vault::RecipientKey;

    fn kinds(s: &EncoderSettings) -> Vec<&'static str> {
        s.exports.iter().map(|k| k.as_str()).collect()
    }

    #[test]
    fn exports_follow_the_command_line_then_the_control_plane() {
        let base = EncoderSettings::default;
        let mut pam = PamSettings {
            export_formats: vec!["text".into(), "pdf".into()],
            ..PamSettings::default()
        };
        let (s, w) = encoder_settings(Some(&pam), &EncoderOverrides::default(), base()).unwrap();
        assert_eq!(kinds(&s), ["transcript"]);
        assert!(w[0].contains("pdf"), "{w:?}");
        // The command line wins.
        let o = EncoderOverrides {
            exports: Some(vec!["asciicast".into(), "mp4".into()]),
            ..Default::default()
        };
        let (s, _) = encoder_settings(Some(&pam), &o, base()).unwrap();
        assert_eq!(kinds(&s), ["asciicast", "video"]);
        // An unknown name typed by the operator is an error.
        let o = EncoderOverrides {
            exports: Some(vec!["pdf".into()]),
            ..Default::default()
        };
        assert!(encoder_settings(Some(&pam), &o, base()).is_err());
        // PSMEncodingEnabled=false: none, unless the command line says otherwise.
        pam.encoding_enabled = false;
        let (s, _) = encoder_settings(Some(&pam), &EncoderOverrides::default(), base()).unwrap();
        assert!(s.exports.is_empty());
        let o = EncoderOverrides {
            encoding_enabled: Some(true),
            ..Default::default()
        };
        let (s, _) = encoder_settings(Some(&pam), &o, base()).unwrap();
        assert_eq!(kinds(&s), ["transcript"]);
        // --no-exports beats everything.
        let o = EncoderOverrides {
            encoding_enabled: Some(false),
            exports: Some(vec!["video".into()]),
            ..Default::default()
        };
        assert!(
            encoder_settings(None, &o, base())
                .unwrap()
                .0
                .exports
                .is_empty()
        );
        // No control plane answer, or an empty list: every export.
        let (s, _) = encoder_settings(None, &EncoderOverrides::default(), base()).unwrap();
        assert_eq!(s.exports.len(), ExportKind::ALL.len());
        pam.encoding_enabled = true;
        pam.export_formats.clear();
        let (s, _) = encoder_settings(Some(&pam), &EncoderOverrides::default(), base()).unwrap();
        assert_eq!(s.exports.len(), ExportKind::ALL.len());
    }

    #[test]
    fn the_recipient_key_comes_from_the_control_plane_unless_overridden() {
        let key = RecipientKey::from_bytes([7; 32]);
        let pam = PamSettings {
            encryption_key: Some(key.clone()),
            ..PamSettings::default()
        };
        let (s, _) = encoder_settings(
            Some(&pam),
            &EncoderOverrides::default(),
            EncoderSettings::default(),
        )
        .unwrap();
        assert_eq!(
            s.expected_recipient,
            Some(RecipientPublic::from_bytes([7; 32]))
        );
        let o = EncoderOverrides {
            recipient_key: Some("none".into()),
            ..Default::default()
        };
        let (s, _) = encoder_settings(Some(&pam), &o, EncoderSettings::default()).unwrap();
        assert_eq!(s.expected_recipient, None);
        let o = EncoderOverrides {
            recipient_key: Some("psmr-recipient-secret:AAAA".into()),
            ..Default::default()
        };
        let e = encoder_settings(Some(&pam), &o, EncoderSettings::default()).unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
        // A local secret that cannot open the deployment's recordings is worth a warning.
        let base = EncoderSettings {
            identity: Some(psm_recording::RecipientSecret::from_bytes([1; 32])),
            ..EncoderSettings::default()
        };
        let (_, w) = encoder_settings(Some(&pam), &EncoderOverrides::default(), base).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn store_location_precedence_and_consistency() {
        let local = Path::new("/data/store");
        assert_eq!(store_location(None, None, local).unwrap().0, "/data/store");
        let mut pam = PamSettings::default();
        assert_eq!(
            store_location(Some(&pam), None, local).unwrap().0,
            "/data/store"
        );
        pam.storage_mode = StorageMode::Azure;
        let e = store_location(Some(&pam), None, local).unwrap_err();
        assert!(e.to_string().contains("az://"), "{e}");
        pam.storage_location = Some("s3://b/p".into());
        let e = store_location(Some(&pam), None, local).unwrap_err();
        assert!(e.to_string().contains("PSMStorageMode is Azure"), "{e}");
        pam.storage_location = Some("az://acct/container/p".into());
        assert_eq!(
            store_location(Some(&pam), None, local).unwrap().0,
            "az://acct/container/p"
        );
        let (loc, w) = store_location(Some(&pam), Some("s3://other"), local).unwrap();
        assert_eq!((loc.as_str(), w.len()), ("s3://other", 1));
        assert!(store_location(Some(&pam), Some("ftp://x"), local).is_err());
    }
}
