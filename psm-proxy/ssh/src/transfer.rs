//! Seeing files go by: SFTP (also what `scp` uses by default) and the legacy scp protocol
//! (`scp -O`), parsed from the bytes of their channel to report [`FileTransfer`]s.
//!
//! Both parsers read untrusted bytes from either side, so every length is bounded before
//! anything is kept, and a stream they cannot follow only stops the reporting (the bytes
//! still flow and are still recorded).

use std::collections::HashMap;

use psm_proxy::tap::{ChannelPurpose, Direction, TransferReport};

/// Largest SFTP packet followed (OpenSSH's limit is 256 KiB); larger ones stop parsing.
pub const MAX_SFTP_PACKET: usize = 256 * 1024 + 1024;
/// Most files open at once that are tracked.
const MAX_TRACKED: usize = 1024;
/// Longest scp control line.
const MAX_SCP_LINE: usize = 4096;
/// Longest path kept.
const MAX_PATH: usize = 4096;

/// The watcher of one channel.
#[derive(Debug)]
pub enum TransferWatch {
    /// An SFTP subsystem channel.
    Sftp(SftpWatch),
    /// An `scp -t` (upload) or `scp -f` (download) channel.
    Scp(ScpWatch),
}

impl TransferWatch {
    /// For an exec command: a watcher if it is a legacy scp.
    pub fn for_exec(command: &str) -> Option<Self> {
        ScpWatch::for_command(command).map(TransferWatch::Scp)
    }

    /// Feeds bytes going `direction`; returns completed transfers.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8]) -> Vec<TransferReport> {
        match self {
            TransferWatch::Sftp(w) => w.feed(direction, bytes),
            TransferWatch::Scp(w) => w.feed(direction, bytes),
        }
    }

    /// The channel closed: transfers still open are reported as cut.
    pub fn finish(self) -> Vec<TransferReport> {
        match self {
            TransferWatch::Sftp(w) => w.finish(),
            TransferWatch::Scp(w) => w.finish(),
        }
    }
}

#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
    broken: bool,
}

impl Framer {
    /// Appends bytes and returns every complete packet (without its length prefix).
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.broken {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len == 0 || len > MAX_SFTP_PACKET {
                self.broken = true;
                self.buf = Vec::new();
                return out;
            }
            if rest.len() < 4 + len {
                break;
            }
            out.push(rest[4..4 + len].to_vec());
            at += 4 + len;
        }
        self.buf.drain(..at);
        out
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        if self.0.len() < 4 {
            return None;
        }
        let v = u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]);
        self.0 = &self.0[4..];
        Some(v)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        if self.0.len() < n {
            return None;
        }
        self.0 = &self.0[n..];
        Some(())
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        if self.0.len() < n {
            return None;
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(s)
    }
}

const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXF_WRITE: u32 = 0x0000_0002;
/// Flags that change the file (append, create, truncate) even without a write.
const FXF_CHANGES: u32 = 0x0000_0004 | 0x0000_0008 | 0x0000_0010;

#[derive(Debug)]
struct OpenFile {
    path: String,
    /// The access flags asked for writing (or creating, truncating, appending).
    write: bool,
    up: u64,
    down: u64,
}

/// Follows an SFTP session (version 3, what OpenSSH speaks): opens, reads, writes, closes.
#[derive(Debug, Default)]
pub struct SftpWatch {
    to_target: Framer,
    to_user: Framer,
    opening: HashMap<u32, (String, u32)>,
    reading: HashMap<u32, Vec<u8>>,
    files: HashMap<Vec<u8>, OpenFile>,
}

fn path_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_PATH)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl SftpWatch {
    /// A watcher for a new SFTP channel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns transfers completed by a CLOSE.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8]) -> Vec<TransferReport> {
        let mut done = Vec::new();
        match direction {
            Direction::ToTarget => {
                for p in self.to_target.push(bytes) {
                    self.client_packet(&p, &mut done);
                }
            }
            Direction::ToUser => {
                for p in self.to_user.push(bytes) {
                    self.server_packet(&p);
                }
            }
        }
        done
    }

    fn client_packet(&mut self, p: &[u8], done: &mut Vec<TransferReport>) {
        let mut r = Reader(p);
        let (Some(kind), Some(id)) = (r.u8(), r.u32()) else {
            return;
        };
        match kind {
            FXP_OPEN => {
                if let (Some(name), Some(flags)) = (r.string(), r.u32())
                    && self.opening.len() < MAX_TRACKED
                {
                    self.opening.insert(id, (path_text(name), flags));
                }
            }
            FXP_READ => {
                if let Some(h) = r.string()
                    && self.files.contains_key(h)
                    && self.reading.len() < MAX_TRACKED * 64
                {
                    self.reading.insert(id, h.to_vec());
                }
            }
            FXP_WRITE => {
                if let Some(h) = r.string()
                    && r.skip(8).is_some()
                    && let Some(data) = r.string()
                    && let Some(f) = self.files.get_mut(h)
                {
                    f.up = f.up.saturating_add(data.len() as u64);
                }
            }
            FXP_CLOSE => {
                if let Some(h) = r.string()
                    && let Some(f) = self.files.remove(h)
                {
                    done.extend(Self::report(f, true));
                }
            }
            _ => {}
        }
    }

    fn server_packet(&mut self, p: &[u8]) {
        let mut r = Reader(p);
        let (Some(kind), Some(id)) = (r.u8(), r.u32()) else {
            return;
        };
        match kind {
            FXP_HANDLE => {
                if let Some((path, flags)) = self.opening.remove(&id)
                    && let Some(h) = r.string()
                    && self.files.len() < MAX_TRACKED
                    && h.len() <= 256
                {
                    self.files.insert(
                        h.to_vec(),
                        OpenFile {
                            path,
                            write: flags & (FXF_WRITE | FXF_CHANGES) != 0,
                            up: 0,
                            down: 0,
                        },
                    );
                }
            }
            FXP_DATA => {
                if let Some(h) = self.reading.remove(&id)
                    && let Some(data) = r.string()
                    && let Some(f) = self.files.get_mut(&h)
                {
                    f.down = f.down.saturating_add(data.len() as u64);
                }
            }
            _ => {
                // STATUS and others end a pending open or read.
                self.opening.remove(&id);
                self.reading.remove(&id);
            }
        }
    }

    /// What a closed file moved: each way bytes went (a `READ|WRITE` open that read and
    /// wrote is both a download and an upload); one that moved nothing by its flags
    /// (written to, created or truncated: an upload of nothing).
    fn report(f: OpenFile, complete: bool) -> Vec<TransferReport> {
        let one = |direction, bytes| TransferReport {
            direction,
            path: f.path.clone(),
            bytes,
            protocol: "sftp",
            complete,
        };
        let mut out = Vec::new();
        if f.down > 0 {
            out.push(one(Direction::ToUser, f.down));
        }
        if f.up > 0 {
            out.push(one(Direction::ToTarget, f.up));
        }
        if out.is_empty() {
            out.push(if f.write {
                one(Direction::ToTarget, 0)
            } else {
                one(Direction::ToUser, 0)
            });
        }
        out
    }

    /// Files still open are reported as cut.
    pub fn finish(self) -> Vec<TransferReport> {
        self.files
            .into_values()
            .flat_map(|f| Self::report(f, false))
            .collect()
    }
}

#[derive(Debug)]
enum ScpState {
    Line(Vec<u8>),
    Data {
        name: String,
        size: u64,
        left: u64,
    },
    /// The byte after the data (a `\0` status).
    Trailer,
    Broken,
}

/// Follows a legacy scp stream (`scp -t` sink or `scp -f` source on the target).
#[derive(Debug)]
pub struct ScpWatch {
    /// Which way the files go.
    direction: Direction,
    base: String,
    /// `-d` or `-r`: the base path is a directory the files go into.
    base_is_dir: bool,
    dirs: Vec<String>,
    state: ScpState,
}

/// For a legacy `scp -t PATH` / `scp -f PATH` command: which way and the path named, so a
/// policy can judge the transfer before it starts.
///
/// ```
/// use psm_proxy::Direction;
/// use psm_proxy_ssh::transfer::scp_target;
/// assert_eq!(scp_target("scp -t /etc/x"), Some((Direction::ToTarget, "/etc/x".into())));
/// assert_eq!(scp_target("ls"), None);
/// ```
pub fn scp_target(command: &str) -> Option<(Direction, String)> {
    ScpWatch::for_command(command).map(|w| (w.direction, w.base))
}

/// What an exec channel runs, for the taps: [`ChannelPurpose::FileCopy`] for a legacy
/// `scp -t PATH` / `scp -f PATH` (exactly the commands [`TransferWatch::for_exec`] follows),
/// else [`ChannelPurpose::Exec`].
///
/// ```
/// use psm_proxy::{ChannelPurpose, Direction};
/// use psm_proxy_ssh::transfer::exec_purpose;
/// assert!(matches!(exec_purpose("scp -f /var/log/syslog"),
///     ChannelPurpose::FileCopy { direction: Direction::ToUser, ref path, .. } if path == "/var/log/syslog"));
/// assert_eq!(exec_purpose("ls"), ChannelPurpose::Exec("ls".into()));
/// ```
pub fn exec_purpose(command: &str) -> ChannelPurpose {
    match scp_target(command) {
        Some((direction, path)) => ChannelPurpose::FileCopy {
            command: command.to_owned(),
            protocol: "scp",
            direction,
            path,
        },
        None => ChannelPurpose::Exec(command.to_owned()),
    }
}

impl ScpWatch {
    /// A watcher for an exec command, if it is `scp ... -t PATH` or `scp ... -f PATH`.
    pub fn for_command(command: &str) -> Option<Self> {
        let mut words = command.split_whitespace();
        let prog = words.next()?;
        if prog != "scp" && !prog.ends_with("/scp") {
            return None;
        }
        let mut direction = None;
        let mut base_is_dir = false;
        let mut path = String::new();
        for w in words {
            if w == "--" {
                continue;
            }
            if let Some(flags) = w.strip_prefix('-') {
                base_is_dir |= flags.contains('d') || flags.contains('r');
                if flags.contains('t') {
                    direction = Some(Direction::ToTarget);
                } else if flags.contains('f') {
                    direction = Some(Direction::ToUser);
                }
            } else {
                path = w.chars().take(MAX_PATH).collect();
            }
        }
        Some(Self {
            direction: direction?,
            base: path,
            base_is_dir,
            dirs: Vec::new(),
            state: ScpState::Line(Vec::new()),
        })
    }

    fn path(&self, name: &str) -> String {
        let mut p = self.base.clone();
        for d in &self.dirs {
            if !p.is_empty() && !p.ends_with('/') {
                p.push('/');
            }
            p.push_str(d);
        }
        let into_dir = self.direction == Direction::ToTarget && self.base_is_dir;
        if into_dir || !self.dirs.is_empty() {
            if !p.is_empty() && !p.ends_with('/') {
                p.push('/');
            }
            p.push_str(name);
        }
        p.chars().take(MAX_PATH).collect()
    }

    /// Feeds bytes; returns transfers completed.
    pub fn feed(&mut self, direction: Direction, mut bytes: &[u8]) -> Vec<TransferReport> {
        let mut done = Vec::new();
        if direction != self.direction {
            return done; // acknowledgements
        }
        while !bytes.is_empty() {
            match &mut self.state {
                ScpState::Broken => return done,
                ScpState::Line(line) => {
                    let nl = bytes.iter().position(|&b| b == b'\n');
                    let take = nl.map_or(bytes.len(), |p| p + 1);
                    if line.len() + take > MAX_SCP_LINE {
                        self.state = ScpState::Broken;
                        return done;
                    }
                    line.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if nl.is_some() {
                        let text = String::from_utf8_lossy(line).trim_end().to_owned();
                        done.extend(self.control_line(&text));
                    }
                }
                ScpState::Data { name, size, left } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        let (name, size) = (std::mem::take(name), *size);
                        done.push(TransferReport {
                            direction: self.direction,
                            path: self.path(&name),
                            bytes: size,
                            protocol: "scp",
                            complete: true,
                        });
                        self.state = ScpState::Trailer;
                    }
                }
                ScpState::Trailer => {
                    bytes = &bytes[1..];
                    self.state = ScpState::Line(Vec::new());
                }
            }
        }
        done
    }

    fn control_line(&mut self, text: &str) -> Option<TransferReport> {
        self.state = ScpState::Line(Vec::new());
        match text.chars().next() {
            Some(kind @ ('C' | 'D')) => {
                let mut parts = text[1..].splitn(3, ' ');
                let (_mode, size, name) = (parts.next(), parts.next(), parts.next());
                let (Some(size), Some(name)) = (size.and_then(|s| s.parse::<u64>().ok()), name)
                else {
                    self.state = ScpState::Broken;
                    return None;
                };
                let name = path_text(name.as_bytes());
                if kind == 'D' {
                    if self.dirs.len() < 256 {
                        self.dirs.push(name);
                    }
                    None
                } else if size == 0 {
                    self.state = ScpState::Trailer;
                    Some(TransferReport {
                        direction: self.direction,
                        path: self.path(&name),
                        bytes: 0,
                        protocol: "scp",
                        complete: true,
                    })
                } else {
                    self.state = ScpState::Data {
                        name,
                        size,
                        left: size,
                    };
                    None
                }
            }
            Some('E') => {
                self.dirs.pop();
                None
            }
            // T (times) and warnings/errors (\x01, \x02) carry no file.
            _ => None,
        }
    }

    /// A file whose data had not all passed is reported as cut.
    pub fn finish(self) -> Vec<TransferReport> {
        match &self.state {
            ScpState::Data { name, size, left } if *left > 0 => vec![TransferReport {
                direction: self.direction,
                path: self.path(name),
                bytes: size - left,
                protocol: "scp",
                complete: false,
            }],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }
    fn s(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn sftp_upload_is_reported_on_close() {
        let mut w = SftpWatch::new();
        let mut open = vec![FXP_OPEN, 0, 0, 0, 7];
        open.extend(s(b"/tmp/up.bin"));
        open.extend(0x1au32.to_be_bytes());
        open.extend(0u32.to_be_bytes());
        assert!(w.feed(Direction::ToTarget, &pkt(&open)).is_empty());
        let mut handle = vec![FXP_HANDLE, 0, 0, 0, 7];
        handle.extend(s(b"h1"));
        w.feed(Direction::ToUser, &pkt(&handle));
        let mut write = vec![FXP_WRITE, 0, 0, 0, 8];
        write.extend(s(b"h1"));
        write.extend(0u64.to_be_bytes());
        write.extend(s(&[7u8; 1000]));
        let bytes = pkt(&write);
        // split across feeds
        w.feed(Direction::ToTarget, &bytes[..10]);
        w.feed(Direction::ToTarget, &bytes[10..]);
        let mut close = vec![FXP_CLOSE, 0, 0, 0, 9];
        close.extend(s(b"h1"));
        let done = w.feed(Direction::ToTarget, &pkt(&close));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].path, "/tmp/up.bin");
        assert_eq!(done[0].bytes, 1000);
        assert_eq!(done[0].direction, Direction::ToTarget);
        assert!(done[0].complete);
    }

    #[test]
    fn scp_sink_stream_is_followed() {
        let mut w = ScpWatch::for_command("scp -d -t /tmp/dest").expect("scp");
        let mut stream =
            b"T1 0 1 0\nC0644 5 a.txt\nhello\0D0755 0 sub\nC0600 0 empty\n\0E\n".to_vec();
        stream.extend_from_slice(b"C0644 3 b\nxyz\0");
        let mut done = Vec::new();
        for chunk in stream.chunks(3) {
            done.extend(w.feed(Direction::ToTarget, chunk));
        }
        let got: Vec<(String, u64)> = done.iter().map(|f| (f.path.clone(), f.bytes)).collect();
        assert_eq!(
            got,
            vec![
                ("/tmp/dest/a.txt".into(), 5),
                ("/tmp/dest/sub/empty".into(), 0),
                ("/tmp/dest/b".into(), 3)
            ]
        );
        assert!(ScpWatch::for_command("ls -t").is_none());
        let mut one = ScpWatch::for_command("scp -t -- /tmp/file.txt").expect("scp");
        let done = one.feed(Direction::ToTarget, b"C0644 2 local.txt\nab\0");
        assert_eq!(done[0].path, "/tmp/file.txt");
        let src = ScpWatch::for_command("scp -f /etc/hosts").expect("source");
        assert_eq!(src.direction, Direction::ToUser);
    }

    proptest::proptest! {
        #[test]
        fn sftp_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..32)) {
            let mut w = SftpWatch::new();
            for (i, c) in chunks.iter().enumerate() {
                let d = if i % 2 == 0 { Direction::ToTarget } else { Direction::ToUser };
                let _ = w.feed(d, c);
            }
            let _ = w.finish();
        }

        #[test]
        fn scp_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut w = ScpWatch::for_command("scp -t x").expect("scp");
            let _ = w.feed(Direction::ToTarget, &bytes);
            let _ = w.finish();
        }
    }
}
