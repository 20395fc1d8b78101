//! `psm`: the all-in-one node (`psm up`) and the command-line tools. Argument parsing and
//! assembly only: each subcommand's logic lives in the crates.

use clap::{Parser, Subcommand};

mod admin;
mod config;
mod db;
mod gateway;
mod pipeline;
mod rdp;
mod recording;
mod report;
mod request;
mod siem;
mod signers;
mod up;
mod windows;

#[derive(Parser)]
#[command(name = "psm", version, about = "Privileged session management")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run every PSM service in one process on the embedded defaults (SQLite and local
    /// storage under ./psm-data).
    Up(up::UpArgs),
    #[command(flatten)]
    Pipeline(pipeline::Command),
    #[command(flatten)]
    Admin(admin::Command),
    #[command(flatten)]
    Recording(recording::Command),
    /// Access windows: when and from where a role may use its grant of a target.
    #[command(subcommand)]
    Windows(windows::Windows),
    /// Compliance reports: make one for a period, or verify one.
    Report(report::ReportArgs),
    /// Ask for access to a target for a while (access requests with approval).
    Request(request::RequestArgs),
    /// Access requests: list, approve, deny, cancel; approval rules per target.
    #[command(subcommand)]
    Requests(request::Requests),
    /// The keys this node trusts: gateways' (recordings) and encoders' (recording sets).
    #[command(subcommand)]
    Signers(signers::Signers),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Pipeline(command) => pipeline::run(command).await,
        Command::Admin(command) => admin::run(command).await,
        Command::Windows(command) => windows::run(command).await,
        Command::Request(args) => request::run_request(args).await,
        Command::Requests(command) => request::run(command).await,
        Command::Signers(command) => signers::run(command).await,
        Command::Report(args) => match report::run(args).await? {
            0 => Ok(()),
            // verify: a changed report, or a cited recording changed or missing.
            code => std::process::exit(i32::from(code)),
        },
        Command::Recording(command) => match recording::run(command).await? {
            0 => Ok(()),
            // Distinct exit codes (verify: truncated, tampered, untrusted; search: no match).
            code => std::process::exit(i32::from(code)),
        },
    }
}
