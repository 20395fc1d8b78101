//! Where the save endpoints put what they receive: [`ArtifactSink`], and [`LocalArtifacts`],
//! one directory per session.
//!
//! PSM's own gateways record into `.psmr` files themselves; these endpoints serve gateways
//! written against the seed, which push clipboard text, keystrokes, screenshots and raw
//! recording bytes to the control plane.

use std::path::PathBuf;

use async_trait::async_trait;
use psm_core::{CoreError, SessionId, Timestamp};
use tokio::io::AsyncWriteExt;

/// A text event of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextEvent {
    /// saveclipboard.
    Clipboard,
    /// SaveKeyStrokes.
    KeyStrokes,
}

impl TextEvent {
    fn as_str(self) -> &'static str {
        match self {
            TextEvent::Clipboard => "clipboard",
            TextEvent::KeyStrokes => "keystrokes",
        }
    }
}

/// Storage of what the save endpoints receive. Every write is whole or absent.
#[async_trait]
pub trait ArtifactSink: Send + Sync + 'static {
    /// Appends a text event.
    async fn event(
        &self,
        session: SessionId,
        at: Timestamp,
        kind: TextEvent,
        text: &str,
    ) -> Result<(), CoreError>;
    /// Stores a screenshot (already checked to be a PNG).
    async fn screenshot(
        &self,
        session: SessionId,
        at: Timestamp,
        png: &[u8],
    ) -> Result<(), CoreError>;
    /// Appends raw recording bytes.
    async fn recording(&self, session: SessionId, bytes: &[u8]) -> Result<(), CoreError>;
}

/// Artifacts under a directory: `DIR/SESSION/events.jsonl` (one JSON object per line:
/// `{"at":"...","kind":"clipboard","text":"..."}`), `DIR/SESSION/screenshots/MICROS.png`,
/// `DIR/SESSION/recording.raw`.
#[derive(Clone, Debug)]
pub struct LocalArtifacts {
    root: PathBuf,
}

impl LocalArtifacts {
    /// Artifacts under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn dir(&self, session: SessionId) -> PathBuf {
        // A session id is a UUID: safe as a path component.
        self.root.join(session.to_string())
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> CoreError {
    move |e| CoreError::Unavailable {
        message: format!("artifact storage failed while {what}"),
        source: Some(Box::new(e)),
    }
}

async fn append(path: PathBuf, bytes: &[u8], what: &'static str) -> Result<(), CoreError> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io(what))?;
    }
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .map_err(io(what))?;
    f.write_all(bytes).await.map_err(io(what))?;
    f.sync_data().await.map_err(io(what))
}

#[async_trait]
impl ArtifactSink for LocalArtifacts {
    async fn event(
        &self,
        session: SessionId,
        at: Timestamp,
        kind: TextEvent,
        text: &str,
    ) -> Result<(), CoreError> {
        let mut line = serde_json::to_vec(&serde_json::json!({
            "at": at.to_string(),
            "kind": kind.as_str(),
            "text": text,
        }))
        .map_err(|e| CoreError::Unavailable {
            message: "encoding an event".into(),
            source: Some(Box::new(e)),
        })?;
        line.push(b'\n');
        append(
            self.dir(session).join("events.jsonl"),
            &line,
            "saving an event",
        )
        .await
    }

    async fn screenshot(
        &self,
        session: SessionId,
        at: Timestamp,
        png: &[u8],
    ) -> Result<(), CoreError> {
        let dir = self.dir(session).join("screenshots");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io("saving a screenshot"))?;
        // Written under a temporary name and renamed: a screenshot is whole or absent.
        let name = format!("{:020}-{}", at.as_micros(), uuid::Uuid::new_v4().simple());
        let tmp = dir.join(format!("{name}.tmp"));
        tokio::fs::write(&tmp, png)
            .await
            .map_err(io("saving a screenshot"))?;
        tokio::fs::rename(&tmp, dir.join(format!("{name}.png")))
            .await
            .map_err(io("saving a screenshot"))
    }

    async fn recording(&self, session: SessionId, bytes: &[u8]) -> Result<(), CoreError> {
        append(
            self.dir(session).join("recording.raw"),
            bytes,
            "saving recording data",
        )
        .await
    }
}

/// Largest screenshot side, in pixels.
pub const MAX_SCREENSHOT_SIDE: u32 = 16_384;

/// Decodes a savescreenshot `image` (a `data:image/png;base64,` URL or bare base64) and
/// checks it is a PNG whose header and size are sane. The error says what is wrong.
pub fn decode_png(image: &str) -> Result<Vec<u8>, CoreError> {
    use base64::Engine as _;
    let bad = |reason: &str| CoreError::InvalidInput {
        field: "image",
        reason: reason.to_owned(),
    };
    let b64 = match image.split_once(',') {
        Some((prefix, data)) if prefix.starts_with("data:") => {
            if !prefix.eq_ignore_ascii_case("data:image/png;base64") {
                return Err(bad("only data:image/png;base64 URLs are accepted"));
            }
            data
        }
        Some(_) => return Err(bad("not a data URL or base64")),
        None => image,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad("not valid base64"))?;
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.as_slice()));
    let reader = decoder
        .read_info()
        .map_err(|_| bad("not a PNG image (bad signature or header)"))?;
    let info = reader.info();
    if info.width == 0
        || info.height == 0
        || info.width > MAX_SCREENSHOT_SIDE
        || info.height > MAX_SCREENSHOT_SIDE
    {
        return Err(bad(
            "PNG dimensions out of range (1 to 16384 pixels a side)",
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine as _;

    pub(crate) fn tiny_png() -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 2, 2);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&[0u8; 12]).unwrap();
        }
        out
    }

    #[test]
    fn png_checks() {
        let png = tiny_png();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        assert_eq!(
            decode_png(&format!("data:image/png;base64,{b64}")).unwrap(),
            png
        );
        assert_eq!(decode_png(&b64).unwrap(), png);
        let gif = base64::engine::general_purpose::STANDARD.encode(b"GIF89a....");
        assert!(decode_png(&gif).is_err());
        assert!(decode_png("data:image/jpeg;base64,AAAA").is_err());
        assert!(decode_png("%%%").is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_png_never_panics(s in ".{0,300}", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_png(&s);
            let _ = decode_png(&base64::engine::general_purpose::STANDARD.encode(&bytes));
        }
    }
}
