//! `psm report ...`: compliance reports from a node's data directory (sessions, audit log,
//! directory, recordings), sealed with the node's report key, and their verification. The
//! gathering, rendering and sealing live in `psm_server::report`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use psm_server::report::{self, CitedCheck, ReportFormat, ReportQuery, ReportSources, seal};

/// `psm report`: a compliance report, or `psm report verify FILE`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    verify: Option<Verify>,
    #[command(flatten)]
    make: MakeArgs,
}

#[derive(clap::Subcommand)]
enum Verify {
    /// Checks a report's seal: its signature by a trusted report key (DATA/keys/signers/
    /// reports, or --signer) and, unless --no-recordings, that every recording it cites
    /// still has the SHA-256 it lists. Exit 0: verified; 1: refused.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The report file.
    file: PathBuf,
    /// The node's data directory (its trusted report keys and recordings).
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
    /// Trust this report key (a `.pub` file or `psmr-signing-public:...`) instead of the
    /// data directory's registry.
    #[arg(long)]
    signer: Option<String>,
    /// Check the signature only, not the recordings.
    #[arg(long)]
    no_recordings: bool,
    #[command(flatten)]
    store: crate::pipeline::StoreArgs,
}

#[derive(clap::Args)]
struct MakeArgs {
    /// Start of the period: a date (2026-12-01, from midnight UTC) or an RFC 3339 time.
    #[arg(long, required = true)]
    from: Option<String>,
    /// End of the period: a date (2026-12-31, to the end of that day) or an RFC 3339 time.
    #[arg(long, required = true)]
    to: Option<String>,
    /// Only this user's sessions.
    #[arg(long)]
    user: Option<String>,
    /// Only sessions to this target.
    #[arg(long)]
    target: Option<String>,
    /// Only sessions of users who hold this role.
    #[arg(long)]
    role: Option<String>,
    /// html, csv, json or pdf.
    #[arg(long, required = true)]
    format: Option<String>,
    /// Where to write it (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The node's data directory.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
    /// The recipient secret that opens encrypted recordings (their commands are listed
    /// only with it; their integrity is checked either way).
    #[arg(long)]
    identity: Option<PathBuf>,
    #[command(flatten)]
    store: crate::pipeline::StoreArgs,
}

/// Runs `psm report ...`; the exit code.
pub async fn run(args: ReportArgs) -> anyhow::Result<u8> {
    match args.verify {
        Some(Verify::Verify(v)) => verify(v).await,
        None => make(args.make).await.map(|()| 0),
    }
}

async fn make(a: MakeArgs) -> anyhow::Result<()> {
    let need = |v: &Option<String>, name: &str| {
        v.clone()
            .with_context(|| format!("psm report needs --{name} (or: psm report verify FILE)"))
    };
    let format: ReportFormat = need(&a.format, "format")?.parse()?;
    let mut query = ReportQuery::period(&need(&a.from, "from")?, &need(&a.to, "to")?)?;
    query.user = a.user;
    query.target = a.target;
    query.role = a.role;
    let db = Arc::new(crate::admin::node_store(&a.data).await?);
    let layout = psm_recording::layout::LocalLayout::new(&a.data);
    let mut sources = ReportSources::new(db.clone());
    sources.directory = Some(db.clone());
    sources.recordings_dir = Some(layout.recordings_dir());
    sources.gateway_signers = Some(layout.gateway_signers());
    sources.store = Some(psm_storage::open(&a.store.config(&a.data, None)?)?);
    if let Some(p) = &a.identity {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        sources.identity = Some(psm_recording::RecipientSecret::from_text(&text)?);
    }
    let by = format!(
        "psm report on {}",
        std::fs::canonicalize(&a.data)
            .unwrap_or_else(|_| a.data.clone())
            .display()
    );
    let built = report::build(&sources, &query, &by).await?;
    let key = seal::node_key(&a.data)?;
    let file = seal::seal(&built, format, &key)?;
    match &a.out {
        Some(path) => {
            std::fs::write(path, &file).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} ({} bytes): {} sessions, {} recordings cited, sealed by {}",
                path.display(),
                file.len(),
                built.sessions.len(),
                built.recordings.len(),
                key.verifying_key()
            );
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&file)?;
        }
    }
    db.close().await;
    Ok(())
}

async fn verify(a: VerifyArgs) -> anyhow::Result<u8> {
    let file = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let trusted = match &a.signer {
        Some(s) => {
            let text = if s.starts_with("psmr-signing-public:") {
                s.clone()
            } else {
                std::fs::read_to_string(s).with_context(|| format!("reading {s}"))?
            };
            vec![psm_recording::VerifyingKey::from_text(text.trim())?]
        }
        None => {
            let keys = seal::registry(&a.data).keys();
            anyhow::ensure!(
                !keys.is_empty(),
                "no trusted report keys in {} (pass --data DIR or --signer KEY)",
                seal::registry(&a.data).dir().display()
            );
            keys
        }
    };
    let verified = match seal::verify(&file, &trusted) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("REFUSED {}: {e}", a.file.display());
            return Ok(1);
        }
    };
    println!(
        "signature: valid ({} report sealed by {})",
        verified.format.as_str(),
        verified.signer
    );
    if a.no_recordings {
        println!(
            "recordings: not checked ({} cited)",
            verified.recordings.len()
        );
        return Ok(0);
    }
    let layout = psm_recording::layout::LocalLayout::new(&a.data);
    let mut sources = ReportSources::new(Arc::new(psm_core::store::MemoryStore::new()));
    sources.recordings_dir = Some(layout.recordings_dir());
    sources.store = Some(psm_storage::open(&a.store.config(&a.data, None)?)?);
    sources.max_recording_bytes = u64::MAX;
    let mut bad = 0usize;
    for (c, verdict) in report::check_cited(&sources, &verified.recordings).await {
        match verdict {
            CitedCheck::Matches => println!("recording {}: sha256 matches", c.session),
            CitedCheck::Changed(now) => {
                println!(
                    "recording {}: CHANGED (sha256 {now}, the report says {})",
                    c.session, c.sha256
                );
                bad += 1;
            }
            CitedCheck::Missing => {
                println!(
                    "recording {}: MISSING (not here nor in the store)",
                    c.session
                );
                bad += 1;
            }
            CitedCheck::Unreadable(why) => {
                println!("recording {}: NOT READ ({why})", c.session);
                bad += 1;
            }
        }
    }
    if bad > 0 {
        eprintln!(
            "REFUSED {}: {bad} of {} cited recordings are missing or changed",
            a.file.display(),
            verified.recordings.len()
        );
        return Ok(1);
    }
    println!(
        "recordings: all {} cited recordings match",
        verified.recordings.len()
    );
    Ok(0)
}
