//! The session drive's backend, driven with the bytes a target sends on `rdpdr` (built here
//! from [MS-RDPEFS]): confinement to the session folder, limits, the answers xrdp and
//! Windows expect, the events the recorder gets, and any bytes at all without a panic or a
//! file outside the folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ironrdp::svc::SvcProcessor as _;
use proptest::prelude::*;
use psm_proxy_rdp::drive::{
    DEVICE_ID, DriveChannel, DriveConfig, DriveEvent, DriveEvents, MAX_READ, PRINTER_DEVICE_ID,
    SessionDrive, matches_pattern, patch_dos_name,
};
use psm_recording::TransferDirection;
use tokio::sync::mpsc;

const SUCCESS: u32 = 0;
const NO_MORE_FILES: u32 = 0x8000_0006;
const INVALID_HANDLE: u32 = 0xC000_0008;
const NO_SUCH_FILE: u32 = 0xC000_000F;
const ACCESS_DENIED: u32 = 0xC000_0022;
const OBJECT_NAME_INVALID: u32 = 0xC000_0033;
const OBJECT_NAME_COLLISION: u32 = 0xC000_0035;
const DISK_FULL: u32 = 0xC000_007F;
const INSUFFICIENT_RESOURCES: u32 = 0xC000_009A;
const NOT_SUPPORTED: u32 = 0xC000_00BB;

// Create dispositions and options, access masks, information classes.
const FILE_OPEN: u32 = 1;
const FILE_CREATE: u32 = 2;
const FILE_OVERWRITE_IF: u32 = 5;
const FILE_DIRECTORY_FILE: u32 = 1;
const READ: u32 = 0x0000_0001;
const WRITE: u32 = 0x0000_0002;
const FILE_DIRECTORY_INFORMATION: u32 = 1;
const FILE_FULL_DIRECTORY_INFORMATION: u32 = 2;
const FILE_BOTH_DIRECTORY_INFORMATION: u32 = 3;
const FILE_BASIC_INFORMATION: u32 = 4;
const FILE_STANDARD_INFORMATION: u32 = 5;
const FILE_RENAME_INFORMATION: u32 = 10;
const FILE_NAMES_INFORMATION: u32 = 12;
const FILE_DISPOSITION_INFORMATION: u32 = 13;

struct Drive {
    channel: DriveChannel,
    events: mpsc::Receiver<DriveEvent>,
    completion: u32,
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A completion: its status and the bytes after the status.
struct Reply {
    status: u32,
    body: Vec<u8>,
}

impl Reply {
    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.body[at..at + 4].try_into().unwrap())
    }
}

impl Drive {
    fn open(dir: &Path, config: &DriveConfig) -> Self {
        Self::open_gated(dir, config, None)
    }

    fn open_gated(
        dir: &Path,
        config: &DriveConfig,
        gate: Option<psm_proxy_rdp::session::TransferGate>,
    ) -> Self {
        let (events, rx) = DriveEvents::channel(64);
        let mut backend = SessionDrive::new(config, dir, events).unwrap();
        if let Some(gate) = gate {
            backend = backend.with_gate(gate);
        }
        Self {
            channel: DriveChannel::new(backend),
            events: rx,
            completion: 0,
        }
    }

    fn raw(&mut self, payload: &[u8]) -> Vec<Vec<u8>> {
        self.channel
            .process(payload)
            .unwrap()
            .into_iter()
            .map(|m| m.encode_unframed_pdu().unwrap())
            .collect()
    }

    fn irp(&mut self, file_id: u32, major: u32, minor: u32, body: &[u8]) -> Reply {
        self.irp_to(DEVICE_ID, file_id, major, minor, body)
    }

    fn irp_to(&mut self, device: u32, file_id: u32, major: u32, minor: u32, body: &[u8]) -> Reply {
        self.completion += 1;
        let mut p = b"rDRI".to_vec();
        p.extend(u32s(&[device, file_id, self.completion, major, minor]));
        p.extend_from_slice(body);
        let mut out = self.raw(&p);
        assert_eq!(out.len(), 1, "one completion per request");
        let r = out.remove(0);
        assert_eq!(&r[..4], b"rDCI", "a device I/O completion");
        assert_eq!(
            u32::from_le_bytes(r[8..12].try_into().unwrap()),
            self.completion
        );
        Reply {
            status: u32::from_le_bytes(r[12..16].try_into().unwrap()),
            body: r[16..].to_vec(),
        }
    }

    /// Create: returns (status, file id).
    fn create(&mut self, path: &str, access: u32, disposition: u32, options: u32) -> (u32, u32) {
        let name = utf16z(path);
        let mut body = u32s(&[access]);
        body.extend(0u64.to_le_bytes());
        body.extend(u32s(&[0, 7, disposition, options, name.len() as u32]));
        body.extend(name);
        let r = self.irp(0, 0, 0, &body);
        (r.status, r.u32_at(0))
    }

    fn close(&mut self, file_id: u32) -> u32 {
        self.irp(file_id, 2, 0, &[0; 32]).status
    }

    fn read(&mut self, file_id: u32, length: u32, offset: u64) -> (u32, Vec<u8>) {
        let mut body = u32s(&[length]);
        body.extend(offset.to_le_bytes());
        body.extend([0; 20]);
        let r = self.irp(file_id, 3, 0, &body);
        let n = r.u32_at(0) as usize;
        (r.status, r.body[4..4 + n].to_vec())
    }

    fn write(&mut self, file_id: u32, offset: u64, data: &[u8]) -> u32 {
        let mut body = u32s(&[data.len() as u32]);
        body.extend(offset.to_le_bytes());
        body.extend([0; 20]);
        body.extend_from_slice(data);
        self.irp(file_id, 4, 0, &body).status
    }

    fn set_information(&mut self, file_id: u32, class: u32, buffer: &[u8]) -> u32 {
        let mut body = u32s(&[class, buffer.len() as u32]);
        body.extend([0; 24]);
        body.extend_from_slice(buffer);
        self.irp(file_id, 6, 0, &body).status
    }

    fn query_information(&mut self, file_id: u32, class: u32) -> Reply {
        let mut body = u32s(&[class, 0]);
        body.extend([0; 24]);
        self.irp(file_id, 5, 0, &body)
    }

    /// The names a directory query lists, one request per name as xrdp asks.
    fn list(&mut self, dir_id: u32, pattern: &str, class: u32) -> Vec<String> {
        let mut names = Vec::new();
        let mut initial = 1u8;
        loop {
            let path = if initial == 1 {
                utf16z(pattern)
            } else {
                Vec::new()
            };
            let mut body = u32s(&[class]);
            body.push(initial);
            body.extend(u32s(&[path.len() as u32]));
            body.extend([0; 23]);
            body.extend(path);
            let r = self.irp(dir_id, 0x0C, 1, &body);
            if r.status == NO_MORE_FILES {
                return names;
            }
            assert_eq!(r.status, SUCCESS);
            // Length, then the entry; its file name is the last FileNameLength bytes.
            let entry = &r.body[4..4 + r.u32_at(0) as usize];
            let name_len_at = match class {
                FILE_NAMES_INFORMATION => 8,
                FILE_BOTH_DIRECTORY_INFORMATION | FILE_FULL_DIRECTORY_INFORMATION => 60,
                _ => 60,
            };
            let n = u32::from_le_bytes(entry[name_len_at..name_len_at + 4].try_into().unwrap());
            let name: Vec<u16> = entry[entry.len() - n as usize..]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            names.push(
                String::from_utf16(&name)
                    .unwrap()
                    .trim_end_matches('\0')
                    .to_owned(),
            );
            initial = 0;
        }
    }

    fn events(&mut self) -> Vec<DriveEvent> {
        let mut v = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            v.push(e);
        }
        v
    }
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, DriveConfig) {
    let outer = tempfile::tempdir().unwrap();
    let config = DriveConfig::new(outer.path().join("drives"));
    let folder = config
        .create_session_dir(psm_core::SessionId::new())
        .unwrap();
    (outer, folder, config)
}

#[test]
fn files_are_read_and_written_inside_the_folder_and_reported() {
    let (_outer, folder, config) = setup();
    let mut d = Drive::open(&folder, &config);

    let (s, id) = d.create("\\notes.txt", READ | WRITE, FILE_CREATE, 0);
    assert_eq!(s, SUCCESS);
    assert_eq!(d.write(id, 0, b"hello "), SUCCESS);
    assert_eq!(d.write(id, 6, b"drive"), SUCCESS);
    assert_eq!(d.close(id), SUCCESS);
    assert_eq!(
        std::fs::read(folder.join("notes.txt")).unwrap(),
        b"hello drive"
    );

    let (s, id) = d.create("\\notes.txt", READ, FILE_OPEN, 0);
    assert_eq!(s, SUCCESS);
    // Any length asked: at most MAX_READ answered, here the whole (short) file.
    let (s, data) = d.read(id, u32::MAX, 0);
    assert_eq!((s, data.as_slice()), (SUCCESS, &b"hello drive"[..]));
    let (s, data) = d.read(id, 10, 1 << 40);
    assert_eq!((s, data.len()), (SUCCESS, 0), "past the end: nothing");
    let info = d.query_information(id, FILE_STANDARD_INFORMATION);
    assert_eq!(info.status, SUCCESS);
    assert_eq!(
        u64::from_le_bytes(info.body[12..20].try_into().unwrap()),
        11,
        "end of file"
    );
    assert_eq!(
        d.query_information(id, FILE_BASIC_INFORMATION).status,
        SUCCESS
    );
    assert_eq!(d.close(id), SUCCESS);

    let hash = *blake3::hash(b"hello drive").as_bytes();
    assert_eq!(
        d.events(),
        vec![
            DriveEvent::Transfer {
                protocol: "rdp-drive",
                path: "PSM/notes.txt".into(),
                direction: TransferDirection::Download,
                size: 11,
                blake3: Some(hash),
            },
            DriveEvent::Transfer {
                protocol: "rdp-drive",
                path: "PSM/notes.txt".into(),
                direction: TransferDirection::Upload,
                size: 11,
                blake3: Some(hash),
            },
        ]
    );
}

#[test]
fn a_big_file_is_read_in_bounded_pieces_and_a_partial_read_has_no_hash() {
    let (_outer, folder, config) = setup();
    let big = vec![7u8; MAX_READ as usize * 2 + 5];
    std::fs::write(folder.join("big.bin"), &big).unwrap();
    let mut d = Drive::open(&folder, &config);
    let (_, id) = d.create("\\big.bin", READ, FILE_OPEN, 0);
    let (s, first) = d.read(id, u32::MAX, 0);
    assert_eq!((s, first.len()), (SUCCESS, MAX_READ as usize));
    assert_eq!(d.close(id), SUCCESS);
    match d.events().as_slice() {
        [DriveEvent::Transfer { size, blake3, .. }] => {
            assert_eq!(*size, u64::from(MAX_READ));
            assert_eq!(*blake3, None, "only part of the file was read");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn paths_cannot_leave_the_folder() {
    let (outer, folder, config) = setup();
    std::fs::write(outer.path().join("secret.txt"), b"outside").unwrap();
    std::os::unix::fs::symlink(outer.path(), folder.join("link")).unwrap();
    std::fs::create_dir(folder.join("sub")).unwrap();
    let mut d = Drive::open(&folder, &config);

    for path in [
        "\\..\\secret.txt",
        "\\sub\\..\\..\\secret.txt",
        "/../secret.txt",
    ] {
        assert_eq!(
            d.create(path, READ, FILE_OPEN, 0).0,
            ACCESS_DENIED,
            "{path}"
        );
        assert_eq!(
            d.create(path, READ | WRITE, FILE_OVERWRITE_IF, 0).0,
            ACCESS_DENIED,
            "{path}"
        );
    }
    assert_eq!(
        d.create("\\link\\secret.txt", READ, FILE_OPEN, 0).0,
        ACCESS_DENIED,
        "never through a symbolic link"
    );
    assert_eq!(d.create("\\link", READ, FILE_OPEN, 0).0, ACCESS_DENIED);
    assert_eq!(
        d.create("\\file.txt:hidden", READ | WRITE, FILE_CREATE, 0)
            .0,
        OBJECT_NAME_INVALID
    );
    let long = format!("\\{}", "n".repeat(300));
    assert_eq!(
        d.create(&long, READ | WRITE, FILE_CREATE, 0).0,
        OBJECT_NAME_INVALID
    );

    // Renaming out of the folder is refused too.
    let (_, id) = d.create("\\sub\\a.txt", READ | WRITE, FILE_CREATE, 0);
    let to = utf16z("\\..\\escaped.txt");
    let mut rename = vec![0u8, 0];
    rename.extend(u32s(&[to.len() as u32]));
    rename.extend(to);
    assert_eq!(
        d.set_information(id, FILE_RENAME_INFORMATION, &rename),
        ACCESS_DENIED
    );
    assert_eq!(d.close(id), SUCCESS);

    // The root cannot be deleted.
    let (s, root) = d.create("\\", READ, FILE_OPEN, FILE_DIRECTORY_FILE);
    assert_eq!(s, SUCCESS);
    assert_eq!(
        d.set_information(root, FILE_DISPOSITION_INFORMATION, &[1]),
        ACCESS_DENIED
    );
    // Listings leave symbolic links out.
    let names = d.list(root, "\\*", FILE_DIRECTORY_INFORMATION);
    assert_eq!(names, vec!["sub".to_owned()]);
    assert_eq!(d.close(root), SUCCESS);

    let mut outside: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    outside.sort();
    assert_eq!(outside, vec!["drives", "secret.txt"], "nothing new outside");
    assert_eq!(
        std::fs::read(outer.path().join("secret.txt")).unwrap(),
        b"outside"
    );
}

#[test]
fn listings_match_patterns_in_every_class_xrdp_and_windows_ask() {
    let (_outer, folder, config) = setup();
    for f in ["a.txt", "B.TXT", "c.log"] {
        std::fs::write(folder.join(f), f).unwrap();
    }
    std::fs::create_dir(folder.join("dir")).unwrap();
    let mut d = Drive::open(&folder, &config);
    let (_, root) = d.create("\\", READ, FILE_OPEN, FILE_DIRECTORY_FILE);
    for class in [
        FILE_DIRECTORY_INFORMATION,
        FILE_FULL_DIRECTORY_INFORMATION,
        FILE_BOTH_DIRECTORY_INFORMATION,
        FILE_NAMES_INFORMATION,
    ] {
        assert_eq!(
            d.list(root, "\\*", class),
            vec!["B.TXT", "a.txt", "c.log", "dir"],
            "class {class}"
        );
    }
    assert_eq!(
        d.list(root, "\\*.txt", FILE_DIRECTORY_INFORMATION),
        vec!["B.TXT", "a.txt"]
    );
    assert_eq!(
        d.list(root, "\\c.log", FILE_DIRECTORY_INFORMATION),
        vec!["c.log"]
    );
    assert!(
        d.list(root, "\\nothing*", FILE_DIRECTORY_INFORMATION)
            .is_empty()
    );
    assert_eq!(d.close(root), SUCCESS);
}

#[test]
fn delete_rename_and_new_directories_are_reported() {
    let (_outer, folder, config) = setup();
    let mut d = Drive::open(&folder, &config);
    let (s, dir) = d.create("\\reports", READ, FILE_CREATE, FILE_DIRECTORY_FILE);
    assert_eq!(s, SUCCESS);
    assert_eq!(d.close(dir), SUCCESS);
    assert!(folder.join("reports").is_dir());
    assert_eq!(
        d.create("\\reports", READ, FILE_CREATE, FILE_DIRECTORY_FILE)
            .0,
        OBJECT_NAME_COLLISION
    );

    let (_, a) = d.create("\\reports\\a.txt", READ | WRITE, FILE_CREATE, 0);
    assert_eq!(d.close(a), SUCCESS);
    let (_, b) = d.create("\\b.txt", READ | WRITE, FILE_CREATE, 0);
    assert_eq!(d.close(b), SUCCESS);

    // A non-empty directory cannot be marked for deletion.
    let (_, dir) = d.create("\\reports", READ, FILE_OPEN, FILE_DIRECTORY_FILE);
    assert_eq!(
        d.set_information(dir, FILE_DISPOSITION_INFORMATION, &[1]),
        0xC000_0101
    );
    assert_eq!(d.close(dir), SUCCESS);

    // Rename without replace onto an existing name: refused; then to a new name.
    let (_, a) = d.create("\\reports\\a.txt", READ | WRITE, FILE_OPEN, 0);
    let rename = |to: &str, replace: u8| {
        let to = utf16z(to);
        let mut v = vec![replace, 0];
        v.extend(u32s(&[to.len() as u32]));
        v.extend(to);
        v
    };
    assert_eq!(
        d.set_information(a, FILE_RENAME_INFORMATION, &rename("\\b.txt", 0)),
        OBJECT_NAME_COLLISION
    );
    assert_eq!(
        d.set_information(
            a,
            FILE_RENAME_INFORMATION,
            &rename("\\reports\\final.txt", 0)
        ),
        SUCCESS
    );
    assert_eq!(
        d.set_information(a, FILE_DISPOSITION_INFORMATION, &[1]),
        SUCCESS
    );
    assert_eq!(d.close(a), SUCCESS);
    assert!(!folder.join("reports/a.txt").exists());
    assert!(!folder.join("reports/final.txt").exists());

    let notes: Vec<_> = d
        .events()
        .into_iter()
        .filter_map(|e| match e {
            DriveEvent::Note(n) => Some(n),
            DriveEvent::Transfer { .. } => None,
        })
        .collect();
    assert_eq!(
        notes,
        vec![
            "drive: created directory PSM/reports",
            "drive: renamed PSM/reports/a.txt to PSM/reports/final.txt",
            "drive: deleted PSM/reports/final.txt",
        ]
    );
    assert_eq!(d.create("\\gone.txt", READ, FILE_OPEN, 0).0, NO_SUCH_FILE);
}

#[test]
fn limits_give_the_target_an_error_status() {
    let (_outer, folder, mut config) = setup();
    config.max_open_files = 2;
    config.max_bytes = 10;
    let mut d = Drive::open(&folder, &config);
    let (_, a) = d.create("\\a", READ | WRITE, FILE_CREATE, 0);
    let (_, b) = d.create("\\b", READ | WRITE, FILE_CREATE, 0);
    assert_eq!(
        d.create("\\c", READ | WRITE, FILE_CREATE, 0).0,
        INSUFFICIENT_RESOURCES
    );
    assert_eq!(d.write(a, 0, b"0123456789"), SUCCESS);
    assert_eq!(
        d.write(b, 0, b"x"),
        DISK_FULL,
        "the session's quota is spent"
    );
    assert_eq!(std::fs::metadata(folder.join("b")).unwrap().len(), 0);
    assert_eq!(d.close(b), SUCCESS);
    assert_eq!(d.close(b), INVALID_HANDLE, "closed twice");
    assert_eq!(d.read(99, 10, 0).0, INVALID_HANDLE);
    assert_eq!(d.write(99, 0, b"x"), INVALID_HANDLE);
    let (s, _) = d.create("\\c", READ | WRITE, FILE_CREATE, 0);
    assert_eq!(s, SUCCESS, "a closed handle frees its slot");
}

#[test]
fn requests_the_library_cannot_decode_are_refused_and_marked() {
    let (_outer, folder, config) = setup();
    let mut d = Drive::open(&folder, &config);
    // IRP_MJ_SET_VOLUME_INFORMATION: not decoded by ironrdp-rdpdr.
    let r = d.irp(0, 0x0B, 0, &[0; 32]);
    assert_eq!(r.status, NOT_SUPPORTED);
    // A create cut short.
    let r = d.irp(0, 0, 0, &[1, 2, 3]);
    assert_eq!(r.status, NOT_SUPPORTED);
    // Not even a header: nothing to answer.
    assert!(d.raw(b"rD").is_empty());
    assert!(d.raw(b"junk-junk-junk").is_empty());
    let notes = d.events();
    assert!(notes.len() >= 3, "{notes:?}");
    assert!(notes.iter().all(|e| matches!(e,
        DriveEvent::Note(n) if n.starts_with("drive: refused a request the gateway could not decode"))));
    // The drive still works.
    assert_eq!(d.create("\\ok", READ | WRITE, FILE_CREATE, 0).0, SUCCESS);
}

#[test]
fn the_drive_is_announced_with_its_dos_name() {
    let (_outer, folder, config) = setup();
    let mut d = Drive::open(&folder, &config);
    // Server Announce (version 1.12): Client Announce Reply and Client Name.
    let mut announce = b"rDnI".to_vec();
    announce.extend([1, 0, 12, 0]);
    announce.extend(u32s(&[7]));
    assert_eq!(d.raw(&announce).len(), 2);
    // User Logged On: the drive list.
    let out = d.raw(b"rDLU");
    assert_eq!(out.len(), 1);
    let list = &out[0];
    assert_eq!(&list[..4], b"rDAD");
    assert_eq!(u32::from_le_bytes(list[4..8].try_into().unwrap()), 1);
    assert_eq!(
        u32::from_le_bytes(list[8..12].try_into().unwrap()),
        8,
        "a file system"
    );
    assert_eq!(
        u32::from_le_bytes(list[12..16].try_into().unwrap()),
        DEVICE_ID
    );
    assert_eq!(&list[16..24], b"PSM\0\0\0\0\0");
}

#[test]
fn print_jobs_are_saved_in_the_folder_and_recorded() {
    let (_outer, folder, config) = setup();
    let (events, rx) = DriveEvents::channel(64);
    let backend = SessionDrive::new(&config, &folder, events).unwrap();
    let mut d = Drive {
        channel: DriveChannel::with_devices(backend, false, true),
        events: rx,
        completion: 0,
    };
    // Announced as a printer only (no drive) after User Logged On.
    let out = d.raw(b"rDLU");
    assert_eq!(&out[0][..4], b"rDAD");
    assert_eq!(u32::from_le_bytes(out[0][4..8].try_into().unwrap()), 1);
    assert_eq!(
        u32::from_le_bytes(out[0][8..12].try_into().unwrap()),
        4,
        "a printer"
    );
    assert_eq!(
        u32::from_le_bytes(out[0][12..16].try_into().unwrap()),
        PRINTER_DEVICE_ID
    );
    // The drive is not there.
    assert!(
        d.raw(&{
            let mut p = b"rDRI".to_vec();
            p.extend(u32s(&[DEVICE_ID, 0, 1, 0, 0]));
            p
        })
        .is_empty()
    );

    let job = b"%!PS-Adobe-3.0\n/Helvetica findfont 12 scalefont setfont\nshowpage\n";
    for round in 1..=2 {
        let mut create = u32s(&[0x40000000]);
        create.extend(0u64.to_le_bytes());
        create.extend(u32s(&[0, 0, FILE_OVERWRITE_IF, 0, 0]));
        let r = d.irp_to(PRINTER_DEVICE_ID, 0, 0, 0, &create);
        assert_eq!(r.status, SUCCESS);
        let id = r.u32_at(0);
        for piece in job.chunks(20) {
            let mut w = u32s(&[piece.len() as u32]);
            w.extend(0u64.to_le_bytes());
            w.extend([0; 20]);
            w.extend_from_slice(piece);
            assert_eq!(d.irp_to(PRINTER_DEVICE_ID, id, 4, 0, &w).status, SUCCESS);
        }
        assert_eq!(
            d.irp_to(PRINTER_DEVICE_ID, id, 2, 0, &[0; 32]).status,
            SUCCESS
        );
        let name = format!("print-{round:03}.ps");
        assert_eq!(std::fs::read(folder.join(&name)).unwrap(), job);
        let events = d.events();
        assert_eq!(
            events[0],
            DriveEvent::Transfer {
                protocol: "rdp-printer",
                path: format!("PSM/{name}"),
                direction: TransferDirection::Download,
                size: job.len() as u64,
                blake3: Some(*blake3::hash(job).as_bytes()),
            }
        );
        assert!(
            matches!(&events[1], DriveEvent::Note(n) if n.contains(&name)),
            "{events:?}"
        );
    }
}

#[test]
fn patch_dos_name_only_touches_a_device_list() {
    let name = *b"DATA\0\0\0\0";
    let mut list = b"rDAD".to_vec();
    list.extend(u32s(&[2]));
    for (id, data) in [(5u32, &b"x\0"[..]), (DEVICE_ID, &b"data\0"[..])] {
        list.extend(u32s(&[8, id]));
        list.extend(b"ignored\0");
        list.extend(u32s(&[data.len() as u32]));
        list.extend_from_slice(data);
    }
    let mut patched = list.clone();
    assert!(patch_dos_name(&mut patched, DEVICE_ID, &name));
    assert_eq!(
        &patched[16..24],
        b"ignored\0",
        "the other device is left alone"
    );
    // The second device starts after the first's 20-byte header and 2 bytes of data.
    assert_eq!(&patched[30 + 8..30 + 16], &name);
    let mut other = b"rDCI0000000000000000".to_vec();
    let before = other.clone();
    assert!(!patch_dos_name(&mut other, DEVICE_ID, &name));
    assert_eq!(other, before);
    // A list that claims more devices than it holds.
    let mut short = list[..30].to_vec();
    assert!(!patch_dos_name(&mut short, DEVICE_ID, &name));
}

#[test]
fn wildcards() {
    assert!(matches_pattern("*", "anything.txt"));
    assert!(matches_pattern("*.TXT", "a.txt"));
    assert!(matches_pattern("a?c", "abc"));
    assert!(!matches_pattern("a?c", "ac"));
    assert!(matches_pattern("*a*b*", "xxaxxbxx"));
    assert!(!matches_pattern("*.log", "a.txt"));
    assert!(matches_pattern("", ""));
    assert!(!matches_pattern("", "a"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wildcards_match_literals_and_stars(name in "[a-zA-Z0-9._ -]{0,20}") {
        prop_assert!(matches_pattern("*", &name));
        prop_assert!(matches_pattern(&name, &name));
        let starred = format!("*{}", name);
        prop_assert!(matches_pattern(&starred, &name));
    }

    /// Any bytes on the channel: no panic, no file outside the session folder.
    #[test]
    fn any_bytes_are_answered_without_leaving_the_folder(
        frames in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..96),
                // Device I/O requests with an arbitrary body, for every major function.
                (0u32..0x14, proptest::collection::vec(any::<u8>(), 0..96)).prop_map(|(major, body)| {
                    let mut p = b"rDRI".to_vec();
                    p.extend(u32s(&[DEVICE_ID, 1, 1, major, 0]));
                    p.extend(body);
                    p
                }),
            ],
            1..12,
        )
    ) {
        let (outer, folder, config) = setup();
        let mut d = Drive::open(&folder, &config);
        let (_, _id) = d.create("\\seed.txt", READ | WRITE, FILE_CREATE, 0);
        for f in &frames {
            let _ = d.channel.process(f);
        }
        let entries: Vec<_> = std::fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(entries, vec![std::ffi::OsString::from("drives")]);
    }
}

/// The command policy's transfer rules, through the session's taps, judge the target's
/// reads and writes of the session drive before a byte moves: a refused write or read gets
/// `STATUS_ACCESS_DENIED` and a marker, the rule's action acts on the session (here: lock),
/// and files no rule names move as before.
#[tokio::test]
async fn transfer_rules_refuse_drive_reads_and_writes_before_a_byte_moves() {
    use psm_proxy::policy_tap::{Enforcement, PolicyTap};
    use psm_proxy::{SessionControl, SessionInfo, Tap as _, TapSet};
    let policy = psm_core::policy::Policy::from_toml(
        r#"
[[rule]]
name = "no-key-export"
on = "transfer"
glob = "PSM/*.key"
direction = "download"
action = "lock"
message = "keys stay on the server"

[[rule]]
name = "no-tools-in"
on = "transfer"
glob = "PSM/tools/*"
direction = "upload"
action = "alert"

[[rule]]
name = "no-secrets-in"
on = "transfer"
glob = "PSM/secret*"
direction = "upload"
action = "terminate"
"#,
    )
    .unwrap();
    let scope = psm_core::policy::SessionScope::new("desk-01", vec!["ops"]);
    let tap = std::sync::Arc::new(PolicyTap::new(
        policy.for_session(&scope),
        Enforcement::default(),
    ));
    let control = std::sync::Arc::new(SessionControl::new());
    let mut notes = control.take_notes().unwrap();
    let info = SessionInfo {
        id: psm_core::SessionId::new(),
        user: "alice".into(),
        target: "desk-01".into(),
        target_account: "admin".into(),
        protocol: psm_core::Protocol::Rdp,
        peer: None,
        started: psm_core::Timestamp::now_utc(),
    };
    tap.session_started(&info, &control).await;
    let mut taps = TapSet::new();
    taps.push(tap);
    let gate = psm_proxy_rdp::session::TransferGate::default();
    gate.set(taps);

    let (_outer, folder, config) = setup();
    std::fs::write(folder.join("secret.txt"), b"top secret").unwrap();
    std::fs::create_dir(folder.join("tools")).unwrap();
    std::fs::write(folder.join("tools").join("nmap"), b"tool").unwrap();
    let mut d = Drive::open_gated(&folder, &config, Some(gate));

    // Writing a key out of the target: refused, nothing written, the session locked.
    let (s, id) = d.create("\\server.key", READ | WRITE, FILE_CREATE, 0);
    assert_eq!(s, SUCCESS, "opening is not moving a byte");
    assert_eq!(
        d.write(id, 0, b"-----BEGIN PRIVATE KEY-----"),
        ACCESS_DENIED
    );
    assert_eq!(
        d.write(id, 0, b"again"),
        ACCESS_DENIED,
        "judged once, refused for good"
    );
    assert_eq!(d.close(id), SUCCESS);
    assert_eq!(std::fs::read(folder.join("server.key")).unwrap(), b"");
    assert!(control.is_locked(), "the rule's action: lock");
    // A file no rule names is written as before.
    let (s, id) = d.create("\\notes.txt", READ | WRITE, FILE_CREATE, 0);
    assert_eq!(s, SUCCESS);
    assert_eq!(d.write(id, 0, b"fine"), SUCCESS);
    assert_eq!(d.close(id), SUCCESS);
    // An alert lets the read through and reports it.
    let (s, id) = d.create("\\tools\\nmap", READ, FILE_OPEN, 0);
    assert_eq!(s, SUCCESS);
    assert_eq!(d.read(id, 100, 0), (SUCCESS, b"tool".to_vec()));
    assert_eq!(d.close(id), SUCCESS);
    // Reading a secret into the target: refused and the session ended.
    let (s, id) = d.create("\\secret.txt", READ, FILE_OPEN, 0);
    assert_eq!(s, SUCCESS);
    assert_eq!(d.read(id, 100, 0).0, ACCESS_DENIED);
    assert_eq!(d.close(id), SUCCESS);
    assert!(
        control.termination().is_some(),
        "the rule's action: terminate"
    );

    let events = d.events();
    let notes_of = |needle: &str| {
        events
            .iter()
            .any(|e| matches!(e, DriveEvent::Note(n) if n.contains(needle)))
    };
    assert!(
        notes_of("writing of PSM/server.key refused: keys stay on the server"),
        "{events:?}"
    );
    assert!(notes_of("reading of PSM/secret.txt refused"), "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, DriveEvent::Transfer { path, size, .. } if path == "PSM/server.key" && *size > 0)),
        "{events:?}"
    );
    let mut policy_reports = Vec::new();
    while let Ok(n) = notes.try_recv() {
        if let psm_proxy::session::ControlNote::Report {
            kind: psm_core::live::LiveReportKind::Policy { rule, outcome, .. },
            ..
        } = n
        {
            policy_reports.push((rule, outcome));
        }
    }
    assert_eq!(
        policy_reports,
        vec![
            (
                "no-key-export".to_owned(),
                "refused; session locked".to_owned()
            ),
            ("no-tools-in".to_owned(), "alerted".to_owned()),
            (
                "no-secrets-in".to_owned(),
                "refused; session terminated".to_owned()
            ),
        ]
    );
}
