//! Seeds a control-plane data directory (or PostgreSQL schema) for the load benchmark:
//! `--connected N` Connected sessions owned by `gw-bench` (their ids go to `--ids FILE`, one
//! per line) and `--ended N` Ended sessions waiting for encoders. Run it before starting
//! psm-controlplane on the same directory. See `psm-server/bench/run.sh`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use psm_core::{NewSession, ProcessInstance, Protocol, SessionId};
use psm_server::node::NodeOptions;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(arg(&args, "--data").ok_or("--data DIR")?);
    let connected: usize = arg(&args, "--connected").map_or(Ok(0), |s| s.parse())?;
    let ended: usize = arg(&args, "--ended").map_or(Ok(0), |s| s.parse())?;
    let ids_file = PathBuf::from(arg(&args, "--ids").ok_or("--ids FILE")?);
    let mut options = NodeOptions::new(&data);
    options.database = arg(&args, "--database");
    options.schema = arg(&args, "--schema");
    let node = psm_server::node::open(options).await?;
    let engine = node.control_plane.engine().clone();
    let gw = ProcessInstance::new("gw-bench")?;
    let mut out = std::fs::File::create(&ids_file)?;
    let total = connected + ended;
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let engine = engine.clone();
        let gw = gw.clone();
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let id = SessionId::new();
            engine
                .open_session(NewSession {
                    id,
                    user: "bench".into(),
                    target: "bench-target".into(),
                    protocol: Protocol::Ssh,
                    checkout_id: None,
                    process_instance: gw.clone(),
                })
                .await?;
            if i >= connected {
                engine.end_session(id, &gw).await?;
            }
            Ok::<_, psm_core::CoreError>((i, id))
        }));
    }
    for t in tasks {
        let (i, id) = t.await??;
        if i < connected {
            writeln!(out, "{id}")?;
        }
    }
    println!("seeded {connected} connected and {ended} ended sessions");
    // The engine's own ceiling, without HTTP: Polling's engine calls (the read the server
    // makes for its role check, then the heartbeat) from 64 concurrent tasks.
    if let Some(secs) = arg(&args, "--engine-polling") {
        let secs: u64 = secs.parse()?;
        let ids: Arc<Vec<SessionId>> = Arc::new(
            std::fs::read_to_string(&ids_file)?
                .lines()
                .map(|l| l.parse())
                .collect::<Result<_, _>>()?,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for t in 0..64usize {
            let engine = engine.clone();
            let gw = gw.clone();
            let ids = ids.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = t * 16;
                while std::time::Instant::now() < deadline {
                    let id = ids[i % ids.len()];
                    i += 1;
                    let start = std::time::Instant::now();
                    engine.session(id).await?;
                    engine.heartbeat(id, &gw).await?;
                    lat.push(start.elapsed().as_micros() as u64);
                }
                Ok::<_, psm_core::CoreError>(lat)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64) * p) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "engine Polling (read + heartbeat, 64 tasks, {secs} s): {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
            all.len() as f64 / secs as f64,
            pct(0.50) as f64 / 1000.0,
            pct(0.99) as f64 / 1000.0
        );
    }
    node.close().await;
    Ok(())
}
