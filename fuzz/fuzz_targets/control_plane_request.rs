//! psm-server's request-body parsing on arbitrary bytes: every request DTO of the
//! secureaccessgateway contract, and the error answer built from a parse failure (which must
//! never echo the body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_client::wire;

fn check<T: serde::de::DeserializeOwned>(data: &[u8]) {
    if let Err(e) = serde_json::from_slice::<T>(data) {
        let answer = psm_server::extract::describe_json_error(&e).0;
        assert!(answer.status_code == 400);
        // Bounded whatever the body: at most a short, escaped prefix of a name is quoted.
        assert!(answer.content.len() < 1024, "{}", answer.content.len());
    }
}

fuzz_target!(|data: &[u8]| {
    check::<wire::SessionRequest>(data);
    check::<wire::EndSessionRequest>(data);
    check::<wire::PollingRequest>(data);
    check::<wire::ClaimRequest>(data);
    check::<wire::CheckinRequest>(data);
    check::<wire::SaveScreenshotRequest>(data);
    check::<wire::RecordingStatusRequest>(data);
    check::<wire::UpdateRecordingStatusRequest>(data);
    check::<wire::JoinSessionRequest>(data);
    check::<wire::OpenSessionRequest>(data);
    check::<wire::SetCredentialRequest>(data);
    check::<wire::UpdateUserRequest>(data);
    check::<wire::UserDto>(data);
    // And the client's side: any answer body decodes or fails cleanly.
    let _ = serde_json::from_slice::<wire::ErrorBody>(data)
        .map(|b| psm_client::error::core_error("Fuzz", 400, b));
    let _ = serde_json::from_slice::<wire::ClaimResponse>(data);
    let _ = serde_json::from_slice::<wire::CredentialResponse>(data).map(|c| c.into_credential());
});
