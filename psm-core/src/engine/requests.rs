//! Access requests in the engine (issue 20 item 1): a session that an approved request
//! let in is ended on the first heartbeat after the request stops granting (it expired, or
//! the requester cancelled it), as an expired checkout's is; a session opened after that
//! is refused. The rules are [`crate::access`]'s; the directory is the one whose windows
//! the engine applies ([`Engine::with_access_windows`]).

use crate::access::ApprovalRule;
use crate::audit::{AuditAction, AuditRecord};
use crate::directory::{ALL_TARGETS, DirectoryLookup, DirectoryUser};
use crate::error::CoreError;
use crate::session::{NewSession, PrivSession};
use crate::stage::Stage;
use crate::timestamp::Timestamp;

use super::Engine;

/// Whether `user` reaches `target` at `at` through a standing grant or an approved request.
async fn reaches(
    directory: &dyn DirectoryLookup,
    user: &DirectoryUser,
    target: &str,
    at: Timestamp,
) -> Result<(bool, bool), CoreError> {
    let standing = directory
        .targets_of_roles(&user.roles)
        .await?
        .iter()
        .any(|t| t == ALL_TARGETS || t == target);
    if standing {
        return Ok((true, false));
    }
    let granted = directory
        .request_grants(user.name.as_str(), at)
        .await?
        .iter()
        .any(|t| t == target);
    Ok((false, granted))
}

/// What the user is told to run to ask for `target`.
pub(crate) fn request_hint(target: &str, rule: &ApprovalRule) -> String {
    format!(
        "request it with: psm request {target} --for 1h --reason \"...\" ({} of role {} \
         approve)",
        rule.approvals, rule.approver_role
    )
}

impl Engine {
    /// Refuses `new` (audited) when its target takes access requests, the user has no
    /// standing grant of it and no approved request grants it at the engine's now.
    pub(crate) async fn check_request_grant(&self, new: &NewSession) -> Result<(), CoreError> {
        let Some(directory) = &self.windows.directory else {
            return Ok(());
        };
        let Some(user) = directory.user(&new.user).await? else {
            return Ok(());
        };
        let Some(rule) = directory.approval_rule(&new.target).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let (standing, granted) = reaches(directory.as_ref(), &user, &new.target, now).await?;
        if standing || granted {
            return Ok(());
        }
        let message = format!(
            "{} has no approved access request for {} now; {}",
            new.user,
            new.target,
            request_hint(&new.target, &rule)
        );
        let record = AuditRecord {
            at: now,
            session: Some(new.id),
            actor: new.process_instance.to_string(),
            action: AuditAction::Refused,
            from_stage: None,
            to_stage: None,
            detail: format!(
                "session of {} to {} refused: {message}",
                new.user, new.target
            ),
        };
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(error = %e, "could not audit a refusal");
        }
        Err(CoreError::Forbidden(message))
    }

    /// Ends Connected session `s` (terminate flag, audited by `access-request`) when its
    /// target takes access requests and the user has neither a standing grant of it nor an
    /// approved request valid now (it expired or was cancelled); returns the reason the
    /// user is shown, or `None` when it may go on.
    pub async fn request_grant_lapsed(&self, s: &PrivSession) -> Result<Option<String>, CoreError> {
        let Some(directory) = &self.windows.directory else {
            return Ok(None);
        };
        if s.stage != Stage::Connected || s.terminate {
            return Ok(None);
        }
        let Some(user) = directory.user(&s.user).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let (standing, granted) = reaches(directory.as_ref(), &user, &s.target, now).await?;
        if standing || granted {
            return Ok(None);
        }
        // Only a target that takes requests: the user reached it through one, which has
        // expired or been cancelled (elsewhere a lost grant is the directory's business).
        if directory.approval_rule(&s.target).await?.is_none() {
            return Ok(None);
        }
        let message = format!(
            "your approved access to {} has ended (the request expired or was cancelled): the \
             session is ended",
            s.target
        );
        self.request_termination(s.id, "access-request", &message)
            .await?;
        tracing::info!(session_id = %s.id, user = %s.user, target_name = %s.target,
            "session ended: its access request no longer grants the target");
        Ok(Some(message))
    }
}
