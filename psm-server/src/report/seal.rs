//! The seal on a report: an Ed25519 signature over the rendered file and the list of the
//! recordings it cites with their SHA-256, kept inside the file so one file travels alone.
//!
//! The seal is a block of lines:
//!
//! ```text
//! psm-report-seal v1
//! format pdf
//! recording <session-id> <sha256 hex>        (one per cited recording)
//! psm-detached-signature v1
//! signer psmr-signing-public:<64 hex>
//! signature <128 hex>
//! ```
//!
//! The signature (psm-recording's [`DetachedSignature`], context [`CONTEXT`]) covers the
//! rendered report followed by the seal's lines up to the signature (`psm-report-seal v1`,
//! `format`, `recording`...). Where the block goes, so that the file stays a valid file of
//! its format: HTML, after `</html>` in a comment (`<!--` ... `-->`); CSV, at the end, each
//! line starting `# `; PDF, as comment lines (`%`) just before the last `startxref`, which
//! leaves the cross-reference offsets and the `%%EOF` end untouched; JSON, as a last member
//! `"psmReportSeal"` holding the lines. Verifying takes the block out, which gives back the
//! exact signed bytes, and refuses any file where that does not hold.
//!
//! The key is the node's report key, `DATA/keys/report-signing.key`, created once like every
//! PSM key (create-new, fsync, rename: [`psm_core::files::publish_private`]) with its public
//! half registered in `DATA/keys/signers/reports`, the registry an auditor trusts.

use std::path::{Path, PathBuf};

use psm_recording::keys::{DetachedSignature, SignerRegistry};
use psm_recording::{SigningKey, VerifyingKey};

use super::{CitedRecording, Report, ReportError, ReportFormat};

/// What a report signature signs for.
pub const CONTEXT: &str = "psm compliance report v1";
const MARK: &str = "psm-report-seal v1";
/// The JSON member that carries the seal.
const JSON_MEMBER: &str = "psmReportSeal";
/// Longest seal block read, in bytes (a report cites at most this many / 100 recordings).
const MAX_SEAL: usize = 4 << 20;

/// `DATA/keys/report-signing.key`.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("report-signing.key")
}

/// `DATA/keys/signers/reports`: the report keys this node trusts.
pub fn registry(data_dir: &Path) -> SignerRegistry {
    SignerRegistry::new(data_dir.join("keys").join("signers").join("reports"))
}

/// The node's report signing key: read, or created once (mode 0600, create-new and rename,
/// so processes starting together agree on one key) and its public half registered.
pub fn node_key(data_dir: &Path) -> Result<SigningKey, ReportError> {
    let path = key_path(data_dir);
    let io = |what: String| move |source| ReportError::Io { what, source };
    for _ in 0..3 {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = SigningKey::from_text(text.trim()).map_err(|e| {
                    ReportError::Refused(format!("{} is not a signing key: {e}", path.display()))
                })?;
                registry(data_dir)
                    .register("node", &key.verifying_key())
                    .map_err(|e| {
                        ReportError::Refused(format!("registering the report key: {e}"))
                    })?;
                return Ok(key);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate()
                    .map_err(|e| ReportError::Render(format!("generating a key: {e}")))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(io(format!("creating {}", dir.display())))?;
                }
                // Whoever comes first wins, whole; the others read its key on the next turn.
                psm_core::files::publish_private(&path, format!("{}\n", key.to_text()).as_bytes())
                    .map_err(io(format!("writing {}", path.display())))?;
            }
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        }
    }
    Err(ReportError::Refused(format!(
        "{} could not be created and read back",
        path.display()
    )))
}

fn manifest(format: ReportFormat, recordings: &[CitedRecording]) -> String {
    let mut s = format!("{MARK}\nformat {}\n", format.as_str());
    for r in recordings {
        s.push_str(&format!("recording {} {}\n", r.session, r.sha256));
    }
    s
}

fn message(body: &[u8], manifest: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + manifest.len());
    m.extend_from_slice(body);
    m.extend_from_slice(manifest.as_bytes());
    m
}

fn json_tail(lines: &[String]) -> Result<String, ReportError> {
    Ok(format!(
        ",\n  \"{JSON_MEMBER}\": {}\n}}\n",
        serde_json::to_string(lines).map_err(|e| ReportError::Render(e.to_string()))?
    ))
}

/// Renders `report` in `format` and seals it with `key`: the file to hand out.
pub fn seal(
    report: &Report,
    format: ReportFormat,
    key: &SigningKey,
) -> Result<Vec<u8>, ReportError> {
    let body = report.render(format)?;
    seal_bytes(body, format, &report.recordings, key)
}

/// Seals an already rendered body.
pub fn seal_bytes(
    body: Vec<u8>,
    format: ReportFormat,
    recordings: &[CitedRecording],
    key: &SigningKey,
) -> Result<Vec<u8>, ReportError> {
    let manifest = manifest(format, recordings);
    let sig = key.sign_detached(CONTEXT, &message(&body, &manifest));
    let block = format!("{manifest}{}", sig.to_text());
    let lines: Vec<String> = block.lines().map(str::to_owned).collect();
    match format {
        ReportFormat::Html => {
            let mut out = body;
            out.extend_from_slice(format!("<!--\n{block}-->\n").as_bytes());
            Ok(out)
        }
        ReportFormat::Csv => {
            let mut out = body;
            for l in &lines {
                out.extend_from_slice(format!("# {l}\n").as_bytes());
            }
            Ok(out)
        }
        ReportFormat::Pdf => {
            let at = rfind(&body, b"startxref")
                .ok_or_else(|| ReportError::Render("the PDF has no startxref".into()))?;
            let mut out = body[..at].to_vec();
            for l in &lines {
                out.extend_from_slice(format!("%{l}\n").as_bytes());
            }
            out.extend_from_slice(&body[at..]);
            Ok(out)
        }
        ReportFormat::Json => {
            if !body.ends_with(b"\n}\n") {
                return Err(ReportError::Render(
                    "the JSON body does not end as expected".into(),
                ));
            }
            let mut out = body[..body.len() - 3].to_vec();
            out.extend_from_slice(json_tail(&lines)?.as_bytes());
            Ok(out)
        }
    }
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// What a valid seal says.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The file's format.
    pub format: ReportFormat,
    /// The trusted key that signed it.
    pub signer: VerifyingKey,
    /// The recordings it cites, with their SHA-256.
    pub recordings: Vec<CitedRecording>,
}

fn refused(why: impl Into<String>) -> ReportError {
    ReportError::Refused(why.into())
}

/// Takes the seal out of `file`: (the signed body, the seal's lines).
fn unseal(file: &[u8]) -> Result<(Vec<u8>, Vec<String>), ReportError> {
    let not_sealed = || refused("this is not a sealed PSM report: no psm-report-seal block found");
    if file.starts_with(b"{") {
        let value: serde_json::Value = serde_json::from_slice(file)
            .map_err(|e| refused(format!("the report is not valid JSON: {e}")))?;
        let lines: Vec<String> = value
            .get(JSON_MEMBER)
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| refused(format!("\"{JSON_MEMBER}\" is not a list of lines")))?
            .ok_or_else(not_sealed)?;
        let marker = format!(",\n  \"{JSON_MEMBER}\": ");
        let pos = rfind(file, marker.as_bytes()).ok_or_else(not_sealed)?;
        if file[pos..] != *json_tail(&lines)?.as_bytes() {
            return Err(refused(
                "the report has bytes after its seal, or the seal is not where PSM puts it",
            ));
        }
        let mut body = file[..pos].to_vec();
        body.extend_from_slice(b"\n}\n");
        return Ok((body, lines));
    }
    let (prefix, open): (&str, &[u8]) = if file.starts_with(b"%PDF") {
        ("%", b"%psm-report-seal v1\n")
    } else if file.starts_with(b"<!DOCTYPE html") {
        ("", b"<!--\npsm-report-seal v1\n")
    } else {
        ("# ", b"# psm-report-seal v1\n")
    };
    let start = rfind(file, open).ok_or_else(not_sealed)?;
    let end = if prefix == "%" {
        start
            + rfind(&file[start..], b"startxref").ok_or_else(|| {
                refused("the PDF's seal is not followed by its startxref (changed after sealing)")
            })?
    } else {
        file.len()
    };
    if end - start > MAX_SEAL {
        return Err(refused("the seal block is too large"));
    }
    let block = std::str::from_utf8(&file[start..end])
        .map_err(|_| refused("the seal block is not text"))?;
    let block = if prefix.is_empty() {
        block
            .strip_prefix("<!--\n")
            .and_then(|b| b.strip_suffix("-->\n"))
            .ok_or_else(|| refused("the seal comment is not closed where PSM closes it"))?
    } else {
        block
    };
    let mut lines = Vec::new();
    for l in block.split_inclusive('\n') {
        let l = l
            .strip_suffix('\n')
            .ok_or_else(|| refused("the seal's last line does not end"))?;
        let l = l
            .strip_prefix(prefix)
            .ok_or_else(|| refused("a line in the seal block is not part of the seal"))?;
        lines.push(l.to_owned());
    }
    let mut body = file[..start].to_vec();
    body.extend_from_slice(&file[end..]);
    Ok((body, lines))
}

/// Checks `file`'s seal against the `trusted` report keys. Refuses (with the reason) a
/// file that is not a sealed report, one changed after sealing, and one sealed by a key
/// not in `trusted`.
pub fn verify(file: &[u8], trusted: &[VerifyingKey]) -> Result<Verified, ReportError> {
    let (body, lines) = unseal(file)?;
    let sig_at = lines
        .iter()
        .position(|l| l == "psm-detached-signature v1")
        .ok_or_else(|| refused("the seal has no signature"))?;
    let (head, sig) = lines.split_at(sig_at);
    if head.first().map(String::as_str) != Some(MARK) {
        return Err(refused("the seal does not start with psm-report-seal v1"));
    }
    let format: ReportFormat = head
        .get(1)
        .and_then(|l| l.strip_prefix("format "))
        .ok_or_else(|| refused("the seal names no format"))?
        .parse()
        .map_err(|_| refused("the seal names an unknown format"))?;
    let mut recordings = Vec::new();
    for l in &head[2..] {
        let mut parts = l.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("recording"), Some(session), Some(sha), None)
                if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                recordings.push(CitedRecording {
                    session: session.to_owned(),
                    sha256: sha.to_owned(),
                })
            }
            _ => {
                return Err(refused(
                    "a line of the seal is not a recording and its hash",
                ));
            }
        }
    }
    let manifest = manifest(format, &recordings);
    let sig = DetachedSignature::from_text(&format!("{}\n", sig.join("\n")))
        .map_err(|e| refused(format!("the seal's signature cannot be read: {e}")))?;
    let signer = sig
        .verify(CONTEXT, &message(&body, &manifest), trusted)
        .map_err(|e| match e {
            psm_recording::RecordingError::UntrustedSigner { found } => refused(format!(
                "the report is sealed by {found}, which is not a trusted report key \
                 (DATA/keys/signers/reports, or --signer)"
            )),
            _ => refused(
                "the report was changed after it was sealed: its signature does not match \
                 its content",
            ),
        })?;
    Ok(Verified {
        format,
        signer,
        recordings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Report, ReportQuery};

    fn report() -> Report {
        Report {
            title: "PSM compliance report".into(),
            generated_at: "2026-12-07T00:00:00Z".into(),
            generated_by: "test".into(),
            query: ReportQuery::period("2026-12-01", "2026-12-07").expect("period"),
            sessions: Vec::new(),
            by_user: Vec::new(),
            refusals: Vec::new(),
            window_closures: Vec::new(),
            dormant_users: Some(vec!["carol".into()]),
            recording_exceptions: Vec::new(),
            recordings: vec![CitedRecording {
                session: "123e4567-e89b-12d3-a456-426614174000".into(),
                sha256: "ab".repeat(32),
            }],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn every_format_verifies_and_refuses_any_changed_byte() {
        let key = SigningKey::generate().expect("key");
        let other = SigningKey::generate().expect("key");
        for format in [
            ReportFormat::Json,
            ReportFormat::Csv,
            ReportFormat::Html,
            ReportFormat::Pdf,
        ] {
            let file = seal(&report(), format, &key).expect("seal");
            let v = verify(&file, &[key.verifying_key()]).expect("verifies");
            assert_eq!(v.format, format);
            assert_eq!(v.recordings, report().recordings);
            let err = verify(&file, &[other.verifying_key()]).expect_err("untrusted");
            assert!(
                err.to_string().contains("not a trusted report key"),
                "{err}"
            );
            // Any byte changed is refused (a sample across the file, seal included).
            let step = (file.len() / 97).max(1);
            for i in (0..file.len()).step_by(step) {
                let mut bad = file.clone();
                bad[i] ^= 0x01;
                assert!(
                    verify(&bad, &[key.verifying_key()]).is_err(),
                    "{format:?}: byte {i} changed but verified"
                );
            }
            let mut longer = file.clone();
            longer.extend_from_slice(b"x");
            assert!(verify(&longer, &[key.verifying_key()]).is_err());
        }
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        let key = SigningKey::generate().expect("key").verifying_key();
        for input in [
            &b""[..],
            b"{",
            b"{}",
            b"%PDF-1.7\n%psm-report-seal v1\n",
            b"<!DOCTYPE html><!--\npsm-report-seal v1\n",
            b"# psm-report-seal v1\n# psm-detached-signature v1\n",
        ] {
            assert!(verify(input, &[key]).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
            let _ = verify(&bytes, &[key]);
            let mut sealed = b"# psm-report-seal v1\n".to_vec();
            sealed.extend_from_slice(&bytes);
            let _ = verify(&sealed, &[key]);
        }
    }
}
