//! `psm request TARGET ...` (a user asks for access) and `psm requests ...` (approvers
//! decide; administrators set who approves what), on a node's data directory while
//! `psm up` runs. A user is who they prove to be: the command asks for their directory
//! password (from `PSM_PASSWORD`, else one line read on standard input) and checks it
//! against the node's directory, as the gateways do. The rules live in
//! `psm_core::access`; every step is an audit event, shipped to the SIEM sinks.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use psm_core::access::{AccessRequest, AccessRequests, ApprovalRule, parse_request_duration};
use psm_core::clock::SystemClock;
use psm_core::directory::{DirectoryAdmin, DirectoryLookup};
use psm_core::store::SqliteStore;
use psm_core::vault::Secret;

async fn node_store(data: &Path) -> anyhow::Result<Arc<SqliteStore>> {
    Ok(Arc::new(crate::admin::node_store(data).await?))
}

#[derive(clap::Args)]
pub struct Data {
    /// The node's data directory.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
}

#[derive(clap::Args)]
pub struct As {
    /// The directory user running the command (their password is asked for).
    #[arg(long = "user", env = "PSM_USER")]
    user: String,
}

/// Asks for access to a target for a while, with a reason; approvers see it in
/// `psm requests list` and the web UI.
#[derive(clap::Args)]
pub struct RequestArgs {
    #[command(flatten)]
    data: Data,
    #[command(flatten)]
    who: As,
    /// The target.
    target: String,
    /// How long the access lasts once approved: `2h`, `30m`, `1h30m`, `1d` (at most a week).
    #[arg(long = "for", default_value = "1h")]
    duration: String,
    /// Why you need it (approvers read it; it is audited).
    #[arg(long)]
    reason: String,
}

#[derive(clap::Subcommand)]
pub enum Requests {
    /// Lists requests, newest first: id, state, user, target, duration, approvals, expiry,
    /// reason. `--awaiting` lists only those USER may approve now.
    List {
        #[command(flatten)]
        data: Data,
        /// Only this user's requests.
        #[arg(long)]
        of: Option<String>,
        /// Only the requests `--user` may decide now (their password is asked for).
        #[arg(long)]
        awaiting: bool,
        /// With `--awaiting`: the approver.
        #[arg(long = "user", env = "PSM_USER")]
        user: Option<String>,
    },
    /// Approves a request (you must be a member of its approver role, not its requester).
    Approve {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        who: As,
        /// The id `psm requests list` shows.
        id: i64,
    },
    /// Denies a request.
    Deny {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        who: As,
        /// The id.
        id: i64,
        /// Why (the requester sees it).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Withdraws your own request (an approved one stops granting at once).
    Cancel {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        who: As,
        /// The id.
        id: i64,
    },
    /// Approval rules (administrators, on the node's data directory).
    #[command(subcommand)]
    Rule(Rule),
}

#[derive(clap::Subcommand)]
pub enum Rule {
    /// Lets TARGET (`*`: every target without its own rule) be requested, approved by
    /// `--approvals` members of role `--approvers`. Users with a standing grant of the
    /// target are not affected.
    Set {
        #[command(flatten)]
        data: Data,
        /// The target, or `*`.
        target: String,
        /// The role whose members approve.
        #[arg(long)]
        approvers: String,
        /// How many of them must approve.
        #[arg(long, default_value_t = 1)]
        approvals: u32,
    },
    /// Lists the rules: target, approver role, approvals needed.
    List {
        #[command(flatten)]
        data: Data,
    },
    /// Removes a target's rule: it takes no more requests.
    Remove {
        #[command(flatten)]
        data: Data,
        /// The target, or `*`.
        target: String,
    },
}

fn service(store: &Arc<SqliteStore>) -> AccessRequests {
    AccessRequests::new(store.clone(), store.clone(), Arc::new(SystemClock))
}

/// The user's password from `PSM_PASSWORD`, else one line on standard input.
fn password(user: &str) -> anyhow::Result<Secret<String>> {
    if let Ok(p) = std::env::var("PSM_PASSWORD") {
        return Ok(Secret::new(p));
    }
    eprint!("Password for {user}: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(4096)
        .read_line(&mut line)
        .context("reading the password")?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Checks `user`'s password against the node's directory.
async fn authenticate(store: &SqliteStore, user: &str) -> anyhow::Result<()> {
    let pw = password(user)?;
    anyhow::ensure!(
        store.verify_password(user, &pw).await?,
        "authentication failed for {user}"
    );
    Ok(())
}

fn line(r: &AccessRequest) -> String {
    let now = psm_core::Timestamp::now_utc();
    format!(
        "{}\t{}\t{}\t{}\t{}s\t{}/{} of {}\t{}\t{}",
        r.id,
        r.state_at(now),
        r.user,
        r.target,
        r.duration.as_secs(),
        r.approvals.len(),
        r.approvals_needed,
        r.approver_role,
        r.expires.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        r.reason
    )
}

pub async fn run_request(args: RequestArgs) -> anyhow::Result<()> {
    let duration = parse_request_duration(&args.duration)?;
    let store = node_store(&args.data.data).await?;
    authenticate(&store, &args.who.user).await?;
    let r = service(&store)
        .request(&args.who.user, &args.target, duration, &args.reason)
        .await?;
    println!(
        "Request {} filed: {} for {} ({}s), waiting for {} approval{} from role {}.",
        r.id,
        r.user,
        r.target,
        r.duration.as_secs(),
        r.approvals_needed,
        if r.approvals_needed == 1 { "" } else { "s" },
        r.approver_role
    );
    store.close().await;
    Ok(())
}

pub async fn run(cmd: Requests) -> anyhow::Result<()> {
    match cmd {
        Requests::List {
            data,
            of,
            awaiting,
            user,
        } => {
            let store = node_store(&data.data).await?;
            let list = if awaiting {
                let approver = user.context("--awaiting needs --user (the approver)")?;
                authenticate(&store, &approver).await?;
                service(&store).awaiting(&approver).await?
            } else {
                service(&store).list(of.as_deref()).await?
            };
            for r in &list {
                println!("{}", line(r));
            }
            store.close().await;
        }
        Requests::Approve { data, who, id } => {
            let store = node_store(&data.data).await?;
            authenticate(&store, &who.user).await?;
            let r = service(&store).approve(id, &who.user).await?;
            match r.expires {
                Some(e) => println!(
                    "Request {id} approved: {} may reach {} until {e}.",
                    r.user, r.target
                ),
                None => println!(
                    "Request {id}: approval {} of {} recorded; it waits for more.",
                    r.approvals.len(),
                    r.approvals_needed
                ),
            }
            store.close().await;
        }
        Requests::Deny {
            data,
            who,
            id,
            note,
        } => {
            let store = node_store(&data.data).await?;
            authenticate(&store, &who.user).await?;
            let r = service(&store).deny(id, &who.user, &note).await?;
            println!(
                "Request {id} denied: {} may not reach {}.",
                r.user, r.target
            );
            store.close().await;
        }
        Requests::Cancel { data, who, id } => {
            let store = node_store(&data.data).await?;
            authenticate(&store, &who.user).await?;
            service(&store).cancel(id, &who.user).await?;
            println!("Request {id} cancelled.");
            store.close().await;
        }
        Requests::Rule(Rule::Set {
            data,
            target,
            approvers,
            approvals,
        }) => {
            let rule = ApprovalRule::new(&target, &approvers, approvals)?;
            let store = node_store(&data.data).await?;
            service(&store).set_rule(&rule, "psm-requests-rule").await?;
            println!("Requests for {target} are approved by {approvals} of role {approvers}.");
            store.close().await;
        }
        Requests::Rule(Rule::List { data }) => {
            let store = node_store(&data.data).await?;
            for r in store.approval_rules().await? {
                println!("{}\t{}\t{}", r.target, r.approver_role, r.approvals);
            }
            store.close().await;
        }
        Requests::Rule(Rule::Remove { data, target }) => {
            let store = node_store(&data.data).await?;
            let removed = service(&store)
                .remove_rule(&target, "psm-requests-rule")
                .await?;
            store.close().await;
            anyhow::ensure!(removed, "no rule for {target}");
            println!("Rule for {target} removed.");
        }
    }
    Ok(())
}
