//! # psm-proxy-db
//!
//! PSM's database gateway: PostgreSQL sessions through PSM. A user's usual client (`psql`,
//! a driver, pgbench) connects to the gateway as `USER+TARGET`, over TLS, with their PSM
//! password; the gateway checks it against the directory, opens a PrivSession
//! (`Protocol::Postgres`), logs in to the target database with the vaulted credential
//! (SCRAM-SHA-256, MD5, or a cleartext password inside TLS) the user never sees, and relays
//! every message, judging each statement by the command policy (its text, and the classes
//! `sqlparser` reads in it) and recording it as a typed [`DbStatement`] event: text,
//! parameters, database, duration, command tag, rows, result columns and row count, error.
//!
//! It is glue over `psm-proxy`, the protocol-neutral session layer, like the SSH and RDP
//! gateways: the registry of live sessions and their control (pause holds statements,
//! lock refuses them, terminate closes the connection), login names, target access, the
//! recorder and policy taps. The PostgreSQL protocol is `pgwire`'s (toward users) and
//! `postgres-protocol`'s (toward targets); this crate frames and follows it.
//!
//! ```no_run
//! # async fn demo(control_plane: std::sync::Arc<dyn psm_core::SessionLifecycle>,
//! #     targets: std::sync::Arc<dyn psm_proxy::TargetAccess>,
//! #     directory: std::sync::Arc<dyn psm_core::directory::DirectoryLookup>) -> Result<(), Box<dyn std::error::Error>> {
//! use psm_proxy::{NoTaps, SessionRegistry};
//! use psm_proxy_db::{PostgresGateway, PostgresGatewayConfig, PostgresGatewayDeps};
//! use psm_proxy_db::tls::load_or_create_certificate;
//!
//! let cert = load_or_create_certificate("pg.crt".as_ref(), "pg.key".as_ref(),
//!     &["localhost".into()])?;
//! let mut config = PostgresGatewayConfig::new("127.0.0.1:15432".parse()?,
//!     psm_core::ProcessInstance::new("pg-gw-1")?);
//! config.tls = Some(cert.config);
//! let deps = PostgresGatewayDeps { control_plane, directory, targets,
//!     taps: std::sync::Arc::new(NoTaps), registry: SessionRegistry::new() };
//! PostgresGateway::bind(config, deps).await?.run(std::future::pending()).await?;
//! // users now run: psql "host=gateway port=15432 user=alice+pgprod dbname=app sslmode=require"
//! # Ok(()) }
//! ```
//!
//! Where to look: [`gateway`] (listener, limits), [`session`] (startup, login, lifecycle,
//! relay), [`upstream`] (the login to the target), [`statement`] (statements followed for
//! the recording, refusals), [`classify`] (statement classes), [`wire`] (message framing),
//! [`auth`] (PSM passwords), [`tls`] (certificates). `docs/database.md` says what works.
//!
//! [`DbStatement`]: psm_recording::DbStatement

pub mod auth;
pub mod classify;
pub mod config;
pub mod gateway;
pub mod mysql;
pub mod session;
pub mod statement;
pub mod tls;
pub mod upstream;
pub mod wire;

pub use config::{PostgresGatewayConfig, TargetTls};
pub use gateway::{PostgresGateway, PostgresGatewayDeps};
pub use session::LivePostgresSession;
