//! The wire DTOs of the `secureaccessgateway` contract, with the seed's exact JSON names.
//!
//! Conventions (from the seed's examples): request bodies use camelCase (`session`,
//! `processInstance`, `privSessionIds`, `checkOutId`), except JoinSession's, which the seed
//! spells in PascalCase (`PrivSessionID`, `GatewayServerAddress`...); answers use PascalCase
//! (`Result`, `SessionIds`, `PrivSessionID`, `RecordingStatus`, `StatusCode`, `Content`).
//! Fields PSM adds beyond the seed are optional in both directions, so a client or server
//! that knows only the seed still interoperates; each is marked *extension* below and in
//! `docs/api.md`.

use psm_core::vault::{Checkout, Credential, CredentialSecret, PamSettings, Target};
use psm_core::{
    CheckoutId, FencingToken, Lease, PrivSession, ProcessInstance, Protocol, RecordingCommitment,
    SessionId, Stage, Timestamp,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The path prefix of every endpoint.
pub const PREFIX: &str = "/api/services/v1/secureaccessgateway";

/// Endpoint paths, relative to the server root. Spellings are the seed's, `UploderClaim`
/// and the lower-case `save*` included.
pub mod path {
    /// POST UpdateSession.
    pub const UPDATE_SESSION: &str = "/api/services/v1/secureaccessgateway/UpdateSession";
    /// POST EndSession.
    pub const END_SESSION: &str = "/api/services/v1/secureaccessgateway/EndSession";
    /// POST EncoderClaim.
    pub const ENCODER_CLAIM: &str = "/api/services/v1/secureaccessgateway/EncoderClaim";
    /// POST UploderClaim (sic).
    pub const UPLODER_CLAIM: &str = "/api/services/v1/secureaccessgateway/UploderClaim";
    /// POST Checkin.
    pub const CHECKIN: &str = "/api/services/v1/secureaccessgateway/Checkin";
    /// POST Polling.
    pub const POLLING: &str = "/api/services/v1/secureaccessgateway/Polling";
    /// POST saveclipboard.
    pub const SAVE_CLIPBOARD: &str = "/api/services/v1/secureaccessgateway/saveclipboard";
    /// POST savescreenshot.
    pub const SAVE_SCREENSHOT: &str = "/api/services/v1/secureaccessgateway/savescreenshot";
    /// POST savesessionrecording.
    pub const SAVE_RECORDING: &str = "/api/services/v1/secureaccessgateway/savesessionrecording";
    /// POST SaveKeyStrokes.
    pub const SAVE_KEYSTROKES: &str = "/api/services/v1/secureaccessgateway/SaveKeyStrokes";
    /// POST GetRecordingProcessStatus.
    pub const GET_RECORDING_STATUS: &str =
        "/api/services/v1/secureaccessgateway/GetRecordingProcessStatus";
    /// PUT UpdateRecordingProcessStatus.
    pub const UPDATE_RECORDING_STATUS: &str =
        "/api/services/v1/secureaccessgateway/UpdateRecordingProcessStatus";
    /// POST JoinSession.
    pub const JOIN_SESSION: &str = "/api/services/v1/secureaccessgateway/JoinSession";
    /// GET GetPAMSettings.
    pub const GET_PAM_SETTINGS: &str = "/api/services/v1/secureaccessgateway/GetPAMSettings";
    /// GET GetUserPlatform.
    pub const GET_USER_PLATFORM: &str = "/api/services/v1/secureaccessgateway/GetUserPlatform";
    /// GET GetIP.
    pub const GET_IP: &str = "/api/services/v1/secureaccessgateway/GetIP";
    /// POST GetRemainingMinutesForCheckout.
    pub const GET_REMAINING_MINUTES: &str =
        "/api/services/v1/secureaccessgateway/GetRemainingMinutesForCheckout";
    /// POST GetCredential.
    pub const GET_CREDENTIAL: &str = "/api/services/v1/secureaccessgateway/GetCredential";
    /// POST OpenSession (extension).
    pub const OPEN_SESSION: &str = "/api/services/v1/secureaccessgateway/OpenSession";
    /// POST Checkout (extension).
    pub const CHECKOUT: &str = "/api/services/v1/secureaccessgateway/Checkout";
    /// POST FailRecordingProcess (extension).
    pub const FAIL_RECORDING: &str = "/api/services/v1/secureaccessgateway/FailRecordingProcess";
    /// POST TerminateSession (extension).
    pub const TERMINATE_SESSION: &str = "/api/services/v1/secureaccessgateway/TerminateSession";
    /// POST GetTarget (extension).
    pub const GET_TARGET: &str = "/api/services/v1/secureaccessgateway/GetTarget";
    /// GET ListTargets (extension).
    pub const LIST_TARGETS: &str = "/api/services/v1/secureaccessgateway/ListTargets";
    /// PUT PutTarget (extension).
    pub const PUT_TARGET: &str = "/api/services/v1/secureaccessgateway/PutTarget";
    /// POST DeleteTarget (extension).
    pub const DELETE_TARGET: &str = "/api/services/v1/secureaccessgateway/DeleteTarget";
    /// PUT SetCredential (extension).
    pub const SET_CREDENTIAL: &str = "/api/services/v1/secureaccessgateway/SetCredential";
    /// POST GetUser (extension, directory).
    pub const GET_USER: &str = "/api/services/v1/secureaccessgateway/GetUser";
    /// GET ListUsers (extension, directory).
    pub const LIST_USERS: &str = "/api/services/v1/secureaccessgateway/ListUsers";
    /// POST CreateUser (extension, directory).
    pub const CREATE_USER: &str = "/api/services/v1/secureaccessgateway/CreateUser";
    /// POST UpdateUser (extension, directory).
    pub const UPDATE_USER: &str = "/api/services/v1/secureaccessgateway/UpdateUser";
    /// POST DeleteUser (extension, directory).
    pub const DELETE_USER: &str = "/api/services/v1/secureaccessgateway/DeleteUser";
    /// POST AddUserKey (extension, directory).
    pub const ADD_USER_KEY: &str = "/api/services/v1/secureaccessgateway/AddUserKey";
    /// POST RemoveUserKey (extension, directory).
    pub const REMOVE_USER_KEY: &str = "/api/services/v1/secureaccessgateway/RemoveUserKey";
    /// POST GrantRole (extension, directory).
    pub const GRANT_ROLE: &str = "/api/services/v1/secureaccessgateway/GrantRole";
    /// POST RevokeRole (extension, directory).
    pub const REVOKE_ROLE: &str = "/api/services/v1/secureaccessgateway/RevokeRole";
    /// POST TargetsOfRoles (extension, directory).
    pub const TARGETS_OF_ROLES: &str = "/api/services/v1/secureaccessgateway/TargetsOfRoles";
    /// POST VerifyUser (extension, directory).
    pub const VERIFY_USER: &str = "/api/services/v1/secureaccessgateway/VerifyUser";
    /// POST RegisterSigner (extension).
    pub const REGISTER_SIGNER: &str = "/api/services/v1/secureaccessgateway/RegisterSigner";
    /// GET health: the process is up.
    pub const HEALTH: &str = "/healthz";
    /// GET readiness: the database answers.
    pub const READY: &str = "/readyz";
    /// GET the OpenAPI document.
    pub const OPENAPI: &str = "/api/openapi.json";
}

/// The seed's success value of `Result`.
pub const SUCCESS: &str = "Success";

/// The JSON shape of [`RecordingCommitment`], for the OpenAPI document (the DTOs carry
/// [`RecordingCommitment`]).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = RecordingCommitment)]
pub struct RecordingCommitmentSchema {
    /// The BLAKE3 chain value after the recording's signed trailer, as 64 lower-case hex
    /// digits.
    #[schema(pattern = "^[0-9a-f]{64}$", min_length = 64, max_length = 64)]
    pub chain: String,
    /// Chunks the recording holds.
    pub chunks: u64,
    /// Events the recording holds.
    pub events: u64,
}

/// The stages, as the contract spells them (for the OpenAPI document; the DTOs carry
/// [`Stage`]).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub enum StageName {
    /// `Connected`.
    Connected,
    /// `Ended`.
    Ended,
    /// `Encoding`.
    Encoding,
    /// `Done-Encoded`.
    #[serde(rename = "Done-Encoded")]
    DoneEncoded,
    /// `Uploading`.
    Uploading,
    /// `Done-Uploaded`.
    #[serde(rename = "Done-Uploaded")]
    DoneUploaded,
    /// `Failed` (extension).
    Failed,
}

/// The error answer: `{"StatusCode":400,"Content":"Process instance not supplied"}`. `Code`
/// and `Detail` are extensions that let a client rebuild the precise error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    #[serde(rename = "StatusCode")]
    pub status_code: u16,
    /// What went wrong, for a human. Never a credential.
    #[serde(rename = "Content")]
    pub content: String,
    /// Extension: a stable machine-readable code (`unknown-session`, `stale-token`...; the
    /// list is in `docs/api.md`).
    #[serde(rename = "Code", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Extension: the facts behind the error.
    #[serde(rename = "Detail", default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<ErrorDetail>,
}

/// The facts behind an error (extension); which fields are set depends on `Code`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// The session concerned.
    #[serde(
        rename = "PrivSessionID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub session: Option<SessionId>,
    /// The session's current stage (or the target stage of an illegal transition).
    #[serde(rename = "Stage", default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<StageName>)]
    pub stage: Option<Stage>,
    /// The stage an illegal transition started from.
    #[serde(rename = "FromStage", default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<StageName>)]
    pub from_stage: Option<Stage>,
    /// The stages an operation accepts.
    #[serde(rename = "Expected", default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The operation that was refused.
    #[serde(rename = "Operation", default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The fencing token presented.
    #[serde(
        rename = "PresentedToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub presented_token: Option<u64>,
    /// The session's current fencing token.
    #[serde(
        rename = "CurrentToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_token: Option<u64>,
    /// The caller's process instance.
    #[serde(rename = "Caller", default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The session's owner.
    #[serde(rename = "Owner", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The request field at fault.
    #[serde(rename = "Field", default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A name: the unknown target, user or checkout.
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A reason: why a checkout ended.
    #[serde(rename = "Reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `{"Result":"Success"}`, with the seed's optional `Message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResultResponse {
    /// `Success`, or for the save endpoints `Terminated` / `Disabled`.
    #[serde(rename = "Result")]
    pub result: String,
    /// A human-readable message.
    #[serde(rename = "Message", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extension (save endpoints): the session is being terminated; the gateway should stop.
    #[serde(
        rename = "TerminateSession",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub terminate_session: Option<bool>,
}

impl ResultResponse {
    /// `{"Result":"Success"}`.
    pub fn success() -> Self {
        Self {
            result: SUCCESS.into(),
            message: None,
            terminate_session: None,
        }
    }
}

/// UpdateSession: `{"session":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionRequest {
    /// The session GUID.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
}

/// EndSession: `{"session":"...","processInstance":"..."}`, plus the gateway's commitment to
/// its recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndSessionRequest {
    /// The session GUID.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The gateway that owns it.
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
    /// Extension: what the gateway commits to about the recording it wrote (the chain value
    /// after its signed trailer, its chunks and events; docs/threat-model.md M12). Kept with
    /// the session and checked by the encoder, the uploader and the web UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RecordingCommitmentSchema>)]
    pub recording: Option<RecordingCommitment>,
}

/// Polling: `{"session":"...","processInstance":"..."}`, plus the worker's fencing token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PollingRequest {
    /// The session GUID.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The process that owns it.
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
    /// Extension: an encoder's or uploader's fencing token; with it the answer carries the
    /// renewed `Lease`, and a lost lease is refused (409 `stale-token` / `lease-lost`).
    #[serde(
        rename = "fencingToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fencing_token: Option<u64>,
}

/// The Polling answer: `{"Result":"Success"}` plus extensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PollingResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// Extension: the control plane asks the gateway to close the session (an admin, a
    /// checkin, an expired checkout).
    #[serde(rename = "TerminateSession", default)]
    pub terminate_session: bool,
    /// Extension: why, to show the user.
    #[serde(
        rename = "TerminateReason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub terminate_reason: Option<String>,
    /// Extension: the renewed lease, when a fencing token was sent.
    #[serde(rename = "Lease", default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseDto>,
}

/// EncoderClaim / UploderClaim: `{"processInstance":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimRequest {
    /// The claiming worker.
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
    /// Extension: claim up to this many sessions (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Extension: claim only among these sessions (at most 1000), e.g. those whose files are
    /// on the worker's disk. Absent: any session of the queue; empty: none.
    #[serde(
        rename = "privSessionIds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Vec<String>>)]
    pub among: Option<Vec<SessionId>>,
}

/// A worker's lease on one session (extension).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaseDto {
    /// The session.
    #[serde(rename = "PrivSessionID")]
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The leased stage (`Encoding` or `Uploading`).
    #[serde(rename = "RecordingStatus")]
    #[schema(value_type = StageName)]
    pub stage: Stage,
    /// The worker.
    #[serde(rename = "ProcessInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub owner: ProcessInstance,
    /// The fencing token to present when completing, failing or polling.
    #[serde(rename = "FencingToken")]
    pub fencing_token: u64,
    /// When the lease runs out unless renewed by Polling.
    #[serde(rename = "LeaseExpires")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: Timestamp,
    /// Which attempt at this step the claim is (1 for the first).
    #[serde(rename = "Attempt")]
    pub attempt: u32,
    /// What the session's gateway committed to about its recording at EndSession.
    #[serde(
        rename = "RecordingCommitment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<RecordingCommitmentSchema>)]
    pub recording: Option<RecordingCommitment>,
}

impl From<&Lease> for LeaseDto {
    fn from(l: &Lease) -> Self {
        Self {
            session: l.session,
            stage: l.stage,
            owner: l.owner.clone(),
            fencing_token: l.token.0,
            expires: l.expires,
            attempt: l.attempt,
            recording: l.recording,
        }
    }
}

impl From<LeaseDto> for Lease {
    fn from(l: LeaseDto) -> Self {
        Self {
            session: l.session,
            stage: l.stage,
            owner: l.owner,
            token: FencingToken(l.fencing_token),
            expires: l.expires,
            attempt: l.attempt,
            recording: l.recording,
        }
    }
}

/// The claim answer: `{"SessionIds":[...]}` plus the leases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    /// The claimed sessions.
    #[serde(rename = "SessionIds")]
    #[schema(value_type = Vec<String>)]
    pub session_ids: Vec<SessionId>,
    /// Extension: one lease per claimed session, in the same order.
    #[serde(rename = "Leases", default)]
    pub leases: Vec<LeaseDto>,
}

/// Checkin: `{"checkOutId":"123"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckinRequest {
    /// The checkout.
    #[serde(rename = "checkOutId")]
    #[schema(value_type = String)]
    pub checkout_id: CheckoutId,
}

/// The Checkin answer: `{"Result":"Success","Message":"..."}` plus extensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckinResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// What happened.
    #[serde(rename = "Message")]
    pub message: String,
    /// Extension: whether the checkout had already ended before this call.
    #[serde(rename = "AlreadyCheckedIn", default)]
    pub already_checked_in: bool,
    /// Extension: the live sessions asked to terminate.
    #[serde(rename = "SessionsTerminated", default)]
    #[schema(value_type = Vec<String>)]
    pub sessions_terminated: Vec<SessionId>,
    /// Extension: the checkout, now ended.
    #[serde(rename = "Checkout", default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<CheckoutDto>,
}

/// saveclipboard: `{"text":"...","session":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SaveClipboardRequest {
    /// The clipboard text.
    pub text: String,
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
}

/// savescreenshot: `{"image":"data:image/png;base64,...","session":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SaveScreenshotRequest {
    /// A PNG as a data URL (`data:image/png;base64,...`) or bare base64.
    pub image: String,
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
}

/// savesessionrecording: `{"recording":"SGVsbG8gd29ybGQ=","session":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SaveRecordingRequest {
    /// Raw recording bytes, base64; appended to the session's raw recording.
    pub recording: String,
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
}

/// SaveKeyStrokes (body chosen by PSM): `{"keyStrokes":"ls -la\r","session":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SaveKeyStrokesRequest {
    /// The keystrokes, as typed (UTF-8 text; control keys as their characters).
    #[serde(rename = "keyStrokes")]
    pub key_strokes: String,
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
}

/// GetRecordingProcessStatus: `{"privSessionIds":["..."]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingStatusRequest {
    /// The sessions (at most 1000).
    #[serde(rename = "privSessionIds")]
    #[schema(value_type = Vec<String>)]
    pub priv_session_ids: Vec<SessionId>,
}

/// One entry of the GetRecordingProcessStatus answer (an array of these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingStatusEntry {
    /// The session.
    #[serde(rename = "PrivSessionID")]
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// Its stage.
    #[serde(rename = "RecordingStatus")]
    #[schema(value_type = StageName)]
    pub status: Stage,
    /// Extension: why it failed, when `Failed`; on another stage, why its last attempt
    /// failed, or the note of the step that last completed (a damaged recording committed
    /// with gaps).
    #[serde(
        rename = "FailureReason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason: Option<String>,
}

/// UpdateRecordingProcessStatus (PUT).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateRecordingStatusRequest {
    /// The session.
    #[serde(rename = "privSessionId")]
    #[schema(value_type = String, format = Uuid)]
    pub priv_session_id: SessionId,
    /// The worker that holds it.
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
    /// The stage reported: the current leased stage (fields only) or the one its success
    /// leads to (`Done-Encoded`, `Done-Uploaded`).
    #[serde(rename = "recordingStatus")]
    #[schema(value_type = StageName)]
    pub recording_status: Stage,
    /// Whether SSH logs were uploaded.
    #[serde(
        rename = "sshLogsUploaded",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssh_logs_uploaded: Option<bool>,
    /// The recording format, e.g. `.mp4`, `.psmr`.
    #[serde(
        rename = "recordingFormat",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub recording_format: Option<String>,
    /// Extension: the worker's fencing token; a stale one is refused (409).
    #[serde(
        rename = "fencingToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub fencing_token: Option<u64>,
    /// Extension: a warning about work that completed anyway (a damaged recording encoded
    /// with gaps). It becomes the session's `FailureReason` in GetRecordingProcessStatus; a
    /// completion without it clears that. At most 1024 bytes are kept.
    #[serde(rename = "note", default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// FailRecordingProcess (extension): a worker gives up its attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FailRecordingRequest {
    /// The session.
    #[serde(rename = "privSessionId")]
    #[schema(value_type = String, format = Uuid)]
    pub priv_session_id: SessionId,
    /// The worker.
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
    /// Its fencing token.
    #[serde(rename = "fencingToken")]
    pub fencing_token: u64,
    /// Why (kept when the session becomes Failed; at most 1024 bytes are kept).
    pub reason: String,
}

/// The FailRecordingProcess answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FailRecordingResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// Where the session went: back to its queue (`Ended`, `Done-Encoded`) or `Failed`.
    #[serde(rename = "RecordingStatus")]
    #[schema(value_type = StageName)]
    pub status: Stage,
}

/// JoinSession, in the seed's PascalCase, numbers as strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JoinSessionRequest {
    /// The live session.
    #[serde(rename = "PrivSessionID")]
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The gateway's public address (host or host:port) the viewer connects to.
    #[serde(rename = "GatewayServerAddress")]
    pub gateway_server_address: String,
    /// Viewer width in pixels, as a decimal string.
    #[serde(rename = "Width")]
    pub width: String,
    /// Viewer height in pixels, as a decimal string.
    #[serde(rename = "Height")]
    pub height: String,
    /// Viewer DPI, as a decimal string.
    #[serde(rename = "Dpi")]
    pub dpi: String,
}

/// GetPAMSettings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PamSettingsDto {
    /// `UNC`, `AWS` or `Azure`.
    #[serde(rename = "PSMStorageMode")]
    pub storage_mode: String,
    /// Extension: where recordings are stored for the mode (`s3://bucket/prefix`,
    /// `az://account/container/prefix`, or a path / UNC share); absent when each uploader
    /// decides.
    #[serde(
        rename = "PSMStorageLocation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_location: Option<String>,
    /// Whether encoders produce exports.
    #[serde(rename = "PSMEncodingEnabled")]
    pub encoding_enabled: bool,
    /// The recordings' recipient public key (`x25519:BASE64`), or null.
    #[serde(rename = "PSMEncryptionKey")]
    pub encryption_key: Option<String>,
    /// Extension: whether keystrokes are recorded.
    #[serde(rename = "PSMRecordKeyStrokes", default)]
    pub record_keystrokes: bool,
    /// Extension: whether clipboard transfers are captured.
    #[serde(rename = "PSMCaptureClipboard", default)]
    pub capture_clipboard: bool,
    /// Extension: the export formats encoders produce.
    #[serde(rename = "PSMExportFormats", default)]
    pub export_formats: Vec<String>,
    /// Extension: how often to call Polling, in seconds.
    #[serde(rename = "PSMPollingIntervalSeconds", default)]
    pub polling_interval_seconds: u64,
    /// Extension: how long before a checkout runs out gateways warn, in seconds.
    #[serde(rename = "PSMCheckoutWarningSeconds", default)]
    pub checkout_warning_seconds: u64,
}

impl From<&PamSettings> for PamSettingsDto {
    fn from(s: &PamSettings) -> Self {
        Self {
            storage_mode: s.storage_mode.as_str().into(),
            storage_location: s.storage_location.clone(),
            encoding_enabled: s.encoding_enabled,
            encryption_key: s.encryption_key.as_ref().map(ToString::to_string),
            record_keystrokes: s.record_keystrokes,
            capture_clipboard: s.capture_clipboard,
            export_formats: s.export_formats.clone(),
            polling_interval_seconds: s.polling_interval.as_secs(),
            checkout_warning_seconds: s.checkout_warning.as_secs(),
        }
    }
}

impl TryFrom<PamSettingsDto> for PamSettings {
    type Error = psm_core::CoreError;
    fn try_from(d: PamSettingsDto) -> Result<Self, Self::Error> {
        if let Some(l) = &d.storage_location
            && (l.is_empty() || l.len() > 2048 || l.chars().any(char::is_control))
        {
            return Err(psm_core::CoreError::InvalidInput {
                field: "PSMStorageLocation",
                reason: "must be 1 to 2048 bytes without control characters".into(),
            });
        }
        Ok(Self {
            storage_mode: d.storage_mode.parse()?,
            storage_location: d.storage_location,
            encoding_enabled: d.encoding_enabled,
            encryption_key: d
                .encryption_key
                .as_deref()
                .map(psm_core::vault::RecipientKey::parse)
                .transpose()?,
            record_keystrokes: d.record_keystrokes,
            capture_clipboard: d.capture_clipboard,
            export_formats: d.export_formats,
            polling_interval: std::time::Duration::from_secs(d.polling_interval_seconds),
            checkout_warning: std::time::Duration::from_secs(d.checkout_warning_seconds),
        })
    }
}

/// GetUserPlatform's answer (body chosen by PSM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserPlatformResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// `Windows`, `macOS`, `Linux`, `Android`, `iOS`, `ChromeOS` or `Unknown`.
    #[serde(rename = "Platform")]
    pub platform: String,
}

/// GetIP's answer (body chosen by PSM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IpResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// The caller's address (from a trusted proxy's `X-Forwarded-For` when the direct peer
    /// is a configured trusted proxy, otherwise the peer address).
    #[serde(rename = "IP")]
    pub ip: String,
}

/// GetRemainingMinutesForCheckout: `{"checkOutId":"123"}` (body chosen by PSM, as Checkin).
pub type RemainingMinutesRequest = CheckinRequest;

/// GetRemainingMinutesForCheckout's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RemainingMinutesResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// Whole minutes left, rounded up; 0 once the checkout is over.
    #[serde(rename = "RemainingMinutes")]
    pub remaining_minutes: u64,
    /// Extension: seconds left.
    #[serde(rename = "RemainingSeconds", default)]
    pub remaining_seconds: u64,
    /// Extension: whether the checkout is valid now.
    #[serde(rename = "Active", default)]
    pub active: bool,
    /// Extension: the checkout itself.
    #[serde(rename = "Checkout", default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<CheckoutDto>,
}

/// GetCredential: `{"session":"...","processInstance":"..."}` (body chosen by PSM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialRequest {
    /// The session GUID.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The gateway that owns it.
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
}

/// A target's connection details (no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetDto {
    /// Its name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Host name or address.
    #[serde(rename = "Host")]
    pub host: String,
    /// TCP port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// `ssh` or `rdp`.
    #[serde(rename = "Protocol")]
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// SSH host-key pin (fingerprint or known_hosts line), or null.
    #[serde(rename = "HostKey", default)]
    pub host_key: Option<String>,
}

impl From<&Target> for TargetDto {
    fn from(t: &Target) -> Self {
        Self {
            name: t.name.clone(),
            host: t.host.clone(),
            port: t.port,
            protocol: t.protocol,
            host_key: t.host_key.clone(),
        }
    }
}

impl From<TargetDto> for Target {
    fn from(t: TargetDto) -> Self {
        Self {
            name: t.name,
            host: t.host,
            port: t.port,
            protocol: t.protocol,
            host_key: t.host_key,
        }
    }
}

/// GetCredential's answer: the only answer that ever carries a secret. Its `Debug` hides
/// the secret fields.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// The account on the target.
    #[serde(rename = "UserName")]
    pub user_name: String,
    /// Its password, when it has one.
    #[serde(rename = "Password", default)]
    pub password: Option<String>,
    /// Its private key (OpenSSH or PEM text), when it has one.
    #[serde(rename = "PrivateKey", default)]
    pub private_key: Option<String>,
    /// The private key's passphrase, if any.
    #[serde(rename = "Passphrase", default)]
    pub passphrase: Option<String>,
    /// Extension: where to connect.
    #[serde(rename = "Target", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetDto>,
}

impl std::fmt::Debug for CredentialResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialResponse")
            .field("result", &self.result)
            .field("user_name", &self.user_name)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("private_key", &self.private_key.as_ref().map(|_| "***"))
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("target", &self.target)
            .finish()
    }
}

/// The secret fields are wiped when the answer is dropped (after it was serialized, or
/// turned into a [`Credential`]).
impl Drop for CredentialResponse {
    fn drop(&mut self) {
        use psm_core::vault::Zeroize as _;
        self.password.zeroize();
        self.private_key.zeroize();
        self.passphrase.zeroize();
    }
}

impl psm_core::vault::ZeroizeOnDrop for CredentialResponse {}

impl CredentialResponse {
    /// The answer for a credential (the one place a secret is put on the wire).
    pub fn from_credential(c: &Credential, target: Option<&Target>) -> Self {
        let (password, private_key, passphrase) = match &c.secret {
            CredentialSecret::Password(p) => (Some(p.expose_secret().clone()), None, None),
            CredentialSecret::PrivateKey { key, passphrase } => (
                None,
                Some(key.expose_secret().clone()),
                passphrase.as_ref().map(|p| p.expose_secret().clone()),
            ),
        };
        Self {
            result: SUCCESS.into(),
            user_name: c.username.clone(),
            password,
            private_key,
            passphrase,
            target: target.map(TargetDto::from),
        }
    }

    /// Back to a [`Credential`] (the strings move into [`psm_core::vault::Secret`]s).
    pub fn into_credential(mut self) -> Result<Credential, psm_core::CoreError> {
        // Taken, not copied: each string moves into a Secret that wipes it.
        let secret = match (self.password.take(), self.private_key.take()) {
            (Some(p), None) => CredentialSecret::Password(p.into()),
            (None, Some(k)) => CredentialSecret::PrivateKey {
                key: k.into(),
                passphrase: self.passphrase.take().map(Into::into),
            },
            (mut password, mut key) => {
                use psm_core::vault::Zeroize as _;
                password.zeroize();
                key.zeroize();
                return Err(psm_core::CoreError::Unavailable {
                    message: "GetCredential answered without exactly one of Password and \
                              PrivateKey"
                        .into(),
                    source: None,
                });
            }
        };
        Ok(Credential {
            username: std::mem::take(&mut self.user_name),
            secret,
        })
    }
}

/// OpenSession (extension): a gateway opens a Connected session for a user who connected
/// to it directly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenSessionRequest {
    /// The session GUID the gateway chose.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// The gateway.
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
    /// The PSM user.
    #[serde(rename = "userName")]
    pub user_name: String,
    /// The target.
    pub target: String,
    /// `ssh` or `rdp`.
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// The checkout it runs under, if any.
    #[serde(
        rename = "checkOutId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// The user's client address as the gateway saw it (PSM's extension, for access
    /// windows' source networks; docs/governance.md). Without it, a window that names
    /// networks refuses the session.
    #[serde(
        rename = "clientAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub client_address: Option<std::net::IpAddr>,
}

/// A `PrivSession` row on the wire (the seed's column names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionDto {
    /// The GUID.
    #[serde(rename = "PrivSessionID")]
    #[schema(value_type = String, format = Uuid)]
    pub id: SessionId,
    /// The stage.
    #[serde(rename = "Stage")]
    #[schema(value_type = StageName)]
    pub stage: Stage,
    /// LastReported.
    #[serde(rename = "LastReported")]
    #[schema(value_type = String, format = DateTime)]
    pub last_reported: Timestamp,
    /// ProcessInstance.
    #[serde(rename = "ProcessInstance")]
    #[schema(value_type = Option<String>)]
    pub process_instance: Option<ProcessInstance>,
    /// StartTime.
    #[serde(rename = "StartTime")]
    #[schema(value_type = String, format = DateTime)]
    pub start_time: Timestamp,
    /// EndTime.
    #[serde(rename = "EndTime")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_time: Option<Timestamp>,
    /// TerminateSession.
    #[serde(rename = "TerminateSession")]
    pub terminate: bool,
    /// Why termination was asked for.
    #[serde(rename = "TerminateReason")]
    pub terminate_reason: Option<String>,
    /// The user.
    #[serde(rename = "UserName")]
    pub user: String,
    /// The target.
    #[serde(rename = "Target")]
    pub target: String,
    /// The protocol.
    #[serde(rename = "Protocol")]
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// The checkout.
    #[serde(rename = "CheckOutId")]
    #[schema(value_type = Option<String>)]
    pub checkout_id: Option<CheckoutId>,
    /// Attempts at the current pipeline step.
    #[serde(rename = "Attempts")]
    pub attempts: u32,
    /// recordingFormat.
    #[serde(rename = "RecordingFormat")]
    pub recording_format: Option<String>,
    /// sshLogsUploaded.
    #[serde(rename = "SshLogsUploaded")]
    pub ssh_logs_uploaded: bool,
    /// Lease expiry while leased.
    #[serde(rename = "LeaseExpires")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_expires: Option<Timestamp>,
    /// The latest fencing token.
    #[serde(rename = "FencingToken")]
    pub fencing_token: u64,
    /// Not claimable before this time (backoff).
    #[serde(rename = "RetryAt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retry_at: Option<Timestamp>,
    /// Why the last attempt failed.
    #[serde(rename = "FailureReason")]
    pub failure_reason: Option<String>,
    /// What the gateway committed to about its recording at EndSession.
    #[serde(
        rename = "RecordingCommitment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<RecordingCommitmentSchema>)]
    pub recording_commitment: Option<RecordingCommitment>,
    /// The row version.
    #[serde(rename = "Version")]
    pub version: u64,
}

impl From<&PrivSession> for SessionDto {
    fn from(s: &PrivSession) -> Self {
        Self {
            id: s.id,
            stage: s.stage,
            last_reported: s.last_reported,
            process_instance: s.process_instance.clone(),
            start_time: s.start_time,
            end_time: s.end_time,
            terminate: s.terminate,
            terminate_reason: s.terminate_reason.clone(),
            user: s.user.clone(),
            target: s.target.clone(),
            protocol: s.protocol,
            checkout_id: s.checkout_id.clone(),
            attempts: s.attempts,
            recording_format: s.recording_format.clone(),
            ssh_logs_uploaded: s.ssh_logs_uploaded,
            lease_expires: s.lease_expires,
            fencing_token: s.fencing_token.0,
            retry_at: s.retry_at,
            failure_reason: s.failure_reason.clone(),
            recording_commitment: s.recording_commitment,
            version: s.version,
        }
    }
}

impl From<SessionDto> for PrivSession {
    fn from(s: SessionDto) -> Self {
        Self {
            id: s.id,
            stage: s.stage,
            last_reported: s.last_reported,
            process_instance: s.process_instance,
            start_time: s.start_time,
            end_time: s.end_time,
            terminate: s.terminate,
            terminate_reason: s.terminate_reason,
            user: s.user,
            target: s.target,
            protocol: s.protocol,
            checkout_id: s.checkout_id,
            attempts: s.attempts,
            recording_format: s.recording_format,
            ssh_logs_uploaded: s.ssh_logs_uploaded,
            lease_expires: s.lease_expires,
            fencing_token: FencingToken(s.fencing_token),
            retry_at: s.retry_at,
            failure_reason: s.failure_reason,
            recording_commitment: s.recording_commitment,
            version: s.version,
        }
    }
}

/// The OpenSession answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenSessionResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// The new session.
    #[serde(rename = "Session")]
    pub session: SessionDto,
}

/// Checkout (extension): a just-in-time checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutRequestDto {
    /// The PSM user.
    #[serde(rename = "userName")]
    pub user_name: String,
    /// The target.
    pub target: String,
    /// How long, in minutes.
    #[serde(rename = "durationMinutes")]
    pub duration_minutes: u32,
}

/// A checkout on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutDto {
    /// The id.
    #[serde(rename = "CheckOutId")]
    #[schema(value_type = String)]
    pub id: CheckoutId,
    /// The user.
    #[serde(rename = "UserName")]
    pub user: String,
    /// The target.
    #[serde(rename = "Target")]
    pub target: String,
    /// When granted.
    #[serde(rename = "Created")]
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// When it runs out.
    #[serde(rename = "ExpiresAt")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: Timestamp,
    /// When it ended.
    #[serde(rename = "Ended", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended: Option<Timestamp>,
    /// `checked-in` or `expired`.
    #[serde(rename = "EndReason", default)]
    pub end_reason: Option<String>,
    /// Who asked for it.
    #[serde(rename = "CreatedBy")]
    pub created_by: String,
}

impl From<&Checkout> for CheckoutDto {
    fn from(c: &Checkout) -> Self {
        Self {
            id: c.id.clone(),
            user: c.user.clone(),
            target: c.target.clone(),
            created: c.created,
            expires: c.expires,
            ended: c.ended,
            end_reason: c.end_reason.map(|r| r.as_str().to_owned()),
            created_by: c.created_by.clone(),
        }
    }
}

impl TryFrom<CheckoutDto> for Checkout {
    type Error = psm_core::CoreError;
    fn try_from(c: CheckoutDto) -> Result<Self, Self::Error> {
        Ok(Self {
            id: c.id,
            user: c.user,
            target: c.target,
            created: c.created,
            expires: c.expires,
            ended: c.ended,
            end_reason: c
                .end_reason
                .as_deref()
                .map(|r| match r {
                    "checked-in" => Ok(psm_core::vault::CheckoutEnd::CheckedIn),
                    "expired" => Ok(psm_core::vault::CheckoutEnd::Expired),
                    _ => Err(psm_core::CoreError::Unavailable {
                        message: "checkout EndReason is neither checked-in nor expired".into(),
                        source: None,
                    }),
                })
                .transpose()?,
            created_by: c.created_by,
        })
    }
}

/// The Checkout answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// The checkout.
    #[serde(rename = "Checkout")]
    pub checkout: CheckoutDto,
}

/// TerminateSession (extension, admin): ask the gateway to close a live session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TerminateSessionRequest {
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session: SessionId,
    /// Why (shown to the user; at most 1024 bytes are kept).
    pub reason: String,
}

/// GetTarget / DeleteTarget (extension): `{"target":"web-01"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetRequest {
    /// The target's name.
    pub target: String,
}

/// PutTarget (extension, admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PutTargetRequest {
    /// Name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `ssh` or `rdp`.
    #[schema(value_type = String)]
    pub protocol: Protocol,
    /// SSH host-key pin.
    #[serde(rename = "hostKey", default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
}

/// SetCredential (extension, admin): exactly one of `password` and `privateKey`. The
/// answer never echoes it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetCredentialRequest {
    /// The target.
    pub target: String,
    /// The account.
    #[serde(rename = "userName")]
    pub user_name: String,
    /// Its password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Its private key.
    #[serde(
        rename = "privateKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub private_key: Option<String>,
    /// The key's passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for SetCredentialRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetCredentialRequest")
            .field("target", &self.target)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// A directory user as an admin writes it (CreateUser's body, extension): with the
/// password's argon2 PHC hash and the TOTP secret. No answer carries this shape: GetUser and
/// ListUsers answer [`UserInfoDto`]. `Debug` hides both secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserDto {
    /// The user name.
    #[serde(rename = "Name")]
    pub name: String,
    /// The argon2 password hash (PHC string), if the user has a password.
    #[serde(rename = "PasswordHash", default)]
    pub password_hash: Option<String>,
    /// Authorized SSH keys, one OpenSSH line each.
    #[serde(rename = "Keys", default)]
    pub keys: Vec<String>,
    /// The TOTP secret (base32), if the user has a second factor.
    #[serde(rename = "Totp", default)]
    pub totp: Option<String>,
    /// The user's roles.
    #[serde(rename = "Roles", default)]
    pub roles: Vec<String>,
    /// Whether the user is disabled.
    #[serde(rename = "Disabled", default)]
    pub disabled: bool,
}

impl std::fmt::Debug for UserDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDto")
            .field("name", &self.name)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "***"))
            .field("keys", &self.keys)
            .field("totp", &self.totp.as_ref().map(|_| "***"))
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// `{"name":"alice"}` (GetUser, DeleteUser).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserNameRequest {
    /// The user.
    pub name: String,
}

/// A directory user as GetUser and ListUsers answer it (extension): whether the user has
/// a password and a second factor, never the hash or the TOTP secret, which stay with the
/// control plane (VerifyUser checks them there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfoDto {
    /// The user name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Whether the user may log in by password.
    #[serde(rename = "HasPassword", default)]
    pub has_password: bool,
    /// Authorized SSH keys, one OpenSSH line each.
    #[serde(rename = "Keys", default)]
    pub keys: Vec<String>,
    /// Whether a TOTP code is required after the first factor.
    #[serde(rename = "HasTotp", default)]
    pub has_totp: bool,
    /// The user's roles.
    #[serde(rename = "Roles", default)]
    pub roles: Vec<String>,
    /// Whether the user is disabled.
    #[serde(rename = "Disabled", default)]
    pub disabled: bool,
}

/// GetUser's answer: the user, or null if there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GetUserResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// The user.
    #[serde(rename = "User")]
    pub user: Option<UserInfoDto>,
}

/// VerifyUser (extension, gateway): is this the user's password, and/or the user's current
/// TOTP code? At least one of the two; when both are given, both must be right. The control
/// plane checks them against the secrets it holds, with its own clock. `Debug` hides both.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyUserRequest {
    /// The user.
    pub name: String,
    /// The password to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The TOTP code to check (six digits).
    #[serde(rename = "totpCode", default, skip_serializing_if = "Option::is_none")]
    pub totp_code: Option<String>,
}

impl std::fmt::Debug for VerifyUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyUserRequest")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("totp_code", &self.totp_code.as_ref().map(|_| "***"))
            .finish()
    }
}

/// VerifyUser's answer: accepted or refused, never why (an unknown user, a disabled one, a
/// wrong password and a wrong code all read `false`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyUserResponse {
    /// `Success` (the call worked, whatever the verdict).
    #[serde(rename = "Result")]
    pub result: String,
    /// Whether every factor given was right.
    #[serde(rename = "Accepted")]
    pub accepted: bool,
}

/// A change to a user (UpdateUser): an absent field is left as it is; `null` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    /// The user.
    pub name: String,
    /// New password hash (PHC), or null to remove the password.
    #[serde(
        rename = "passwordHash",
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    #[schema(value_type = Option<String>)]
    pub password_hash: Option<Option<String>>,
    /// New TOTP secret (base32), or null to remove it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    #[schema(value_type = Option<String>)]
    pub totp: Option<Option<String>>,
    /// New roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Disable or enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `Option<Option<T>>` on the wire: absent = `None`, `null` = `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// AddUserKey / RemoveUserKey: `{"name":"alice","key":"ssh-ed25519 AAAA... alice@laptop"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserKeyRequest {
    /// The user.
    pub name: String,
    /// The OpenSSH public key line.
    pub key: String,
}

/// GrantRole / RevokeRole: `{"role":"ops","target":"web-01"}` (`*` for every target).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleGrantRequest {
    /// The role.
    pub role: String,
    /// A target name, or `*`.
    pub target: String,
}

/// TargetsOfRoles: `{"roles":["ops","dba"]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetsOfRolesRequest {
    /// The roles.
    pub roles: Vec<String>,
}

/// TargetsOfRoles' answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetsResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// Target names (or `*`), sorted, without duplicates.
    #[serde(rename = "Targets")]
    pub targets: Vec<String>,
}

/// The answer of the directory calls that report whether something existed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExistedResponse {
    /// `Success`.
    #[serde(rename = "Result")]
    pub result: String,
    /// Whether the user, key or grant existed.
    #[serde(rename = "Existed")]
    pub existed: bool,
}

impl UserDto {
    /// From a user to create (not disabled).
    pub fn from_new_user(u: &psm_core::directory::NewUser) -> Self {
        Self {
            name: u.name.to_string(),
            password_hash: u.password.as_ref().map(|p| p.as_phc().to_owned()),
            keys: u.keys.iter().map(ToString::to_string).collect(),
            totp: u.totp.as_ref().map(|t| t.as_base32().to_owned()),
            roles: u.roles.clone(),
            disabled: false,
        }
    }

    /// Back to a user to create, each field validated (`disabled` is not part of it: the
    /// caller applies it after creating).
    pub fn into_new_user(self) -> Result<psm_core::directory::NewUser, psm_core::CoreError> {
        use psm_core::directory::{AuthorizedKey, NewUser, PasswordHash, TotpSecret};
        Ok(NewUser {
            name: self.name.parse()?,
            password: self
                .password_hash
                .as_deref()
                .map(PasswordHash::from_phc)
                .transpose()?,
            keys: self
                .keys
                .iter()
                .map(|k| AuthorizedKey::parse(k))
                .collect::<Result<_, _>>()?,
            totp: self
                .totp
                .as_deref()
                .map(TotpSecret::from_base32)
                .transpose()?,
            roles: self.roles,
        })
    }
}

impl UserInfoDto {
    /// From a directory user: whether each factor is configured, never its secret.
    pub fn from_user(u: &psm_core::directory::DirectoryUser) -> Self {
        Self {
            name: u.name.to_string(),
            has_password: u.password.is_some(),
            keys: u.keys.iter().map(ToString::to_string).collect(),
            has_totp: u.totp.is_some(),
            roles: u.roles.clone(),
            disabled: u.disabled,
        }
    }

    /// Back to a directory user (each field validated) whose configured factors are
    /// [`Factor::Remote`](psm_core::directory::Factor::Remote): the control plane verifies
    /// them.
    pub fn into_user(self) -> Result<psm_core::directory::DirectoryUser, psm_core::CoreError> {
        use psm_core::directory::{AuthorizedKey, DirectoryUser, Factor};
        fn remote<T>(configured: bool) -> Factor<T> {
            if configured {
                Factor::Remote
            } else {
                Factor::Absent
            }
        }
        Ok(DirectoryUser {
            name: self.name.parse()?,
            password: remote(self.has_password),
            keys: self
                .keys
                .iter()
                .map(|k| AuthorizedKey::parse(k))
                .collect::<Result<_, _>>()?,
            totp: remote(self.has_totp),
            roles: self.roles,
            disabled: self.disabled,
        })
    }
}

/// What a registered signing key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignerKind {
    /// A gateway's key: it signs recordings.
    Gateway,
    /// An encoder's key: it signs seek indexes and recording-set manifests.
    Encoder,
}

impl SignerKind {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignerKind::Gateway => "gateway",
            SignerKind::Encoder => "encoder",
        }
    }
}

/// RegisterSigner (extension): a gateway or an encoder registers the public key it signs with,
/// under its process instance, in the control plane's registry, which its web UI trusts
/// (docs/threat-model.md M12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterSignerRequest {
    /// The process registering its key (a gateway may register only as itself).
    #[serde(rename = "processInstance")]
    #[schema(value_type = String, min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub process_instance: ProcessInstance,
    /// What the key signs: `gateway` (its role key must be the gateway's) or `encoder`.
    pub kind: SignerKind,
    /// The public key, as text: `psmr-signing-public:` and 64 hex digits.
    #[schema(pattern = "^psmr-signing-public:[0-9a-f]{64}$", max_length = 200)]
    pub key: String,
}
