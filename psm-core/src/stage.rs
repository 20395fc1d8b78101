//! The stages of a `PrivSession` and the one function that says which moves are legal.
//!
//! ```text
//!  Connected ──► Ended ──► Encoding ──► Done-Encoded ──► Uploading ──► Done-Uploaded
//!                  ▲          │  │           ▲              │  │
//!                  └──────────┘  │           └──────────────┘  │     (retry: failure or
//!                  ▲             ▼           ▲                 ▼      lease expired)
//!                  └──────── Failed ─────────┘◄────────────────┘     (attempts exhausted;
//!                            (requeue by an admin)                     reason kept)
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::truncate_for_error;

/// Where a session is in its life. The wire spellings are the seed's, exactly: `Connected`,
/// `Ended`, `Encoding`, `Done-Encoded`, `Uploading`, `Done-Uploaded`. `Failed` is PSM's one
/// extension: a session whose encoding or upload failed more often than the configured attempt
/// limit, kept with its reason (and its local data) for an admin to see and requeue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    /// A user is connected through a gateway, which heartbeats it.
    Connected,
    /// The user is gone; the raw recording waits for an encoder.
    Ended,
    /// An encoder holds a lease on it.
    Encoding,
    /// Exports are produced; it waits for an uploader.
    #[serde(rename = "Done-Encoded")]
    DoneEncoded,
    /// An uploader holds a lease on it.
    Uploading,
    /// Recording and exports are in durable storage, verified by checksum. Final.
    #[serde(rename = "Done-Uploaded")]
    DoneUploaded,
    /// Encoding or upload failed more often than allowed. Local data is kept.
    Failed,
}

impl Stage {
    /// Every stage, in lifecycle order.
    pub const ALL: [Stage; 7] = [
        Stage::Connected,
        Stage::Ended,
        Stage::Encoding,
        Stage::DoneEncoded,
        Stage::Uploading,
        Stage::DoneUploaded,
        Stage::Failed,
    ];

    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Connected => "Connected",
            Stage::Ended => "Ended",
            Stage::Encoding => "Encoding",
            Stage::DoneEncoded => "Done-Encoded",
            Stage::Uploading => "Uploading",
            Stage::DoneUploaded => "Done-Uploaded",
            Stage::Failed => "Failed",
        }
    }

    /// Stages in which a worker holds a lease (and the watchdog watches its expiry).
    pub const fn is_leased(self) -> bool {
        matches!(self, Stage::Encoding | Stage::Uploading)
    }

    /// Stages that end the lifecycle (nothing moves them but an admin requeue of `Failed`).
    pub const fn is_final(self) -> bool {
        matches!(self, Stage::DoneUploaded | Stage::Failed)
    }

    /// For a leased stage: the queue stage a session returns to when its lease is lost or its
    /// worker reports a retryable failure.
    pub const fn retry_stage(self) -> Option<Stage> {
        match self {
            Stage::Encoding => Some(Stage::Ended),
            Stage::Uploading => Some(Stage::DoneEncoded),
            _ => None,
        }
    }

    /// For a leased stage: the stage its worker's success moves it to.
    pub const fn done_stage(self) -> Option<Stage> {
        match self {
            Stage::Encoding => Some(Stage::DoneEncoded),
            Stage::Uploading => Some(Stage::DoneUploaded),
            _ => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| CoreError::InvalidInput {
                field: "stage",
                reason: format!(
                    "{:?} is not one of Connected, Ended, Encoding, Done-Encoded, Uploading, \
                     Done-Uploaded, Failed",
                    truncate_for_error(s)
                ),
            })
    }
}

/// Whether `from → to` is a legal move. The only place the lifecycle's edges are written down;
/// the engine asks it before every write.
pub fn check_transition(from: Stage, to: Stage) -> Result<(), CoreError> {
    use Stage::*;
    let legal = matches!(
        (from, to),
        (Connected, Ended)
            | (Ended, Encoding)
            | (Encoding, DoneEncoded)
            | (Encoding, Ended)
            | (Encoding, Failed)
            | (DoneEncoded, Uploading)
            | (Uploading, DoneUploaded)
            | (Uploading, DoneEncoded)
            | (Uploading, Failed)
            | (Failed, Ended)
            | (Failed, DoneEncoded)
    );
    if legal {
        Ok(())
    } else {
        Err(CoreError::IllegalTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Stage::*;

    #[test]
    fn wire_spellings_are_the_seeds() {
        let json = serde_json::to_string(&Stage::ALL).expect("ser");
        assert_eq!(
            json,
            r#"["Connected","Ended","Encoding","Done-Encoded","Uploading","Done-Uploaded","Failed"]"#
        );
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>().expect("parse"), stage);
            let back: Stage = serde_json::from_str(&format!("\"{}\"", stage.as_str())).expect("de");
            assert_eq!(back, stage);
        }
        assert!("DoneEncoded".parse::<Stage>().is_err());
        assert!("done-encoded".parse::<Stage>().is_err());
    }

    /// Every one of the 49 ordered pairs, legal and illegal, move by move.
    #[test]
    fn transition_table_move_by_move() {
        let legal = [
            (Connected, Ended),
            (Ended, Encoding),
            (Encoding, DoneEncoded),
            (Encoding, Ended),
            (Encoding, Failed),
            (DoneEncoded, Uploading),
            (Uploading, DoneUploaded),
            (Uploading, DoneEncoded),
            (Uploading, Failed),
            (Failed, Ended),
            (Failed, DoneEncoded),
        ];
        let mut checked = 0;
        for from in Stage::ALL {
            for to in Stage::ALL {
                let expected = legal.contains(&(from, to));
                let got = check_transition(from, to);
                assert_eq!(got.is_ok(), expected, "{from} -> {to}");
                if let Err(e) = got {
                    assert_eq!(
                        e.to_string(),
                        format!("illegal stage change {from} -> {to}")
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 49);
    }

    #[test]
    fn retry_and_done_stages_are_legal_moves() {
        for stage in Stage::ALL.into_iter().filter(|s| s.is_leased()) {
            let retry = stage.retry_stage().expect("leased stage retries");
            let done = stage.done_stage().expect("leased stage completes");
            check_transition(stage, retry).expect("retry edge");
            check_transition(stage, done).expect("done edge");
            check_transition(stage, Failed).expect("fail edge");
        }
        assert!(Ended.retry_stage().is_none());
        assert!(DoneUploaded.is_final() && Failed.is_final() && !Ended.is_final());
    }
}
