//! `psm`: the all-in-one node (`psm up`) and the command-line tools. Argument parsing and
//! assembly only: each subcommand's logic lives in the crates.

use clap::{Parser, Subcommand};

mod admin;
mod config;
mod gateway;
mod pipeline;
mod rdp;
mod recording;
mod siem;
mod up;

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
        Command::Recording(command) => match recording::run(command).await? {
            0 => Ok(()),
            // Distinct exit codes (verify: truncated, tampered, untrusted; search: no match).
            code => std::process::exit(i32::from(code)),
        },
    }
}
