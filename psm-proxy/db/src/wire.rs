//! Framing of PostgreSQL protocol messages as they cross the gateway.
//!
//! The relay forwards messages untouched, so it cuts the byte stream into whole messages
//! (a type byte and a length, or a length alone before startup) with the length checked
//! before a byte of the body is buffered; what a message says is decoded by `pgwire`
//! ([`crate::statement`]) and, toward the target during login, `postgres-protocol`.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest startup-phase packet accepted (SSLRequest, StartupMessage, CancelRequest),
/// PostgreSQL's own limit (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// The default longest message relayed either way (64 MiB). PostgreSQL allows up to 1 GB;
/// a gateway that buffers whole messages bounds them lower. A longer one ends the session
/// with a clear error.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// Why bytes could not be cut into messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length larger than the limit: refused before anything is allocated for it.
    #[error("a {what} claims {len} bytes, more than the limit of {max}")]
    TooLong {
        /// Which message.
        what: &'static str,
        /// Its claimed length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A length smaller than the length field itself.
    #[error("a {what} claims a length of {len}, shorter than its own header")]
    TooShort {
        /// Which message.
        what: &'static str,
        /// Its claimed length.
        len: i64,
    },
    /// The peer closed the connection in the middle of a message.
    #[error("the connection closed in the middle of a {0}")]
    Truncated(&'static str),
    /// Reading failed.
    #[error("reading a {what}: {source}")]
    Io {
        /// Which message.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One whole message: its type byte (0 for a startup-phase packet, which has none) and all
/// its bytes, header included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The type byte (`Q`, `P`, `D`, ...), or 0 before startup.
    pub tag: u8,
    /// The whole message.
    pub bytes: Bytes,
}

impl Frame {
    /// The body, after the type byte and the length.
    pub fn body(&self) -> &[u8] {
        let header = if self.tag == 0 { 4 } else { 5 };
        self.bytes.get(header..).unwrap_or_default()
    }
}

/// Cuts one typed message off the front of `buf` if it holds a whole one. The length is
/// checked against `max` as soon as it is readable, so a claimed gigabyte is refused
/// without waiting for (or buffering) its bytes.
///
/// ```
/// use bytes::BytesMut;
/// use psm_proxy_db::wire::split_message;
/// let mut buf = BytesMut::from(&b"Q\0\0\0\x0dselect 1\0Z"[..]);
/// let f = split_message(&mut buf, 1024).unwrap().unwrap();
/// assert_eq!((f.tag, f.body()), (b'Q', &b"select 1\0"[..]));
/// assert_eq!(&buf[..], b"Z");
/// assert!(split_message(&mut BytesMut::from(&b"Q\x7f\0\0\0"[..]), 1024).is_err());
/// ```
pub fn split_message(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let total = checked_len(i64::from(len), "message", max)?;
    // The type byte is not counted in the length.
    if buf.len() < total + 1 {
        buf.reserve(total + 1 - buf.len());
        return Ok(None);
    }
    let bytes = buf.split_to(total + 1).freeze();
    Ok(Some(Frame { tag, bytes }))
}

/// Cuts one startup-phase packet (a length, then the body) off the front of `buf`.
pub fn split_startup(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let total = checked_len(i64::from(len), "startup packet", MAX_STARTUP_LEN)?;
    if total < 8 {
        return Err(FrameError::TooShort {
            what: "startup packet",
            len: i64::from(len),
        });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let bytes = buf.split_to(total).freeze();
    Ok(Some(Frame { tag: 0, bytes }))
}

fn checked_len(len: i64, what: &'static str, max: usize) -> Result<usize, FrameError> {
    if len < 4 {
        return Err(FrameError::TooShort { what, len });
    }
    let len_u = u64::try_from(len).unwrap_or(u64::MAX);
    match usize::try_from(len_u) {
        Ok(l) if l <= max => Ok(l),
        _ => Err(FrameError::TooLong {
            what,
            len: len_u,
            max,
        }),
    }
}

/// Reads until `buf` holds a whole typed message and returns it; `None` when the peer
/// closed the connection cleanly between messages.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Frame>, FrameError> {
    loop {
        if let Some(f) = split_message(buf, max)? {
            return Ok(Some(f));
        }
        if fill(r, buf, "message").await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Truncated("message"))
            };
        }
    }
}

/// Reads one startup-phase packet.
pub async fn read_startup<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, FrameError> {
    loop {
        if let Some(f) = split_startup(buf)? {
            return Ok(Some(f));
        }
        if fill(r, buf, "startup packet").await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Truncated("startup packet"))
            };
        }
    }
}

/// Reads what is available into `buf` (at least 8 KiB of room).
pub(crate) async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    what: &'static str,
) -> Result<usize, FrameError> {
    if buf.capacity() - buf.len() < 8192 {
        buf.reserve(8192);
    }
    r.read_buf(buf)
        .await
        .map_err(|source| FrameError::Io { what, source })
}

/// The fields of an ErrorResponse or NoticeResponse body (type byte, text), read bounded.
pub(crate) fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        out.push((code, String::from_utf8_lossy(&tail[..end]).into_owned()));
        rest = tail.get(end + 1..).unwrap_or_default();
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// Decodes one whole message with pgwire; `None` if it is malformed.
///
/// pgwire 0.42's decoders read some bodies without checking their length first (a `Parse`
/// or `Bind` with an empty body reads past the end and panics, as this crate's proptests
/// found): the decode runs under `catch_unwind`, so a hostile message is refused, never a
/// crashed session task that would leave its session open in the control plane.
pub fn decode<M: pgwire::messages::Message>(
    bytes: &[u8],
    ctx: &pgwire::messages::DecodeContext,
) -> Option<M> {
    let mut buf = BytesMut::from(bytes);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| M::decode(&mut buf, ctx)))
        .ok()
        .and_then(|r| r.ok().flatten())
}

/// Reads a big-endian i32 at the front of `b`.
pub(crate) fn be_i32(mut b: &[u8]) -> Option<i32> {
    (b.len() >= 4).then(|| b.get_i32())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_gigabyte_startup_packet_is_refused_from_its_length() {
        let mut buf = BytesMut::from(&0x4000_0000u32.to_be_bytes()[..]);
        let e = split_startup(&mut buf).unwrap_err();
        assert!(e.to_string().contains("1073741824"), "{e}");
        assert!(e.to_string().contains("10000"), "{e}");
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn short_and_negative_lengths_are_refused() {
        for len in [-1i32, 0, 3] {
            let mut b = BytesMut::from(&b"Q"[..]);
            b.extend_from_slice(&len.to_be_bytes());
            assert!(matches!(
                split_message(&mut b, 100),
                Err(FrameError::TooShort { .. })
            ));
        }
        let mut b = BytesMut::from(&7i32.to_be_bytes()[..]);
        assert!(split_startup(&mut b).is_err());
    }

    #[test]
    fn error_fields_stop_at_the_terminator_and_survive_garbage() {
        let f = error_fields(b"SERROR\0C42501\0Mno\0\0junk");
        assert_eq!(f.len(), 3);
        assert_eq!(f[1], (b'C', "42501".into()));
        assert_eq!(error_fields(b"Mno terminator").len(), 1);
        assert!(error_fields(b"").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn splitting_never_panics_and_frames_cover_the_input(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut seen = 0;
            while let Ok(Some(f)) = split_message(&mut buf, 200) {
                seen += f.bytes.len();
            }
            proptest::prop_assert_eq!(seen + buf.len(), bytes.len());
        }
    }
}
