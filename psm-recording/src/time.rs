//! Time inside a recording: microseconds since the session started.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::RecordingError;

/// A point in a recording, in microseconds since its start (the header's `started_at`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Micros(pub u64);

impl Micros {
    /// The start of the recording.
    pub const ZERO: Micros = Micros(0);

    /// From a duration, saturating at `u64::MAX` microseconds.
    pub fn from_duration(d: Duration) -> Self {
        Self(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// From seconds (negative, NaN and infinite values clamp to the range).
    pub fn from_secs_f64(secs: f64) -> Self {
        if secs.is_nan() || secs <= 0.0 {
            return Self(0);
        }
        let us = (secs * 1e6).round();
        if us >= u64::MAX as f64 {
            Self(u64::MAX)
        } else {
            Self(us as u64)
        }
    }

    /// As a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// As seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `self - earlier`, or zero.
    pub fn saturating_sub(self, earlier: Micros) -> Micros {
        Micros(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Micros {
    /// `HH:MM:SS.mmm` (hours grow past 99 if needed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1000;
        let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
        let (m, rest) = (rest / 60_000, rest % 60_000);
        let (s, ms) = (rest / 1000, rest % 1000);
        write!(f, "{h:02}:{m:02}:{s:02}.{ms:03}")
    }
}

impl FromStr for Micros {
    type Err = RecordingError;

    /// Accepts `SECONDS` (`83.5`), `MM:SS(.fff)` and `HH:MM:SS(.fff)`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RecordingError::InvalidInput {
            field: "time",
            reason: format!("{s:?} is not SECONDS, MM:SS or HH:MM:SS(.fff)"),
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(bad());
        }
        let mut secs = 0.0f64;
        for (i, p) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let v: f64 = if last {
                p.parse().map_err(|_| bad())?
            } else {
                p.parse::<u64>().map_err(|_| bad())? as f64
            };
            if !v.is_finite() || v < 0.0 {
                return Err(bad());
            }
            secs = secs * 60.0 + v;
        }
        Ok(Micros::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn display_and_parse() {
        assert_eq!(Micros(3_723_456_000).to_string(), "01:02:03.456");
        assert_eq!(
            "01:02:03.456".parse::<Micros>().unwrap(),
            Micros(3_723_456_000)
        );
        assert_eq!("2:03".parse::<Micros>().unwrap(), Micros(123_000_000));
        assert_eq!("83.5".parse::<Micros>().unwrap(), Micros(83_500_000));
        assert!("x".parse::<Micros>().is_err());
        assert!("-1".parse::<Micros>().is_err());
        assert!("1:2:3:4".parse::<Micros>().is_err());
    }
}
