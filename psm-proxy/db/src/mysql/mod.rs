//! MySQL and MariaDB sessions through PSM, beside the PostgreSQL gateway and on the same
//! pieces: the PSM login check ([`crate::auth`]), the certificates ([`crate::tls`]), the
//! statement classes ([`crate::classify::classify_mysql`]), the recording's
//! [`DbStatement`](psm_recording::DbStatement), the session lifecycle and the limits.
//!
//! A user's usual client (`mariadb`, `mysql`, `mysqlslap`, a driver) connects as
//! `USER+TARGET` over TLS; the gateway asks for the PSM password with the
//! `mysql_clear_password` plugin (inside TLS), checks it, opens a PrivSession
//! (`Protocol::Mysql`), logs in to the target with the vaulted credential
//! (`mysql_native_password`, `caching_sha2_password`) and relays every packet, judging each
//! statement by the policy and recording it.
//!
//! The packets are `mysql_common`'s types; the relay forwards the target's packets as
//! they came (why not `opensrv-mysql`: it answers queries itself from typed rows, so a relay
//! through it would re-encode every result and lose the target's column metadata).
//!
//! ```no_run
//! # async fn demo(deps: psm_proxy_db::mysql::MysqlGatewayDeps) -> Result<(), Box<dyn std::error::Error>> {
//! use psm_proxy_db::mysql::{MysqlGateway, MysqlGatewayConfig};
//! use psm_proxy_db::tls::load_or_create_certificate;
//!
//! let cert = load_or_create_certificate("my.crt".as_ref(), "my.key".as_ref(),
//!     &["localhost".into()])?;
//! let mut config = MysqlGatewayConfig::new("127.0.0.1:13306".parse()?,
//!     psm_core::ProcessInstance::new("my-gw-1")?);
//! config.tls = Some(cert.config);
//! MysqlGateway::bind(config, deps).await?.run(std::future::pending()).await?;
//! // users now run: mariadb --ssl -h gateway -P 13306 -u alice+mariaprod -p
//! # Ok(()) }
//! ```
//!
//! Where to look: [`gateway`] (listener), [`session`] (login, lifecycle, relay),
//! [`handshake`] (the user's login), [`upstream`] (the login to the target), [`statement`]
//! (commands followed for the recording), [`packet`] (framing).

pub mod gateway;
pub mod handshake;
pub mod packet;
pub mod session;
pub mod statement;
pub mod upstream;

pub use gateway::MysqlGateway;
pub use session::LiveMysqlSession;

/// The MySQL gateway's configuration: the same settings as the PostgreSQL gateway's
/// (listen address, TLS toward users and targets, limits, timeouts, heartbeats).
pub type MysqlGatewayConfig = crate::config::PostgresGatewayConfig;

/// What the MySQL gateway works with: the same seams as the PostgreSQL gateway
/// (`ControlPlaneTargets::for_protocol(Protocol::Mysql)` for the targets).
pub type MysqlGatewayDeps = crate::gateway::PostgresGatewayDeps;
