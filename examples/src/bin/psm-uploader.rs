//! `psm-uploader`: one uploader process. Claims Done-Encoded sessions from the control plane,
//! stores and verifies their recordings, commits Done-Uploaded, then deletes the local copy.
//! Run several against one remote control plane (or one PostgreSQL database) to scale out
//! (docs/deployment.md).
//!
//! ```text
//! psm-uploader --data /var/lib/psm --control-plane https://cp:8443 \
//!     --api-key-file /etc/psm/uploader.key          # store from GetPAMSettings, or --store
//! ```

use clap::Parser;

#[path = "psm/pipeline.rs"]
mod pipeline;

#[derive(Parser)]
#[command(
    name = "psm-uploader",
    version,
    about = "PSM uploader: verified upload of finished recordings"
)]
struct Args {
    #[command(flatten)]
    process: pipeline::WorkerProcess,
    #[command(flatten)]
    store: pipeline::StoreArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pipeline::serve_process(args.process, pipeline::Role::Uploader(args.store)).await
}
