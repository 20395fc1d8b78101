//! `psm-embed-ssh`: the smallest embedding of PSM's SSH gateway. Its own control plane
//! implements the one role the gateway calls ([`SessionLifecycle`]); users are psm-core's
//! `MemoryDirectory`, the target comes from the command line, and the recorder writes every
//! session to `DATA_DIR/<session-id>.psmr`.
//! ```text
//! PSM_TARGET_PASSWORD=... psm-embed-ssh 127.0.0.1:2222 ~/.ssh/id_ed25519.pub \
//!     web deploy@10.0.0.5:22 "$(cat web-host-key.pub)" ./recordings
//! ssh -p 2222 alice+web@127.0.0.1 uptime
//! ```
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use psm_core::directory::{AuthorizedKey, DirectoryAdmin, MemoryDirectory, NewUser};
use psm_core::{CoreError, HeartbeatReply, NewSession, PrivSession, ProcessInstance};
use psm_core::{SessionId, SessionLifecycle, Timestamp};
use psm_proxy::record::{RecorderConfig, RecorderFactory, load_or_create_signing_key};
use psm_proxy::{HostKeyCheck, SessionRegistry, StaticTarget, StaticTargets};
use psm_proxy::{TargetCredential, TargetSecret};
use psm_proxy_ssh::{GatewayDeps, SshGateway, SshGatewayConfig, generate_host_key};

/// The control plane: session events, in memory, each also printed on stdout.
#[derive(Default)]
struct SessionLog(Mutex<Vec<String>>);

impl SessionLog {
    fn note(&self, event: String) {
        println!("{event}");
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

#[async_trait]
impl SessionLifecycle for SessionLog {
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        self.note(format!("opened {} {}+{}", new.id, new.user, new.target));
        Ok(PrivSession::connected(new, Timestamp::now_utc()))
    }
    async fn heartbeat(
        &self,
        _: SessionId,
        _: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        Ok(HeartbeatReply::default()) // never asks the gateway to terminate
    }
    async fn update_session(&self, _: SessionId) -> Result<(), CoreError> {
        Ok(())
    }
    async fn end_session(&self, id: SessionId, _: &ProcessInstance) -> Result<(), CoreError> {
        self.note(format!("ended {id}"));
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, user_key, target, login, host_key, data] = args.as_slice() else {
        anyhow::bail!("usage: psm-embed-ssh LISTEN KEY.pub TARGET ACCOUNT@HOST:PORT HOST_KEY DATA");
    };
    let (account, at) = login.split_once('@').context("ACCOUNT@HOST:PORT")?;
    let (host, port) = at.rsplit_once(':').context("ACCOUNT@HOST:PORT")?;
    let password = std::env::var("PSM_TARGET_PASSWORD").context("PSM_TARGET_PASSWORD")?;

    let directory = Arc::new(MemoryDirectory::new());
    let key = std::fs::read_to_string(user_key).with_context(|| format!("reading {user_key}"))?;
    directory
        .create_user(&NewUser {
            name: "alice".parse()?,
            keys: vec![AuthorizedKey::parse(key.trim())?],
            roles: vec!["ops".into()],
            ..NewUser::default()
        })
        .await?;
    directory.grant("ops", target).await?;

    let targets = StaticTargets::new();
    targets.insert(
        target,
        StaticTarget {
            host: host.into(),
            port: port.parse()?,
            host_key: HostKeyCheck::Pinned(vec![host_key.clone()]),
            credential: TargetCredential {
                account: account.into(),
                secret: TargetSecret::Password(password),
            },
            lifetime: None,
        },
    );

    let (signing, _) = load_or_create_signing_key(&std::path::Path::new(data).join("signing.key"))?;
    let recorder = RecorderFactory::new(RecorderConfig::new(data, signing, "psm-embed-ssh"));
    let mut config = SshGatewayConfig::new(listen.parse()?, ProcessInstance::new("embed-1")?);
    config.host_keys.push(generate_host_key());
    let log = Arc::new(SessionLog::default());
    let deps = GatewayDeps {
        control_plane: log.clone(),
        directory,
        targets: Arc::new(targets),
        taps: Arc::new(recorder),
        registry: SessionRegistry::new(),
    };
    let gateway = SshGateway::bind(config, deps).await?;
    println!("listening on {}", gateway.local_addr());
    gateway
        .run(async { tokio::signal::ctrl_c().await.unwrap_or_default() })
        .await?;
    let events = log.0.lock().map_or(0, |v| v.len());
    println!("{events} session events");
    Ok(())
}
