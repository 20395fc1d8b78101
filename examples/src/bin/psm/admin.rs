//! `psm users ...` and `psm targets ...`: the administrator's commands on a node's data
//! directory (its SQLite database and vault key), usable while `psm up` runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use psm_core::Protocol;
use psm_core::directory::{
    AuthorizedKey, NewUser, PasswordHash, TotpSecret, UserDirectory, UserUpdate,
};
use psm_core::store::SqliteStore;
use psm_core::vault::{Credential, Target};

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Gateway users: who may log in, with which keys, passwords and roles.
    #[command(subcommand)]
    Users(Users),
    /// Targets and their vaulted credentials.
    #[command(subcommand)]
    Targets(Targets),
    /// API keys of the control plane: one per gateway, encoder or uploader process.
    #[command(subcommand)]
    Keys(Keys),
}

#[derive(clap::Subcommand)]
pub enum Keys {
    /// Issues a key to one process instance (a gateway's `process_instance`, a worker's
    /// `--instance`): its holder may act as that instance only, and no shared role key may
    /// act as it any more. The control plane keeps only its hash and picks it up within a
    /// second; the key is written to --out (mode 0600) and nowhere else.
    Issue {
        #[command(flatten)]
        data: DataArg,
        /// gateway, encoder or uploader.
        role: String,
        /// The process instance name (letters, digits, '.', '_', '-').
        instance: String,
        /// Where to write the key (default ./INSTANCE.key; never overwritten).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revokes the key of a process instance (its holder is refused within a second).
    Revoke {
        #[command(flatten)]
        data: DataArg,
        instance: String,
    },
    /// Lists the process instances that have a key of their own.
    List {
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(clap::Args)]
pub struct DataArg {
    /// The node's data directory.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
}

/// Where `psm users` and `psm targets` administer: the node's data directory, or a remote
/// control plane.
#[derive(clap::Args)]
pub struct DirectoryArg {
    #[command(flatten)]
    data: DataArg,
    /// A remote control plane (`https://HOST:PORT`) whose directory and vault to administer
    /// instead of the data directory's (needs an admin API key; user passwords are hashed
    /// here, before they are sent; a target's credential goes to the vault over the API).
    #[arg(long, env = "PSM_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// The file holding the admin API key for --control-plane.
    #[arg(long, requires = "control_plane")]
    api_key_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the control plane's TLS certificate.
    #[arg(long, requires = "control_plane")]
    ca_file: Option<PathBuf>,
    /// Allow `http://` to a non-loopback control plane (behind a TLS-terminating proxy only).
    #[arg(long, requires = "control_plane")]
    allow_plain_http: bool,
}

#[derive(clap::Subcommand)]
pub enum Users {
    /// Adds a user.
    Add {
        #[command(flatten)]
        data: DirectoryArg,
        /// The login name (letters, digits, '.', '_', '-').
        name: String,
        /// A role (repeatable); roles are granted targets with `psm users grant`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// An SSH public key file (e.g. ~/.ssh/id_ed25519.pub); repeatable.
        #[arg(long = "key-file")]
        key_files: Vec<PathBuf>,
        /// Read a password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Generate a password and print it once.
        #[arg(long)]
        generate_password: bool,
        /// Require a TOTP code as second factor (prints the secret and otpauth URL once).
        #[arg(long)]
        totp: bool,
    },
    /// Lists users.
    List {
        #[command(flatten)]
        data: DirectoryArg,
    },
    /// Removes a user.
    Remove {
        #[command(flatten)]
        data: DirectoryArg,
        name: String,
    },
    /// Adds an SSH key to a user.
    AddKey {
        #[command(flatten)]
        data: DirectoryArg,
        name: String,
        /// The public key file.
        key_file: PathBuf,
    },
    /// Sets a user's password (read from standard input).
    Passwd {
        #[command(flatten)]
        data: DirectoryArg,
        name: String,
    },
    /// Sets a user's roles.
    Roles {
        #[command(flatten)]
        data: DirectoryArg,
        name: String,
        roles: Vec<String>,
    },
    /// Lets a role reach a target (`*` for every target).
    Grant {
        #[command(flatten)]
        data: DirectoryArg,
        role: String,
        target: String,
    },
    /// Takes a grant back.
    Revoke {
        #[command(flatten)]
        data: DirectoryArg,
        role: String,
        target: String,
    },
}

#[derive(clap::Subcommand)]
pub enum Targets {
    /// Adds (or replaces) an SSH, RDP or PostgreSQL target and its vaulted credential.
    Add {
        #[command(flatten)]
        data: DirectoryArg,
        /// The target's name, as users type it (`ssh alice+NAME@gateway`,
        /// `xfreerdp /u:alice+NAME ...`).
        name: String,
        /// Host name or address.
        #[arg(long)]
        host: String,
        /// `ssh`, `rdp`, `postgres` or `mysql` (MariaDB too).
        #[arg(long, default_value = "ssh")]
        protocol: Protocol,
        /// Port (default 22 for ssh, 3389 for rdp, 5432 for postgres, 3306 for mysql).
        #[arg(long)]
        port: Option<u16>,
        /// The account PSM logs in as.
        #[arg(long = "user")]
        account: String,
        /// Read the account's password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Or a private key file for the account.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The target's host key (`ssh-ed25519 AAAA...` or `SHA256:...`); for rdp and
        /// postgres its TLS certificate's `sha256:HEX` fingerprint (several separated by
        /// commas; a pinned postgres target always gets verified TLS).
        #[arg(long)]
        host_key: Option<String>,
        /// Read the host key from the target now and pin it (compare the printed
        /// fingerprint with the target's `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`).
        /// SSH only.
        #[arg(long)]
        scan: bool,
        /// Also let this role reach the target.
        #[arg(long)]
        grant: Option<String>,
    },
    /// Lists targets.
    List {
        #[command(flatten)]
        data: DirectoryArg,
    },
    /// Removes a target.
    Remove {
        #[command(flatten)]
        data: DirectoryArg,
        name: String,
    },
}

/// The directory `psm users` works on.
enum Directory {
    /// The node's database.
    Local(SqliteStore),
    /// A remote control plane's, over HTTP.
    Remote(psm_client::HttpDirectory),
}

impl std::ops::Deref for Directory {
    type Target = dyn UserDirectory;
    fn deref(&self) -> &Self::Target {
        match self {
            Directory::Local(s) => s,
            Directory::Remote(r) => r,
        }
    }
}

impl DirectoryArg {
    /// The remote control plane, when one is named.
    fn remote(&self) -> Option<crate::pipeline::remote::Remote> {
        self.control_plane
            .as_ref()
            .map(|url| crate::pipeline::remote::Remote {
                url: url.clone(),
                api_key_file: self.api_key_file.clone(),
                ca_file: self.ca_file.clone(),
                allow_plain_http: self.allow_plain_http,
            })
    }
}

impl Directory {
    async fn open(arg: &DirectoryArg) -> anyhow::Result<Self> {
        match arg.remote() {
            Some(remote) => Ok(Directory::Remote(remote.directory()?)),
            None => Ok(Directory::Local(node_store(&arg.data.data).await?)),
        }
    }

    async fn close(&self) {
        if let Directory::Local(s) = self {
            s.close().await;
        }
    }
}

/// The node's store (`DATA/psm.db`, which `psm up` creates), opened as the running node
/// opens it: TOTP secrets sealed with the vault's key.
pub(crate) async fn node_store(data: &Path) -> anyhow::Result<SqliteStore> {
    let db = data.join("psm.db");
    anyhow::ensure!(
        db.exists(),
        "{} does not exist: run `psm up --data {}` once first",
        db.display(),
        data.display()
    );
    // TOTP secrets are sealed with the vault's key (as the running node does).
    let keyring = psm_server::node::data_keyring(data)?;
    Ok(SqliteStore::open(&db)
        .await
        .with_context(|| format!("opening {}", db.display()))?
        .with_totp_keyring(keyring))
}

fn stdin_secret(what: &str) -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let s = s.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!s.is_empty(), "the {what} on standard input is empty");
    Ok(s)
}

fn read_key(path: &Path) -> anyhow::Result<AuthorizedKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(AuthorizedKey::parse(text.trim())?)
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Users(u) => users(u).await,
        Command::Targets(t) => targets(t).await,
        Command::Keys(k) => keys(k),
    }
}

fn keys(cmd: Keys) -> anyhow::Result<()> {
    use psm_server::auth;
    match cmd {
        Keys::Issue {
            data,
            role,
            instance,
            out,
        } => {
            let role: psm_server::Role = role.parse()?;
            let name = auth::instance_name(&instance)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{name}.key")));
            anyhow::ensure!(
                !out.exists(),
                "{} exists; give another --out (a key file is never overwritten)",
                out.display()
            );
            let key = auth::issue_instance_key(&data.data.join("keys"), role, name.as_str())?;
            auth::write_private(&out, key.expose_secret())?;
            println!(
                "issued a {role} key to process instance {name}: {} (mode 0600). Give it to that \
                 process only (api_key_file / --api-key-file) and delete this copy; the control \
                 plane keeps only its hash.",
                out.display()
            );
        }
        Keys::Revoke { data, instance } => {
            if auth::revoke_instance_key(&data.data.join("keys"), &instance)? {
                println!("revoked the key of process instance {instance}");
            } else {
                anyhow::bail!("process instance {instance} has no key of its own");
            }
        }
        Keys::List { data } => {
            for k in auth::list_instance_keys(&data.data.join("keys"))? {
                println!("{}\t{}", k.instance, k.role);
            }
        }
    }
    Ok(())
}

async fn users(cmd: Users) -> anyhow::Result<()> {
    match cmd {
        Users::Add {
            data,
            name,
            roles,
            key_files,
            password_stdin,
            generate_password,
            totp,
        } => {
            let dir = Directory::open(&data).await?;
            let mut keys = Vec::new();
            for f in &key_files {
                keys.push(read_key(f)?);
            }
            let password = if password_stdin {
                Some(stdin_secret("password")?)
            } else if generate_password {
                Some(uuid::Uuid::new_v4().simple().to_string())
            } else {
                None
            };
            anyhow::ensure!(
                password.is_some() || !keys.is_empty(),
                "give the user a way to log in: --key-file, --password-stdin or --generate-password"
            );
            let secret = totp.then(TotpSecret::generate);
            dir.create_user(&NewUser {
                name: name.parse()?,
                password: password.as_deref().map(PasswordHash::hash).transpose()?,
                keys,
                totp: secret.clone(),
                roles,
            })
            .await?;
            println!("User {name} added.");
            if generate_password && let Some(p) = &password {
                println!("Password (shown once): {p}");
            }
            if let Some(s) = secret {
                println!("TOTP secret (shown once): {}", s.as_base32());
                println!("  {}", s.otpauth_url(&name, "PSM"));
            }
            dir.close().await;
        }
        Users::List { data } => {
            let dir = Directory::open(&data).await?;
            for u in dir.users().await? {
                let targets = dir.allowed_targets(&u).await?;
                println!(
                    "{}\troles={}\tkeys={}\tpassword={}\ttotp={}\t{}targets={}",
                    u.name,
                    u.roles.join(","),
                    u.keys.len(),
                    if u.password.is_some() { "yes" } else { "no" },
                    if u.totp.is_some() { "yes" } else { "no" },
                    if u.disabled { "DISABLED\t" } else { "" },
                    targets.join(","),
                );
            }
            dir.close().await;
        }
        Users::Remove { data, name } => {
            let dir = Directory::open(&data).await?;
            anyhow::ensure!(dir.delete_user(&name).await?, "no user {name}");
            println!("User {name} removed.");
            dir.close().await;
        }
        Users::AddKey {
            data,
            name,
            key_file,
        } => {
            let dir = Directory::open(&data).await?;
            dir.add_key(&name, &read_key(&key_file)?).await?;
            println!("Key added to {name}.");
            dir.close().await;
        }
        Users::Passwd { data, name } => {
            let dir = Directory::open(&data).await?;
            let hash = PasswordHash::hash(&stdin_secret("password")?)?;
            dir.update_user(
                &name,
                &UserUpdate {
                    password: Some(Some(hash)),
                    ..UserUpdate::default()
                },
            )
            .await?;
            println!("Password of {name} changed.");
            dir.close().await;
        }
        Users::Roles { data, name, roles } => {
            let dir = Directory::open(&data).await?;
            dir.update_user(
                &name,
                &UserUpdate {
                    roles: Some(roles),
                    ..UserUpdate::default()
                },
            )
            .await?;
            println!("Roles of {name} set.");
            dir.close().await;
        }
        Users::Grant { data, role, target } => {
            let dir = Directory::open(&data).await?;
            dir.grant(&role, &target).await?;
            println!("Role {role} may reach {target}.");
            dir.close().await;
        }
        Users::Revoke { data, role, target } => {
            let dir = Directory::open(&data).await?;
            anyhow::ensure!(
                dir.revoke(&role, &target).await?,
                "role {role} had no grant for {target}"
            );
            println!("Role {role} may no longer reach {target}.");
            dir.close().await;
        }
    }
    Ok(())
}

async fn node(data: &Path) -> anyhow::Result<psm_server::node::Node> {
    anyhow::ensure!(
        data.join("psm.db").exists(),
        "{} holds no PSM node: run `psm up --data {}` once first",
        data.display(),
        data.display()
    );
    psm_server::node::open(psm_server::node::NodeOptions::new(data))
        .await
        .with_context(|| format!("opening the node in {}", data.display()))
}

async fn targets(cmd: Targets) -> anyhow::Result<()> {
    match cmd {
        Targets::Add {
            data,
            name,
            host,
            protocol,
            port,
            account,
            password_stdin,
            key_file,
            host_key,
            scan,
            grant,
        } => {
            let port = port.unwrap_or(match protocol {
                Protocol::Rdp => 3389,
                Protocol::Postgres => 5432,
                Protocol::Mysql => 3306,
                _ => 22,
            });
            if matches!(protocol, Protocol::Postgres | Protocol::Mysql)
                && (scan || key_file.is_some())
            {
                anyhow::bail!(
                    "a database target takes --password-stdin (and optionally --host-key \
                     sha256:HEX, its TLS certificate's fingerprint); --scan and --key-file are \
                     for ssh"
                );
            }
            if protocol == Protocol::Rdp && (scan || key_file.is_some()) {
                anyhow::bail!(
                    "an rdp target takes --password-stdin and --host-key sha256:HEX (the \
                     fingerprint of its TLS certificate); --scan and --key-file are for ssh"
                );
            }
            let (password, private_key) = match (password_stdin, &key_file) {
                (true, None) => (Some(stdin_secret("password")?), None),
                (false, Some(path)) => (
                    None,
                    Some(
                        std::fs::read_to_string(path)
                            .with_context(|| format!("reading {}", path.display()))?,
                    ),
                ),
                _ => anyhow::bail!("give exactly one of --password-stdin or --key-file"),
            };
            let host_key = match (host_key, scan) {
                (Some(k), false) => Some(k),
                (None, true) => {
                    let (line, fingerprint) =
                        psm_proxy_ssh::fetch_host_key(&host, port, Duration::from_secs(10)).await?;
                    println!("{host}:{port} presents {fingerprint}; pinned.");
                    Some(line)
                }
                (None, false) if matches!(protocol, Protocol::Postgres | Protocol::Mysql) => None,
                (None, false) if protocol == Protocol::Rdp => {
                    println!(
                        "Warning: no certificate pinned; the RDP gateway will refuse {name} \
                         until one is (--host-key sha256:HEX), unless it runs with \
                         --allow-unpinned-targets."
                    );
                    None
                }
                (None, false) => {
                    println!(
                        "Warning: no host key pinned; the gateway will refuse {name} until one is \
                         (use --scan or --host-key), unless it runs with trust-on-first-use."
                    );
                    None
                }
                (Some(_), true) => anyhow::bail!("give --host-key or --scan, not both"),
            };
            let target = Target {
                name: name.clone(),
                host,
                port,
                protocol,
                host_key,
            };
            match data.remote() {
                Some(remote) => {
                    let client = remote.client()?;
                    client
                        .put_target(&psm_client::wire::PutTargetRequest {
                            name: target.name.clone(),
                            host: target.host.clone(),
                            port: target.port,
                            protocol: target.protocol,
                            host_key: target.host_key.clone(),
                        })
                        .await
                        .context("PutTarget")?;
                    client
                        .set_credential(&psm_client::wire::SetCredentialRequest {
                            target: name.clone(),
                            user_name: account,
                            password,
                            private_key,
                            passphrase: None,
                        })
                        .await
                        .context("SetCredential")?;
                }
                None => {
                    let credential = match (password, private_key) {
                        (Some(p), _) => Credential::password(account, p),
                        (None, Some(k)) => Credential::private_key(account, k, None),
                        (None, None) => unreachable!("one of the two was given"),
                    };
                    let node = node(&data.data.data).await?;
                    let vault = node.control_plane.vault();
                    vault.put_target(target, "psm-cli").await?;
                    vault.set_credential(&name, credential, "psm-cli").await?;
                    node.close().await;
                }
            }
            if let Some(role) = grant {
                let dir = Directory::open(&data).await?;
                dir.grant(&role, &name).await?;
                dir.close().await;
                println!("Role {role} may reach {name}.");
            }
            match protocol {
                Protocol::Rdp => println!(
                    "Target {name} added: xfreerdp /v:GATEWAY:3390 /u:USER+{name} /p:PSM-PASSWORD"
                ),
                Protocol::Postgres => println!(
                    "Target {name} added: psql \"host=GATEWAY port=15432 user=USER+{name} dbname=DATABASE sslmode=require\""
                ),
                Protocol::Mysql => println!(
                    "Target {name} added: mariadb --ssl -h GATEWAY -P 13306 -u USER+{name} -p"
                ),
                _ => println!("Target {name} added: ssh -p PORT USER+{name}@GATEWAY"),
            }
        }
        Targets::List { data } => {
            let targets: Vec<Target> = match data.remote() {
                Some(remote) => remote
                    .client()?
                    .list_targets()
                    .await
                    .context("ListTargets")?
                    .into_iter()
                    .map(|t| Target {
                        name: t.name,
                        host: t.host,
                        port: t.port,
                        protocol: t.protocol,
                        host_key: t.host_key,
                    })
                    .collect(),
                None => {
                    let node = node(&data.data.data).await?;
                    let targets = node.control_plane.vault().targets().await?;
                    node.close().await;
                    targets
                }
            };
            for t in targets {
                println!(
                    "{}\t{}:{}\t{}\thost key {}",
                    t.name,
                    t.host,
                    t.port,
                    t.protocol,
                    t.host_key.as_deref().map_or("NOT PINNED", |_| "pinned")
                );
            }
        }
        Targets::Remove { data, name } => {
            match data.remote() {
                Some(remote) => {
                    remote
                        .client()?
                        .delete_target(&name)
                        .await
                        .context("DeleteTarget")?;
                }
                None => {
                    let node = node(&data.data.data).await?;
                    node.control_plane
                        .vault()
                        .remove_target(&name, "psm-cli")
                        .await?;
                    node.close().await;
                }
            }
            println!("Target {name} removed.");
        }
    }
    Ok(())
}
