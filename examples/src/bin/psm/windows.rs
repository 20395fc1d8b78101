//! `psm windows ...`: access windows (when and from where a role may use its grant of a
//! target) in a node's data directory, usable while `psm up` runs (the control plane reads
//! them at every session open and heartbeat). The rules live in `psm_core::access`.

use std::path::PathBuf;

use psm_core::access::{AccessWindow, NewWindow};
use psm_core::directory::DirectoryAdmin;

#[derive(clap::Subcommand)]
pub enum Windows {
    /// Adds a window to ROLE's grant of TARGET (`*`: every target the role reaches). Once a
    /// role has a window for a target, it may use that grant only while one of its windows
    /// is open and admits the client's address; parts left out match always.
    Add {
        #[command(flatten)]
        data: Data,
        /// The role (as in `psm users grant ROLE TARGET`).
        role: String,
        /// The target, or `*`.
        target: String,
        /// Days of the week: `mon-fri`, `sat,sun`.
        #[arg(long)]
        days: Option<String>,
        /// Times of day: `08:00-18:00`, `08:00-12:00,13:00-17:00`; `22:00-06:00` runs past
        /// midnight.
        #[arg(long)]
        hours: Option<String>,
        /// Dates: `2026-12-01..2026-12-31`, `2027-01-15` (inclusive).
        #[arg(long)]
        dates: Option<String>,
        /// The IANA time zone the days, dates and hours are read in (default UTC).
        #[arg(long)]
        tz: Option<String>,
        /// Source networks (CIDR or addresses): `10.0.0.0/8,192.0.2.7`, the client address
        /// as the gateway sees it.
        #[arg(long)]
        from: Option<String>,
    },
    /// Lists every window: id, role, target, window.
    List {
        #[command(flatten)]
        data: Data,
    },
    /// Removes a window by its id.
    Remove {
        #[command(flatten)]
        data: Data,
        /// The id `psm windows list` shows.
        id: i64,
    },
}

#[derive(clap::Args)]
pub struct Data {
    /// The node's data directory.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
}

/// The window's text form from the command's options.
fn spec(
    days: Option<String>,
    hours: Option<String>,
    dates: Option<String>,
    tz: Option<String>,
    from: Option<String>,
) -> anyhow::Result<AccessWindow> {
    let mut parts = Vec::new();
    for (key, value) in [
        ("days", days),
        ("hours", hours),
        ("dates", dates),
        ("tz", tz),
        ("from", from),
    ] {
        if let Some(v) = value {
            // One part each: spaces inside a value would read as another part.
            let v: String = v.split_whitespace().collect();
            anyhow::ensure!(!v.is_empty(), "--{key} is empty");
            parts.push(format!("{key}={v}"));
        }
    }
    anyhow::ensure!(
        !parts.is_empty(),
        "give the window at least one of --days, --hours, --dates, --tz, --from"
    );
    Ok(parts.join(" ").parse()?)
}

pub async fn run(cmd: Windows) -> anyhow::Result<()> {
    match cmd {
        Windows::Add {
            data,
            role,
            target,
            days,
            hours,
            dates,
            tz,
            from,
        } => {
            let window = spec(days, hours, dates, tz, from)?;
            let store = crate::admin::node_store(&data.data).await?;
            let id = store
                .add_window(&NewWindow::new(&role, &target, window.clone())?)
                .await?;
            println!("Window {id} added: {role} on {target}: {window}");
            store.close().await;
        }
        Windows::List { data } => {
            let store = crate::admin::node_store(&data.data).await?;
            for w in store.windows().await? {
                println!("{}\t{}\t{}\t{}", w.id, w.role, w.target, w.window);
            }
            store.close().await;
        }
        Windows::Remove { data, id } => {
            let store = crate::admin::node_store(&data.data).await?;
            let removed = store.remove_window(id).await?;
            store.close().await;
            anyhow::ensure!(removed, "no window {id}");
            println!("Window {id} removed.");
        }
    }
    Ok(())
}
