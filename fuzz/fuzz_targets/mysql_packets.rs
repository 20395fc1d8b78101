//! The MySQL gateway's packet handling on arbitrary bytes: framing (lengths checked before
//! buffering, continuations joined within the limit), the login packets `mysql_common`
//! reads (greeting, handshake response, auth switch, ERR), and the command tracker in both
//! directions with the MySQL statement classifier. The first byte picks the mode.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthSwitchRequest, HandshakeResponse};
use mysql_common::proto::MyDeserialize;
use psm_proxy_db::mysql::packet::{join, parse_err, split_logical};
use psm_proxy_db::mysql::statement::{MysqlTracker, Request};

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    // The gateway decodes some messages under `catch_unwind` (the protocol crates panic on
    // some malformed input): a panic it catches is its design, not a crash. libfuzzer-sys's
    // hook would abort on those too, so the default hook is put back; a panic that escapes
    // the gateway's code still ends the run (libfuzzer-sys catches it and aborts).
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(rest);
    let mut tracker = MysqlTracker::new("db");
    let mut parts = Vec::new();
    let mut i = 0usize;
    while let Ok(true) = split_logical(&mut buf, LIMIT, &mut parts) {
        let payload = join(&parts);
        assert!(payload.len() <= LIMIT);
        parts.clear();
        i += 1;
        match mode % 4 {
            0 => {
                let _ = psm_proxy_db::mysql::packet::parse_greeting(&payload);
                let _ = HandshakeResponse::deserialize((), &mut ParseBuf(&payload));
                let _ = AuthSwitchRequest::deserialize((), &mut ParseBuf(&payload));
                let _ = parse_err(&payload);
            }
            m => {
                let from_user = match m {
                    1 => i % 3 == 1,
                    2 => i == 1,
                    _ => i % 2 == 1,
                };
                if from_user {
                    match tracker.request(&payload) {
                        Request::Statement(text) => {
                            let classes = psm_proxy_db::classify::classify_mysql(&text);
                            let names = classes.iter().map(|c| c.as_str()).collect();
                            if i % 5 == 0 {
                                tracker.refused(&payload, "fuzz", names);
                            } else {
                                tracker.forwarded(&payload, names);
                            }
                        }
                        _ => tracker.forwarded(&payload, Vec::new()),
                    }
                } else {
                    let _ = tracker.response(&payload);
                }
            }
        }
    }
    let _ = tracker.close();
});
