//! The OpenAPI document, generated from the handlers and DTOs, served at
//! `/api/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::{claim, directory, save, session, utility, vault};
use psm_client::wire;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "PSM secureaccessgateway",
        description = "The control-plane contract between PSM's gateways, encoders and uploaders \
                       and the PAM product that owns sessions and credentials. Endpoints tagged \
                       `extensions` are PSM's additions to the contract; every other endpoint \
                       keeps the contract's names and shapes. See docs/api.md."
    ),
    paths(
        session::update_session, session::end_session, session::polling, session::open_session,
        session::terminate_session,
        claim::encoder_claim, claim::uploder_claim, claim::get_recording_process_status,
        claim::update_recording_process_status, claim::fail_recording_process,
        save::save_clipboard, save::save_screenshot, save::save_session_recording,
        save::save_key_strokes,
        vault::checkin, vault::get_remaining_minutes, vault::get_credential,
        vault::get_pam_settings, vault::checkout, vault::get_target, vault::list_targets,
        vault::put_target, vault::delete_target, vault::set_credential,
        directory::get_user, directory::list_users, directory::create_user,
        directory::update_user, directory::delete_user, directory::add_user_key,
        directory::remove_user_key, directory::grant_role, directory::revoke_role,
        directory::targets_of_roles, directory::verify_user,
        utility::get_user_platform, utility::get_ip, utility::health, utility::ready,
        crate::routes::signers::register_signer,
    ),
    components(schemas(wire::ErrorBody, wire::ErrorDetail, wire::StageName)),
    modifiers(&CommonAnswers)
)]
pub struct ApiDoc;

/// The whole document: [`ApiDoc`], the live-control paths, and the common error answers
/// added to every API operation (after the merge, so the merged paths get them too).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::routes::live::LiveApiDoc::openapi());
    CommonAnswers.modify(&mut doc);
    doc
}

/// Adds the bearer-key scheme and, to every API operation, the error answers any of them
/// can give (the contract's error shape).
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("One API key per role, generated on first start"))
                    .build(),
            ),
        );
        let errors = [
            (
                "400",
                "malformed request (bad JSON, wrong types, missing fields, bad values)",
            ),
            ("401", "no or unknown API key"),
            ("403", "the caller's role or process may not do this"),
            ("404", "unknown session, target, checkout or endpoint"),
            (
                "409",
                "the session is not in a state that allows this (stage, owner, fencing token)",
            ),
            ("413", "the body is larger than the server's limit"),
            ("500", "internal error (details in the server's log)"),
            ("501", "not supported by this control plane"),
            ("503", "contended or database unavailable; retry"),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with(wire::PREFIX) {
                continue;
            }
            for op in [item.get.as_mut(), item.post.as_mut(), item.put.as_mut()]
                .into_iter()
                .flatten()
            {
                for (code, description) in errors {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(description)
                                    .content(
                                        "application/json",
                                        Content::new(Some(RefOr::Ref(
                                            utoipa::openapi::Ref::from_schema_name("ErrorBody"),
                                        ))),
                                    )
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// Every status an operation can answer is in the document: schemathesis (scripts/test.d/
    /// schemathesis) fails an undocumented one, as GetCredential's rate limit once was.
    #[test]
    fn the_rate_limited_get_credential_answer_is_documented() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let op = &doc["paths"]["/api/services/v1/secureaccessgateway/GetCredential"]["post"];
        let codes: Vec<&str> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for code in ["200", "400", "401", "403", "404", "429", "503"] {
            assert!(codes.contains(&code), "{code} missing from {codes:?}");
        }
    }
}
