//! `psm verify|info|export|play|search|import|index|recording-keygen`: the recording tools.
//! Argument parsing, files, progress bars and the terminal; the logic is in psm-recording.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use psm_pipeline::seek_index::{IndexOutcome, index_recording};
use psm_recording::export::{self, AsciicastOptions};
use psm_recording::import::{ImportMeta, import_asciicast};
use psm_recording::index::IndexOptions;
use psm_recording::play::{PlayOptions, PlayStep, Player};
use psm_recording::{
    ChannelId, Integrity, Micros, ReadOptions, Reader, RecipientPublic, RecipientSecret,
    RecordingError, SigningKey, VerifyOptions, VerifyingKey, WriterConfig,
};

/// Exit code of `psm verify` for an intact recording.
pub const EXIT_INTACT: u8 = 0;
/// Exit code of `psm verify` for a truncated recording.
pub const EXIT_TRUNCATED: u8 = 3;
/// Exit code of `psm verify` for a tampered recording.
pub const EXIT_TAMPERED: u8 = 4;
/// Exit code of `psm verify` for a recording signed by another key than `--key`.
pub const EXIT_UNTRUSTED: u8 = 5;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check a recording's hash chain and signatures. Prints "intact", "truncated after
    /// chunk K at T" or "tampered at chunk K"; exits 0 (intact), 3 (truncated), 4 (tampered),
    /// 5 (signed by a key other than --key), 1 (not a readable recording).
    Verify(VerifyArgs),
    /// Show a recording's header, duration, chunks, size, signer and recipients.
    Info(InfoArgs),
    /// Export a recording as asciicast v2, a text transcript, a JSON command index, or PNG
    /// frames. Deterministic: the same recording always gives the same bytes.
    Export(ExportArgs),
    /// Play a recording in this terminal, at any speed, from any point.
    Play(PlayArgs),
    /// Search commands, output and events of many recordings; prints time offsets.
    Search(SearchArgs),
    /// Convert an asciicast v2 file (from `asciinema rec`) into a .psmr recording.
    Import(ImportArgs),
    /// Give an intact recording its seek index, so players seek without replaying from the
    /// start (encoders do it for every new recording; this is for older ones). The file is
    /// replaced atomically; one that has an index already is left as it is.
    Index(IndexArgs),
    /// Create a recording signing key (ed25519) or recipient key (X25519).
    RecordingKeygen(KeygenArgs),
}

#[derive(Args)]
pub struct KeyArgs {
    /// Recipient secret key file (`psmr-recipient-secret:...`) to decrypt an encrypted
    /// recording.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The recording.
    file: PathBuf,
    /// The public key the recording must be signed by (`psmr-signing-public:...`, or a file
    /// holding it). Without it, any signer is accepted and named.
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    keys: KeyArgs,
    /// Skip decoding the events (check hashes and signatures only).
    #[arg(long)]
    quick: bool,
}

#[derive(Args)]
pub struct InfoArgs {
    /// The recording.
    file: PathBuf,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// asciicast v2 (plays with `asciinema play`).
    Asciicast,
    /// Plain text transcript with times.
    Text,
    /// JSON index of the commands the user ran.
    Commands,
    /// PNG frames of a graphical session, into the directory given by -o.
    Frames,
    /// A graphical session as a video (format from -o's extension, MP4 by default options),
    /// through Debian's `ffmpeg`.
    Video,
    /// A graphical session's contact sheet: one PNG of thumbnails at even times.
    Sheet,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, short, value_enum)]
    format: Format,
    /// The recording.
    file: PathBuf,
    /// Output file (`-`: standard output; not for video), or directory for frames.
    #[arg(long, short)]
    output: PathBuf,
    /// Terminal channel to export (asciicast; default: the first terminal).
    #[arg(long)]
    channel: Option<u32>,
    /// Include the user's keystrokes as "i" events (asciicast).
    #[arg(long)]
    input: bool,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
pub struct PlayArgs {
    /// The recording.
    file: PathBuf,
    /// Speed factor.
    #[arg(long, short, default_value_t = 1.0)]
    speed: f64,
    /// Start here (SECONDS, MM:SS or HH:MM:SS.fff); the screen is rebuilt from a keyframe.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Stop here.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Longest pause, in seconds.
    #[arg(long, short = 'i', value_name = "SECONDS")]
    idle_limit: Option<f64>,
    /// Terminal channel to play.
    #[arg(long)]
    channel: Option<u32>,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
pub struct SearchArgs {
    /// A regular expression (Rust `regex` syntax).
    pattern: String,
    /// Recordings to search.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Case-insensitive.
    #[arg(long, short = 'i')]
    ignore_case: bool,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The asciicast v2 file.
    input: PathBuf,
    /// The recording to create (must not exist).
    #[arg(long, short)]
    output: PathBuf,
    /// Signing key file (`psmr-signing-secret:...`). Default: a new key, whose public half
    /// is printed.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Encrypt for this recipient (`psmr-recipient-public:...` or a file); repeatable.
    #[arg(long = "recipient", value_name = "KEY")]
    recipients: Vec<String>,
    /// User to record in the header.
    #[arg(long, default_value = "unknown")]
    user: String,
    /// Target to record in the header.
    #[arg(long, default_value = "localhost")]
    target: String,
    /// Session id (default: a new one).
    #[arg(long)]
    session: Option<String>,
}

#[derive(Args)]
pub struct IndexArgs {
    /// The recording.
    file: PathBuf,
    /// Signing key file (`psmr-signing-secret:...`) that signs the index, e.g. the encoders'
    /// DATA/keys/index-signing.key.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KeyKind {
    /// ed25519 key that signs recordings (held by gateways).
    Signing,
    /// X25519 key that decrypts recordings (held by auditors).
    Recipient,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Which key.
    #[arg(long, value_enum)]
    kind: KeyKind,
    /// Where to write the secret key (created with mode 0600, must not exist).
    #[arg(long, short)]
    output: PathBuf,
}

fn read_text_arg(s: &str) -> anyhow::Result<String> {
    if s.starts_with("psmr-") {
        Ok(s.to_owned())
    } else {
        std::fs::read_to_string(s).with_context(|| format!("reading key file {s}"))
    }
}

fn identity(k: &KeyArgs) -> anyhow::Result<Option<RecipientSecret>> {
    k.identity
        .as_ref()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading identity {}", p.display()))?;
            Ok(RecipientSecret::from_text(&text)?)
        })
        .transpose()
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {percent:>3}% {bytes}/{total_bytes} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    b.set_style(style);
    b.set_message(what.to_owned());
    b
}

fn chunk_bar(what: &str) -> ProgressBar {
    let b = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} chunks {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    b.set_style(style);
    b.set_message(what.to_owned());
    b
}

/// A file whose reads advance a progress bar.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let p = self.inner.seek(pos)?;
        if p < self.bar.length().unwrap_or(0) {
            self.bar.set_position(p);
        }
        Ok(p)
    }
}

fn open(path: &Path, keys: &KeyArgs) -> anyhow::Result<Reader<BufReader<File>>> {
    Ok(Reader::open(
        path,
        ReadOptions {
            identity: identity(keys)?,
            ..ReadOptions::default()
        },
    )?)
}

fn output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        Ok(Box::new(std::io::stdout().lock()))
    } else {
        Ok(Box::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ))
    }
}

/// Runs a recording command; returns the process exit code.
pub async fn run(command: Command) -> anyhow::Result<u8> {
    // Everything here is blocking file work: keep it off the async workers.
    tokio::task::spawn_blocking(move || run_blocking(command)).await?
}

fn run_blocking(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Verify(a) => verify(a),
        Command::Info(a) => info(a).map(|()| 0),
        Command::Export(a) => export_cmd(a).map(|()| 0),
        Command::Play(a) => play(a).map(|()| 0),
        Command::Search(a) => search(a),
        Command::Import(a) => import(a).map(|()| 0),
        Command::Index(a) => index(a).map(|()| 0),
        Command::RecordingKeygen(a) => keygen(a).map(|()| 0),
    }
}

fn verify(a: VerifyArgs) -> anyhow::Result<u8> {
    let trusted = match &a.key {
        Some(k) => vec![VerifyingKey::from_text(&read_text_arg(k)?)?],
        None => Vec::new(),
    };
    let f = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let b = bar(len, "verifying");
    let src = BufReader::with_capacity(
        256 << 10,
        Counted {
            inner: f,
            bar: b.clone(),
        },
    );
    let report = psm_recording::verify_reader(
        src,
        &VerifyOptions {
            trusted_signers: trusted,
            identity: identity(&a.keys)?,
            decode: !a.quick,
        },
    );
    b.finish_and_clear();
    // A damaged preamble or header is still a verdict, not a usage error.
    let report = match report {
        Ok(r) => r,
        Err(e @ RecordingError::Truncated { .. }) => {
            println!("{e}");
            return Ok(EXIT_TRUNCATED);
        }
        Err(
            e @ (RecordingError::Tampered { .. }
            | RecordingError::Malformed {
                place: psm_recording::Place::Header,
                ..
            }),
        ) => {
            println!("tampered: {e}");
            return Ok(EXIT_TAMPERED);
        }
        Err(e) => return Err(e.into()),
    };
    println!("{}", report.status);
    let mut code = match &report.status {
        Integrity::Intact { .. } => EXIT_INTACT,
        Integrity::Truncated { .. } => EXIT_TRUNCATED,
        Integrity::Tampered { .. } => EXIT_TAMPERED,
    };
    let h = &report.header;
    eprintln!(
        "session   {} ({} → {}, {})",
        h.session_id, h.user, h.target, h.protocol
    );
    eprintln!(
        "chunks    {} ({} events, {} of recording, {} bytes)",
        report.chunks, report.events, report.duration, report.bytes
    );
    if !report.damaged_chunks.is_empty() {
        eprintln!(
            "damaged   chunks {:?} (the others verify)",
            report.damaged_chunks
        );
    }
    match report.signer_trusted {
        Some(true) => eprintln!("signer    {} (trusted)", report.signer),
        Some(false) => {
            eprintln!(
                "signer    {} is NOT the key given with --key",
                report.signer
            );
            println!("signed by an untrusted key");
            if code == EXIT_INTACT {
                code = EXIT_UNTRUSTED;
            }
        }
        None => eprintln!("signer    {} (not checked: pass --key)", report.signer),
    }
    if !report.recipients.is_empty() {
        eprintln!(
            "encrypted for {} recipient(s){}",
            report.recipients.len(),
            if report.decoded {
                ""
            } else {
                "; payloads not decoded (no --identity)"
            }
        );
    }
    Ok(code)
}

fn info(a: InfoArgs) -> anyhow::Result<()> {
    let r = open(&a.file, &a.keys)?;
    let h = r.header();
    println!("session      {}", h.session_id);
    println!("user         {}", h.user);
    println!("target       {}", h.target);
    println!("protocol     {}", h.protocol);
    println!(
        "started      {}",
        h.started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    if let Some(t) = h.terminal {
        println!("terminal     {t} {}", h.term_type);
    }
    println!("writer       {}", h.writer);
    for (k, v) in &h.metadata {
        println!("meta         {k} = {v}");
    }
    println!("duration     {}", r.duration());
    println!(
        "chunks       {} ({} with keyframes)",
        r.chunks().len(),
        r.chunks().iter().filter(|c| c.has_keyframes).count()
    );
    println!(
        "events       {}",
        r.ending().map(|e| e.event_count).unwrap_or_else(|| r
            .chunks()
            .iter()
            .map(|c| c.event_count)
            .sum())
    );
    println!("size         {} bytes", r.file_len());
    println!("signer       {}", r.signer());
    if r.is_encrypted() {
        for p in r.recipients() {
            println!("recipient    {p}");
        }
    } else {
        println!("encryption   none");
    }
    match r.ending() {
        Some(e) => println!("ended        {} ({})", e.end, e.reason),
        None => println!("ended        not finished: {}", r.integrity()),
    }
    Ok(())
}

fn export_cmd(a: ExportArgs) -> anyhow::Result<()> {
    let mut r = open(&a.file, &a.keys)?;
    let b = chunk_bar("exporting");
    b.set_length(r.chunks().len() as u64);
    let progress = |done: usize, _n: usize| b.set_position(done as u64);
    let summary = match a.format {
        Format::Asciicast => export::export_asciicast(
            &mut r,
            output(&a.output)?,
            &AsciicastOptions {
                channel: a.channel.map(ChannelId),
                include_input: a.input,
                idle_time_limit: None,
            },
            progress,
        )?,
        Format::Text => export::export_text(&mut r, output(&a.output)?, progress)?,
        Format::Commands => export::export_commands(&mut r, output(&a.output)?, progress)?,
        Format::Frames => export::export_frames(&mut r, &a.output, progress)?,
        Format::Video => {
            let options = psm_pipeline::graphics::VideoOptions::default();
            let (summary, info) =
                psm_pipeline::graphics::export_video(&mut r, &a.output, &options, progress)?
                    .ok_or_else(|| anyhow::anyhow!("the recording has no screen to export"))?;
            eprintln!(
                "{} frames of {}x{} at {} fps",
                info.frames, info.width, info.height, info.fps
            );
            summary
        }
        Format::Sheet => {
            let options = psm_pipeline::graphics::SheetOptions::default();
            let mut png = Vec::new();
            let (summary, _) =
                psm_pipeline::graphics::export_contact_sheet(&mut r, &mut png, &options, progress)?
                    .ok_or_else(|| anyhow::anyhow!("the recording has no screen to export"))?;
            output(&a.output)?.write_all(&png)?;
            summary
        }
    };
    b.finish_and_clear();
    eprintln!(
        "{} events read, {} items written",
        summary.events, summary.items
    );
    for g in &summary.gaps {
        eprintln!("gap at {}: {}", g.from, g.reason);
    }
    Ok(())
}

fn parse_time(s: &Option<String>) -> anyhow::Result<Option<Micros>> {
    s.as_deref().map(|s| Ok(s.parse::<Micros>()?)).transpose()
}

fn play(a: PlayArgs) -> anyhow::Result<()> {
    let mut r = open(&a.file, &a.keys)?;
    let options = PlayOptions {
        speed: a.speed,
        from: parse_time(&a.from)?.unwrap_or_default(),
        to: parse_time(&a.to)?,
        idle_limit: a.idle_limit.map(Micros::from_secs_f64),
        channel: a.channel.map(ChannelId),
    };
    let player = Player::new(&mut r, options)?;
    let mut out = std::io::stdout().lock();
    let interactive = std::io::stderr().is_terminal();
    for step in player {
        match step? {
            PlayStep::Wait(d) => std::thread::sleep(d),
            PlayStep::Write(_, bytes) => {
                out.write_all(&bytes)?;
                out.flush()?;
            }
            PlayStep::Note(t, text) if interactive => {
                // On the terminal's title line, so the screen is not disturbed.
                write!(out, "\x1b]2;[{t}] {text}\x07")?;
            }
            PlayStep::Note(..) | PlayStep::Resize(..) => {}
        }
    }
    out.write_all(b"\x1b[0m\r\n")?;
    out.flush()?;
    Ok(())
}

fn search(a: SearchArgs) -> anyhow::Result<u8> {
    let pattern = regex::RegexBuilder::new(&a.pattern)
        .case_insensitive(a.ignore_case)
        .size_limit(1 << 20)
        .build()
        .with_context(|| format!("pattern {:?}", a.pattern))?;
    let b = ProgressBar::new(a.files.len() as u64);
    b.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} recordings {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message("searching");
    let mut found = false;
    let mut failed = false;
    for file in &a.files {
        let hits = open(file, &a.keys)
            .and_then(|mut r| Ok(psm_recording::search::search(&mut r, &pattern, |_, _| {})?));
        b.inc(1);
        match hits {
            Ok(hits) => {
                for h in hits {
                    if h.kind != psm_recording::search::HitKind::Gap {
                        found = true;
                    }
                    let ch = h.channel.map(|c| format!(" ch{}", c.0)).unwrap_or_default();
                    b.suspend(|| {
                        println!(
                            "{}:{}{} [{}] {}",
                            file.display(),
                            h.time,
                            ch,
                            h.kind.as_str(),
                            h.text
                        )
                    });
                }
            }
            Err(e) => {
                failed = true;
                b.suspend(|| eprintln!("{}: {e:#}", file.display()));
            }
        }
    }
    b.finish_and_clear();
    // grep's convention: 0 found, 1 nothing found, 2 an error.
    Ok(if failed {
        2
    } else if found {
        0
    } else {
        1
    })
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    let key = match &a.key {
        Some(p) => SigningKey::from_text(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => {
            let k = SigningKey::generate()?;
            eprintln!("signing with a new key: {}", k.verifying_key());
            k
        }
    };
    let recipients = a
        .recipients
        .iter()
        .map(|r| Ok(RecipientPublic::from_text(&read_text_arg(r)?)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let session_id = match &a.session {
        Some(s) => s.parse().map_err(|e| anyhow::anyhow!("--session: {e}"))?,
        None => psm_core::SessionId::new(),
    };
    let input = File::open(&a.input).with_context(|| format!("opening {}", a.input.display()))?;
    let len = input.metadata().map(|m| m.len()).unwrap_or(0);
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let b = bar(len, "importing");
    let done = import_asciicast(
        BufReader::with_capacity(256 << 10, input),
        Box::new(out),
        key,
        WriterConfig {
            recipients,
            fsync: psm_recording::FsyncPolicy::Never,
            ..WriterConfig::default()
        },
        ImportMeta {
            session_id,
            user: a.user,
            target: a.target,
        },
        |n| b.set_position(n),
    );
    b.finish_and_clear();
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&a.output);
            bail!(e);
        }
    };
    eprintln!(
        "{}: {} events in {} chunks, {} of recording, {} bytes",
        a.output.display(),
        done.events,
        done.chunks,
        done.duration,
        done.bytes
    );
    Ok(())
}

fn index(a: IndexArgs) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&a.key).with_context(|| format!("reading {}", a.key.display()))?;
    let options = IndexOptions {
        identity: identity(&a.keys)?,
        ..IndexOptions::new(SigningKey::from_text(text.trim())?)
    };
    match index_recording(&a.file, &options)? {
        IndexOutcome::Added(s) => println!(
            "indexed: keyframes before {} chunks, {} bytes",
            s.keyframes, s.bytes
        ),
        IndexOutcome::Present(i) => println!(
            "already indexed (keyframes before {} chunks, signed by {}): left as it is",
            i.keyframes, i.signer
        ),
        other => println!("{other:?}"),
    }
    Ok(())
}

fn keygen(a: KeygenArgs) -> anyhow::Result<()> {
    let (secret, public) = match a.kind {
        KeyKind::Signing => {
            let k = SigningKey::generate()?;
            (k.to_text(), k.verifying_key().to_string())
        }
        KeyKind::Recipient => {
            let k = RecipientSecret::generate()?;
            (k.to_text(), k.public().to_string())
        }
    };
    psm_core::files::write_private(&a.output, format!("{secret}\n").as_bytes())
        .with_context(|| format!("creating {}", a.output.display()))?;
    println!("{public}");
    Ok(())
}
