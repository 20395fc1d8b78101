//! The target menu, for users who log in without naming a target (`ssh alice@gateway`, or
//! a client that cannot pass `alice+target`): a tiny line editor on their terminal that
//! lists the targets their roles allow, then turns the channel into a bridge to the one
//! they pick.

use std::sync::Arc;

use psm_core::directory::{ALL_TARGETS, DirectoryUser};
use psm_proxy::tap::{ChannelInfo, ChannelPurpose, ChannelRequest, ChannelType, TermSize};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client};

use super::bridge;
use super::conn::Conn;
use super::handler::MenuChannel;

const MAX_LINE: usize = 256;

async fn say(w: &ChannelWriteHalf<Msg>, text: &str) -> bool {
    w.data_bytes(text.replace('\n', "\r\n").into_bytes())
        .await
        .is_ok()
}

async fn end(w: ChannelWriteHalf<Msg>, status: u32) {
    let _ = w.exit_status(status).await;
    let _ = w.eof().await;
    let _ = w.close().await;
}

/// The targets `user` may pick: the access seam's list, filtered by the directory's grants.
async fn choices(conn: &Conn, user: &DirectoryUser) -> Vec<String> {
    let deps = &conn.shared.deps;
    let offered = deps
        .targets
        .targets(user.name.as_str())
        .await
        .unwrap_or_default();
    let allowed = deps
        .directory
        .allowed_targets(user)
        .await
        .unwrap_or_default();
    offered
        .into_iter()
        .filter(|t| allowed.iter().any(|a| a == ALL_TARGETS || a == t))
        .collect()
}

/// Reads one line with echo and basic editing; `None` on ^C, ^D or a closed channel.
async fn read_line(r: &mut ChannelReadHalf, w: &ChannelWriteHalf<Msg>) -> Option<String> {
    let mut line = String::new();
    loop {
        let data = match r.wait().await? {
            ChannelMsg::Data { data } => data,
            ChannelMsg::Eof | ChannelMsg::Close => return None,
            _ => continue,
        };
        for &b in data.iter() {
            match b {
                b'\r' | b'\n' => {
                    say(w, "\n").await;
                    return Some(line);
                }
                3 | 4 => return None,
                0x7f | 0x08 if line.pop().is_some() => {
                    say(w, "\x08 \x08").await;
                }
                0x20..=0x7e if line.len() < MAX_LINE => {
                    line.push(b as char);
                    let _ = w.data_bytes(vec![b]).await;
                }
                _ => {}
            }
        }
    }
}

/// Waits for the target's reply to a request sent on an unsplit channel.
async fn target_reply(ch: &mut Channel<client::Msg>) -> bool {
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Success) => return true,
            Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => return false,
            _ => {}
        }
    }
}

/// Runs the menu on `channel`, then bridges it to the chosen target.
pub(crate) async fn run(
    conn: Arc<Conn>,
    user: DirectoryUser,
    menu: Arc<MenuChannel>,
    channel: Channel<Msg>,
) {
    let id = channel.id();
    let (mut r, w) = channel.split();
    let targets = choices(&conn, &user).await;
    if targets.is_empty() {
        say(
            &w,
            "PSM: you may not reach any target. Ask your administrator.\n",
        )
        .await;
        end(w, 1).await;
        return;
    }
    let mut text = format!("PSM gateway. Hello {}. Targets you may reach:\n", user.name);
    for (i, t) in targets.iter().enumerate() {
        text.push_str(&format!("  {:>2}) {t}\n", i + 1));
    }
    say(&w, &text).await;
    let live = loop {
        say(&w, "Target (number or name, ^D to quit): ").await;
        let Some(line) = read_line(&mut r, &w).await else {
            end(w, 130).await;
            return;
        };
        let line = line.trim();
        let choice = line
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| targets.get(i))
            .or_else(|| targets.iter().find(|t| t.as_str() == line));
        let Some(target) = choice else {
            say(&w, "No such target.\n").await;
            continue;
        };
        say(&w, &format!("Connecting to {target}...\n")).await;
        match conn.establish(&user, target).await {
            Ok(live) => break live,
            Err(e) => {
                say(&w, &format!("PSM: {}\n", e.user_message())).await;
                end(w, 1).await;
                return;
            }
        }
    };
    let mut target = match live.upstream.handle.channel_open_session().await {
        Ok(t) => t,
        Err(e) => {
            say(&w, &format!("PSM: the target refused a channel: {e}\n")).await;
            end(w, 1).await;
            return;
        }
    };
    let info = ChannelInfo::new(u32::from(id), ChannelType::Session);
    live.taps.channel_opened(&info).await;
    let pty = menu.pty.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(p) = &pty {
        live.taps
            .request(
                &info,
                &ChannelRequest::Pty {
                    term: p.term.clone(),
                    size: TermSize {
                        cols: p.cols.min(u32::from(u16::MAX)) as u16,
                        rows: p.rows.min(u32::from(u16::MAX)) as u16,
                    },
                },
            )
            .await;
        let sent = target
            .request_pty(
                true,
                &p.term,
                p.cols,
                p.rows,
                p.pix_width,
                p.pix_height,
                &p.modes,
            )
            .await;
        if sent.is_err() || !target_reply(&mut target).await {
            say(&w, "PSM: the target refused a terminal\n").await;
        }
    }
    let env = std::mem::take(&mut *menu.env.lock().unwrap_or_else(|p| p.into_inner()));
    for (k, v) in env {
        let _ = target.set_env(false, k, v).await;
    }
    info.set_purpose(ChannelPurpose::Shell);
    if let psm_proxy::tap::RequestVerdict::Refuse(m) =
        live.taps.check(&info, &ChannelRequest::Shell).await
    {
        say(&w, &format!("PSM: {m}\n")).await;
        end(w, 1).await;
        return;
    }
    live.taps.request(&info, &ChannelRequest::Shell).await;
    if target.request_shell(true).await.is_err() || !target_reply(&mut target).await {
        say(&w, "PSM: the target refused a shell\n").await;
        end(w, 1).await;
        return;
    }
    let terminal = pty.as_ref().map(|p| {
        (
            p.cols.min(u32::from(u16::MAX)) as u16,
            p.rows.min(u32::from(u16::MAX)) as u16,
        )
    });
    let state = bridge::spawn_session_split(conn.clone(), live, info, (r, w), target, terminal);
    let _ = menu.bridged.set(state);
}
