//! Issue 17 L5 in the web UI: the sessions list comes a page at a time (the page polls
//! every few seconds; it no longer loads every session), and search is bounded: recordings
//! are searched from their files as they are walked, a search stops at its byte budget and
//! says where it stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod web_support;

use std::collections::HashSet;

use serde_json::Value;
use web_support::*;

async fn get_json(web: &Web, login: &Login, path: &str) -> (u16, Value) {
    let res = web
        .get(path)
        .header("cookie", &login.cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<String> {
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Follows `next` from `first` to the end; every id of every page.
async fn walk(web: &Web, login: &Login, first: &str) -> (Vec<String>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    let mut path = first.to_owned();
    loop {
        let (st, v) = get_json(web, login, &path).await;
        assert_eq!(st, 200, "{path}: {v}");
        pages += 1;
        all.extend(ids(&v));
        match v["next"].as_str() {
            Some(next) => {
                assert_eq!(v["truncated"], true);
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}after={next}");
            }
            None => break,
        }
        assert!(pages < 100, "paging ends");
    }
    (all, pages)
}

#[tokio::test]
async fn the_sessions_list_comes_a_page_at_a_time_and_pages_cover_every_session_once() {
    let web = start(|_| {}).await;
    let mut opened = Vec::new();
    for i in 0..120 {
        let user = if i % 3 == 0 { "alice" } else { "bob" };
        opened.push(web.open_session(user, "web-01").await.to_string());
    }
    let login = web.login(ADMIN.0, ADMIN.1).await;

    // The page the UI polls: the newest 50, and where the next page starts.
    let (st, v) = get_json(&web, &login, "/ui/api/sessions").await;
    assert_eq!(st, 200);
    assert_eq!(ids(&v).len(), 50, "one page, not every session");
    assert_eq!(v["truncated"], true);
    assert!(v["next"].is_string());

    let (all, pages) = walk(&web, &login, "/ui/api/sessions").await;
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 120);
    assert_eq!(
        all.iter().collect::<HashSet<_>>(),
        opened.iter().collect::<HashSet<_>>(),
        "every session once"
    );

    // A filter pages too.
    let (alice, _) = walk(&web, &login, "/ui/api/sessions?user=alice&limit=15").await;
    assert_eq!(alice.len(), 40);
    assert_eq!(alice.iter().collect::<HashSet<_>>().len(), 40);

    // A session opened meanwhile does not shift the pages being read.
    let (_, first) = get_json(&web, &login, "/ui/api/sessions?limit=10").await;
    let next = first["next"].as_str().unwrap().to_owned();
    web.open_session("carol", "web-01").await;
    let (_, second) = get_json(
        &web,
        &login,
        &format!("/ui/api/sessions?limit=10&after={next}"),
    )
    .await;
    assert_eq!(ids(&second), all[10..20].to_vec());

    // Bounds and bad positions.
    let (_, big) = get_json(&web, &login, "/ui/api/sessions?limit=100000").await;
    assert!(ids(&big).len() <= 500);
    for bad in [
        "nope",
        "12_not-a-uuid",
        "x_6f1c2a7e-0000-4000-8000-000000000001",
    ] {
        let (st, _) = get_json(&web, &login, &format!("/ui/api/sessions?after={bad}")).await;
        assert_eq!(st, 400, "{bad}");
    }
    web.stop().await;
}

#[tokio::test]
async fn search_reads_recordings_from_their_files_and_stops_at_its_byte_budget() {
    // A recording larger than what the UI reads into memory is still searched (from its
    // file); a budget of one byte stops the search after the first recording.
    let web = start(|c| {
        c.max_recording_bytes = 64;
        c.search_bytes = 1;
    })
    .await;
    let older = web.open_session("alice", "web-01").await;
    web.record(
        older,
        "alice",
        "web-01",
        &[("uptime", "load average: 0.01")],
    )
    .await;
    let newer = web.open_session("bob", "web-01").await;
    web.record(newer, "bob", "web-01", &[("uptime", "load average: 0.02")])
        .await;
    let login = web.login(ADMIN.0, ADMIN.1).await;
    let (st, r) = get_json(&web, &login, "/ui/api/search?q=uptime&kind=command").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["searched"], 1, "{r}");
    assert!(r["skipped"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["sessions"][0]["id"], newer.to_string().as_str());
    assert_eq!(r["truncated"], true);
    let stopped = r["stopped"].as_str().unwrap();
    assert!(
        stopped.contains("MiB") && stopped.contains("narrow the search"),
        "{stopped}"
    );
    // Narrowed to the other session, it is found.
    let (_, r) = get_json(
        &web,
        &login,
        &format!("/ui/api/search?q=uptime&session={older}"),
    )
    .await;
    assert_eq!(r["sessions"][0]["id"], older.to_string().as_str(), "{r}");
    web.stop().await;
}
