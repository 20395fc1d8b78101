//! The live-control endpoints (`docs/live.md`): JoinSession with its extensions,
//! TerminalTicket, LiveSessions and LiveControl for administrators; RedeemLiveTicket,
//! LiveCommands (a long poll) and LiveReport for gateways. Request bodies are camelCase
//! (JoinSession's are the seed's PascalCase), answers PascalCase, as everywhere in the
//! contract.
//!
//! ```no_run
//! # async fn demo(client: psm_client::Client, session: psm_core::SessionId) -> Result<(), psm_client::ClientError> {
//! use psm_client::live::{LiveControlRequest, LiveJoinRequest};
//! let url = client.join_live(&LiveJoinRequest::new(session, "gw.example.com:2223")
//!     .with_mode("control").with_actor("bob")).await?;
//! println!("open {url} in the live viewer");
//! let answer = client.live_control(&LiveControlRequest::new(session, "pause")
//!     .with_reason("checking this")).await?;
//! assert!(answer.applied);
//! # Ok(()) }
//! ```

use std::time::Duration;

use psm_core::live::{LiveAction, LiveCommand, LiveReport, LiveTicket, TicketGrant};
use psm_core::{ProcessInstance, Protocol, SessionId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::client::Client;
use crate::error::ClientError;

/// Endpoint paths.
pub mod path {
    /// POST TerminalTicket (admin).
    pub const TERMINAL_TICKET: &str = "/api/services/v1/secureaccessgateway/TerminalTicket";
    /// POST LiveSessions (admin).
    pub const LIVE_SESSIONS: &str = "/api/services/v1/secureaccessgateway/LiveSessions";
    /// POST LiveControl (admin).
    pub const LIVE_CONTROL: &str = "/api/services/v1/secureaccessgateway/LiveControl";
    /// POST RedeemLiveTicket (gateway).
    pub const REDEEM_LIVE_TICKET: &str = "/api/services/v1/secureaccessgateway/RedeemLiveTicket";
    /// POST LiveCommands (gateway).
    pub const LIVE_COMMANDS: &str = "/api/services/v1/secureaccessgateway/LiveCommands";
    /// POST LiveReport (gateway).
    pub const LIVE_REPORT: &str = "/api/services/v1/secureaccessgateway/LiveReport";
}

/// JoinSession as the seed has it (PascalCase, numbers as strings) plus PSM's optional
/// `Mode` and `Actor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveJoinRequest {
    /// The live session.
    #[serde(rename = "PrivSessionID")]
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The gateway's address (host, host:port, or a ws(s)/http(s) URL); empty: the URL the
    /// session's gateway advertised.
    #[serde(rename = "GatewayServerAddress", default)]
    pub gateway_server_address: String,
    /// Viewer width in pixels, as a decimal string.
    #[serde(rename = "Width", default = "default_width")]
    pub width: String,
    /// Viewer height in pixels, as a decimal string.
    #[serde(rename = "Height", default = "default_height")]
    pub height: String,
    /// Viewer DPI, as a decimal string.
    #[serde(rename = "Dpi", default = "default_dpi")]
    pub dpi: String,
    /// Extension: `view` (default) or `control`.
    #[serde(rename = "Mode", default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Extension: the human behind the admin key (audited as the actor).
    #[serde(rename = "Actor", default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

fn default_width() -> String {
    "1024".into()
}
fn default_height() -> String {
    "768".into()
}
fn default_dpi() -> String {
    "96".into()
}

impl LiveJoinRequest {
    /// A view request for `session` through `gateway` (1024×768 at 96 dpi).
    pub fn new(session: SessionId, gateway: impl Into<String>) -> Self {
        Self {
            session,
            gateway_server_address: gateway.into(),
            width: default_width(),
            height: default_height(),
            dpi: default_dpi(),
            mode: None,
            actor: None,
        }
    }

    /// With a mode (`view` or `control`).
    pub fn with_mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = Some(mode.into());
        self
    }

    /// On behalf of `actor`.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
}

/// TerminalTicket: a browser terminal for `userName` on `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerminalTicketRequest {
    /// The PSM user (authenticated by the caller).
    pub user_name: String,
    /// The target.
    pub target: String,
    /// The gateway's address (as JoinSession's); empty: a gateway's advertised URL.
    #[serde(default)]
    pub gateway_server_address: String,
    /// Terminal columns (default 80).
    #[serde(default)]
    pub width: Option<u32>,
    /// Terminal rows (default 24).
    #[serde(default)]
    pub height: Option<u32>,
}

/// A viewer, in answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ViewerDto {
    /// Who.
    #[serde(rename = "Name")]
    pub name: String,
    /// `view` or `control`.
    #[serde(rename = "Mode")]
    pub mode: String,
}

/// A command held for approval, in answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalDto {
    /// Its id (for LiveControl `approve` / `deny`).
    #[serde(rename = "Id")]
    pub id: u64,
    /// The command line.
    #[serde(rename = "Command")]
    pub command: String,
    /// The rule that asked for approval.
    #[serde(rename = "Rule")]
    pub rule: String,
    /// The rule's message.
    #[serde(rename = "Message", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was held.
    #[serde(rename = "RequestedAt")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
}

/// One live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveSessionDto {
    /// The session.
    #[serde(rename = "PrivSessionID")]
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The user.
    #[serde(rename = "UserName")]
    pub user: String,
    /// The target.
    #[serde(rename = "Target")]
    pub target: String,
    /// `ssh` or `rdp`.
    #[serde(rename = "Protocol")]
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// When the user connected.
    #[serde(rename = "StartTime")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: Timestamp,
    /// The gateway running it (its process instance).
    #[serde(rename = "Gateway", default)]
    pub gateway: Option<String>,
    /// The gateway's advertised websocket URL.
    #[serde(rename = "LiveUrl", default)]
    pub live_url: Option<String>,
    /// Paused now.
    #[serde(rename = "Paused")]
    pub paused: bool,
    /// Locked now.
    #[serde(rename = "Locked")]
    pub locked: bool,
    /// Who watches.
    #[serde(rename = "Viewers")]
    pub viewers: Vec<ViewerDto>,
    /// Commands held for approval.
    #[serde(rename = "Approvals")]
    pub approvals: Vec<ApprovalDto>,
}

/// The LiveSessions answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveSessionsResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// Every Connected session.
    #[serde(rename = "Sessions")]
    pub sessions: Vec<LiveSessionDto>,
}

/// LiveControl: an action on a live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveControlRequest {
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// `pause`, `resume`, `lock`, `unlock`, `terminate`, `approve` or `deny`.
    pub action: String,
    /// Why (shown to the user for pause, lock, terminate, deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The approval an `approve` or `deny` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<u64>,
    /// The human behind the admin key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl LiveControlRequest {
    /// `action` on `session`.
    pub fn new(session: SessionId, action: impl Into<String>) -> Self {
        Self {
            session,
            action: action.into(),
            reason: None,
            approval_id: None,
            actor: None,
        }
    }

    /// With a reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Deciding this approval.
    pub fn with_approval(mut self, id: u64) -> Self {
        self.approval_id = Some(id);
        self
    }

    /// On behalf of `actor`.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
}

/// The LiveControl answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveControlResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// The gateway confirmed it applied the action.
    #[serde(rename = "Applied")]
    pub applied: bool,
    /// What the gateway said (or why it is only queued).
    #[serde(rename = "Message")]
    pub message: String,
}

/// RedeemLiveTicket.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedeemLiveTicketRequest {
    /// The ticket from the viewer's URL.
    pub ticket: String,
    /// The redeeming gateway.
    #[schema(value_type = String)]
    pub process_instance: ProcessInstance,
}

impl std::fmt::Debug for RedeemLiveTicketRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedeemLiveTicketRequest")
            .field("ticket", &"***")
            .field("process_instance", &self.process_instance)
            .finish()
    }
}

/// The RedeemLiveTicket answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedeemLiveTicketResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// What the ticket grants.
    #[serde(rename = "Grant")]
    #[schema(value_type = Object)]
    pub grant: TicketGrant,
}

/// LiveCommands (a long poll).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveCommandsRequest {
    /// The polling gateway.
    #[schema(value_type = String)]
    pub process_instance: ProcessInstance,
    /// How long to wait for a command (0 to 60 seconds).
    #[serde(default)]
    pub wait_seconds: u32,
    /// The gateway's websocket base URL, for the URLs the control plane hands out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_url: Option<String>,
}

/// The LiveCommands answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveCommandsResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// The commands, oldest first.
    #[serde(rename = "Commands")]
    #[schema(value_type = Vec<Object>)]
    pub commands: Vec<LiveCommand>,
}

/// LiveReport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveReportRequest {
    /// The reporting gateway.
    #[schema(value_type = String)]
    pub process_instance: ProcessInstance,
    /// What happened (at most 256).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<LiveReport>,
}

#[derive(Deserialize)]
struct Done {}

impl Client {
    /// JoinSession with PSM's extensions: the viewer's websocket URL, ticket included.
    pub async fn join_live(&self, request: &LiveJoinRequest) -> Result<String, ClientError> {
        self.post(
            "JoinSession",
            crate::wire::path::JOIN_SESSION,
            request,
            false,
        )
        .await
    }

    /// TerminalTicket: a browser terminal's websocket URL, ticket included.
    pub async fn terminal_ticket(
        &self,
        request: &TerminalTicketRequest,
    ) -> Result<String, ClientError> {
        self.post("TerminalTicket", path::TERMINAL_TICKET, request, false)
            .await
    }

    /// LiveSessions.
    pub async fn live_sessions(&self) -> Result<LiveSessionsResponse, ClientError> {
        self.post(
            "LiveSessions",
            path::LIVE_SESSIONS,
            &serde_json::json!({}),
            true,
        )
        .await
    }

    /// LiveControl.
    pub async fn live_control(
        &self,
        request: &LiveControlRequest,
    ) -> Result<LiveControlResponse, ClientError> {
        self.post("LiveControl", path::LIVE_CONTROL, request, false)
            .await
    }

    /// RedeemLiveTicket (never retried: a ticket is single use).
    pub async fn redeem_live_ticket(
        &self,
        request: &RedeemLiveTicketRequest,
    ) -> Result<RedeemLiveTicketResponse, ClientError> {
        self.post("RedeemLiveTicket", path::REDEEM_LIVE_TICKET, request, false)
            .await
    }

    /// LiveCommands: waits up to `wait_seconds` for the control plane to answer.
    pub async fn live_commands(
        &self,
        request: &LiveCommandsRequest,
    ) -> Result<LiveCommandsResponse, ClientError> {
        let timeout = Duration::from_secs(u64::from(request.wait_seconds.min(60)) + 15);
        self.call_with(
            reqwest::Method::POST,
            "LiveCommands",
            path::LIVE_COMMANDS,
            Some(request),
            true,
            Some(timeout),
        )
        .await
    }

    /// LiveReport.
    pub async fn live_report(&self, request: &LiveReportRequest) -> Result<(), ClientError> {
        self.post::<_, Done>("LiveReport", path::LIVE_REPORT, request, true)
            .await
            .map(drop)
    }
}

/// The three `ControlPlane` calls of live control over HTTP (`HttpControlPlane` delegates).
pub(crate) async fn redeem(
    client: &Client,
    ticket: &LiveTicket,
    by: &ProcessInstance,
) -> Result<TicketGrant, ClientError> {
    Ok(client
        .redeem_live_ticket(&RedeemLiveTicketRequest {
            ticket: ticket.as_str().to_owned(),
            process_instance: by.clone(),
        })
        .await?
        .grant)
}

pub(crate) async fn commands(
    client: &Client,
    by: &ProcessInstance,
    wait: Duration,
    live_url: Option<&str>,
) -> Result<Vec<LiveCommand>, ClientError> {
    Ok(client
        .live_commands(&LiveCommandsRequest {
            process_instance: by.clone(),
            wait_seconds: wait.as_secs().min(60) as u32,
            live_url: live_url.map(str::to_owned),
        })
        .await?
        .commands)
}

pub(crate) async fn report(
    client: &Client,
    by: &ProcessInstance,
    reports: &[LiveReport],
) -> Result<(), ClientError> {
    client
        .live_report(&LiveReportRequest {
            process_instance: by.clone(),
            events: reports.to_vec(),
        })
        .await
}

/// Parses a LiveControl action.
pub fn parse_action(action: &str) -> Result<LiveAction, psm_core::CoreError> {
    action.parse()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_seed_names_and_adds_optional_fields() {
        let s = SessionId::new();
        let j = serde_json::to_value(LiveJoinRequest::new(s, "gw").with_mode("control")).unwrap();
        assert_eq!(j["PrivSessionID"], s.to_string());
        assert_eq!(j["GatewayServerAddress"], "gw");
        assert_eq!(j["Mode"], "control");
        assert!(j.get("Actor").is_none());
        let seed: LiveJoinRequest = serde_json::from_str(&format!(
            r#"{{"PrivSessionID":"{s}","GatewayServerAddress":"g","Width":"1","Height":"2","Dpi":"3"}}"#
        ))
        .unwrap();
        assert_eq!(seed.mode, None);
        let r = RedeemLiveTicketRequest {
            ticket: "psmt_secret".into(),
            process_instance: ProcessInstance::new("gw").unwrap(),
        };
        assert!(!format!("{r:?}").contains("secret"));
    }
}
