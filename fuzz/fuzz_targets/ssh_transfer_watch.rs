//! The SFTP and scp watchers that turn channel bytes into file-transfer events, fed arbitrary
//! bytes in both directions (the first byte picks the watcher, the rest is split in chunks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_proxy::Direction;
use psm_proxy_ssh::transfer::{SftpWatch, TransferWatch};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut watch = match pick % 3 {
        0 => TransferWatch::Sftp(SftpWatch::new()),
        1 => TransferWatch::for_exec("scp -t /tmp/dest").expect("scp sink"),
        _ => TransferWatch::for_exec("scp -r -f /tmp/src").expect("scp source"),
    };
    for (i, chunk) in rest.chunks(1 + (pick as usize % 97)).enumerate() {
        let direction = if i % 3 == 2 {
            Direction::ToUser
        } else {
            Direction::ToTarget
        };
        for t in watch.feed(direction, chunk) {
            assert!(t.path.len() <= 4 * 4096);
        }
    }
    let _ = watch.finish();
});
