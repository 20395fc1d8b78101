//! `psm users ...` and `psm targets ...`: the administrator's commands on a node's data
//! directory (its SQLite database and vault key), usable while `psm up` runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use psm_core::Protocol;
use psm_core::directory::{
    AuthorizedKey, DirectoryAdmin, DirectoryLookup, NewUser, PasswordHash, TotpSecret, UserUpdate,
};
use psm_core::store::SqliteStore;
use psm_core::vault::{Credential, Target};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Gateway users: who may log in, with which keys, passwords and roles.
    #[command(subcommand)]
    Users(Users),
    /// Targets and their vaulted credentials.
    #[command(subcommand)]
    Targets(Targets),
}

#[derive(clap::Args)]
pub struct DataArg {
    /// The node's data directory.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum Users {
    /// Adds a user.
    Add {
        #[command(flatten)]
        data: DataArg,
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
        data: DataArg,
    },
    /// Removes a user.
    Remove {
        #[command(flatten)]
        data: DataArg,
        name: String,
    },
    /// Adds an SSH key to a user.
    AddKey {
        #[command(flatten)]
        data: DataArg,
        name: String,
        /// The public key file.
        key_file: PathBuf,
    },
    /// Sets a user's password (read from standard input).
    Passwd {
        #[command(flatten)]
        data: DataArg,
        name: String,
    },
    /// Sets a user's roles.
    Roles {
        #[command(flatten)]
        data: DataArg,
        name: String,
        roles: Vec<String>,
    },
    /// Lets a role reach a target (`*` for every target).
    Grant {
        #[command(flatten)]
        data: DataArg,
        role: String,
        target: String,
    },
    /// Takes a grant back.
    Revoke {
        #[command(flatten)]
        data: DataArg,
        role: String,
        target: String,
    },
}

#[derive(clap::Subcommand)]
pub enum Targets {
    /// Adds (or replaces) an SSH or RDP target and its vaulted credential.
    Add {
        #[command(flatten)]
        data: DataArg,
        /// The target's name, as users type it (`ssh alice+NAME@gateway`,
        /// `xfreerdp /u:alice+NAME ...`).
        name: String,
        /// Host name or address.
        #[arg(long)]
        host: String,
        /// `ssh` or `rdp`.
        #[arg(long, default_value = "ssh")]
        protocol: Protocol,
        /// Port (default 22 for ssh, 3389 for rdp).
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
        /// The target's host key (`ssh-ed25519 AAAA...` or `SHA256:...`); for rdp its TLS
        /// certificate's `sha256:HEX` fingerprint (several separated by commas).
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
        data: DataArg,
    },
    /// Removes a target.
    Remove {
        #[command(flatten)]
        data: DataArg,
        name: String,
    },
}

async fn directory(data: &Path) -> anyhow::Result<SqliteStore> {
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
    }
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
            let dir = directory(&data.data).await?;
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
            let dir = directory(&data.data).await?;
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
            let dir = directory(&data.data).await?;
            anyhow::ensure!(dir.delete_user(&name).await?, "no user {name}");
            println!("User {name} removed.");
            dir.close().await;
        }
        Users::AddKey {
            data,
            name,
            key_file,
        } => {
            let dir = directory(&data.data).await?;
            dir.add_key(&name, &read_key(&key_file)?).await?;
            println!("Key added to {name}.");
            dir.close().await;
        }
        Users::Passwd { data, name } => {
            let dir = directory(&data.data).await?;
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
            let dir = directory(&data.data).await?;
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
            let dir = directory(&data.data).await?;
            dir.grant(&role, &target).await?;
            println!("Role {role} may reach {target}.");
            dir.close().await;
        }
        Users::Revoke { data, role, target } => {
            let dir = directory(&data.data).await?;
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
                _ => 22,
            });
            if protocol == Protocol::Rdp && (scan || key_file.is_some()) {
                anyhow::bail!(
                    "an rdp target takes --password-stdin and --host-key sha256:HEX (the \
                     fingerprint of its TLS certificate); --scan and --key-file are for ssh"
                );
            }
            let credential = match (password_stdin, &key_file) {
                (true, None) => Credential::password(account.clone(), stdin_secret("password")?),
                (false, Some(path)) => Credential::private_key(
                    account.clone(),
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                    None,
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
            let node = node(&data.data).await?;
            let vault = node.control_plane.vault();
            vault
                .put_target(
                    Target {
                        name: name.clone(),
                        host,
                        port,
                        protocol,
                        host_key,
                    },
                    "psm-cli",
                )
                .await?;
            vault.set_credential(&name, credential, "psm-cli").await?;
            node.close().await;
            if let Some(role) = grant {
                let dir = directory(&data.data).await?;
                dir.grant(&role, &name).await?;
                dir.close().await;
                println!("Role {role} may reach {name}.");
            }
            match protocol {
                Protocol::Rdp => println!(
                    "Target {name} added: xfreerdp /v:GATEWAY:3390 /u:USER+{name} /p:PSM-PASSWORD"
                ),
                _ => println!("Target {name} added: ssh -p PORT USER+{name}@GATEWAY"),
            }
        }
        Targets::List { data } => {
            let node = node(&data.data).await?;
            for t in node.control_plane.vault().targets().await? {
                println!(
                    "{}\t{}:{}\t{}\thost key {}",
                    t.name,
                    t.host,
                    t.port,
                    t.protocol,
                    t.host_key.as_deref().map_or("NOT PINNED", |_| "pinned")
                );
            }
            node.close().await;
        }
        Targets::Remove { data, name } => {
            let node = node(&data.data).await?;
            node.control_plane
                .vault()
                .remove_target(&name, "psm-cli")
                .await?;
            node.close().await;
            println!("Target {name} removed.");
        }
    }
    Ok(())
}
