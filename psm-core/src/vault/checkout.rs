//! Checkouts: a user's time-bounded (just-in-time) right to use a target's credential.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::{CheckoutId, truncate_for_error};
use crate::timestamp::Timestamp;

/// Why a checkout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckoutEnd {
    /// Checkin: the user logged off, or an admin or gateway forced it.
    CheckedIn,
    /// Its time ran out.
    Expired,
}

impl CheckoutEnd {
    /// As stored and on the wire: `checked-in` or `expired`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckoutEnd::CheckedIn => "checked-in",
            CheckoutEnd::Expired => "expired",
        }
    }
}

impl fmt::Display for CheckoutEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckoutEnd {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "checked-in" => Ok(CheckoutEnd::CheckedIn),
            "expired" => Ok(CheckoutEnd::Expired),
            other => Err(CoreError::MalformedRow {
                what: "checkout".into(),
                reason: format!("unknown end reason {:?}", truncate_for_error(other)),
            }),
        }
    }
}

/// One checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// Its id (the seed's `checkOutId`).
    pub id: CheckoutId,
    /// The PSM user it was granted to.
    pub user: String,
    /// The target whose credential it covers.
    pub target: String,
    /// When it was granted.
    pub created: Timestamp,
    /// When it runs out.
    pub expires: Timestamp,
    /// When it ended, if it has.
    pub ended: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<CheckoutEnd>,
    /// Who asked for it (an admin, or a gateway on the user's behalf).
    pub created_by: String,
}

impl Checkout {
    /// Whether it is valid at `now`: not ended and not past its expiry.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.ended.is_none() && now < self.expires
    }

    /// Time left at `now` (zero once it ended or expired).
    pub fn remaining(&self, now: Timestamp) -> Duration {
        if self.ended.is_some() {
            return Duration::ZERO;
        }
        self.expires.since(now)
    }

    /// Whole minutes left at `now`, rounded up (30 s left is 1 minute; 0 means it is over),
    /// the unit of the contract's GetRemainingMinutesForCheckout.
    pub fn remaining_minutes(&self, now: Timestamp) -> u64 {
        let left = self.remaining(now);
        (left.as_secs() + u64::from(left.subsec_nanos() > 0)).div_ceil(60)
    }
}

/// A request for a checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// The PSM user.
    pub user: String,
    /// The target.
    pub target: String,
    /// How long it should last (bounded by the vault's configured maximum).
    pub duration: Duration,
}

/// What a checkin did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkin {
    /// The checkout, now ended.
    pub checkout: Checkout,
    /// Whether it had already ended before this call (a repeated checkin is a success that
    /// changes nothing).
    pub already_ended: bool,
    /// Live sessions asked to terminate.
    pub sessions_terminated: Vec<crate::id::SessionId>,
}
