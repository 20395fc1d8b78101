//! Claim affinity: a worker claims only the sessions whose files it can read.
//!
//! A gateway writes a session's raw recording into its own node's data directory, and the
//! encoder leaves the exports beside it; without a shared filesystem no other node can read
//! them. A worker that claimed such a session could only fail the attempt (and, being free
//! again first, would tend to take the retries too, until the session is Failed). So each
//! claim names the sessions this worker has on its disk (the extension `privSessionIds` of
//! EncoderClaim and UploderClaim): the encoder those with a raw recording, the uploader those
//! with a raw recording or exports. Any worker that can read a session's files may take it (every
//! node of a shared filesystem can); none fails one for lack of files elsewhere.

use psm_core::store::MAX_CLAIM_AMONG;
use psm_core::{CoreError, Lease, SessionId};

use crate::layout::LocalLayout;
use crate::worker::StepWorker;

/// Which sessions a worker claims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClaimScope {
    /// Only sessions whose input files are in this worker's data directory (the default).
    #[default]
    LocalFiles,
    /// Any session of the queue (a control plane that only knows the seed's claims; a test
    /// of what a worker does with a session it cannot read).
    Any,
}

/// Sessions with a raw recording on this disk (the encoder's candidates), sorted.
pub fn local_raw_recordings(layout: &LocalLayout) -> std::io::Result<Vec<SessionId>> {
    let suffix = format!(".{}", psm_recording::layout::RAW_EXTENSION);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(layout.recordings_dir()) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        // Hidden temporaries (`.<id>.psmr.<token>.index.tmp`) and foreign names do not parse.
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(&suffix))
            .and_then(|n| n.parse::<SessionId>().ok())
        {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}

/// Sessions with anything on this disk, a raw recording or an exports directory (the
/// uploader's candidates), sorted. A set that is incomplete here is still this node's to
/// upload, and its attempt fails with what is missing.
pub fn local_sets(layout: &LocalLayout) -> std::io::Result<Vec<SessionId>> {
    layout.local_sessions()
}

/// Claims up to `limit` sessions as the worker's [`ClaimScope`] says: with `LocalFiles`,
/// among its local candidates, [`MAX_CLAIM_AMONG`] ids per call. A control plane that does
/// not offer restricted claims is claimed from without restriction (`*unrestricted` is set,
/// once, with a warning).
pub(crate) async fn claim<W: StepWorker + ?Sized>(
    worker: &W,
    limit: u32,
    unrestricted: &mut bool,
) -> Result<Vec<Lease>, CoreError> {
    if worker.config().claim_scope == ClaimScope::Any || *unrestricted {
        return worker.claim(limit).await;
    }
    let candidates = match worker.local_candidates() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(step = worker.step().as_str(), error = %e,
                "cannot list the sessions on this disk; claiming nothing");
            return Ok(Vec::new());
        }
    };
    let mut leases = Vec::new();
    for chunk in candidates.chunks(MAX_CLAIM_AMONG) {
        let want = limit.saturating_sub(u32::try_from(leases.len()).unwrap_or(u32::MAX));
        if want == 0 {
            break;
        }
        match worker.claim_among(want, chunk).await {
            Ok(got) => leases.extend(got),
            Err(CoreError::Unsupported { operation }) if leases.is_empty() => {
                tracing::warn!(
                    step = worker.step().as_str(),
                    operation,
                    "the control plane cannot restrict claims to this node's sessions: \
                     claiming any session (a session whose files are elsewhere will fail here)"
                );
                *unrestricted = true;
                return worker.claim(limit).await;
            }
            Err(e) if leases.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(step = worker.step().as_str(), error = %e, "claim failed");
                break;
            }
        }
    }
    Ok(leases)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_raw_files_and_the_sets_on_this_disk() {
        let dir = tempfile::tempdir().unwrap();
        let layout = LocalLayout::new(dir.path());
        layout.create().unwrap();
        let (a, b, c) = (SessionId::new(), SessionId::new(), SessionId::new());
        std::fs::write(layout.raw_recording(a), b"x").unwrap();
        std::fs::write(layout.raw_recording(b), b"x").unwrap();
        std::fs::write(
            layout
                .recordings_dir()
                .join(format!(".{c}.psmr.7.index.tmp")),
            b"x",
        )
        .unwrap();
        std::fs::write(layout.recordings_dir().join("notes.psmr"), b"x").unwrap();
        std::fs::create_dir_all(layout.exports_dir(a)).unwrap();
        std::fs::write(layout.manifest(a), b"{}").unwrap();
        std::fs::create_dir_all(layout.exports_dir(c)).unwrap(); // exports without the raw file
        let mut raw = vec![a, b];
        raw.sort();
        assert_eq!(local_raw_recordings(&layout).unwrap(), raw);
        let mut sets = vec![a, b, c];
        sets.sort();
        assert_eq!(local_sets(&layout).unwrap(), sets);
        let empty = LocalLayout::new(dir.path().join("absent"));
        assert!(local_raw_recordings(&empty).unwrap().is_empty());
        assert!(local_sets(&empty).unwrap().is_empty());
    }
}
