//! RDP proxy benchmark against real xrdp, side by side: the same ironrdp-based measuring
//! client connects (a) straight to xrdp and (b) through the PSM gateway, and measures
//!
//! - keystroke latency: a key press to the first screen update that follows (xterm echo);
//! - screen updates per second while `yes` floods the xterm (the client drains as fast as
//!   it decodes; the gateway merges changes for a slow client, so this is what a user sees);
//! - the gateway's CPU per session (its connection thread's user+system time) during that
//!   flood and during an "active desktop" minute;
//! - recording size per minute of active desktop (a command every 2 s that rewrites the
//!   screen), the anchor being 50–250 KB/min for a commercial product, beside the same
//!   session's pictures stored as PNG stills (`RecordingPolicy::raw_pixels = false`).
//!
//! Run: `cargo bench --bench rdp_proxy` (add `-- --quick` for a 20 s active phase). Needs
//! the same peers as the tests (xrdp, xorgxrdp).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use psm_proxy::{Authorization, HostKeyCheck};
use psm_proxy_rdp::access::TargetLogin;
use psm_proxy_rdp::input::{InputEvent, keys_for_char};
use psm_proxy_rdp::screen::{DesktopScreen, ScreenWatch};
use psm_proxy_rdp::upstream;
use tokio::sync::{mpsc, oneshot};

struct Client {
    screen: DesktopScreen,
    watch: ScreenWatch,
    input: mpsc::Sender<InputEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<upstream::TargetEnd>,
}

/// `pin`: the target's certificate pin (xrdp speaks TLS only, which the gateway's side
/// uses only toward pinned targets); `None`: any certificate, NLA only (the gateway).
async fn connect(port: u16, pin: Option<String>, user: &str, password: &str) -> Client {
    let auth = Authorization {
        target: "bench".into(),
        host: "127.0.0.1".into(),
        port,
        host_key: pin.map_or(HostKeyCheck::AcceptAny, |p| HostKeyCheck::Pinned(vec![p])),
        account: String::new(),
        checkout: None,
        expires: None,
    };
    let login = TargetLogin::new(user, password);
    let s = upstream::connect(
        &auth,
        &login,
        1024,
        768,
        psm_proxy_rdp::TargetSecurity::NlaOrTls,
        Duration::from_secs(60),
    )
    .await
    .expect("connect");
    let screen = DesktopScreen::new(s.width, s.height);
    let watch = screen.watch();
    let (tx, rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(s.run(screen.clone(), rx, async {
        let _ = stop_rx.await;
    }));
    Client {
        screen,
        watch,
        input: tx,
        stop: Some(stop_tx),
        task,
    }
}

impl Client {
    async fn settle(&self) {
        let mut last = u64::MAX;
        let mut stable = 0;
        let start = Instant::now();
        while stable < 15 && start.elapsed() < Duration::from_secs(60) {
            let g = self.screen.generation();
            stable = if g == last && g > 0 { stable + 1 } else { 0 };
            last = g;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_text(&self, text: &str) {
        for c in text.chars() {
            for e in keys_for_char(c).expect("typable") {
                self.input.send(e).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn ctrl(&self, code: u8) {
        for (c, d) in [(0x1d, true), (code, true), (code, false), (0x1d, false)] {
            self.input
                .send(InputEvent::Key {
                    code: c,
                    extended: false,
                    down: d,
                })
                .await
                .unwrap();
        }
    }

    /// Key press → first screen update, `n` times; returns sorted latencies.
    async fn latencies(&self, n: usize) -> Vec<Duration> {
        let mut out = Vec::new();
        for _ in 0..n {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = self.watch.take();
            let t0 = Instant::now();
            for e in keys_for_char('x').unwrap() {
                self.input.send(e).await.unwrap();
            }
            if tokio::time::timeout(Duration::from_secs(5), self.watch.changed())
                .await
                .is_ok()
            {
                out.push(t0.elapsed());
            }
        }
        self.ctrl(0x16).await; // Ctrl-U: clear the line
        out.sort();
        out
    }

    /// DesktopScreen updates seen per second during `secs` of `yes` flooding the terminal.
    async fn flood_fps(&self, secs: u64, cpu: &dyn Fn() -> f64) -> (f64, f64) {
        self.type_text("yes\n").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = self.watch.take();
        let c0 = cpu();
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs(secs) {
            if tokio::time::timeout(Duration::from_millis(500), self.watch.changed())
                .await
                .is_ok()
            {
                let _ = self.watch.take();
                n += 1;
            }
        }
        let el = t0.elapsed().as_secs_f64();
        let cpu_used = cpu() - c0;
        self.ctrl(0x2e).await; // Ctrl-C
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.type_text("clear\n").await;
        self.settle().await;
        (n as f64 / el, cpu_used / el * 100.0)
    }

    async fn close(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// CPU seconds (user + system) used by this process's threads whose name starts with
/// `rdp-` (the gateway's connection threads).
fn gateway_cpu() -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("rdp-") {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            if let Some(rest) = stat.rsplit(')').next() {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                total += (ut + st) / tick;
            }
        }
    }
    total
}

fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--keep DIR`: copy the workloads' recordings there.
    let keep = std::env::args()
        .skip_while(|a| a != "--keep")
        .nth(1)
        .map(std::path::PathBuf::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        require_all();
        let _lock = MachineLock::take();
        let dir = tempfile::tempdir().unwrap();
        let target_password = target_account();
        let xrdp = Xrdp::start(dir.path());
        let plane = plane_for(&xrdp, &target_password).await;
        let gw = gateway(&plane, dir.path(), |_| {}).await;
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned()))
            .unwrap_or_default();
        println!("machine: {} cores, {cpu_model}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

        let fps_secs = if quick { 5 } else { 10 };
        let zero = || 0.0;

        // (a) direct
        let direct = connect(xrdp.port, Some(xrdp.pin()), TARGET_USER, &target_password).await;
        direct.settle().await;
        let lat_direct = direct.latencies(30).await;
        let (fps_direct, _) = direct.flood_fps(fps_secs, &zero).await;
        direct.close().await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        // (b) through the gateway
        let proxied = connect(gw.addr.port(), None, &format!("{PSM_USER}+desk-01"), PSM_PASSWORD).await;
        proxied.settle().await;
        let lat_proxy = proxied.latencies(30).await;
        let (fps_proxy, cpu_flood) = proxied.flood_fps(fps_secs, &gateway_cpu).await;

        // Active desktop, two workloads, each its own session and recording:
        // "scrolling": a command every 2 s that rewrites the whole terminal;
        // "typing": a short command every 2 s that adds two lines.
        let active = if quick { 20 } else { 60 };
        proxied.close().await;
        let mut sizes = Vec::new();
        let mut alternatives = Vec::new();
        for (name, command) in [("scrolling", "ls -l /usr/bin | shuf -n 30\n"), ("typing", "echo step $RANDOM\n")] {
            while !gw.registry.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let c = connect(gw.addr.port(), None, &format!("{PSM_USER}+desk-01"), PSM_PASSWORD).await;
            c.settle().await;
            if name == "typing" {
                c.type_text("clear\n").await;
            }
            let c0 = gateway_cpu();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(active) {
                c.type_text(command).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let active_secs = t0.elapsed().as_secs_f64();
            let cpu_active = (gateway_cpu() - c0) / active_secs * 100.0;
            let id = gw.registry.list().first().map(|i| i.id).expect("a live session");
            c.close().await;
            let start = Instant::now();
            while !gw.registry.is_empty() && start.elapsed() < Duration::from_secs(20) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let rec = gw.recordings.join(format!("{id}.psmr"));
            let bytes = std::fs::metadata(&rec).map(|m| m.len()).unwrap_or(0);
            let session_secs = psm_recording::Reader::open(&rec, Default::default())
                .map(|r| r.duration().0 as f64 / 1e6)
                .unwrap_or(f64::NAN);
            let (png_bytes, _, png_held) = rewrite(&rec, &dir.path().join(format!("{name}-png.psmr")), None);
            alternatives.push(format!("active desktop ({name:9}) as PNG stills (raw_pixels = false): {:.0} KB/min, writer holds at most {:.1} MiB", png_bytes as f64 / 1024.0 / (session_secs / 60.0), png_held as f64 / 1048576.0));
            // The same pictures at other zstd settings, to show what the default buys and costs.
            for (level, ldm, group_mib) in [(3, false, 16), (3, true, 16), (9, true, 16), (15, true, 16), (3, true, 4), (9, true, 4)] {
                let config = psm_recording::WriterConfig {
                    compression_level: level,
                    long_distance_matching: ldm,
                    group_bytes: group_mib << 20,
                    ..psm_proxy_rdp::recorder::writer_config(&Default::default())
                };
                let (b, secs, held) = rewrite(&rec, &dir.path().join(format!("{name}-{level}-{ldm}-{group_mib}.psmr")), Some(config));
                alternatives.push(format!("active desktop ({name:9}) raw pixels, level {level:2}, long-distance {ldm:5}, {group_mib:2} MiB window: {:.0} KB/min, {:.0} ms to write it all, writer holds at most {:.1} MiB", b as f64 / 1024.0 / (session_secs / 60.0), secs * 1000.0, held as f64 / 1048576.0));
            }
            if let Some(keep) = &keep {
                std::fs::create_dir_all(keep).unwrap();
                std::fs::copy(&rec, keep.join(format!("{name}.psmr"))).unwrap();
            }
            sizes.push((name, bytes, png_bytes, session_secs, active_secs, cpu_active));
        }

        println!("keystroke latency (ms)      direct p50 {:.1} p95 {:.1} | via gateway p50 {:.1} p95 {:.1} | added p50 {:.1}",
            pct(&lat_direct, 0.5), pct(&lat_direct, 0.95), pct(&lat_proxy, 0.5), pct(&lat_proxy, 0.95),
            pct(&lat_proxy, 0.5) - pct(&lat_direct, 0.5));
        println!("screen updates/s under flood direct {fps_direct:.1} | via gateway {fps_proxy:.1} | ratio {:.2}", fps_proxy / fps_direct);
        println!("gateway CPU per session     flood {cpu_flood:.1}% of one core");
        for (name, bytes, png_bytes, session_secs, active_secs, cpu_active) in sizes {
            let per_min = |b: u64| b as f64 / 1024.0 / (session_secs / 60.0);
            println!("active desktop ({name:9}) recording {bytes} bytes over a {session_secs:.0} s session ({active_secs:.0} s active) = {:.0} KB/min; as PNG stills {:.0} KB/min (raw pixels are {:.3}x); gateway CPU {cpu_active:.1}% of one core",
                per_min(bytes), per_min(png_bytes), bytes as f64 / png_bytes as f64);
        }
        for line in alternatives {
            println!("{line}");
        }
        drop(xrdp);
    });
}

/// The same session rewritten: with `config`, every event as recorded (the pictures at other
/// writer settings); with `None`, every picture as a PNG still (the same regions, the same
/// PNG encoder) with the writer settings of `RecordingPolicy::raw_pixels = false`, which is
/// how the recorder stores them in that mode. Returns the file's size, the seconds the
/// rewrite took and the most bytes the writer held (buffers and zstd state) meanwhile.
fn rewrite(
    rec: &std::path::Path,
    out: &std::path::Path,
    config: Option<psm_recording::WriterConfig>,
) -> (u64, f64, usize) {
    use psm_recording::graphics::Canvas;
    use psm_recording::{BlockingWriter, EventKind, FsyncPolicy, Micros, Reader, SigningKey};
    let mut r = Reader::open(rec, Default::default()).unwrap();
    let as_png = config.is_none();
    let policy = psm_proxy_rdp::config::RecordingPolicy {
        raw_pixels: false,
        ..Default::default()
    };
    let config = psm_recording::WriterConfig {
        fsync: FsyncPolicy::Never,
        ..config.unwrap_or_else(|| psm_proxy_rdp::recorder::writer_config(&policy))
    };
    let header = r.header().clone();
    let events: Vec<_> = r.events().map(Result::unwrap).collect();
    let t0 = Instant::now();
    let mut w =
        BlockingWriter::create(out, header, SigningKey::generate().unwrap(), config).unwrap();
    let (mut end, mut reason) = (Micros(0), String::new());
    let mut held = 0;
    for ev in events {
        let kind = match ev.kind {
            EventKind::Pixels {
                x,
                y,
                width,
                height,
                ..
            } if as_png => EventKind::Frame {
                x,
                y,
                width,
                height,
                png: Canvas::of_picture(&ev.kind)
                    .unwrap()
                    .unwrap()
                    .to_png()
                    .unwrap(),
            },
            EventKind::SessionEnd { reason: r } => {
                (end, reason) = (ev.time, r);
                continue;
            }
            k => k,
        };
        w.record_at(ev.time, &kind).unwrap();
        held = held.max(w.held_bytes());
    }
    w.finish_at(end, &reason).unwrap();
    (
        std::fs::metadata(out).unwrap().len(),
        t0.elapsed().as_secs_f64(),
        held,
    )
}
