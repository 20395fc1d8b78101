//! `psm-encoder`: one encoder process. Claims Ended sessions from the control plane, verifies
//! their raw recordings, writes the exports (video for RDP) and the manifest, then commits
//! Done-Encoded. Run several against one remote control plane (or one PostgreSQL database)
//! to scale out (docs/deployment.md).
//!
//! ```text
//! psm-encoder --data /var/lib/psm --control-plane https://cp:8443 \
//!     --api-key-file /etc/psm/encoder.key
//! ```

use clap::Parser;

#[path = "psm/pipeline.rs"]
mod pipeline;

#[derive(Parser)]
#[command(
    name = "psm-encoder",
    version,
    about = "PSM encoder: raw recordings to verified exports"
)]
struct Args {
    #[command(flatten)]
    process: pipeline::WorkerProcess,
    #[command(flatten)]
    encode: pipeline::EncodeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pipeline::serve_process(args.process, pipeline::Role::Encoder(args.encode)).await
}
