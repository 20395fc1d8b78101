//! Access requests with approval (just-in-time access, issue 20 item 1): the request, its
//! approval rule, its states, and the pure decisions over them. The stores keep them
//! ([`DirectoryAdmin`](crate::directory::DirectoryAdmin)); [`AccessRequests`] runs the
//! steps, audited.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::directory::{ALL_TARGETS, check_name, check_target};
use crate::error::CoreError;
use crate::id::truncate_for_error;
use crate::timestamp::Timestamp;

/// Shortest access a request may ask for.
pub const MIN_REQUEST_DURATION: Duration = Duration::from_secs(1);
/// Longest access a request may ask for (a week).
pub const MAX_REQUEST_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a request waits for its approvals before it expires unanswered.
pub const PENDING_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest reason (and denial note), in bytes.
pub const MAX_REQUEST_REASON_LEN: usize = 1024;
/// Most approvals a rule may require.
pub const MAX_APPROVALS: u32 = 16;
/// Most approval rules a directory holds.
pub const MAX_APPROVAL_RULES: usize = 10_000;
/// Most requests one user may have pending at once.
pub const MAX_PENDING_PER_USER: usize = 20;
/// Most requests a listing returns (newest first; the SQL stores' `LIMIT 1000`).
pub const MAX_LISTED_REQUESTS: usize = 1_000;

/// Which role's members may approve requests for a target, and how many of them must.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRule {
    /// The target, or `*` for every target without a rule of its own.
    pub target: String,
    /// The role whose members approve (the requester never counts, even if a member).
    pub approver_role: String,
    /// How many distinct approvers are needed (1 to [`MAX_APPROVALS`]).
    pub approvals: u32,
}

impl ApprovalRule {
    /// A rule, checked.
    pub fn new(target: &str, approver_role: &str, approvals: u32) -> Result<Self, CoreError> {
        check_target(target)?;
        check_name("role", approver_role)?;
        if approvals == 0 || approvals > MAX_APPROVALS {
            return Err(CoreError::InvalidInput {
                field: "approvals",
                reason: format!("{approvals}: from 1 to {MAX_APPROVALS}"),
            });
        }
        Ok(Self {
            target: target.to_owned(),
            approver_role: approver_role.to_owned(),
            approvals,
        })
    }

    /// The rule that governs `target` among `rules`: its own, else the `*` one.
    pub fn for_target<'a>(rules: &'a [ApprovalRule], target: &str) -> Option<&'a ApprovalRule> {
        rules
            .iter()
            .find(|r| r.target == target)
            .or_else(|| rules.iter().find(|r| r.target == ALL_TARGETS))
    }
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Approved: the target is reachable until the request's `expires`.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Its time ran out: unanswered for [`PENDING_TTL`], or approved and past `expires`.
    Expired,
    /// Withdrawn by the requester (before or after approval).
    Cancelled,
}

impl RequestState {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Pending,
            Self::Approved,
            Self::Denied,
            Self::Expired,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| CoreError::InvalidInput {
            field: "state",
            reason: format!("{:?} is not a request state", truncate_for_error(s)),
        })
    }
}

/// One approval of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// Who approved.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// Approvals in their stored form: `NAME@MICROS` separated by `,` (names never hold either).
pub fn approvals_to_text(approvals: &[Approval]) -> String {
    approvals
        .iter()
        .map(|a| format!("{}@{}", a.by, a.at.as_micros()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Approvals from their stored form ([`approvals_to_text`]); anything else is refused.
pub fn approvals_from_text(text: &str) -> Result<Vec<Approval>, CoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || CoreError::MalformedRow {
        what: "access request".into(),
        reason: format!("approvals {:?}", truncate_for_error(text)),
    };
    let mut out = Vec::new();
    for part in text.split(',').take(MAX_APPROVALS as usize + 1) {
        let (by, at) = part.split_once('@').ok_or_else(bad)?;
        check_name("approver", by).map_err(|_| bad())?;
        let at: i64 = at.parse().map_err(|_| bad())?;
        out.push(Approval {
            by: by.to_owned(),
            at: Timestamp::from_micros(at),
        });
    }
    Ok(out)
}

/// A request to store: who asks for what, for how long, why, and the rule it was filed
/// under (copied, so a later change of the rule does not move a request already filed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccessRequest {
    /// The requester.
    pub user: String,
    /// The target asked for.
    pub target: String,
    /// Why, as the requester wrote it.
    pub reason: String,
    /// How long the access lasts once approved.
    pub duration: Duration,
    /// When it was filed.
    pub created: Timestamp,
    /// The role whose members approve.
    pub approver_role: String,
    /// How many approvals are needed.
    pub approvals_needed: u32,
}

impl NewAccessRequest {
    /// Checks the fields: names, duration bounds, a reason of printable text.
    pub fn validate(&self) -> Result<(), CoreError> {
        check_name("user", &self.user)?;
        check_name("target", &self.target)?;
        check_name("role", &self.approver_role)?;
        check_duration(self.duration)?;
        check_reason("reason", &self.reason)?;
        if self.reason.trim().is_empty() {
            return Err(CoreError::InvalidInput {
                field: "reason",
                reason: "say why you need the access".into(),
            });
        }
        if self.approvals_needed == 0 || self.approvals_needed > MAX_APPROVALS {
            return Err(CoreError::InvalidInput {
                field: "approvals",
                reason: format!("{}: from 1 to {MAX_APPROVALS}", self.approvals_needed),
            });
        }
        Ok(())
    }
}

pub(crate) fn check_duration(d: Duration) -> Result<(), CoreError> {
    if d < MIN_REQUEST_DURATION || d > MAX_REQUEST_DURATION {
        return Err(CoreError::InvalidInput {
            field: "duration",
            reason: format!(
                "{}s: from {}s to {}s (a week)",
                d.as_secs(),
                MIN_REQUEST_DURATION.as_secs(),
                MAX_REQUEST_DURATION.as_secs()
            ),
        });
    }
    Ok(())
}

pub(crate) fn check_reason(field: &'static str, s: &str) -> Result<(), CoreError> {
    if s.len() > MAX_REQUEST_REASON_LEN {
        return Err(CoreError::InvalidInput {
            field,
            reason: format!("longer than {MAX_REQUEST_REASON_LEN} bytes"),
        });
    }
    if s.chars().any(char::is_control) {
        return Err(CoreError::InvalidInput {
            field,
            reason: "control characters are not allowed".into(),
        });
    }
    Ok(())
}

/// A duration as a person writes it: `2h`, `30m`, `1h30m`, `90s`, `1d`, `2 hours`
/// (jiff's friendly format), or ISO 8601 `PT2H`; whole seconds, within the request bounds.
pub fn parse_request_duration(s: &str) -> Result<Duration, CoreError> {
    let bad = |why: String| CoreError::InvalidInput {
        field: "duration",
        reason: format!("{:?}: {why}", truncate_for_error(s)),
    };
    let s = s.trim();
    // jiff reads days only in a Span (a day is not always 24 h there); here it is.
    let parsed: Result<jiff::SignedDuration, _> = match s.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<i64>()
            .ok()
            .and_then(|d| d.checked_mul(24))
            .map(jiff::SignedDuration::from_hours)
            .ok_or_else(|| bad("too long".into())),
        _ => s
            .parse::<jiff::SignedDuration>()
            .map_err(|e| bad(e.to_string())),
    };
    let parsed = parsed?;
    let d = Duration::try_from(parsed).map_err(|_| bad("negative".into()))?;
    check_duration(d)?;
    Ok(d)
}

/// Checks what a change may write into a stored request: names, bounded note and
/// approvals (a store calls it before replacing a row).
pub fn check_request_fields(r: &AccessRequest) -> Result<(), CoreError> {
    if let Some(by) = &r.decided_by {
        check_name("user", by)?;
    }
    for a in &r.approvals {
        check_name("approver", &a.by)?;
    }
    if r.approvals.len() > MAX_APPROVALS as usize {
        return Err(CoreError::InvalidInput {
            field: "approvals",
            reason: format!("more than {MAX_APPROVALS}"),
        });
    }
    check_reason("note", &r.note)
}

/// A request as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRequest {
    /// The id approvers name.
    pub id: i64,
    /// The requester.
    pub user: String,
    /// The target asked for.
    pub target: String,
    /// Why.
    pub reason: String,
    /// How long the access lasts once approved.
    pub duration: Duration,
    /// When it was filed.
    pub created: Timestamp,
    /// The stored state (see [`AccessRequest::state_at`] for the state at an instant).
    pub state: RequestState,
    /// The role whose members approve.
    pub approver_role: String,
    /// How many approvals are needed.
    pub approvals_needed: u32,
    /// The approvals so far.
    pub approvals: Vec<Approval>,
    /// Who approved it last, denied it or cancelled it.
    pub decided_by: Option<String>,
    /// When it was approved, denied, cancelled or found expired.
    pub decided_at: Option<Timestamp>,
    /// Set once approved: when the access ends.
    pub expires: Option<Timestamp>,
    /// A denier's note, or why it ended.
    pub note: String,
    /// Bumped by every change: a store replaces a request only from the version it read.
    pub version: i64,
}

/// What a person does to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestStep {
    /// An approver approves.
    Approve {
        /// Who.
        by: String,
    },
    /// An approver denies, with a note.
    Deny {
        /// Who.
        by: String,
        /// Why (may be empty).
        note: String,
    },
    /// The requester withdraws it.
    Cancel {
        /// Who.
        by: String,
    },
}

impl AccessRequest {
    /// The state at `now`: a pending request unanswered for [`PENDING_TTL`], or an approved
    /// one past its `expires`, is [`RequestState::Expired`].
    pub fn state_at(&self, now: Timestamp) -> RequestState {
        match self.state {
            RequestState::Pending if now >= self.created.saturating_add(PENDING_TTL) => {
                RequestState::Expired
            }
            RequestState::Approved if self.expires.is_none_or(|e| now >= e) => {
                RequestState::Expired
            }
            st => st,
        }
    }

    /// Whether it makes its target reachable at `now`.
    pub fn grants_at(&self, now: Timestamp) -> bool {
        self.state_at(now) == RequestState::Approved
    }

    /// The request after `step` at `now`, if allowed. `approver_roles`: the roles of the
    /// person taking an approve or deny step. The requester never approves or denies
    /// their own request; only the requester cancels.
    pub fn apply(
        &self,
        step: &RequestStep,
        approver_roles: &[String],
        now: Timestamp,
    ) -> Result<AccessRequest, CoreError> {
        let state = self.state_at(now);
        let mut next = self.clone();
        next.version = self.version.saturating_add(1);
        match step {
            RequestStep::Approve { by } | RequestStep::Deny { by, .. } => {
                if state != RequestState::Pending {
                    return Err(CoreError::Forbidden(format!(
                        "request {} is {state}, not pending",
                        self.id
                    )));
                }
                if by == &self.user {
                    return Err(CoreError::Forbidden(format!(
                        "{by} filed request {} and cannot decide it: another member of role {} \
                         must",
                        self.id, self.approver_role
                    )));
                }
                if !approver_roles.contains(&self.approver_role) {
                    return Err(CoreError::Forbidden(format!(
                        "{by} is not a member of role {}, which approves request {}",
                        self.approver_role, self.id
                    )));
                }
                if let RequestStep::Deny { note, .. } = step {
                    check_reason("note", note)?;
                    next.state = RequestState::Denied;
                    next.decided_by = Some(by.clone());
                    next.decided_at = Some(now);
                    next.note = note.clone();
                    return Ok(next);
                }
                if self.approvals.iter().any(|a| &a.by == by) {
                    return Err(CoreError::Forbidden(format!(
                        "{by} has already approved request {}; it needs {} approvals from \
                         different members of role {}",
                        self.id, self.approvals_needed, self.approver_role
                    )));
                }
                next.approvals.push(Approval {
                    by: by.clone(),
                    at: now,
                });
                if next.approvals.len() >= self.approvals_needed as usize {
                    next.state = RequestState::Approved;
                    next.decided_by = Some(by.clone());
                    next.decided_at = Some(now);
                    next.expires = Some(now.saturating_add(self.duration));
                }
                Ok(next)
            }
            RequestStep::Cancel { by } => {
                if by != &self.user {
                    return Err(CoreError::Forbidden(format!(
                        "only {} may cancel request {}",
                        self.user, self.id
                    )));
                }
                if !matches!(state, RequestState::Pending | RequestState::Approved) {
                    return Err(CoreError::Forbidden(format!(
                        "request {} is {state}: nothing to cancel",
                        self.id
                    )));
                }
                next.state = RequestState::Cancelled;
                next.decided_by = Some(by.clone());
                next.decided_at = Some(now);
                next.note = "cancelled by the requester".into();
                Ok(next)
            }
        }
    }

    /// The request marked expired at `now` if its time ran out while stored as pending or
    /// approved; `None` if it has not.
    pub fn expired(&self, now: Timestamp) -> Option<AccessRequest> {
        if self.state == self.state_at(now) {
            return None;
        }
        let mut next = self.clone();
        next.version = self.version.saturating_add(1);
        next.state = RequestState::Expired;
        next.note = match self.state {
            RequestState::Approved => "the approved access ran out".into(),
            _ => "not answered in time".into(),
        };
        if next.decided_at.is_none() {
            next.decided_at = Some(now);
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(needed: u32) -> AccessRequest {
        AccessRequest {
            id: 7,
            user: "alice".into(),
            target: "web-01".into(),
            reason: "incident 42".into(),
            duration: Duration::from_secs(3600),
            created: Timestamp::from_micros(0),
            state: RequestState::Pending,
            approver_role: "approvers".into(),
            approvals_needed: needed,
            approvals: Vec::new(),
            decided_by: None,
            decided_at: None,
            expires: None,
            note: String::new(),
            version: 1,
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_micros(0).saturating_add(Duration::from_secs(secs))
    }

    #[test]
    fn two_of_two_approvals_from_others_grant_for_the_duration() {
        let roles = vec!["approvers".to_owned()];
        let r = req(2);
        let own = r.apply(&RequestStep::Approve { by: "alice".into() }, &roles, at(1));
        assert!(matches!(own, Err(CoreError::Forbidden(m)) if m.contains("cannot decide")));
        let outsider = r.apply(&RequestStep::Approve { by: "carol".into() }, &[], at(1));
        assert!(outsider.is_err());
        let one = r
            .apply(&RequestStep::Approve { by: "bob".into() }, &roles, at(10))
            .unwrap();
        assert_eq!(one.state, RequestState::Pending);
        assert!(!one.grants_at(at(11)));
        assert!(
            one.apply(&RequestStep::Approve { by: "bob".into() }, &roles, at(11))
                .is_err(),
            "one approver counts once"
        );
        let two = one
            .apply(&RequestStep::Approve { by: "dave".into() }, &roles, at(20))
            .unwrap();
        assert_eq!(two.state, RequestState::Approved);
        assert_eq!(two.expires, Some(at(20 + 3600)));
        assert!(two.grants_at(at(3619)));
        assert!(!two.grants_at(at(3620)));
        assert_eq!(two.state_at(at(3620)), RequestState::Expired);
        assert!(two.expired(at(100)).is_none());
        assert_eq!(two.expired(at(4000)).unwrap().state, RequestState::Expired);
        assert!(
            two.apply(
                &RequestStep::Deny {
                    by: "eve".into(),
                    note: String::new()
                },
                &roles,
                at(30)
            )
            .is_err(),
            "decided"
        );
        let cancelled = two
            .apply(&RequestStep::Cancel { by: "alice".into() }, &[], at(40))
            .unwrap();
        assert!(!cancelled.grants_at(at(41)));
        assert!(
            two.apply(&RequestStep::Cancel { by: "bob".into() }, &roles, at(40))
                .is_err()
        );
    }

    #[test]
    fn unanswered_requests_expire_and_text_forms_round_trip() {
        let r = req(1);
        assert_eq!(r.state_at(at(PENDING_TTL.as_secs())), RequestState::Expired);
        assert!(
            r.apply(
                &RequestStep::Approve { by: "bob".into() },
                &["approvers".into()],
                at(PENDING_TTL.as_secs())
            )
            .is_err()
        );
        let approvals = vec![
            Approval {
                by: "bob".into(),
                at: at(5),
            },
            Approval {
                by: "d.e_f-1".into(),
                at: at(6),
            },
        ];
        let text = approvals_to_text(&approvals);
        assert_eq!(approvals_from_text(&text).unwrap(), approvals);
        for bad in ["bob", "bob@x", "@5", "b b@5", "bob@5,"] {
            assert!(approvals_from_text(bad).is_err(), "{bad}");
        }
        for s in [RequestState::Pending, RequestState::Cancelled] {
            assert_eq!(s.as_str().parse::<RequestState>().unwrap(), s);
        }
    }

    #[test]
    fn durations_parse_within_bounds() {
        assert_eq!(
            parse_request_duration("2h").unwrap(),
            Duration::from_secs(7200)
        );
        assert_eq!(
            parse_request_duration("90s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_request_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_request_duration("1d").unwrap(),
            Duration::from_secs(86400)
        );
        for bad in ["", "0s", "8d", "-1h", "soon", "99999999999999999999d"] {
            assert!(parse_request_duration(bad).is_err(), "{bad}");
        }
    }
}
