//! Judging SFTP requests before they reach the target (issue 17 M5).
//!
//! [`transfer::SftpWatch`](super::transfer::SftpWatch) only watches: it reports a file once
//! it is closed, after its bytes moved. The gate sits in the channel's pumps and sees each
//! whole SFTP packet first:
//!
//! - an `OPEN` is judged by the taps' [`check_transfer`](psm_proxy::Tap::check_transfer) in
//!   the direction its access flags allow (both for `READ|WRITE`) and refused there with
//!   `SSH_FX_PERMISSION_DENIED`, before any byte moves;
//! - `REMOVE`, `RENAME`, `MKDIR`, `RMDIR`, `SETSTAT`, `SYMLINK` and OpenSSH's
//!   `posix-rename`, `hardlink` and `lsetstat` extensions change the paths they name: each
//!   path is judged as an upload to it, and the operation and its outcome go to the taps'
//!   [`file_operation`](psm_proxy::Tap::file_operation) (a recorder writes a marker);
//! - every path judged is also resolved on the target first (an SFTP `REALPATH` the gate
//!   sends itself; its answer never reaches the user), and both the path as the user wrote
//!   it and its resolution are judged: a symlink, `..` or a relative path does not take a
//!   file past a rule on where it really is.
//!
//! A request of one of those kinds that the gate cannot read is refused, not forwarded
//! unjudged; more than 4096 requests in flight (OpenSSH keeps 64) close the channel, so a
//! client cannot make a request id collide with a probe's.
//!
//! Packets pass whole in both directions (a refusal's `STATUS` is written between two
//! packets, never inside one). A packet larger than [`MAX_SFTP_PACKET`] (OpenSSH's own
//! server refuses those too) closes the channel: a stream the gate cannot follow is not
//! let through unjudged.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use psm_proxy::tap::{Direction, FileOperation, FileOperationOutcome, TransferRequest};
use tokio::sync::oneshot;

use super::transfer::MAX_SFTP_PACKET;

const FXP_OPEN: u8 = 3;
const FXP_SETSTAT: u8 = 9;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_REALPATH: u8 = 16;
const FXP_RENAME: u8 = 18;
const FXP_SYMLINK: u8 = 20;
const FXP_STATUS: u8 = 101;
const FXP_NAME: u8 = 104;
const FXP_EXTENDED: u8 = 200;

const FXF_READ: u32 = 0x01;
const FXF_WRITE: u32 = 0x02;
const FXF_APPEND: u32 = 0x04;
const FXF_CREAT: u32 = 0x08;
const FXF_TRUNC: u32 = 0x10;

const FX_OK: u32 = 0;
const FX_PERMISSION_DENIED: u32 = 3;

/// Most requests remembered while they await their answer (a client pipelines a few dozen).
const MAX_OUTSTANDING: usize = 4096;
/// Longest path kept for judging (longer ones are judged cut, and so never match less).
const MAX_PATH: usize = 4096;

/// Frames one direction of an SFTP stream into whole packets (length prefix included).
#[derive(Debug, Default)]
struct Framer {
    buf: BytesMut,
}

impl Framer {
    /// Appends bytes; returns the complete packets, or `Err` for an impossible length.
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<Bytes>, ()> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while self.buf.len() >= 4 {
            let len =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if len == 0 || len > MAX_SFTP_PACKET {
                return Err(());
            }
            if self.buf.len() < 4 + len {
                break;
            }
            out.push(self.buf.split_to(4 + len).freeze());
        }
        Ok(out)
    }
}

fn u32_of(b: &mut &[u8]) -> Option<u32> {
    (b.len() >= 4).then(|| b.get_u32())
}

fn string_of<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = u32_of(b)? as usize;
    if b.len() < n {
        return None;
    }
    let (s, rest) = b.split_at(n);
    *b = rest;
    Some(s)
}

fn text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_PATH)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// One path a request acts on, and how to judge it.
#[derive(Debug)]
pub(crate) struct Subject {
    /// The path's bytes as the client sent them (for the `REALPATH` probe).
    pub(crate) raw: Vec<u8>,
    /// Which ways it is judged.
    pub(crate) directions: Vec<Direction>,
    /// Whether its resolution on the target is judged too (not for a symlink's relative
    /// target, which is relative to the link, not to the session's directory).
    pub(crate) resolve: bool,
}

/// A request the gate judges before forwarding.
#[derive(Debug)]
pub(crate) struct Judged {
    /// The client's request id.
    pub(crate) id: u32,
    /// The paths to judge.
    pub(crate) subjects: Vec<Subject>,
    /// The operation to report once answered (`None` for an `OPEN`: its transfer is
    /// reported by the watch when it closes).
    pub(crate) operation: Option<FileOperation>,
}

fn upload(raw: &[u8]) -> Subject {
    Subject {
        raw: raw.to_vec(),
        directions: vec![Direction::ToTarget],
        resolve: true,
    }
}

fn operation(name: &'static str, path: &[u8], other: Option<&[u8]>) -> Option<FileOperation> {
    Some(FileOperation {
        operation: name,
        path: text(path),
        other: other.map(text),
        protocol: "sftp",
        outcome: FileOperationOutcome::NoAnswer,
    })
}

/// What the gate does with a client packet.
#[derive(Debug)]
pub(crate) enum Gate {
    /// Nothing to judge: forward it.
    Pass,
    /// Judge it first.
    Judge(Judged),
    /// A request of a judged kind the gate cannot read (request id given): refused, never
    /// forwarded unjudged.
    Malformed(u32),
}

/// What a client packet (without its length) asks that must be judged, if anything.
pub(crate) fn classify(packet: &[u8]) -> Gate {
    let Some((kind, id)) = request_id(packet) else {
        return Gate::Pass;
    };
    match judged(packet) {
        Some(j) => Gate::Judge(j),
        None if matches!(
            kind,
            FXP_OPEN | FXP_REMOVE | FXP_MKDIR | FXP_RMDIR | FXP_SETSTAT | FXP_RENAME | FXP_SYMLINK
        ) || (kind == FXP_EXTENDED && !extension_is_free(packet)) =>
        {
            Gate::Malformed(id)
        }
        None => Gate::Pass,
    }
}

/// An extended request the gate does not judge (its name is readable and not one that
/// changes a path).
fn extension_is_free(packet: &[u8]) -> bool {
    let mut b = &packet[5..];
    matches!(string_of(&mut b), Some(name) if !matches!(
        name,
        b"posix-rename@openssh.com" | b"hardlink@openssh.com" | b"lsetstat@openssh.com"
    ))
}

/// What a client packet (without its length) asks that must be judged, if it can be read.
fn judged(packet: &[u8]) -> Option<Judged> {
    let mut b = packet;
    let kind = *b.first()?;
    b = &b[1..];
    let id = u32_of(&mut b)?;
    let one = |b: &mut &[u8], name| {
        let p = string_of(b)?;
        Some((vec![upload(p)], operation(name, p, None)))
    };
    let (subjects, operation) = match kind {
        FXP_OPEN => {
            let path = string_of(&mut b)?;
            let flags = u32_of(&mut b)?;
            let mut directions = Vec::new();
            if flags & FXF_READ != 0 {
                directions.push(Direction::ToUser);
            }
            if flags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC) != 0 {
                directions.push(Direction::ToTarget);
            }
            if directions.is_empty() {
                directions.push(Direction::ToUser);
            }
            let subject = Subject {
                raw: path.to_vec(),
                directions,
                resolve: true,
            };
            (vec![subject], None)
        }
        FXP_REMOVE => one(&mut b, "remove")?,
        FXP_MKDIR => one(&mut b, "mkdir")?,
        FXP_RMDIR => one(&mut b, "rmdir")?,
        FXP_SETSTAT => one(&mut b, "setstat")?,
        FXP_RENAME => {
            let (old, new) = (string_of(&mut b)?, string_of(&mut b)?);
            (
                vec![upload(old), upload(new)],
                operation("rename", old, Some(new)),
            )
        }
        FXP_SYMLINK => {
            // OpenSSH sends (target, link): the reverse of the draft's order.
            let (target, link) = (string_of(&mut b)?, string_of(&mut b)?);
            let target_subject = Subject {
                resolve: target.first() == Some(&b'/'),
                ..upload(target)
            };
            (
                vec![upload(link), target_subject],
                operation("symlink", link, Some(target)),
            )
        }
        FXP_EXTENDED => {
            let name = string_of(&mut b)?;
            match name {
                b"posix-rename@openssh.com" => {
                    let (old, new) = (string_of(&mut b)?, string_of(&mut b)?);
                    (
                        vec![upload(old), upload(new)],
                        operation("rename", old, Some(new)),
                    )
                }
                b"hardlink@openssh.com" => {
                    let (old, new) = (string_of(&mut b)?, string_of(&mut b)?);
                    (
                        vec![upload(new), upload(old)],
                        operation("hardlink", new, Some(old)),
                    )
                }
                b"lsetstat@openssh.com" => one(&mut b, "setstat")?,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Judged {
        id,
        subjects,
        operation,
    })
}

/// The gate of one SFTP channel. Each framer is used by one pump only.
#[derive(Debug, Default)]
pub(crate) struct SftpGate {
    to_target: Mutex<Framer>,
    to_user: Mutex<Framer>,
    /// The client's requests awaiting an answer (so a probe never reuses their ids).
    outstanding: Mutex<HashSet<u32>>,
    /// The gate's own `REALPATH` probes awaiting an answer.
    probes: Mutex<HashMap<u32, oneshot::Sender<Option<Vec<u8>>>>>,
    /// Operations forwarded, awaiting their status.
    operations: Mutex<HashMap<u32, FileOperation>>,
    next_probe: AtomicU32,
}

/// A client request id, as far as the gate is concerned (`INIT` has none).
fn request_id(packet: &[u8]) -> Option<(u8, u32)> {
    let kind = *packet.first()?;
    if kind < FXP_OPEN || packet.len() < 5 {
        return None;
    }
    Some((
        kind,
        u32::from_be_bytes([packet[1], packet[2], packet[3], packet[4]]),
    ))
}

impl SftpGate {
    pub(crate) fn new() -> Self {
        Self {
            next_probe: AtomicU32::new(u32::MAX),
            ..Self::default()
        }
    }

    /// Frames bytes from the user; `Err` when the stream cannot be followed.
    pub(crate) fn user_bytes(&self, bytes: &[u8]) -> Result<Vec<Bytes>, ()> {
        let packets = self
            .to_target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(bytes)?;
        let mut out = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        for p in &packets {
            if let Some((_, id)) = request_id(&p[4..]) {
                // More requests in flight than any client keeps (OpenSSH: 64) would let an
                // untracked id collide with a probe's: the stream is not followed further.
                if out.len() >= MAX_OUTSTANDING {
                    return Err(());
                }
                out.insert(id);
            }
        }
        Ok(packets)
    }

    /// Frames bytes from the target: answers to the gate's probes are taken out (and
    /// delivered); answers to forwarded operations are returned with them, to report.
    pub(crate) fn target_bytes(
        &self,
        bytes: &[u8],
    ) -> Result<(Vec<Bytes>, Vec<FileOperation>), ()> {
        let packets = self
            .to_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(bytes)?;
        let mut pass = Vec::with_capacity(packets.len());
        let mut done = Vec::new();
        for p in packets {
            let body = &p[4..];
            let Some((kind, id)) = request_id(body) else {
                pass.push(p);
                continue;
            };
            let probe = self
                .probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(tx) = probe {
                let resolved = (kind == FXP_NAME)
                    .then(|| {
                        let mut b = &body[5..];
                        let count = u32_of(&mut b)?;
                        (count >= 1).then(|| string_of(&mut b).map(<[u8]>::to_vec))?
                    })
                    .flatten();
                let _ = tx.send(resolved);
                continue;
            }
            self.outstanding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let op = self
                .operations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(mut op) = op {
                op.outcome = status_of(body).map_or(
                    FileOperationOutcome::Failed(u32::MAX, "unexpected answer".into()),
                    |(code, m)| {
                        if code == FX_OK {
                            FileOperationOutcome::Done
                        } else {
                            FileOperationOutcome::Failed(code, m)
                        }
                    },
                );
                done.push(op);
            }
            pass.push(p);
        }
        Ok((pass, done))
    }

    /// A `REALPATH` request for `path` under a fresh id no client request uses, and the
    /// receiver of its answer (`None`: the target could not resolve it).
    pub(crate) fn probe(&self, path: &[u8]) -> (Bytes, oneshot::Receiver<Option<Vec<u8>>>) {
        let id = {
            let out = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            let probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let id = self.next_probe.fetch_sub(1, Ordering::Relaxed);
                if !out.contains(&id) && !probes.contains_key(&id) {
                    break id;
                }
            }
        };
        let (tx, rx) = oneshot::channel();
        self.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let mut p = BytesMut::with_capacity(13 + path.len());
        p.put_u32((9 + path.len()) as u32);
        p.put_u8(FXP_REALPATH);
        p.put_u32(id);
        p.put_u32(path.len() as u32);
        p.put_slice(path);
        (p.freeze(), rx)
    }

    /// An operation was forwarded: its outcome is reported when its status arrives.
    pub(crate) fn forwarded(&self, id: u32, op: FileOperation) {
        let mut ops = self.operations.lock().unwrap_or_else(|p| p.into_inner());
        if ops.len() < MAX_OUTSTANDING {
            ops.insert(id, op);
        }
    }

    /// A request was refused here: it awaits nothing from the target.
    pub(crate) fn refused(&self, id: u32) {
        self.outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// The channel closed: operations never answered.
    pub(crate) fn unanswered(&self) -> Vec<FileOperation> {
        self.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, op)| op)
            .collect()
    }
}

fn status_of(body: &[u8]) -> Option<(u32, String)> {
    if body.first() != Some(&FXP_STATUS) {
        return None;
    }
    let mut b = body.get(5..)?;
    let code = u32_of(&mut b)?;
    let message = string_of(&mut b).map(text).unwrap_or_default();
    Some((code, message.chars().take(256).collect()))
}

/// The `STATUS` packet that refuses request `id` with `SSH_FX_PERMISSION_DENIED`.
pub(crate) fn permission_denied(id: u32, message: &str) -> Bytes {
    let message: String = message.chars().take(512).collect();
    let mut p = BytesMut::with_capacity(21 + message.len());
    p.put_u32((17 + message.len()) as u32);
    p.put_u8(FXP_STATUS);
    p.put_u32(id);
    p.put_u32(FX_PERMISSION_DENIED);
    p.put_u32(message.len() as u32);
    p.put_slice(message.as_bytes());
    p.put_u32(0);
    p.freeze()
}

/// The requests to put to the taps for a judged request: every subject in each of its
/// directions, as written and (when given) as resolved.
pub(crate) fn requests(subject: &Subject, resolved: Option<&[u8]>) -> Vec<TransferRequest> {
    let mut paths = vec![text(&subject.raw)];
    if let Some(r) = resolved {
        let r = text(r);
        if !paths.contains(&r) {
            paths.push(r);
        }
    }
    let mut out = Vec::new();
    for &direction in &subject.directions {
        for path in &paths {
            out.push(TransferRequest {
                direction,
                path: path.clone(),
                protocol: "sftp",
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn read_write_opens_are_judged_both_ways() {
        let mut open = vec![FXP_OPEN, 0, 0, 0, 7];
        open.extend(s(b"/tmp/x"));
        open.extend((FXF_READ | FXF_WRITE).to_be_bytes());
        let Gate::Judge(j) = classify(&open) else {
            panic!("an open is judged")
        };
        assert_eq!(j.id, 7);
        assert_eq!(
            j.subjects[0].directions,
            vec![Direction::ToUser, Direction::ToTarget]
        );
        let mut rename = vec![FXP_EXTENDED, 0, 0, 0, 8];
        rename.extend(s(b"posix-rename@openssh.com"));
        rename.extend(s(b"a"));
        rename.extend(s(b"/etc/b"));
        let j = judged(&rename).unwrap();
        assert_eq!(j.operation.unwrap().other.as_deref(), Some("/etc/b"));
        assert!(matches!(classify(&[FXP_REALPATH, 0, 0, 0, 1]), Gate::Pass));
        assert!(matches!(
            classify(&[FXP_OPEN, 0, 0, 0, 9, 0]),
            Gate::Malformed(9)
        ));
        let mut ext = vec![FXP_EXTENDED, 0, 0, 0, 3];
        ext.extend(s(b"hardlink@openssh.com"));
        assert!(matches!(classify(&ext), Gate::Malformed(3)));
    }

    #[test]
    fn probes_answers_are_taken_out_of_the_stream() {
        let gate = SftpGate::new();
        let mut open = vec![FXP_OPEN, 0xff, 0xff, 0xff, 0xff];
        open.extend(s(b"x"));
        open.extend(0u32.to_be_bytes());
        let framed = s(&open);
        assert_eq!(gate.user_bytes(&framed).unwrap().len(), 1);
        let (probe, mut rx) = gate.probe(b"x");
        let id = u32::from_be_bytes([probe[5], probe[6], probe[7], probe[8]]);
        assert_ne!(id, u32::MAX, "never the id of a client request in flight");
        let mut name = vec![FXP_NAME];
        name.extend(id.to_be_bytes());
        name.extend(1u32.to_be_bytes());
        name.extend(s(b"/home/u/x"));
        name.extend(s(b"x"));
        name.extend(0u32.to_be_bytes());
        let (pass, _) = gate.target_bytes(&s(&name)).unwrap();
        assert!(pass.is_empty());
        assert_eq!(rx.try_recv().unwrap().as_deref(), Some(&b"/home/u/x"[..]));
    }

    proptest::proptest! {
        #[test]
        fn the_gate_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..32)) {
            let gate = SftpGate::new();
            for (i, c) in chunks.iter().enumerate() {
                if i % 2 == 0 {
                    if let Ok(ps) = gate.user_bytes(c) {
                        for p in ps { let _ = classify(&p[4..]); }
                    }
                } else {
                    let _ = gate.target_bytes(c);
                }
            }
        }
    }
}
