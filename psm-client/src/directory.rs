//! [`HttpDirectory`]: psm-core's [`UserDirectory`](psm_core::directory::UserDirectory) over the control plane's directory
//! extension endpoints, so a gateway on another host authenticates users against the
//! control plane's directory exactly as an in-process one does.
//!
//! Password hashes and TOTP secrets never come over the wire: the users it reads carry
//! [`Factor::Remote`](psm_core::directory::Factor::Remote) for each configured factor, and
//! [`verify_password`](DirectoryLookup::verify_password) and
//! [`verify_totp`](DirectoryLookup::verify_totp) ask the control plane (VerifyUser).

use async_trait::async_trait;
use psm_core::CoreError;
use psm_core::directory::{
    AuthorizedKey, DirectoryAdmin, DirectoryLookup, DirectoryUser, NewUser, UserUpdate,
};
use psm_core::vault::Secret;

use crate::client::Client;
use crate::wire;

/// A [`UserDirectory`](psm_core::directory::UserDirectory) that speaks HTTP (gateway key for reads and verification, admin key
/// for writes and listing).
#[derive(Clone, Debug)]
pub struct HttpDirectory {
    client: Client,
}

impl HttpDirectory {
    /// Over a configured [`Client`].
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn core(e: crate::ClientError) -> CoreError {
    e.into_core()
}

#[async_trait]
impl DirectoryLookup for HttpDirectory {
    async fn user(&self, name: &str) -> Result<Option<DirectoryUser>, CoreError> {
        let resp = self.client.get_user(name).await.map_err(core)?;
        resp.user.map(wire::UserInfoDto::into_user).transpose()
    }

    /// Asks the control plane (VerifyUser), which holds the hash.
    async fn verify_password(
        &self,
        name: &str,
        password: &Secret<String>,
    ) -> Result<bool, CoreError> {
        let request = wire::VerifyUserRequest {
            name: name.to_owned(),
            password: Some(password.expose_secret().clone()),
            totp_code: None,
        };
        Ok(self
            .client
            .verify_user(&request)
            .await
            .map_err(core)?
            .accepted)
    }

    /// Asks the control plane (VerifyUser), which holds the secret and judges the code by
    /// its own clock (`unix_seconds` is not sent).
    async fn verify_totp(
        &self,
        name: &str,
        code: &str,
        _unix_seconds: u64,
    ) -> Result<bool, CoreError> {
        let request = wire::VerifyUserRequest {
            name: name.to_owned(),
            password: None,
            totp_code: Some(code.to_owned()),
        };
        Ok(self
            .client
            .verify_user(&request)
            .await
            .map_err(core)?
            .accepted)
    }

    async fn targets_of_roles(&self, roles: &[String]) -> Result<Vec<String>, CoreError> {
        Ok(self
            .client
            .targets_of_roles(roles)
            .await
            .map_err(core)?
            .targets)
    }
}

#[async_trait]
impl DirectoryAdmin for HttpDirectory {
    async fn users(&self) -> Result<Vec<DirectoryUser>, CoreError> {
        self.client
            .list_users()
            .await
            .map_err(core)?
            .into_iter()
            .map(wire::UserInfoDto::into_user)
            .collect()
    }

    async fn create_user(&self, user: &NewUser) -> Result<(), CoreError> {
        let dto = wire::UserDto::from_new_user(user);
        self.client.create_user(&dto).await.map(drop).map_err(core)
    }

    async fn update_user(&self, name: &str, update: &UserUpdate) -> Result<(), CoreError> {
        let req = wire::UpdateUserRequest {
            name: name.to_owned(),
            password_hash: update
                .password
                .as_ref()
                .map(|p| p.as_ref().map(|h| h.as_phc().to_owned())),
            totp: update
                .totp
                .as_ref()
                .map(|t| t.as_ref().map(|s| s.as_base32().to_owned())),
            roles: update.roles.clone(),
            disabled: update.disabled,
        };
        self.client.update_user(&req).await.map(drop).map_err(core)
    }

    async fn delete_user(&self, name: &str) -> Result<bool, CoreError> {
        Ok(self.client.delete_user(name).await.map_err(core)?.existed)
    }

    async fn add_key(&self, name: &str, key: &AuthorizedKey) -> Result<(), CoreError> {
        self.client
            .add_user_key(&wire::UserKeyRequest {
                name: name.to_owned(),
                key: key.to_string(),
            })
            .await
            .map(drop)
            .map_err(core)
    }

    async fn remove_key(&self, name: &str, key: &AuthorizedKey) -> Result<bool, CoreError> {
        Ok(self
            .client
            .remove_user_key(&wire::UserKeyRequest {
                name: name.to_owned(),
                key: key.to_string(),
            })
            .await
            .map_err(core)?
            .existed)
    }

    async fn grant(&self, role: &str, target: &str) -> Result<(), CoreError> {
        self.client
            .grant_role(&wire::RoleGrantRequest {
                role: role.to_owned(),
                target: target.to_owned(),
            })
            .await
            .map(drop)
            .map_err(core)
    }

    async fn revoke(&self, role: &str, target: &str) -> Result<bool, CoreError> {
        Ok(self
            .client
            .revoke_role(&wire::RoleGrantRequest {
                role: role.to_owned(),
                target: target.to_owned(),
            })
            .await
            .map_err(core)?
            .existed)
    }
}
