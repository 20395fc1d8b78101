//! Who is calling: roles, principals, API keys (compared in constant time), and the table
//! of which role may call which endpoint.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use psm_core::vault::Secret;
use rand::TryRngCore;
use subtle::ConstantTimeEq;

use crate::error::ServerError;

/// The role of a calling process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A gateway: opens, heartbeats and ends sessions, fetches credentials for them.
    Gateway,
    /// An encoder: claims ended sessions and reports on them.
    Encoder,
    /// An uploader: claims encoded sessions and reports on them.
    Uploader,
    /// An operator: targets, credentials, checkouts, terminate, join.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Gateway, Role::Encoder, Role::Uploader, Role::Admin];

    /// Lower-case name (also the key file's name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Encoder => "encoder",
            Role::Uploader => "uploader",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ServerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ServerError::Config(format!("{s:?} is not a role")))
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its name (the audit trail's actor).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Every endpoint, for the authorisation table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Endpoint {
    UpdateSession,
    EndSession,
    EncoderClaim,
    UploderClaim,
    Checkin,
    Polling,
    SaveClipboard,
    SaveScreenshot,
    SaveSessionRecording,
    SaveKeyStrokes,
    GetRecordingProcessStatus,
    UpdateRecordingProcessStatus,
    JoinSession,
    GetPamSettings,
    GetUserPlatform,
    GetIp,
    GetRemainingMinutesForCheckout,
    GetCredential,
    OpenSession,
    Checkout,
    FailRecordingProcess,
    TerminateSession,
    GetTarget,
    ListTargets,
    PutTarget,
    DeleteTarget,
    SetCredential,
    GetUser,
    ListUsers,
    CreateUser,
    UpdateUser,
    DeleteUser,
    AddUserKey,
    RemoveUserKey,
    GrantRole,
    RevokeRole,
    TargetsOfRoles,
    VerifyUser,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 38] = [
        Endpoint::UpdateSession,
        Endpoint::EndSession,
        Endpoint::EncoderClaim,
        Endpoint::UploderClaim,
        Endpoint::Checkin,
        Endpoint::Polling,
        Endpoint::SaveClipboard,
        Endpoint::SaveScreenshot,
        Endpoint::SaveSessionRecording,
        Endpoint::SaveKeyStrokes,
        Endpoint::GetRecordingProcessStatus,
        Endpoint::UpdateRecordingProcessStatus,
        Endpoint::JoinSession,
        Endpoint::GetPamSettings,
        Endpoint::GetUserPlatform,
        Endpoint::GetIp,
        Endpoint::GetRemainingMinutesForCheckout,
        Endpoint::GetCredential,
        Endpoint::OpenSession,
        Endpoint::Checkout,
        Endpoint::FailRecordingProcess,
        Endpoint::TerminateSession,
        Endpoint::GetTarget,
        Endpoint::ListTargets,
        Endpoint::PutTarget,
        Endpoint::DeleteTarget,
        Endpoint::SetCredential,
        Endpoint::GetUser,
        Endpoint::ListUsers,
        Endpoint::CreateUser,
        Endpoint::UpdateUser,
        Endpoint::DeleteUser,
        Endpoint::AddUserKey,
        Endpoint::RemoveUserKey,
        Endpoint::GrantRole,
        Endpoint::RevokeRole,
        Endpoint::TargetsOfRoles,
        Endpoint::VerifyUser,
    ];

    /// The contract name (the last path segment).
    pub const fn name(self) -> &'static str {
        match self {
            Endpoint::UpdateSession => "UpdateSession",
            Endpoint::EndSession => "EndSession",
            Endpoint::EncoderClaim => "EncoderClaim",
            Endpoint::UploderClaim => "UploderClaim",
            Endpoint::Checkin => "Checkin",
            Endpoint::Polling => "Polling",
            Endpoint::SaveClipboard => "saveclipboard",
            Endpoint::SaveScreenshot => "savescreenshot",
            Endpoint::SaveSessionRecording => "savesessionrecording",
            Endpoint::SaveKeyStrokes => "SaveKeyStrokes",
            Endpoint::GetRecordingProcessStatus => "GetRecordingProcessStatus",
            Endpoint::UpdateRecordingProcessStatus => "UpdateRecordingProcessStatus",
            Endpoint::JoinSession => "JoinSession",
            Endpoint::GetPamSettings => "GetPAMSettings",
            Endpoint::GetUserPlatform => "GetUserPlatform",
            Endpoint::GetIp => "GetIP",
            Endpoint::GetRemainingMinutesForCheckout => "GetRemainingMinutesForCheckout",
            Endpoint::GetCredential => "GetCredential",
            Endpoint::OpenSession => "OpenSession",
            Endpoint::Checkout => "Checkout",
            Endpoint::FailRecordingProcess => "FailRecordingProcess",
            Endpoint::TerminateSession => "TerminateSession",
            Endpoint::GetTarget => "GetTarget",
            Endpoint::ListTargets => "ListTargets",
            Endpoint::PutTarget => "PutTarget",
            Endpoint::DeleteTarget => "DeleteTarget",
            Endpoint::SetCredential => "SetCredential",
            Endpoint::GetUser => "GetUser",
            Endpoint::ListUsers => "ListUsers",
            Endpoint::CreateUser => "CreateUser",
            Endpoint::UpdateUser => "UpdateUser",
            Endpoint::DeleteUser => "DeleteUser",
            Endpoint::AddUserKey => "AddUserKey",
            Endpoint::RemoveUserKey => "RemoveUserKey",
            Endpoint::GrantRole => "GrantRole",
            Endpoint::RevokeRole => "RevokeRole",
            Endpoint::TargetsOfRoles => "TargetsOfRoles",
            Endpoint::VerifyUser => "VerifyUser",
        }
    }

    /// The roles that may call it. The one place authorisation is written down
    /// (`docs/api.md` prints this table).
    pub const fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Endpoint::UpdateSession
            | Endpoint::EndSession
            | Endpoint::OpenSession
            | Endpoint::SaveClipboard
            | Endpoint::SaveScreenshot
            | Endpoint::SaveSessionRecording
            | Endpoint::SaveKeyStrokes
            | Endpoint::GetCredential
            | Endpoint::VerifyUser => &[Gateway],
            Endpoint::EncoderClaim => &[Encoder],
            Endpoint::UploderClaim => &[Uploader],
            Endpoint::Polling => &[Gateway, Encoder, Uploader],
            Endpoint::UpdateRecordingProcessStatus | Endpoint::FailRecordingProcess => {
                &[Encoder, Uploader]
            }
            Endpoint::GetRecordingProcessStatus
            | Endpoint::GetPamSettings
            | Endpoint::GetUserPlatform
            | Endpoint::GetIp => &[Gateway, Encoder, Uploader, Admin],
            Endpoint::Checkin
            | Endpoint::Checkout
            | Endpoint::GetRemainingMinutesForCheckout
            | Endpoint::GetTarget
            | Endpoint::GetUser
            | Endpoint::TargetsOfRoles => &[Gateway, Admin],
            Endpoint::JoinSession
            | Endpoint::TerminateSession
            | Endpoint::ListTargets
            | Endpoint::PutTarget
            | Endpoint::DeleteTarget
            | Endpoint::SetCredential
            | Endpoint::ListUsers
            | Endpoint::CreateUser
            | Endpoint::UpdateUser
            | Endpoint::DeleteUser
            | Endpoint::AddUserKey
            | Endpoint::RemoveUserKey
            | Endpoint::GrantRole
            | Endpoint::RevokeRole => &[Admin],
        }
    }

    /// Whether `role` may call it.
    pub fn allows(self, role: Role) -> bool {
        self.roles().contains(&role)
    }

    /// The endpoint of a request path, if it is one.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let name = path
            .strip_prefix(psm_client::wire::PREFIX)?
            .strip_prefix('/')?;
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// Length of a generated API key's random part, in bytes.
const KEY_BYTES: usize = 32;

struct KeyEntry {
    principal: Principal,
    hash: [u8; 32],
}

/// The API keys the server accepts. Keys are kept only as BLAKE3 hashes; a presented key is
/// hashed and compared with every entry in constant time (no early exit), so neither the
/// comparison nor the search order leaks which bytes matched.
#[derive(Default)]
pub struct ApiKeys {
    entries: Vec<KeyEntry>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.principal))
            .finish()
    }
}

fn hash_key(key: &str) -> [u8; 32] {
    blake3::derive_key("psm api key v1", key.as_bytes())
}

/// Generates a new API key: `psm_ROLE_` + 43 base64url characters (256 random bits).
pub fn generate_key(role: Role) -> Result<Secret<String>, ServerError> {
    let mut bytes = [0u8; KEY_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ServerError::Config(format!("random source failed: {e}")))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(Secret::new(format!("psm_{}_{text}", role.as_str())))
}

impl ApiKeys {
    /// No keys (every call is refused).
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `key` for `principal`.
    pub fn add(&mut self, principal: Principal, key: &Secret<String>) {
        self.entries.push(KeyEntry {
            principal,
            hash: hash_key(key.expose_secret()),
        });
    }

    /// The principal whose key this is.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let h = hash_key(presented);
        let mut found: Option<&KeyEntry> = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(&h)) {
                found = Some(e);
            }
        }
        found.map(|e| e.principal.clone())
    }

    /// Loads the key of each role from `dir/ROLE.key`, generating any that is missing
    /// (written with mode 0600 in a directory of mode 0700). Returns the keys and the paths
    /// of the files generated now.
    pub fn load_or_generate(dir: &Path) -> Result<(Self, Vec<PathBuf>), ServerError> {
        let io = |what: String| move |e: std::io::Error| ServerError::Io { what, source: e };
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        set_mode(dir, 0o700)?;
        let mut keys = ApiKeys::new();
        let mut generated = Vec::new();
        for role in Role::ALL {
            let path = dir.join(format!("{}.key", role.as_str()));
            let key = match std::fs::read_to_string(&path) {
                Ok(text) => {
                    check_private(&path)?;
                    let text = text.trim().to_owned();
                    if text.len() < 16 {
                        return Err(ServerError::Config(format!(
                            "{} holds no usable key (at least 16 characters)",
                            path.display()
                        )));
                    }
                    Secret::new(text)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = generate_key(role)?;
                    write_private(&path, key.expose_secret())?;
                    generated.push(path);
                    key
                }
                Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
            };
            keys.add(
                Principal {
                    name: role.as_str().to_owned(),
                    role,
                },
                &key,
            );
        }
        Ok((keys, generated))
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        ServerError::Io {
            what: format!("setting the mode of {}", path.display()),
            source: e,
        }
    })
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), ServerError> {
    Ok(())
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| ServerError::Io {
        what: format!("reading {}", path.display()),
        source: e,
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ServerError::Config(format!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), ServerError> {
    Ok(())
}

/// Writes a secret file readable by its owner only (created with mode 0600, never widened),
/// with a trailing newline.
pub fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    // Sized up front, so the copy of the secret is never reallocated, and wiped on drop.
    let mut line = Vec::with_capacity(contents.len() + 1);
    line.extend_from_slice(contents.as_bytes());
    line.push(b'\n');
    let line = Secret::new(line);
    psm_core::files::write_private(path, line.expose_secret()).map_err(|e| ServerError::Io {
        what: format!("writing {}", path.display()),
        source: e,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_their_principal_only() {
        let mut keys = ApiKeys::new();
        let g = generate_key(Role::Gateway).unwrap();
        let e = generate_key(Role::Encoder).unwrap();
        keys.add(
            Principal {
                name: "gw".into(),
                role: Role::Gateway,
            },
            &g,
        );
        keys.add(
            Principal {
                name: "enc".into(),
                role: Role::Encoder,
            },
            &e,
        );
        assert_eq!(
            keys.authenticate(g.expose_secret()).unwrap().role,
            Role::Gateway
        );
        assert_eq!(
            keys.authenticate(e.expose_secret()).unwrap().role,
            Role::Encoder
        );
        assert!(keys.authenticate("").is_none());
        let mut forged = g.expose_secret().clone();
        forged.pop();
        forged.push('x');
        assert!(keys.authenticate(&forged).is_none());
        assert!(!format!("{keys:?}").contains(g.expose_secret()));
    }

    #[test]
    fn key_files_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let keydir = dir.path().join("keys");
        let (_, generated) = ApiKeys::load_or_generate(&keydir).unwrap();
        assert_eq!(generated.len(), 4);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in &generated {
                let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
            }
            let mode = std::fs::metadata(&keydir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        let gw = std::fs::read_to_string(keydir.join("gateway.key")).unwrap();
        let (again, generated) = ApiKeys::load_or_generate(&keydir).unwrap();
        assert!(generated.is_empty(), "second start reuses the keys");
        assert_eq!(again.authenticate(gw.trim()).unwrap().role, Role::Gateway);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = keydir.join("admin.key");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = ApiKeys::load_or_generate(&keydir).unwrap_err();
            assert!(err.to_string().contains("readable by others"), "{err}");
        }
    }

    #[test]
    fn every_endpoint_has_a_path_and_roles() {
        for e in Endpoint::ALL {
            let path = format!("{}/{}", psm_client::wire::PREFIX, e.name());
            assert_eq!(Endpoint::from_path(&path), Some(e));
            assert!(!e.roles().is_empty());
        }
        assert!(!Endpoint::GetCredential.allows(Role::Encoder));
        assert!(!Endpoint::GetCredential.allows(Role::Admin));
    }
}
