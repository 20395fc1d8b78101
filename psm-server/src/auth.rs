//! Who is calling: roles, principals, API keys (compared in constant time), and the table
//! of which role may call which endpoint.
//!
//! A key is either a role's **shared key** (`DIR/keys/ROLE.key`, the single-node default:
//! whoever holds it may act as any process instance of the role that has no key of its own)
//! or an **instance key** issued to one process instance (`psm keys issue gateway gw-1`,
//! kept on the control plane only as a hash in `DIR/keys/instances/gw-1`): its holder acts as
//! that instance and no other, and once an instance has a key (or a client certificate) of
//! its own, no shared key may act as it any more ([`ApiKeys::may_act_as`]).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use psm_core::ProcessInstance;
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
    /// The one process instance it may act as (an instance key or certificate); `None` for
    /// a role's shared key, which may act as any instance without a key of its own.
    pub instance: Option<ProcessInstance>,
}

impl Principal {
    /// A role-wide principal (a shared key, an administrator's key).
    pub fn shared(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role,
            instance: None,
        }
    }

    /// The principal of one process instance: named after it, acting as it only.
    pub fn of_instance(role: Role, instance: ProcessInstance) -> Self {
        Self {
            name: instance.to_string(),
            role,
            instance: Some(instance),
        }
    }
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
    RegisterSigner,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 39] = [
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
        Endpoint::RegisterSigner,
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
            Endpoint::RegisterSigner => "RegisterSigner",
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
            Endpoint::RegisterSigner => &[Gateway, Encoder, Admin],
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

/// How often the instance keys' directory is looked at for keys issued or revoked while the
/// server runs.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Most instance keys read from a directory (one file each).
pub const MAX_INSTANCE_KEYS: usize = 10_000;

/// The instance keys read from `DIR/keys/instances`, and when.
#[derive(Default)]
struct InstanceKeys {
    entries: Vec<KeyEntry>,
    /// Instances with a key or certificate of their own.
    bound: HashSet<ProcessInstance>,
    /// Instances bound by a client certificate (kept across reloads).
    certified: HashSet<ProcessInstance>,
    stamp: Option<SystemTime>,
    checked: Option<Instant>,
}

/// The API keys the server accepts. Keys are kept only as BLAKE3 hashes; a presented key is
/// hashed and compared with every entry in constant time (no early exit), so neither the
/// comparison nor the search order leaks which bytes matched.
#[derive(Default)]
pub struct ApiKeys {
    entries: Vec<KeyEntry>,
    /// `DIR/keys/instances`, re-read when it changes.
    instance_dir: Option<PathBuf>,
    instances: RwLock<InstanceKeys>,
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

/// Checks a process instance name is usable as an instance key's file name: 1 to 64
/// letters, digits, `.`, `_`, `-`, not starting with `.`.
pub fn instance_name(name: &str) -> Result<ProcessInstance, ServerError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(ServerError::Config(format!(
            "{name:?} is not a usable process instance name for a key: 1 to 64 letters, \
             digits, '.', '_' or '-', not starting with '.'"
        )));
    }
    ProcessInstance::new(name).map_err(|e| ServerError::Config(e.to_string()))
}

/// An instance key's record on the control plane: its role and the hash of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceKeyInfo {
    /// The process instance.
    pub instance: ProcessInstance,
    /// Its role.
    pub role: Role,
}

/// Where the instance keys of a keys directory live.
pub fn instances_dir(keys_dir: &Path) -> PathBuf {
    keys_dir.join("instances")
}

/// Issues a key to process instance `instance` of `role`: records its hash in
/// `KEYS/instances/INSTANCE` (replacing any earlier key of that instance) and returns the
/// key, which is stored nowhere else. A running server picks it up within a second.
pub fn issue_instance_key(
    keys_dir: &Path,
    role: Role,
    instance: &str,
) -> Result<Secret<String>, ServerError> {
    if role == Role::Admin {
        return Err(ServerError::Config(
            "instance keys are for gateways, encoders and uploaders; the admin key is \
             DIR/keys/admin.key"
                .into(),
        ));
    }
    let instance = instance_name(instance)?;
    let dir = instances_dir(keys_dir);
    psm_core::files::create_private_dir_all(&dir).map_err(|e| ServerError::Io {
        what: format!("creating {}", dir.display()),
        source: e,
    })?;
    let key = generate_key(role)?;
    let record = format!(
        "{} {}",
        role.as_str(),
        hex::encode(hash_key(key.expose_secret()))
    );
    // Written beside, then renamed: a reader never sees half a record.
    let tmp = dir.join(format!(".{instance}.new"));
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, &record)?;
    let path = dir.join(instance.as_str());
    std::fs::rename(&tmp, &path).map_err(|e| ServerError::Io {
        what: format!("writing {}", path.display()),
        source: e,
    })?;
    Ok(key)
}

/// Revokes the key of `instance`; `false` if it had none.
pub fn revoke_instance_key(keys_dir: &Path, instance: &str) -> Result<bool, ServerError> {
    let instance = instance_name(instance)?;
    let path = instances_dir(keys_dir).join(instance.as_str());
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ServerError::Io {
            what: format!("removing {}", path.display()),
            source: e,
        }),
    }
}

/// The instances that have a key, by name.
pub fn list_instance_keys(keys_dir: &Path) -> Result<Vec<InstanceKeyInfo>, ServerError> {
    let mut out: Vec<InstanceKeyInfo> = read_instance_dir(&instances_dir(keys_dir))?
        .into_iter()
        .filter_map(|e| {
            Some(InstanceKeyInfo {
                role: e.principal.role,
                instance: e.principal.instance?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(out)
}

fn read_instance_dir(dir: &Path) -> Result<Vec<KeyEntry>, ServerError> {
    let reading = |e| ServerError::Io {
        what: format!("reading {}", dir.display()),
        source: e,
    };
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(reading(e)),
    };
    let mut entries = Vec::new();
    for item in listing {
        let item = item.map_err(reading)?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        if entries.len() >= MAX_INSTANCE_KEYS {
            tracing::warn!(dir = %dir.display(), "more instance keys than {MAX_INSTANCE_KEYS}; the rest are ignored");
            break;
        }
        let path = item.path();
        let parsed = instance_name(name).ok().and_then(|instance| {
            check_private(&path).ok()?;
            let text = std::fs::read_to_string(&path).ok()?;
            let (role, hash) = text.trim().split_once(' ')?;
            let role: Role = role.parse().ok()?;
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hash.trim(), &mut bytes).ok()?;
            (role != Role::Admin).then(|| KeyEntry {
                principal: Principal::of_instance(role, instance),
                hash: bytes,
            })
        });
        match parsed {
            Some(e) => entries.push(e),
            None => tracing::warn!(path = %path.display(),
                "ignoring an unreadable instance key record (wrong name, mode or content)"),
        }
    }
    Ok(entries)
}

fn modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|m| m.modified()).ok()
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

    /// Also accepts the instance keys recorded in `dir` (see [`issue_instance_key`]),
    /// re-reading it when it changes.
    pub fn with_instance_keys(mut self, dir: PathBuf) -> Result<Self, ServerError> {
        self.instance_dir = Some(dir);
        self.reload(true)?;
        Ok(self)
    }

    /// Marks `instance` as bound to a client certificate: no shared key may act as it.
    pub fn bind_certificate(&self, instance: ProcessInstance) {
        let mut inner = self.instances.write().unwrap_or_else(|p| p.into_inner());
        inner.bound.insert(instance.clone());
        inner.certified.insert(instance);
    }

    fn reload(&self, force: bool) -> Result<(), ServerError> {
        let Some(dir) = &self.instance_dir else {
            return Ok(());
        };
        {
            let inner = self.instances.read().unwrap_or_else(|p| p.into_inner());
            if !force && inner.checked.is_some_and(|c| c.elapsed() < RELOAD_EVERY) {
                return Ok(());
            }
        }
        let stamp = modified(dir);
        {
            let mut inner = self.instances.write().unwrap_or_else(|p| p.into_inner());
            inner.checked = Some(Instant::now());
            if !force && inner.stamp == stamp {
                return Ok(());
            }
        }
        let entries = read_instance_dir(dir)?;
        let mut inner = self.instances.write().unwrap_or_else(|p| p.into_inner());
        inner.bound = entries
            .iter()
            .filter_map(|e| e.principal.instance.clone())
            .chain(inner.certified.iter().cloned())
            .collect();
        inner.entries = entries;
        inner.stamp = stamp;
        tracing::info!(dir = %dir.display(), keys = inner.entries.len(), "instance keys loaded");
        Ok(())
    }

    /// The principal whose key this is.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        if let Err(e) = self.reload(false) {
            tracing::error!(error = %e, "could not re-read the instance keys; keeping the last ones");
        }
        let h = hash_key(presented);
        let inner = self.instances.read().unwrap_or_else(|p| p.into_inner());
        let mut found: Option<&KeyEntry> = None;
        for e in self.entries.iter().chain(inner.entries.iter()) {
            if bool::from(e.hash.ct_eq(&h)) {
                found = Some(e);
            }
        }
        found.map(|e| e.principal.clone())
    }

    /// Whether `principal` may act as process instance `instance`: an instance's own key or
    /// certificate as that instance only; a shared key as any instance that has no key or
    /// certificate of its own.
    pub fn may_act_as(&self, principal: &Principal, instance: &ProcessInstance) -> bool {
        match &principal.instance {
            Some(own) => own == instance,
            None => !self
                .instances
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .bound
                .contains(instance),
        }
    }

    /// Whether any process instance has a key or certificate of its own.
    pub fn has_instance_bindings(&self) -> bool {
        !self
            .instances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .bound
            .is_empty()
    }

    /// Loads the key of each role from `dir/ROLE.key`, generating any that is missing
    /// (written with mode 0600 in a directory of mode 0700), and the instance keys of
    /// `dir/instances`. Returns the keys and the paths of the files generated now.
    pub fn load_or_generate(dir: &Path) -> Result<(Self, Vec<PathBuf>), ServerError> {
        Self::load_or_generate_for(dir, &Role::ALL)
    }

    /// As [`load_or_generate`](Self::load_or_generate), with shared keys for `roles` only
    /// (the admin key is always loaded): an operator who issued every gateway, encoder and
    /// uploader its own key turns the shared ones off.
    pub fn load_or_generate_for(
        dir: &Path,
        roles: &[Role],
    ) -> Result<(Self, Vec<PathBuf>), ServerError> {
        let io = |what: String| move |e: std::io::Error| ServerError::Io { what, source: e };
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        set_mode(dir, 0o700)?;
        let mut keys = ApiKeys::new();
        let mut generated = Vec::new();
        for role in Role::ALL {
            if role != Role::Admin && !roles.contains(&role) {
                continue;
            }
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
            keys.add(Principal::shared(role.as_str(), role), &key);
        }
        let keys = keys.with_instance_keys(instances_dir(dir))?;
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
        keys.add(Principal::shared("gw", Role::Gateway), &g);
        keys.add(Principal::shared("enc", Role::Encoder), &e);
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
    fn an_instance_key_acts_as_its_instance_only_and_takes_it_from_the_shared_key() {
        let dir = tempfile::tempdir().unwrap();
        let keydir = dir.path().join("keys");
        let (keys, _) = ApiKeys::load_or_generate(&keydir).unwrap();
        let shared = std::fs::read_to_string(keydir.join("gateway.key")).unwrap();
        let shared = keys.authenticate(shared.trim()).unwrap();
        let gw1 = ProcessInstance::new("gw-1").unwrap();
        let gw2 = ProcessInstance::new("gw-2").unwrap();
        assert!(keys.may_act_as(&shared, &gw1), "no instance keys yet");

        let k1 = issue_instance_key(&keydir, Role::Gateway, "gw-1").unwrap();
        keys.reload(true).unwrap();
        let p1 = keys.authenticate(k1.expose_secret()).unwrap();
        assert_eq!(p1, Principal::of_instance(Role::Gateway, gw1.clone()));
        assert!(keys.may_act_as(&p1, &gw1));
        assert!(!keys.may_act_as(&p1, &gw2), "not another instance");
        assert!(!keys.may_act_as(&shared, &gw1), "gw-1 has a key of its own");
        assert!(keys.may_act_as(&shared, &gw2), "gw-2 has none");
        let record = std::fs::read_to_string(keydir.join("instances/gw-1")).unwrap();
        assert!(!record.contains(k1.expose_secret().as_str()));

        // Re-issued: the old key stops working; revoked: the new one too.
        let k1b = issue_instance_key(&keydir, Role::Gateway, "gw-1").unwrap();
        keys.reload(true).unwrap();
        assert!(keys.authenticate(k1.expose_secret()).is_none());
        assert!(keys.authenticate(k1b.expose_secret()).is_some());
        assert!(revoke_instance_key(&keydir, "gw-1").unwrap());
        keys.reload(true).unwrap();
        assert!(keys.authenticate(k1b.expose_secret()).is_none());
        assert!(keys.may_act_as(&shared, &gw1));

        assert!(issue_instance_key(&keydir, Role::Admin, "root").is_err());
        assert!(issue_instance_key(&keydir, Role::Gateway, "../x").is_err());
        assert!(issue_instance_key(&keydir, Role::Gateway, ".hidden").is_err());

        // Bound to a certificate: the shared key may not act as it either.
        keys.bind_certificate(gw2.clone());
        assert!(!keys.may_act_as(&shared, &gw2));
        keys.reload(true).unwrap();
        assert!(!keys.may_act_as(&shared, &gw2), "kept across reloads");
    }

    #[test]
    fn without_shared_role_keys_only_the_admin_key_is_generated() {
        let dir = tempfile::tempdir().unwrap();
        let keydir = dir.path().join("keys");
        let (_, generated) = ApiKeys::load_or_generate_for(&keydir, &[]).unwrap();
        assert_eq!(generated, vec![keydir.join("admin.key")]);
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
