//! What the user is told on their terminal when someone acts on their session. One place,
//! so `docs/live.md` can quote it.

use psm_core::live::LiveReportKind;

/// The notice for a live action (shown as `[PSM] TEXT`), or `None` when the user is not
/// told (a viewer watching, an alert, a termination: the proxy prints its own line then).
///
/// ```
/// use psm_core::live::LiveReportKind;
/// use psm_proxy::live::notice::notice_for;
/// assert_eq!(
///     notice_for("bob", &LiveReportKind::Locked { reason: "audit".into() }).as_deref(),
///     Some("session locked by bob: audit. Input is refused until an administrator unlocks it.")
/// );
/// ```
pub fn notice_for(actor: &str, kind: &LiveReportKind) -> Option<String> {
    let why = |reason: &str| {
        if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        }
    };
    Some(match kind {
        LiveReportKind::Paused { reason } => format!(
            "session paused by {actor}{}. Your input is held until it is resumed.",
            why(reason)
        ),
        LiveReportKind::Resumed => format!("session resumed by {actor}"),
        LiveReportKind::Locked { reason } => format!(
            "session locked by {actor}{}. Input is refused until an administrator unlocks it.",
            why(reason)
        ),
        LiveReportKind::Unlocked => format!("session unlocked by {actor}"),
        LiveReportKind::ApprovalRequested(a) => format!(
            "command held for approval (rule {}){}. An administrator will approve or deny it.",
            a.rule,
            why(a.message.as_deref().unwrap_or_default())
        ),
        LiveReportKind::ApprovalResolved { approved: true, .. } => {
            format!("command approved by {actor}")
        }
        LiveReportKind::ApprovalResolved {
            approved: false,
            reason,
            ..
        } => format!("command denied by {actor}{}", why(reason)),
        _ => return None,
    })
}
