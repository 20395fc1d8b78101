//! Recording benchmarks on the reference corpus, side by side with asciicast v2 + `gzip -6`:
//! size, writer throughput on one core, peak writer memory, seek in a one-hour recording.
//!
//! ```text
//! cargo bench -p psm-recording --bench recording -- [--corpus DIR] [--regen] [--sizes-only]
//!     [--level N] [--chunk-bytes N] [--flush-secs N] [--group-bytes N] [--group-chunks N]
//!     [--keyframe-bytes N]
//! ```
//!
//! The corpus (about 55 MB of terminal output, see `corpus.rs`) is generated into DIR
//! (default `/var/tmp/psmr-corpus`) if it is missing. Results are printed as Markdown.
#![allow(clippy::unwrap_used, missing_docs)]

mod corpus;

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use psm_recording::import::{AsciicastReader, ImportMeta, import_asciicast};
use psm_recording::*;

struct Discard(u64);

impl RecordingSink for Discard {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn load(path: &Path) -> (Header, Vec<Event>) {
    let mut cast =
        AsciicastReader::new(BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    let h = cast.header().clone();
    let header = Header::new(
        psm_core::SessionId::new(),
        Protocol::Ssh,
        "alice",
        "web-01",
        "bench",
    )
    .with_terminal(TermSize::new(h.width, h.height), "xterm-256color");
    let mut events = Vec::new();
    while let Some(e) = cast.next_event().unwrap() {
        events.push(e);
    }
    (header, events)
}

fn output_bytes(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Output { data, .. } => data.len() as u64,
            _ => 0,
        })
        .sum()
}

fn gzip6_size(path: &Path) -> u64 {
    let out = Command::new("gzip")
        .args(["-6", "-c"])
        .arg(path)
        .output()
        .expect("gzip is required");
    assert!(out.status.success());
    out.stdout.len() as u64
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn config_from_args() -> WriterConfig {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut c = WriterConfig {
        fsync: FsyncPolicy::Never,
        ..WriterConfig::default()
    };
    if let Some(l) = get("--level") {
        c.compression_level = l as i32;
    }
    if let Some(f) = get("--flush-secs") {
        c.flush_interval = Duration::from_secs(f);
    }
    if let Some(b) = get("--chunk-bytes") {
        c.chunk_bytes = b as usize;
    }
    if let Some(b) = get("--group-bytes") {
        c.group_bytes = b as usize;
    }
    if let Some(n) = get("--group-chunks") {
        c.group_chunks = n as u32;
    }
    c
}

/// The seek index the encoder appends after the session (keyframes every
/// `--keyframe-bytes`, default 64 KiB, or 30 s of output), signed by its own key.
fn index_options() -> index::IndexOptions {
    let args: Vec<String> = std::env::args().collect();
    let mut o = index::IndexOptions::new(SigningKey::from_bytes(&[43u8; 32]));
    if let Some(k) = args
        .iter()
        .position(|a| a == "--keyframe-bytes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
    {
        o.keyframe_bytes = k;
    }
    if let Some(k) = args
        .iter()
        .position(|a| a == "--keyframe-secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<u64>().ok())
    {
        o.keyframe_interval = Duration::from_secs(k);
    }
    o
}

fn sizes(dir: &Path) {
    println!("### Size: .psmr vs asciicast v2 + gzip -6\n");
    println!(
        "| session | output | events | asciicast | asciicast + gzip -6 | .psmr as written | + seek index | .psmr / gzip'd cast |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut totals = [(0u64, 0u64, 0u64, 0u64, 0u64, 0u64); 2];
    let mut index_time = Duration::ZERO;
    for name in corpus::ALL {
        let cast = dir.join(format!("{name}.cast"));
        let psmr = dir.join(format!("{name}.psmr"));
        let _ = std::fs::remove_file(&psmr);
        let file = std::fs::File::create(&psmr).unwrap();
        import_asciicast(
            BufReader::new(std::fs::File::open(&cast).unwrap()),
            Box::new(file),
            key(),
            config_from_args(),
            ImportMeta::default(),
            |_| {},
        )
        .unwrap();
        let (_, events) = load(&cast);
        let o = output_bytes(&events);
        let c = std::fs::metadata(&cast).unwrap().len();
        let g = gzip6_size(&cast);
        let w = std::fs::metadata(&psmr).unwrap().len();
        // What the encoder does after the session: append the seek index.
        let t = Instant::now();
        index::add_seek_index(&psmr, &index_options()).unwrap();
        index_time += t.elapsed();
        let p = std::fs::metadata(&psmr).unwrap().len();
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | **{:.2}×** |",
            mb(o),
            events.len(),
            mb(c),
            mb(g),
            mb(w),
            mb(p),
            p as f64 / g as f64
        );
        let group = usize::from(corpus::INTERACTIVE.contains(name));
        let t = &mut totals[group];
        t.0 += o;
        t.1 += events.len() as u64;
        t.2 += c;
        t.3 += g;
        t.4 += w;
        t.5 += p;
    }
    let all = (
        totals[0].0 + totals[1].0,
        totals[0].1 + totals[1].1,
        totals[0].2 + totals[1].2,
        totals[0].3 + totals[1].3,
        totals[0].4 + totals[1].4,
        totals[0].5 + totals[1].5,
    );
    for (label, (o, e, c, g, w, p)) in [
        ("**reference corpus** (first four)", totals[0]),
        ("**everything**", all),
    ] {
        println!(
            "| {label} | {} | {e} | {} | {} | {} | {} | **{:.2}×** (as written {:.2}×) |",
            mb(o),
            mb(c),
            mb(g),
            mb(w),
            mb(p),
            p as f64 / g as f64,
            w as f64 / g as f64
        );
    }
    println!(
        "\nSeek index (the encoder's `add_seek_index`, after the session): {:.0} MB/s of output over everything ({:.2} s).\n",
        (totals[0].0 + totals[1].0) as f64 / index_time.as_secs_f64() / 1e6,
        index_time.as_secs_f64()
    );
}

fn throughput(dir: &Path) {
    println!("### Writer throughput (terminal output bytes per second)\n");
    let sessions: Vec<_> = corpus::SESSIONS
        .iter()
        .map(|n| load(&dir.join(format!("{n}.cast"))))
        .collect();
    let total: u64 = sessions.iter().map(|(_, e)| output_bytes(e)).sum();
    // 1. psm BlockingWriter: everything (encode, deltas, zstd, hash, sign) on this thread.
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for (h, events) in &sessions {
            let mut w = BlockingWriter::with_sink(
                Box::new(Discard(0)),
                h.clone(),
                key(),
                config_from_args(),
            )
            .unwrap();
            for e in events {
                w.record_at(e.time, &e.kind).unwrap();
            }
            w.finish("end").unwrap();
        }
        best = best.min(t.elapsed());
    }
    let psm_one_core = total as f64 / best.as_secs_f64() / 1e6;
    let mut per_session = Vec::new();
    for (i, (h, events)) in sessions.iter().enumerate() {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut w = BlockingWriter::with_sink(
                Box::new(Discard(0)),
                h.clone(),
                key(),
                config_from_args(),
            )
            .unwrap();
            for e in events {
                w.record_at(e.time, &e.kind).unwrap();
            }
            w.finish("end").unwrap();
            best = best.min(t.elapsed());
        }
        per_session.push(format!(
            "{} {:.0}",
            corpus::SESSIONS[i],
            output_bytes(events) as f64 / best.as_secs_f64() / 1e6
        ));
    }
    // 2. The async RecordingWriter as a gateway uses it: caller-side time only.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (caller, wall) = rt.block_on(async {
        let mut caller = Duration::ZERO;
        let t = Instant::now();
        for (h, events) in &sessions {
            let w = RecordingWriter::with_sink(
                Box::new(Discard(0)),
                h.clone(),
                key(),
                config_from_args(),
            )
            .await
            .unwrap();
            for e in events {
                let c = Instant::now();
                if let EventKind::Output { channel, data, .. } = &e.kind {
                    w.output(*channel, data).await.unwrap();
                } else {
                    w.record_at(e.time, e.kind.clone()).await.unwrap();
                }
                caller += c.elapsed();
            }
            w.finish("end").await.unwrap();
        }
        (caller, t.elapsed())
    });
    // 3. Peer: asciicast v2 lines piped into a real `gzip -6` (two processes).
    let t = Instant::now();
    for name in corpus::SESSIONS {
        let mut gz = Command::new("gzip")
            .args(["-6", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        {
            let mut input = std::io::BufWriter::new(gz.stdin.take().unwrap());
            let (_, events) = &sessions[corpus::SESSIONS.iter().position(|n| n == name).unwrap()];
            for e in events {
                if let EventKind::Output { data, .. } = &e.kind {
                    let s = serde_json::to_string(&String::from_utf8_lossy(data)).unwrap();
                    writeln!(input, "[{:.6}, \"o\", {s}]", e.time.as_secs_f64()).unwrap();
                }
            }
        }
        assert!(gz.wait().unwrap().success());
    }
    let peer = total as f64 / t.elapsed().as_secs_f64() / 1e6;
    println!("| writer | MB/s | note |");
    println!("|---|---|---|");
    println!(
        "| psm `BlockingWriter`, one thread | **{psm_one_core:.0}** | encode + output deltas + zstd-{} group stream + BLAKE3 + ed25519, all on one core ({} MB in {:.2} s) |",
        config_from_args().compression_level,
        total / 1_000_000,
        best.as_secs_f64()
    );
    println!(
        "| psm `RecordingWriter`, caller's task | **{:.0}** | what the gateway's hot path pays per byte (sealing runs on a blocking thread) |",
        total as f64 / caller.as_secs_f64() / 1e6
    );
    println!(
        "| psm `RecordingWriter`, end to end | {:.0} | wall clock, caller + sealer |",
        total as f64 / wall.as_secs_f64() / 1e6
    );
    println!("| asciicast v2 JSON → `gzip -6` (peer) | {peer:.0} | two processes |");
    println!(
        "| psm `BlockingWriter` per session, one thread | {} | MB/s |\n",
        per_session.join(", ")
    );
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In a child process: stream a cast through the async writer (or only parse it) and
/// print the peak resident set.
fn child_memory(cast: &Path, with_writer: bool, out: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut reader =
            AsciicastReader::new(BufReader::new(std::fs::File::open(cast).unwrap())).unwrap();
        let header = Header::new(
            psm_core::SessionId::new(),
            Protocol::Ssh,
            "alice",
            "web-01",
            "bench",
        )
        .with_terminal(TermSize::new(120, 40), "xterm");
        let _ = std::fs::remove_file(out);
        let w = if with_writer {
            Some(
                RecordingWriter::create(out, header, key(), WriterConfig::default())
                    .await
                    .unwrap(),
            )
        } else {
            None
        };
        while let Some(e) = reader.next_event().unwrap() {
            if let Some(w) = &w {
                w.record_at(e.time, e.kind).await.unwrap();
            }
        }
        if let Some(w) = w {
            w.finish("end").await.unwrap();
        }
    });
    println!("{}", vm_hwm_kb());
}

fn memory(dir: &Path) {
    println!("### Peak writer memory (RSS high-water mark, child process per run)\n");
    println!(
        "| session | parse only | parse + async writer (file, default config) | writer's share |"
    );
    println!("|---|---|---|---|");
    let exe = std::env::current_exe().unwrap();
    for name in ["ls-lR", "top"] {
        let cast = dir.join(format!("{name}.cast"));
        let run = |mode: &str| -> u64 {
            let out = Command::new(&exe)
                .args(["--child-memory", mode])
                .arg(&cast)
                .arg(dir.join(format!("{name}.mem.psmr")))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let base = run("baseline");
        let with = run("writer");
        println!(
            "| {name} | {:.1} MiB | {:.1} MiB | **{:.1} MiB** |",
            base as f64 / 1024.0,
            with as f64 / 1024.0,
            with.saturating_sub(base) as f64 / 1024.0
        );
    }
    println!();
}

fn seek(dir: &Path, name: &str, what: &str) {
    println!("### Seek in {what} (`{name}`)\n");
    // Written by `sizes` with the default configuration and the encoder's seek index.
    let path = dir.join(format!("{name}.psmr"));
    let t = Instant::now();
    let mut r = Reader::open(&path, ReadOptions::default()).unwrap();
    let open = t.elapsed();
    let dur = r.duration().0;
    let mut times = Vec::new();
    let mut rng = corpus::Rng::new(99);
    for i in 0..300u64 {
        let at = if i < 100 {
            dur * i / 100
        } else {
            rng.below(dur)
        };
        let t = Instant::now();
        let mut s = r.screen_at(Micros(at)).unwrap();
        let lines = s
            .terminal(ChannelId(0))
            .map(|t| t.lines().len())
            .unwrap_or(0);
        times.push(t.elapsed());
        assert!(lines > 0);
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    // The same recording as the gateway wrote it, without the seek index: replay from the
    // start (20 instants).
    let index_bytes = r.seek_index().map_or(0, |i| i.bytes);
    let bare = dir.join(format!("{name}.noindex.psmr"));
    std::fs::copy(&path, &bare).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&bare)
        .unwrap()
        .set_len(r.file_len() - index_bytes)
        .unwrap();
    let mut rb = Reader::open(&bare, ReadOptions::default()).unwrap();
    assert!(rb.seek_index().is_none());
    let mut bare_times: Vec<Duration> = (1..=20u64)
        .map(|i| {
            let t = Instant::now();
            rb.screen_at(Micros(dur * i / 20)).unwrap();
            t.elapsed()
        })
        .collect();
    bare_times.sort();
    let _ = std::fs::remove_file(&bare);
    // Peer: a cast has no index, so a player replays from the start (what asciinema does).
    let (h, events) = load(&dir.join(format!("{name}.cast")));
    let mut peer = Duration::ZERO;
    let probes = [dur / 4, dur / 2, dur * 3 / 4, dur];
    for at in probes {
        let t = Instant::now();
        let mut tr = TerminalTracker::new(h.terminal);
        for e in events.iter().take_while(|e| e.time.0 <= at) {
            tr.apply(&e.kind);
        }
        let _ = tr.terminal(ChannelId(0)).map(|t| t.lines());
        peer += t.elapsed();
    }
    let peer = peer / probes.len() as u32;
    println!("| measure | time |");
    println!("|---|---|");
    println!(
        "| open (header + signed trailer index) | {:.2} ms |",
        open.as_secs_f64() * 1e3
    );
    println!(
        "| seek, median of 300 instants | **{:.2} ms** |",
        pct(0.5).as_secs_f64() * 1e3
    );
    println!(
        "| seek, 99th percentile | **{:.2} ms** |",
        pct(0.99).as_secs_f64() * 1e3
    );
    println!("| seek, worst | {:.2} ms |", pct(1.0).as_secs_f64() * 1e3);
    println!(
        "| seek without the seek index (replay from the start), median / worst of 20 | {:.1} ms / {:.1} ms |",
        bare_times[10].as_secs_f64() * 1e3,
        bare_times[19].as_secs_f64() * 1e3
    );
    println!(
        "| peer: asciicast replay from the start (mean of ¼, ½, ¾, end; parse time excluded) | {:.1} ms |\n",
        peer.as_secs_f64() * 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-memory") {
        child_memory(
            Path::new(&args[i + 2]),
            args[i + 1] == "writer",
            Path::new(&args[i + 3]),
        );
        return;
    }
    let dir = args
        .iter()
        .position(|a| a == "--corpus")
        .map(|i| PathBuf::from(&args[i + 1]))
        .unwrap_or_else(|| PathBuf::from("/var/tmp/psmr-corpus"));
    let regen = args.iter().any(|a| a == "--regen");
    if regen
        || !corpus::ALL
            .iter()
            .all(|n| dir.join(format!("{n}.cast")).exists())
    {
        eprintln!("generating the corpus in {}", dir.display());
        let made = corpus::generate(&dir).unwrap();
        let total: u64 = made.iter().map(|(_, b)| b).sum();
        eprintln!("{made:?}: {} of output", mb(total));
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "Machine: {cpu}, {} cores available\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    sizes(&dir);
    if args.iter().any(|a| a == "--sizes-only") {
        return;
    }
    throughput(&dir);
    memory(&dir);
    seek(
        &dir,
        "top",
        "a one-hour recording, full redraw every second",
    );
    seek(&dir, "editor", "a 20-minute editing session, little output");
}
