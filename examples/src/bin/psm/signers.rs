//! `psm signers`: the node's registries of the keys it trusts (docs/threat-model.md M12):
//! gateways' keys (recordings) and encoders' keys (seek indexes, recording-set manifests).
//! Processes on the node register their own at start, and remote ones through the control
//! plane's RegisterSigner; these commands list them, add another node's by hand, and stop
//! trusting a decommissioned or compromised one. Every change is an audit row.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::Context;
use psm_core::clock::SystemClock;
use psm_core::store::SqliteStore;
use psm_core::{Engine, EngineConfig};
use psm_recording::VerifyingKey;
use psm_recording::keys::SignerRegistry;
use psm_recording::layout::LocalLayout;
use psm_server::routes::signers::{SignerRegistration, register_audited};

/// The audit trail's actor for these commands.
const ACTOR: &str = "psm signers";

/// What a registered key signs.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Kind {
    /// A gateway's key: recordings.
    Gateway,
    /// An encoder's key: seek indexes and recording-set manifests.
    Encoder,
}

impl Kind {
    fn registry(self, data: &Path) -> SignerRegistry {
        let layout = LocalLayout::new(data);
        match self {
            Kind::Gateway => layout.gateway_signers(),
            Kind::Encoder => layout.encoder_signers(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Gateway => "gateway",
            Kind::Encoder => "encoder",
        }
    }
}

#[derive(clap::Args)]
pub struct Data {
    /// The node's data directory.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
}

/// The keys this node trusts.
#[derive(clap::Subcommand)]
pub enum Signers {
    /// Every registered key: kind, name (a process instance), key.
    List {
        #[command(flatten)]
        data: Data,
    },
    /// Trusts a key: another node's gateway or encoder (its `keys/signers/KIND/NAME.pub`).
    Add {
        #[command(flatten)]
        data: Data,
        /// What the key signs.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The name to register it under (the process instance).
        name: String,
        /// The key (`psmr-signing-public:...`), or a `.pub` file holding it.
        key: String,
    },
    /// Stops trusting a key: what it signed shows as not registered from now on.
    Remove {
        #[command(flatten)]
        data: Data,
        /// What the key signs.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The name it is registered under.
        name: String,
    },
}

fn parse_key(text_or_file: &str) -> anyhow::Result<VerifyingKey> {
    let text = if text_or_file.starts_with("psmr-signing-public:") {
        text_or_file.to_owned()
    } else {
        std::fs::read_to_string(text_or_file).with_context(|| {
            format!("{text_or_file} is neither a key (psmr-signing-public:...) nor a readable file")
        })?
    };
    VerifyingKey::from_text(text.trim()).with_context(|| format!("{text_or_file}: not a key"))
}

/// The node's engine, for the audit rows of registry changes; close the store when done.
async fn node_engine(data: &Path) -> anyhow::Result<(Engine, Arc<SqliteStore>)> {
    let store = Arc::new(crate::admin::node_store(data).await?);
    let engine = Engine::new(
        store.clone(),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    Ok((engine, store))
}

pub async fn run(cmd: Signers) -> anyhow::Result<()> {
    match cmd {
        Signers::List { data } => {
            for kind in [Kind::Gateway, Kind::Encoder] {
                for (name, key) in kind.registry(&data.data).entries() {
                    println!("{}\t{name}\t{key}", kind.name());
                }
            }
        }
        Signers::Add {
            data,
            kind,
            name,
            key,
        } => {
            let key = parse_key(&key)?;
            let (engine, store) = node_engine(&data.data).await?;
            let done = register_audited(
                &engine,
                &kind.registry(&data.data),
                kind.name(),
                &name,
                &key,
                ACTOR,
            )
            .await;
            store.close().await;
            match done? {
                SignerRegistration::Unchanged => {
                    println!("{} {name} already holds {key}", kind.name())
                }
                SignerRegistration::Registered { replaced } => println!(
                    "{} {name} registered: {key}{}",
                    kind.name(),
                    replaced.map_or_else(String::new, |k| format!(" (replacing {k})"))
                ),
            }
        }
        Signers::Remove { data, kind, name } => {
            let registry = kind.registry(&data.data);
            let Some(key) = registry.key_of(&name) else {
                anyhow::bail!("no {} is registered as {name}", kind.name());
            };
            let (engine, store) = node_engine(&data.data).await?;
            let noted = engine
                .note(
                    None,
                    ACTOR,
                    format!("signer removed: {} {name} {key}", kind.name()),
                )
                .await;
            store.close().await;
            noted?;
            registry.remove(&name)?;
            println!(
                "{} {name} removed: what {key} signed is no longer trusted",
                kind.name()
            );
        }
    }
    Ok(())
}
