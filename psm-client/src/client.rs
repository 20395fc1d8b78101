//! [`Client`]: one typed method per endpoint, with timeouts, bounded answers and retries
//! (with backoff) for the calls that are safe to repeat.

use std::time::Duration;

use psm_core::vault::Secret;
use psm_core::{CheckoutId, ProcessInstance, SessionId};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::wire::{self, path};

/// Largest answer read, in bytes (GetCredential with a large key is a few KiB; listings of
/// thousands of targets fit).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How to reach the control plane.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://host:port` (or `http://` to a loopback address; see
    /// [`allow_plain_http`](Self::allow_plain_http)).
    pub base_url: String,
    /// The caller's API key, sent as `Authorization: Bearer KEY`.
    pub api_key: Option<Secret<String>>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Retries of an idempotent call after a transient failure (0: none).
    pub retries: u32,
    /// First backoff; doubled after each retry, up to [`retry_max`](Self::retry_max).
    pub retry_base: Duration,
    /// Longest backoff.
    pub retry_max: Duration,
    /// A CA certificate (PEM) to trust for the server, in addition to the system's roots.
    pub root_ca_pem: Option<Vec<u8>>,
    /// For mTLS: the client's certificate chain and private key, PEM, concatenated.
    pub client_identity_pem: Option<Secret<Vec<u8>>>,
    /// Allow `http://` to a non-loopback host (credentials and keys would cross the network
    /// in clear: only for a trusted network behind a TLS-terminating proxy).
    pub allow_plain_http: bool,
}

impl ClientConfig {
    /// Defaults for `base_url`: 10 s timeout, 3 retries from 100 ms to 2 s.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            root_ca_pem: None,
            client_identity_pem: None,
            allow_plain_http: false,
        }
    }

    /// With an API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key.into()));
        self
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The typed client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
    config: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("authenticated", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client; checks the URL and the TLS material.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| ClientError::Config(format!("base URL {base:?}: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" => {
                let host = url.host_str().unwrap_or("");
                if !is_loopback_host(host) && !config.allow_plain_http {
                    return Err(ClientError::Config(format!(
                        "plain http to {host} would send keys and credentials in clear; use \
                         https, or set allow_plain_http"
                    )));
                }
            }
            other => {
                return Err(ClientError::Config(format!(
                    "scheme {other:?} is not http or https"
                )));
            }
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("psm-client/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.root_ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::Config(format!("root CA: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some(pem) = &config.client_identity_pem {
            let id = reqwest::Identity::from_pem(pem.expose_secret()).map_err(|_| {
                ClientError::Config(
                    "client identity: not a PEM certificate chain plus private key".into(),
                )
            })?;
            builder = builder.identity(id);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        let auth = config
            .api_key
            .as_ref()
            .map(|k| format!("Bearer {}", k.expose_secret()));
        Ok(Self {
            http,
            base,
            auth,
            config,
        })
    }

    /// The server root.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .config
            .retry_base
            .saturating_mul(1u32 << retry.min(16))
            .min(self.config.retry_max);
        // Jitter (0-25%) so many clients retrying after one blip do not stay in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        exp + exp.mul_f64(f64::from(nanos % 250) / 1000.0)
    }

    async fn send_once(
        &self,
        method: &Method,
        endpoint: &'static str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(auth) = &self.auth {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let transport = |source| ClientError::Transport { endpoint, source };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ClientError::Decode {
                    endpoint,
                    status: status.as_u16(),
                    reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((status, buf))
    }

    /// Sends a request and decodes the answer; retries transient failures when
    /// `idempotent`.
    async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &'static str,
        path: &str,
        body: Option<&Req>,
        idempotent: bool,
    ) -> Result<Resp, ClientError> {
        self.call_with(method, endpoint, path, body, idempotent, None)
            .await
    }

    /// As `call`, with this request's own timeout (a long poll).
    pub(crate) async fn call_with<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &'static str,
        path: &str,
        body: Option<&Req>,
        idempotent: bool,
        timeout: Option<Duration>,
    ) -> Result<Resp, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Config(format!("encoding the {endpoint} request: {e}")))?;
        let mut retry = 0;
        loop {
            let result = self
                .send_once(&method, endpoint, path, body.as_deref(), timeout)
                .await
                .and_then(|(status, bytes)| decode(endpoint, status, &bytes));
            match result {
                Err(e) if idempotent && retry < self.config.retries && e.is_transient() => {
                    let wait = self.backoff(retry);
                    tracing::debug!(endpoint, retry, wait_ms = wait.as_millis() as u64,
                        error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn post<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
        body: &Req,
        idempotent: bool,
    ) -> Result<Resp, ClientError> {
        self.call(Method::POST, endpoint, path, Some(body), idempotent)
            .await
    }

    async fn get<Resp: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
    ) -> Result<Resp, ClientError> {
        self.call::<(), Resp>(Method::GET, endpoint, path, None, true)
            .await
    }

    /// UpdateSession.
    pub async fn update_session(
        &self,
        session: SessionId,
    ) -> Result<wire::ResultResponse, ClientError> {
        let body = wire::SessionRequest { session };
        self.post("UpdateSession", path::UPDATE_SESSION, &body, true)
            .await
    }

    /// EndSession (idempotent: ending an ended session succeeds).
    pub async fn end_session(
        &self,
        session: SessionId,
        process_instance: &ProcessInstance,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.end_session_committed(session, process_instance, None)
            .await
    }

    /// EndSession with the gateway's commitment to its recording (extension).
    pub async fn end_session_committed(
        &self,
        session: SessionId,
        process_instance: &ProcessInstance,
        recording: Option<&psm_core::RecordingCommitment>,
    ) -> Result<wire::ResultResponse, ClientError> {
        let body = wire::EndSessionRequest {
            session,
            process_instance: process_instance.clone(),
            recording: recording.copied(),
        };
        self.post("EndSession", path::END_SESSION, &body, true)
            .await
    }

    /// EncoderClaim. Never retried (a lost answer leaves the claim to expire and be
    /// requeued by the watchdog).
    pub async fn encoder_claim(
        &self,
        process_instance: &ProcessInstance,
        limit: Option<u32>,
    ) -> Result<wire::ClaimResponse, ClientError> {
        self.encoder_claim_among(process_instance, limit, None)
            .await
    }

    /// EncoderClaim among the named sessions only (PSM's `privSessionIds` extension; `None`:
    /// any). Never retried.
    pub async fn encoder_claim_among(
        &self,
        process_instance: &ProcessInstance,
        limit: Option<u32>,
        among: Option<&[SessionId]>,
    ) -> Result<wire::ClaimResponse, ClientError> {
        let body = wire::ClaimRequest {
            process_instance: process_instance.clone(),
            limit,
            among: among.map(<[SessionId]>::to_vec),
        };
        self.post("EncoderClaim", path::ENCODER_CLAIM, &body, false)
            .await
    }

    /// UploderClaim (sic). Never retried.
    pub async fn uploder_claim(
        &self,
        process_instance: &ProcessInstance,
        limit: Option<u32>,
    ) -> Result<wire::ClaimResponse, ClientError> {
        self.uploder_claim_among(process_instance, limit, None)
            .await
    }

    /// UploderClaim (sic) among the named sessions only (see
    /// [`Client::encoder_claim_among`]). Never retried.
    pub async fn uploder_claim_among(
        &self,
        process_instance: &ProcessInstance,
        limit: Option<u32>,
        among: Option<&[SessionId]>,
    ) -> Result<wire::ClaimResponse, ClientError> {
        let body = wire::ClaimRequest {
            process_instance: process_instance.clone(),
            limit,
            among: among.map(<[SessionId]>::to_vec),
        };
        self.post("UploderClaim", path::UPLODER_CLAIM, &body, false)
            .await
    }

    /// Checkin (idempotent).
    pub async fn checkin(
        &self,
        checkout: &CheckoutId,
    ) -> Result<wire::CheckinResponse, ClientError> {
        let body = wire::CheckinRequest {
            checkout_id: checkout.clone(),
        };
        self.post("Checkin", path::CHECKIN, &body, true).await
    }

    /// Polling.
    pub async fn polling(
        &self,
        request: &wire::PollingRequest,
    ) -> Result<wire::PollingResponse, ClientError> {
        self.post("Polling", path::POLLING, request, true).await
    }

    /// saveclipboard.
    pub async fn save_clipboard(
        &self,
        session: SessionId,
        text: impl Into<String>,
    ) -> Result<wire::ResultResponse, ClientError> {
        let body = wire::SaveClipboardRequest {
            text: text.into(),
            session,
        };
        self.post("saveclipboard", path::SAVE_CLIPBOARD, &body, false)
            .await
    }

    /// savescreenshot: `image` is a `data:image/png;base64,...` URL or bare base64.
    pub async fn save_screenshot(
        &self,
        session: SessionId,
        image: impl Into<String>,
    ) -> Result<wire::ResultResponse, ClientError> {
        let body = wire::SaveScreenshotRequest {
            image: image.into(),
            session,
        };
        self.post("savescreenshot", path::SAVE_SCREENSHOT, &body, false)
            .await
    }

    /// savesessionrecording: `recording` is base64.
    pub async fn save_session_recording(
        &self,
        session: SessionId,
        recording: impl Into<String>,
    ) -> Result<wire::ResultResponse, ClientError> {
        let body = wire::SaveRecordingRequest {
            recording: recording.into(),
            session,
        };
        self.post("savesessionrecording", path::SAVE_RECORDING, &body, false)
            .await
    }

    /// SaveKeyStrokes.
    pub async fn save_key_strokes(
        &self,
        session: SessionId,
        key_strokes: impl Into<String>,
    ) -> Result<wire::ResultResponse, ClientError> {
        let body = wire::SaveKeyStrokesRequest {
            key_strokes: key_strokes.into(),
            session,
        };
        self.post("SaveKeyStrokes", path::SAVE_KEYSTROKES, &body, false)
            .await
    }

    /// GetRecordingProcessStatus.
    pub async fn get_recording_process_status(
        &self,
        sessions: &[SessionId],
    ) -> Result<Vec<wire::RecordingStatusEntry>, ClientError> {
        let body = wire::RecordingStatusRequest {
            priv_session_ids: sessions.to_vec(),
        };
        self.post(
            "GetRecordingProcessStatus",
            path::GET_RECORDING_STATUS,
            &body,
            true,
        )
        .await
    }

    /// UpdateRecordingProcessStatus (PUT). Not retried: a completion that went through
    /// but whose answer was lost would be refused the second time.
    pub async fn update_recording_process_status(
        &self,
        request: &wire::UpdateRecordingStatusRequest,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.call(
            Method::PUT,
            "UpdateRecordingProcessStatus",
            path::UPDATE_RECORDING_STATUS,
            Some(request),
            false,
        )
        .await
    }

    /// JoinSession: the connection string.
    pub async fn join_session(
        &self,
        request: &wire::JoinSessionRequest,
    ) -> Result<String, ClientError> {
        self.post("JoinSession", path::JOIN_SESSION, request, true)
            .await
    }

    /// GetPAMSettings.
    pub async fn get_pam_settings(&self) -> Result<wire::PamSettingsDto, ClientError> {
        self.get("GetPAMSettings", path::GET_PAM_SETTINGS).await
    }

    /// GetUserPlatform (from this client's User-Agent).
    pub async fn get_user_platform(&self) -> Result<wire::UserPlatformResponse, ClientError> {
        self.get("GetUserPlatform", path::GET_USER_PLATFORM).await
    }

    /// GetIP.
    pub async fn get_ip(&self) -> Result<wire::IpResponse, ClientError> {
        self.get("GetIP", path::GET_IP).await
    }

    /// GetRemainingMinutesForCheckout.
    pub async fn get_remaining_minutes_for_checkout(
        &self,
        checkout: &CheckoutId,
    ) -> Result<wire::RemainingMinutesResponse, ClientError> {
        let body = wire::CheckinRequest {
            checkout_id: checkout.clone(),
        };
        self.post(
            "GetRemainingMinutesForCheckout",
            path::GET_REMAINING_MINUTES,
            &body,
            true,
        )
        .await
    }

    /// GetCredential. The answer holds the secret: convert it with
    /// [`CredentialResponse::into_credential`](wire::CredentialResponse::into_credential).
    pub async fn get_credential(
        &self,
        session: SessionId,
        process_instance: &ProcessInstance,
    ) -> Result<wire::CredentialResponse, ClientError> {
        let body = wire::CredentialRequest {
            session,
            process_instance: process_instance.clone(),
        };
        self.post("GetCredential", path::GET_CREDENTIAL, &body, true)
            .await
    }

    /// OpenSession (extension). Not retried (a repeat would be `session-exists`).
    pub async fn open_session(
        &self,
        request: &wire::OpenSessionRequest,
    ) -> Result<wire::OpenSessionResponse, ClientError> {
        self.post("OpenSession", path::OPEN_SESSION, request, false)
            .await
    }

    /// Checkout (extension). Not retried (a repeat would grant a second checkout).
    pub async fn checkout(
        &self,
        request: &wire::CheckoutRequestDto,
    ) -> Result<wire::CheckoutResponse, ClientError> {
        self.post("Checkout", path::CHECKOUT, request, false).await
    }

    /// FailRecordingProcess (extension). Not retried.
    pub async fn fail_recording_process(
        &self,
        request: &wire::FailRecordingRequest,
    ) -> Result<wire::FailRecordingResponse, ClientError> {
        self.post("FailRecordingProcess", path::FAIL_RECORDING, request, false)
            .await
    }

    /// TerminateSession (extension, admin).
    pub async fn terminate_session(
        &self,
        request: &wire::TerminateSessionRequest,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.post("TerminateSession", path::TERMINATE_SESSION, request, true)
            .await
    }

    /// GetTarget (extension).
    pub async fn get_target(&self, name: &str) -> Result<wire::TargetDto, ClientError> {
        let body = wire::TargetRequest {
            target: name.to_owned(),
        };
        self.post("GetTarget", path::GET_TARGET, &body, true).await
    }

    /// ListTargets (extension, admin).
    pub async fn list_targets(&self) -> Result<Vec<wire::TargetDto>, ClientError> {
        self.get("ListTargets", path::LIST_TARGETS).await
    }

    /// PutTarget (extension, admin; idempotent).
    pub async fn put_target(
        &self,
        request: &wire::PutTargetRequest,
    ) -> Result<wire::TargetDto, ClientError> {
        self.call(
            Method::PUT,
            "PutTarget",
            path::PUT_TARGET,
            Some(request),
            true,
        )
        .await
    }

    /// DeleteTarget (extension, admin).
    pub async fn delete_target(&self, name: &str) -> Result<wire::ResultResponse, ClientError> {
        let body = wire::TargetRequest {
            target: name.to_owned(),
        };
        self.post("DeleteTarget", path::DELETE_TARGET, &body, false)
            .await
    }

    /// SetCredential (extension, admin; idempotent).
    pub async fn set_credential(
        &self,
        request: &wire::SetCredentialRequest,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.call(
            Method::PUT,
            "SetCredential",
            path::SET_CREDENTIAL,
            Some(request),
            true,
        )
        .await
    }

    /// GetUser (extension, directory): the user without its password hash or TOTP secret.
    pub async fn get_user(&self, name: &str) -> Result<wire::GetUserResponse, ClientError> {
        let body = wire::UserNameRequest {
            name: name.to_owned(),
        };
        self.post("GetUser", path::GET_USER, &body, true).await
    }

    /// ListUsers (extension, directory, admin): without password hashes or TOTP secrets.
    pub async fn list_users(&self) -> Result<Vec<wire::UserInfoDto>, ClientError> {
        self.get("ListUsers", path::LIST_USERS).await
    }

    /// CreateUser (extension, directory, admin).
    pub async fn create_user(
        &self,
        user: &wire::UserDto,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.post("CreateUser", path::CREATE_USER, user, false)
            .await
    }

    /// UpdateUser (extension, directory, admin; idempotent).
    pub async fn update_user(
        &self,
        update: &wire::UpdateUserRequest,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.post("UpdateUser", path::UPDATE_USER, update, true)
            .await
    }

    /// DeleteUser (extension, directory, admin).
    pub async fn delete_user(&self, name: &str) -> Result<wire::ExistedResponse, ClientError> {
        let body = wire::UserNameRequest {
            name: name.to_owned(),
        };
        self.post("DeleteUser", path::DELETE_USER, &body, false)
            .await
    }

    /// AddUserKey (extension, directory, admin; idempotent).
    pub async fn add_user_key(
        &self,
        request: &wire::UserKeyRequest,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.post("AddUserKey", path::ADD_USER_KEY, request, true)
            .await
    }

    /// RemoveUserKey (extension, directory, admin).
    pub async fn remove_user_key(
        &self,
        request: &wire::UserKeyRequest,
    ) -> Result<wire::ExistedResponse, ClientError> {
        self.post("RemoveUserKey", path::REMOVE_USER_KEY, request, false)
            .await
    }

    /// GrantRole (extension, directory, admin; idempotent).
    pub async fn grant_role(
        &self,
        request: &wire::RoleGrantRequest,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.post("GrantRole", path::GRANT_ROLE, request, true)
            .await
    }

    /// RevokeRole (extension, directory, admin).
    pub async fn revoke_role(
        &self,
        request: &wire::RoleGrantRequest,
    ) -> Result<wire::ExistedResponse, ClientError> {
        self.post("RevokeRole", path::REVOKE_ROLE, request, false)
            .await
    }

    /// VerifyUser (extension, directory, gateway): whether the password and/or TOTP code
    /// are the user's, checked by the control plane. Never retried: a lost answer fails
    /// that login attempt rather than spending another guess.
    pub async fn verify_user(
        &self,
        request: &wire::VerifyUserRequest,
    ) -> Result<wire::VerifyUserResponse, ClientError> {
        self.post("VerifyUser", path::VERIFY_USER, request, false)
            .await
    }

    /// RegisterSigner (extension): registers the public key this process signs with.
    pub async fn register_signer(
        &self,
        request: &wire::RegisterSignerRequest,
    ) -> Result<wire::ResultResponse, ClientError> {
        self.post("RegisterSigner", path::REGISTER_SIGNER, request, true)
            .await
    }

    /// TargetsOfRoles (extension, directory).
    pub async fn targets_of_roles(
        &self,
        roles: &[String],
    ) -> Result<wire::TargetsResponse, ClientError> {
        let body = wire::TargetsOfRolesRequest {
            roles: roles.to_vec(),
        };
        self.post("TargetsOfRoles", path::TARGETS_OF_ROLES, &body, true)
            .await
    }

    /// Health: whether the server process answers.
    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.get("health", path::HEALTH).await
    }

    /// Readiness: whether the server can serve (its database answers).
    pub async fn ready(&self) -> Result<serde_json::Value, ClientError> {
        self.get("readiness", path::READY).await
    }
}

fn decode<Resp: DeserializeOwned>(
    endpoint: &'static str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<Resp, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            endpoint,
            status: status.as_u16(),
            // serde's message can quote values from the body: keep only where it broke.
            reason: format!(
                "not the expected JSON ({:?} at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        });
    }
    let body =
        serde_json::from_slice::<wire::ErrorBody>(bytes).unwrap_or_else(|_| wire::ErrorBody {
            status_code: status.as_u16(),
            content: format!(
                "{} (the answer was not in the contract's error shape)",
                status.canonical_reason().unwrap_or("error")
            ),
            code: None,
            detail: None,
        });
    Err(ClientError::Api {
        endpoint,
        status: status.as_u16(),
        body: Box::new(body),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(Client::new(ClientConfig::new("http://127.0.0.1:1")).is_ok());
        assert!(Client::new(ClientConfig::new("http://[::1]:1")).is_ok());
        assert!(Client::new(ClientConfig::new("http://localhost:1")).is_ok());
        let err = Client::new(ClientConfig::new("http://10.0.0.1:1")).unwrap_err();
        assert!(err.to_string().contains("in clear"), "{err}");
        let mut c = ClientConfig::new("http://10.0.0.1:1");
        c.allow_plain_http = true;
        assert!(Client::new(c).is_ok());
        assert!(Client::new(ClientConfig::new("ftp://x")).is_err());
    }

    #[test]
    fn debug_hides_the_api_key() {
        let c =
            Client::new(ClientConfig::new("http://127.0.0.1:1").with_api_key("k-123456")).unwrap();
        assert!(!format!("{c:?}").contains("k-123456"));
    }
}
