//! The session drive: a folder on the gateway, one per session, redirected to the target as
//! a drive (`rdpdr` file system device) when `ChannelPolicy::drives` allows it.
//!
//! The gateway terminates RDP on both sides, and ironrdp-server has no `rdpdr` server side,
//! so the user's own drives cannot be relayed. What the target sees instead is a drive the
//! gateway holds: `RdpGatewayConfig::drive` names the directory under which each session
//! gets `<root>/<session id>/`. Files an integrator or operator places there (see
//! [`ActiveSession::drive_dir`](crate::ActiveSession::drive_dir)) can be opened on the
//! target (on xrdp under `~/thinclient_drives/<NAME>/`, on Windows as `\\tsclient\NAME`);
//! files the target writes there stay on the gateway after the session. Every file read or
//! written is recorded as a `FileTransfer` event (its path on the drive, its size and, where
//! the gateway saw all of it in order, its BLAKE3), and every deletion, rename and new
//! directory as a marker.
//!
//! Everything the target sends is untrusted. Paths are confined to the session folder:
//! `..`, alternate data streams (`:`), NUL and over-long names are refused, and symbolic
//! links are neither followed nor listed. A read answers at most [`MAX_READ`] bytes, a
//! listing holds at most [`MAX_LISTING`] names, a session holds at most
//! `DriveConfig::max_open_files` open files and may write at most `DriveConfig::max_bytes`;
//! past those the target gets an NT status error, never a gateway failure. A request the
//! library cannot decode is answered "not supported" and marked in the recording; the
//! session goes on.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ironrdp::core::ReadCursor;
use ironrdp::pdu::PduResult;
use ironrdp::pdu::gcc::ChannelName;
use ironrdp::rdpdr::pdu::RdpdrPdu;
use ironrdp::rdpdr::pdu::efs::{
    Boolean, ClientDriveQueryDirectoryResponse, ClientDriveQueryInformationResponse,
    ClientDriveQueryVolumeInformationResponse, ClientDriveSetInformationResponse,
    CreateDisposition, CreateOptions, DeviceCloseRequest, DeviceCloseResponse,
    DeviceControlRequest, DeviceControlResponse, DeviceCreateRequest, DeviceCreateResponse,
    DeviceIoRequest, DeviceIoResponse, DeviceReadRequest, DeviceReadResponse, DeviceWriteRequest,
    DeviceWriteResponse, FileAttributeTagInformation, FileAttributes, FileBasicInformation,
    FileBothDirectoryInformation, FileDirectoryInformation, FileFsAttributeInformation,
    FileFsDeviceInformation, FileFsFullSizeInformation, FileFsSizeInformation,
    FileFsVolumeInformation, FileFullDirectoryInformation, FileInformationClass,
    FileInformationClassLevel, FileNamesInformation, FileStandardInformation, FileSystemAttributes,
    FileSystemInformationClass, FileSystemInformationClassLevel, Information, NtStatus,
    PrinterIoRequest, ServerDeviceAnnounceResponse, ServerDriveIoRequest,
    ServerDriveQueryDirectoryRequest, ServerDriveQueryInformationRequest,
    ServerDriveQueryVolumeInformationRequest, ServerDriveSetInformationRequest,
};
use ironrdp::rdpdr::pdu::esc::{ScardCall, ScardIoCtlCode};
use ironrdp::rdpdr::{Rdpdr, RdpdrBackend};
use ironrdp::svc::{CompressionCondition, SvcClientProcessor, SvcMessage, SvcProcessor};
use psm_recording::TransferDirection;
use tokio::sync::mpsc;

/// The device id of the session drive in the `rdpdr` channel.
pub const DEVICE_ID: u32 = 1;
/// The device id of the session printer in the `rdpdr` channel.
pub const PRINTER_DEVICE_ID: u32 = 2;
/// The session printer's name on the target.
pub const PRINTER_NAME: &str = "PSM Printer";
/// The `FileTransfer` protocol of print jobs the target sends to the session printer.
pub const PRINTER_PROTOCOL: &str = "rdp-printer";
/// Most bytes one read request is answered with (a shorter read is legal; the target asks
/// again for the rest).
pub const MAX_READ: u32 = 1 << 20;
/// Most names one directory listing holds (the rest are not shown, and logged).
pub const MAX_LISTING: usize = 10_000;
/// Longest path component accepted (NTFS's limit).
const MAX_NAME: usize = 255;
/// Deepest path accepted.
const MAX_DEPTH: usize = 32;

/// The `FileTransfer` protocol of files the target reads or writes on the drive.
pub const PROTOCOL: &str = "rdp-drive";
/// The `FileTransfer` protocol of files a browser user uploads to or downloads from the
/// drive through the gateway's page.
pub const WEB_PROTOCOL: &str = "rdp-drive-web";
/// Largest file moved through the browser page, in bytes (the websocket message bound).
pub const MAX_WEB_FILE: usize = 16 << 20;
/// Most names the browser page lists.
pub const MAX_WEB_LISTING: usize = 1000;

/// How the session drive is set up (`RdpGatewayConfig::drive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveConfig {
    /// The directory under which each session's folder (`<root>/<session id>/`, mode 0700)
    /// is created. The gateway never deletes these folders: retention is the operator's.
    pub root: PathBuf,
    /// The drive's name on the target: at most 7 ASCII letters or digits (it is also the
    /// DOS name the target may show). Default `PSM`.
    pub name: String,
    /// Most bytes the target may write to the drive in one session. Default 1 GiB.
    pub max_bytes: u64,
    /// Most files and directories the target may hold open at once. Default 256.
    pub max_open_files: usize,
}

impl DriveConfig {
    /// A drive named `PSM` under `root`, with the default limits.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            name: "PSM".into(),
            max_bytes: 1 << 30,
            max_open_files: 256,
        }
    }

    /// Checks the name (what `RdpGateway::bind` refuses).
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > 7
            || !self.name.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "the drive name {:?} must be 1 to 7 ASCII letters or digits",
                self.name
            ));
        }
        if self.max_open_files == 0 {
            return Err("the drive's max_open_files must be at least 1".into());
        }
        Ok(())
    }

    /// Creates the folder of one session (`<root>/<session>/`, mode 0700).
    pub fn create_session_dir(&self, session: psm_core::SessionId) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.root)?;
        let dir = self.root.join(session.to_string());
        fs::create_dir(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        Ok(dir)
    }
}

/// What the drive tells the recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveEvent {
    /// A file was read by the target (an upload: from the gateway's side to the target) or
    /// written by it (a download), reported when the target closes it.
    Transfer {
        /// [`PROTOCOL`] for the target's files, [`WEB_PROTOCOL`] for the browser page's.
        protocol: &'static str,
        /// The file's path on the drive, `NAME/dir/file`.
        path: String,
        /// Read by the target: `Upload`; written: `Download`.
        direction: TransferDirection,
        /// Bytes read, or the file's size after writing.
        size: u64,
        /// BLAKE3 of the whole file, when the gateway saw all of it, in order.
        blake3: Option<[u8; 32]>,
    },
    /// Anything else worth a marker: deletions, renames, new directories, refusals.
    Note(String),
}

/// Where the drive's events go: a bounded queue the session forwards to the recorder.
/// A full queue drops the event and counts it (the recorder marks the count).
#[derive(Clone, Debug)]
pub struct DriveEvents {
    tx: mpsc::Sender<DriveEvent>,
    dropped: Arc<AtomicU64>,
}

impl DriveEvents {
    /// A queue of `capacity` events and its receiving end.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<DriveEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    fn send(&self, event: DriveEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

// NT status codes the library does not name.
const STATUS_INVALID_HANDLE: u32 = 0xC000_0008;
const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
const STATUS_OBJECT_NAME_INVALID: u32 = 0xC000_0033;
const STATUS_DISK_FULL: u32 = 0xC000_007F;
const STATUS_INSUFFICIENT_RESOURCES: u32 = 0xC000_009A;
const STATUS_FILE_IS_A_DIRECTORY: u32 = 0xC000_00BA;

fn status(code: u32) -> NtStatus {
    NtStatus::from(code)
}

fn io_status(e: &io::Error) -> NtStatus {
    match e.kind() {
        io::ErrorKind::NotFound => NtStatus::NO_SUCH_FILE,
        io::ErrorKind::PermissionDenied => NtStatus::ACCESS_DENIED,
        io::ErrorKind::AlreadyExists => NtStatus::OBJECT_NAME_COLLISION,
        io::ErrorKind::DirectoryNotEmpty => NtStatus::DIRECTORY_NOT_EMPTY,
        io::ErrorKind::NotADirectory => NtStatus::NOT_A_DIRECTORY,
        io::ErrorKind::IsADirectory => status(STATUS_FILE_IS_A_DIRECTORY),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => status(STATUS_DISK_FULL),
        _ => NtStatus::UNSUCCESSFUL,
    }
}

/// Windows FILETIME (100 ns since 1601) of a file time, 0 when unknown.
fn filetime(t: io::Result<SystemTime>) -> i64 {
    const SECONDS_1601_TO_1970: i64 = 11_644_473_600;
    let Some(d) = t.ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()) else {
        return 0;
    };
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| s.checked_add(SECONDS_1601_TO_1970))
        .and_then(|s| s.checked_mul(10_000_000))
        .and_then(|t| t.checked_add(i64::from(d.subsec_nanos() / 100)))
        .unwrap_or(0)
}

/// What a listing or an information query says about one file.
#[derive(Clone, Debug)]
struct Stat {
    created: i64,
    accessed: i64,
    written: i64,
    size: i64,
    attributes: FileAttributes,
    directory: bool,
    links: u32,
}

impl Stat {
    fn of(m: &fs::Metadata) -> Self {
        let mut attributes = if m.is_dir() {
            FileAttributes::FILE_ATTRIBUTE_DIRECTORY
        } else {
            FileAttributes::FILE_ATTRIBUTE_ARCHIVE
        };
        if m.permissions().readonly() {
            attributes |= FileAttributes::FILE_ATTRIBUTE_READONLY;
        }
        Self {
            created: filetime(m.created().or_else(|_| m.modified())),
            accessed: filetime(m.accessed()),
            written: filetime(m.modified()),
            size: i64::try_from(m.len()).unwrap_or(i64::MAX),
            attributes,
            directory: m.is_dir(),
            links: u32::try_from(std::os::unix::fs::MetadataExt::nlink(m)).unwrap_or(1),
        }
    }

    fn boolean(b: bool) -> Boolean {
        if b { Boolean::True } else { Boolean::False }
    }

    fn entry(
        &self,
        level: FileInformationClassLevel,
        name: String,
    ) -> Option<FileInformationClass> {
        let (c, a, w, s, at) = (
            self.created,
            self.accessed,
            self.written,
            self.size,
            self.attributes.clone(),
        );
        Some(match level {
            FileInformationClassLevel::FILE_DIRECTORY_INFORMATION => {
                FileInformationClass::Directory(FileDirectoryInformation::new(
                    c, a, w, w, s, at, name,
                ))
            }
            FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION => {
                FileInformationClass::FullDirectory(FileFullDirectoryInformation::new(
                    c, a, w, w, s, at, name,
                ))
            }
            FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION => {
                FileInformationClass::BothDirectory(FileBothDirectoryInformation::new(
                    c, a, w, w, s, at, name,
                ))
            }
            FileInformationClassLevel::FILE_NAMES_INFORMATION => {
                FileInformationClass::Names(FileNamesInformation::new(name))
            }
            _ => return None,
        })
    }

    fn information(
        &self,
        level: FileInformationClassLevel,
        delete_pending: bool,
    ) -> Option<FileInformationClass> {
        Some(match level {
            FileInformationClassLevel::FILE_BASIC_INFORMATION => {
                FileInformationClass::Basic(FileBasicInformation {
                    creation_time: self.created,
                    last_access_time: self.accessed,
                    last_write_time: self.written,
                    change_time: self.written,
                    file_attributes: self.attributes.clone(),
                })
            }
            FileInformationClassLevel::FILE_STANDARD_INFORMATION => {
                FileInformationClass::Standard(FileStandardInformation {
                    allocation_size: self.size,
                    end_of_file: self.size,
                    number_of_links: self.links,
                    delete_pending: Self::boolean(delete_pending),
                    directory: Self::boolean(self.directory),
                })
            }
            FileInformationClassLevel::FILE_ATTRIBUTE_TAG_INFORMATION => {
                FileInformationClass::AttributeTag(FileAttributeTagInformation {
                    file_attributes: self.attributes.clone(),
                    reparse_tag: 0,
                })
            }
            _ => return None,
        })
    }
}

/// Bytes that went one way through an open file, hashed while they arrive in order.
#[derive(Debug, Default)]
struct Flow {
    bytes: u64,
    /// `Some` while every byte so far continued the previous ones from offset 0.
    hasher: Option<blake3::Hasher>,
    next: u64,
    broken: bool,
}

impl Flow {
    fn feed(&mut self, offset: u64, data: &[u8]) {
        self.bytes = self.bytes.saturating_add(data.len() as u64);
        if self.broken || data.is_empty() {
            return;
        }
        let end = offset.saturating_add(data.len() as u64);
        if offset == self.next {
            self.hasher
                .get_or_insert_with(blake3::Hasher::new)
                .update(data);
            self.next = end;
        } else if end > self.next {
            // A gap or an overlap past what was hashed: the whole is not known in order.
            self.broken = true;
            self.hasher = None;
        }
    }

    /// The hash of the whole file, when the flow covered exactly `size` bytes in order.
    fn whole(&self, size: u64) -> Option<[u8; 32]> {
        if self.broken || self.next != size {
            return None;
        }
        Some(match &self.hasher {
            Some(h) => *h.finalize().as_bytes(),
            None => *blake3::hash(&[]).as_bytes(),
        })
    }
}

#[derive(Debug)]
enum Handle {
    File(fs::File),
    Dir {
        listing: Option<(Vec<(String, Stat)>, usize)>,
    },
}

#[derive(Debug)]
struct Open {
    path: PathBuf,
    shown: String,
    handle: Handle,
    delete_on_close: bool,
    read: Flow,
    written: Flow,
    /// Whether the session's taps let the target read it (asked at the first read).
    may_read: Option<bool>,
    /// Whether they let the target write it (asked at the first write).
    may_write: Option<bool>,
}

/// A path on the drive, resolved inside the session folder.
#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    /// `NAME/dir/file`, as recorded.
    shown: String,
    root: bool,
}

/// The `rdpdr` backend serving one session's folder.
pub struct SessionDrive {
    root: PathBuf,
    name: String,
    max_bytes: u64,
    max_open: usize,
    written_total: u64,
    files: HashMap<u32, Open>,
    /// Print jobs being received: file id → (the job's file, its name, its bytes).
    jobs: HashMap<u32, (fs::File, String, Flow)>,
    printed: u32,
    next_id: u32,
    events: DriveEvents,
    gate: Option<crate::session::TransferGate>,
}

impl std::fmt::Debug for SessionDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDrive")
            .field("root", &self.root)
            .field("name", &self.name)
            .field("open", &self.files.len())
            .field("written", &self.written_total)
            .finish_non_exhaustive()
    }
}

ironrdp::core::impl_as_any!(SessionDrive);

impl SessionDrive {
    /// Serves `dir` (a session's folder) as the drive `config.name`.
    pub fn new(config: &DriveConfig, dir: &Path, events: DriveEvents) -> io::Result<Self> {
        Ok(Self {
            root: fs::canonicalize(dir)?,
            name: config.name.clone(),
            max_bytes: config.max_bytes,
            max_open: config.max_open_files,
            written_total: 0,
            files: HashMap::new(),
            jobs: HashMap::new(),
            printed: 0,
            next_id: 1,
            events,
            gate: None,
        })
    }

    /// Asks the session's taps (`Tap::check_transfer`) before the target reads (an upload)
    /// or writes (a download) a file, and before a print job: a refusal is the NT status
    /// `STATUS_ACCESS_DENIED` on that read or write, and a marker. Without a gate every
    /// transfer the drive's own limits allow goes.
    pub fn with_gate(mut self, gate: crate::session::TransferGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Whether `shown` may move `direction` (asking the gate).
    fn allowed(&self, shown: &str, direction: TransferDirection, protocol: &'static str) -> bool {
        let Some(gate) = &self.gate else {
            return true;
        };
        match gate.check(direction.into(), shown, protocol) {
            psm_proxy::RequestVerdict::Allow => true,
            psm_proxy::RequestVerdict::Refuse(why) => {
                self.events.send(DriveEvent::Note(format!(
                    "drive: {} of {shown} refused: {why}",
                    match direction {
                        TransferDirection::Upload => "reading",
                        TransferDirection::Download => "writing",
                    }
                )));
                false
            }
        }
    }

    /// Resolves a path the target sent (`\dir\file`) inside the session folder.
    fn resolve(&self, raw: &str) -> Result<Resolved, NtStatus> {
        let raw = raw.trim_end_matches('\0');
        let mut path = self.root.clone();
        let mut shown = self.name.clone();
        let mut depth = 0;
        for part in raw.split(['\\', '/']) {
            match part {
                "" | "." => continue,
                ".." => return Err(NtStatus::ACCESS_DENIED),
                p if p.len() > MAX_NAME || p.contains([':', '\0']) => {
                    return Err(status(STATUS_OBJECT_NAME_INVALID));
                }
                p => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(status(STATUS_OBJECT_NAME_INVALID));
                    }
                    path.push(p);
                    // Never through a symbolic link (nothing the target does makes one,
                    // but the folder's files come from elsewhere).
                    match fs::symlink_metadata(&path) {
                        Ok(m) if m.file_type().is_symlink() => return Err(NtStatus::ACCESS_DENIED),
                        _ => {}
                    }
                    shown.push('/');
                    shown.push_str(p);
                }
            }
        }
        Ok(Resolved {
            path,
            shown,
            root: depth == 0,
        })
    }

    fn new_file_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.files.contains_key(&id) && !self.jobs.contains_key(&id) {
                return id;
            }
        }
    }

    fn create(&mut self, req: &DeviceCreateRequest) -> Result<(u32, Information), NtStatus> {
        const FILE_CREATED: u8 = 2;
        if self.files.len() >= self.max_open {
            return Err(status(STATUS_INSUFFICIENT_RESOURCES));
        }
        let target = self.resolve(&req.path)?;
        let disposition = req.create_disposition;
        let wants_dir = req
            .create_options
            .contains(CreateOptions::FILE_DIRECTORY_FILE);
        let wants_file = req
            .create_options
            .contains(CreateOptions::FILE_NON_DIRECTORY_FILE);
        let delete_on_close = req
            .create_options
            .contains(CreateOptions::FILE_DELETE_ON_CLOSE);
        if delete_on_close && target.root {
            return Err(NtStatus::ACCESS_DENIED);
        }
        let existing = match fs::symlink_metadata(&target.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_status(&e)),
        };
        let overwrite = [
            CreateDisposition::FILE_SUPERSEDE,
            CreateDisposition::FILE_OVERWRITE,
            CreateDisposition::FILE_OVERWRITE_IF,
        ]
        .contains(&disposition);
        let (handle, information) = match existing {
            Some(m) if m.file_type().is_symlink() => return Err(NtStatus::ACCESS_DENIED),
            Some(m) if m.is_dir() => {
                if wants_file || overwrite {
                    return Err(status(STATUS_FILE_IS_A_DIRECTORY));
                }
                if disposition == CreateDisposition::FILE_CREATE {
                    return Err(NtStatus::OBJECT_NAME_COLLISION);
                }
                (Handle::Dir { listing: None }, Information::FILE_OPENED)
            }
            Some(_) => {
                if wants_dir {
                    return Err(NtStatus::NOT_A_DIRECTORY);
                }
                if disposition == CreateDisposition::FILE_CREATE {
                    return Err(NtStatus::OBJECT_NAME_COLLISION);
                }
                let write = overwrite || delete_on_close || wants_write(req);
                let file = fs::OpenOptions::new()
                    .read(true)
                    .write(write)
                    .truncate(overwrite)
                    .open(&target.path)
                    .map_err(|e| io_status(&e))?;
                let information = if disposition == CreateDisposition::FILE_SUPERSEDE {
                    Information::FILE_SUPERSEDED
                } else if overwrite {
                    Information::FILE_OVERWRITTEN
                } else {
                    Information::FILE_OPENED
                };
                (Handle::File(file), information)
            }
            None => {
                if [
                    CreateDisposition::FILE_OPEN,
                    CreateDisposition::FILE_OVERWRITE,
                ]
                .contains(&disposition)
                {
                    // What FreeRDP answers too: xrdp reads any other status as an I/O
                    // error rather than "no such file".
                    return Err(NtStatus::NO_SUCH_FILE);
                }
                match target.path.parent().map(fs::symlink_metadata) {
                    Some(Ok(m)) if m.is_dir() => {}
                    _ => return Err(NtStatus::NO_SUCH_FILE),
                }
                let created = Information::from_bits_retain(FILE_CREATED);
                if wants_dir {
                    fs::create_dir(&target.path).map_err(|e| io_status(&e))?;
                    self.events.send(DriveEvent::Note(format!(
                        "drive: created directory {}",
                        target.shown
                    )));
                    (Handle::Dir { listing: None }, created)
                } else {
                    let file = fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&target.path)
                        .map_err(|e| io_status(&e))?;
                    (Handle::File(file), created)
                }
            }
        };
        let id = self.new_file_id();
        self.files.insert(
            id,
            Open {
                path: target.path,
                shown: target.shown,
                handle,
                delete_on_close,
                read: Flow::default(),
                written: Flow::default(),
                may_read: None,
                may_write: None,
            },
        );
        Ok((id, information))
    }

    fn close(&mut self, file_id: u32) -> NtStatus {
        let Some(open) = self.files.remove(&file_id) else {
            return status(STATUS_INVALID_HANDLE);
        };
        let size = match &open.handle {
            Handle::File(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
            Handle::Dir { .. } => 0,
        };
        if open.read.bytes > 0 {
            self.events.send(DriveEvent::Transfer {
                protocol: PROTOCOL,
                path: open.shown.clone(),
                direction: TransferDirection::Upload,
                size: open.read.bytes,
                blake3: open.read.whole(size),
            });
        }
        if open.written.bytes > 0 && !open.delete_on_close {
            self.events.send(DriveEvent::Transfer {
                protocol: PROTOCOL,
                path: open.shown.clone(),
                direction: TransferDirection::Download,
                size,
                blake3: open.written.whole(size),
            });
        }
        if open.delete_on_close {
            let removed = match &open.handle {
                Handle::File(_) => fs::remove_file(&open.path),
                Handle::Dir { .. } => fs::remove_dir(&open.path),
            };
            match removed {
                Ok(()) => self
                    .events
                    .send(DriveEvent::Note(format!("drive: deleted {}", open.shown))),
                Err(e) => return io_status(&e),
            }
        }
        NtStatus::SUCCESS
    }

    fn read(&mut self, req: &DeviceReadRequest) -> Result<Vec<u8>, NtStatus> {
        let file_id = req.device_io_request.file_id;
        let open = self
            .files
            .get(&file_id)
            .ok_or(status(STATUS_INVALID_HANDLE))?;
        if open.may_read.is_none() && matches!(open.handle, Handle::File(_)) {
            let ok = self.allowed(&open.shown, TransferDirection::Upload, PROTOCOL);
            if let Some(open) = self.files.get_mut(&file_id) {
                open.may_read = Some(ok);
            }
        }
        let open = self
            .files
            .get_mut(&file_id)
            .ok_or(status(STATUS_INVALID_HANDLE))?;
        if open.may_read == Some(false) {
            return Err(NtStatus::ACCESS_DENIED);
        }
        let Handle::File(file) = &open.handle else {
            return Err(status(STATUS_FILE_IS_A_DIRECTORY));
        };
        let len = req.length.min(MAX_READ) as usize;
        let mut buf = vec![0u8; len];
        let mut n = 0;
        while n < len {
            let at = req
                .offset
                .checked_add(n as u64)
                .ok_or(status(STATUS_INVALID_PARAMETER))?;
            match file.read_at(&mut buf[n..], at) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_status(&e)),
            }
        }
        buf.truncate(n);
        open.read.feed(req.offset, &buf);
        Ok(buf)
    }

    fn write(&mut self, req: &DeviceWriteRequest) -> Result<u32, NtStatus> {
        let len = req.write_data.len() as u64;
        let length = u32::try_from(len).map_err(|_| status(STATUS_INVALID_PARAMETER))?;
        let file_id = req.device_io_request.file_id;
        let open = self
            .files
            .get(&file_id)
            .ok_or(status(STATUS_INVALID_HANDLE))?;
        if open.may_write.is_none() && matches!(open.handle, Handle::File(_)) {
            let ok = self.allowed(&open.shown, TransferDirection::Download, PROTOCOL);
            if let Some(open) = self.files.get_mut(&file_id) {
                open.may_write = Some(ok);
            }
        }
        let open = self
            .files
            .get_mut(&file_id)
            .ok_or(status(STATUS_INVALID_HANDLE))?;
        if open.may_write == Some(false) {
            return Err(NtStatus::ACCESS_DENIED);
        }
        let Handle::File(file) = &open.handle else {
            return Err(status(STATUS_FILE_IS_A_DIRECTORY));
        };
        if self.written_total.saturating_add(len) > self.max_bytes {
            return Err(status(STATUS_DISK_FULL));
        }
        req.offset
            .checked_add(len)
            .ok_or(status(STATUS_INVALID_PARAMETER))?;
        file.write_all_at(&req.write_data, req.offset)
            .map_err(|e| io_status(&e))?;
        open.written.feed(req.offset, &req.write_data);
        self.written_total += len;
        Ok(length)
    }

    fn stat(open: &Open) -> Result<Stat, NtStatus> {
        let m = match &open.handle {
            Handle::File(f) => f.metadata(),
            Handle::Dir { .. } => fs::symlink_metadata(&open.path),
        };
        m.map(|m| Stat::of(&m)).map_err(|e| io_status(&e))
    }

    fn query_information(
        &self,
        req: &ServerDriveQueryInformationRequest,
    ) -> Result<FileInformationClass, NtStatus> {
        let open = self
            .files
            .get(&req.device_io_request.file_id)
            .ok_or(status(STATUS_INVALID_HANDLE))?;
        Self::stat(open)?
            .information(req.file_info_class_lvl.clone(), open.delete_on_close)
            .ok_or(NtStatus::NOT_SUPPORTED)
    }

    fn query_directory(
        &mut self,
        req: &ServerDriveQueryDirectoryRequest,
    ) -> Result<FileInformationClass, NtStatus> {
        let level = req.file_info_class_lvl.clone();
        if Stat::of_level_supported(level.clone()).is_none() {
            return Err(NtStatus::NOT_SUPPORTED);
        }
        let open = self
            .files
            .get_mut(&req.device_io_request.file_id)
            .ok_or(status(STATUS_INVALID_HANDLE))?;
        let Handle::Dir { listing } = &mut open.handle else {
            return Err(NtStatus::NOT_A_DIRECTORY);
        };
        if req.initial_query != 0 || listing.is_none() {
            let raw = req.path.trim_end_matches('\0');
            let pattern = raw.rsplit(['\\', '/']).next().unwrap_or("");
            let pattern = if pattern.is_empty() { "*" } else { pattern };
            *listing = Some((list(&open.path, pattern, &open.shown)?, 0));
        }
        let Some((entries, pos)) = listing else {
            return Err(NtStatus::NO_MORE_FILES);
        };
        let Some((name, stat)) = entries.get(*pos) else {
            return Err(NtStatus::NO_MORE_FILES);
        };
        *pos += 1;
        stat.entry(level, name.clone())
            .ok_or(NtStatus::NOT_SUPPORTED)
    }

    fn query_volume(
        &self,
        req: &ServerDriveQueryVolumeInformationRequest,
    ) -> Result<FileSystemInformationClass, NtStatus> {
        const BYTES_PER_SECTOR: u32 = 512;
        const SECTORS_PER_UNIT: u32 = 8;
        let unit = u64::from(BYTES_PER_SECTOR * SECTORS_PER_UNIT);
        let total = i64::try_from(self.max_bytes / unit).unwrap_or(i64::MAX);
        let free = i64::try_from(self.max_bytes.saturating_sub(self.written_total) / unit)
            .unwrap_or(i64::MAX);
        Ok(match req.fs_info_class_lvl {
            FileSystemInformationClassLevel::FILE_FS_VOLUME_INFORMATION => {
                FileSystemInformationClass::FileFsVolumeInformation(FileFsVolumeInformation {
                    volume_creation_time: filetime(
                        fs::metadata(&self.root).and_then(|m| m.modified()),
                    ),
                    volume_serial_number: 0x5053_4d00,
                    supports_objects: Boolean::False,
                    volume_label: self.name.clone(),
                })
            }
            FileSystemInformationClassLevel::FILE_FS_SIZE_INFORMATION => {
                FileSystemInformationClass::FileFsSizeInformation(FileFsSizeInformation {
                    total_alloc_units: total,
                    available_alloc_units: free,
                    sectors_per_alloc_unit: SECTORS_PER_UNIT,
                    bytes_per_sector: BYTES_PER_SECTOR,
                })
            }
            FileSystemInformationClassLevel::FILE_FS_FULL_SIZE_INFORMATION => {
                FileSystemInformationClass::FileFsFullSizeInformation(FileFsFullSizeInformation {
                    total_alloc_units: total,
                    caller_available_alloc_units: free,
                    actual_available_alloc_units: free,
                    sectors_per_alloc_unit: SECTORS_PER_UNIT,
                    bytes_per_sector: BYTES_PER_SECTOR,
                })
            }
            FileSystemInformationClassLevel::FILE_FS_ATTRIBUTE_INFORMATION => {
                FileSystemInformationClass::FileFsAttributeInformation(FileFsAttributeInformation {
                    file_system_attributes: FileSystemAttributes::FILE_CASE_SENSITIVE_SEARCH
                        | FileSystemAttributes::FILE_CASE_PRESERVED_NAMES
                        | FileSystemAttributes::FILE_UNICODE_ON_DISK,
                    max_component_name_len: MAX_NAME as u32,
                    file_system_name: "FAT32".into(),
                })
            }
            FileSystemInformationClassLevel::FILE_FS_DEVICE_INFORMATION => {
                const FILE_DEVICE_DISK: u32 = 7;
                FileSystemInformationClass::FileFsDeviceInformation(FileFsDeviceInformation {
                    device_type: FILE_DEVICE_DISK,
                    characteristics: ironrdp::rdpdr::pdu::efs::Characteristics::empty(),
                })
            }
            _ => return Err(NtStatus::NOT_SUPPORTED),
        })
    }

    fn set_information(&mut self, req: &ServerDriveSetInformationRequest) -> NtStatus {
        match self.try_set_information(req) {
            Ok(()) => NtStatus::SUCCESS,
            Err(s) => s,
        }
    }

    fn try_set_information(
        &mut self,
        req: &ServerDriveSetInformationRequest,
    ) -> Result<(), NtStatus> {
        let file_id = req.device_io_request.file_id;
        if !self.files.contains_key(&file_id) {
            return Err(status(STATUS_INVALID_HANDLE));
        }
        match &req.set_buffer {
            FileInformationClass::EndOfFile(eof) => {
                let len =
                    u64::try_from(eof.end_of_file).map_err(|_| status(STATUS_INVALID_PARAMETER))?;
                let Some(open) = self.files.get(&file_id) else {
                    return Err(status(STATUS_INVALID_HANDLE));
                };
                let Handle::File(file) = &open.handle else {
                    return Err(status(STATUS_FILE_IS_A_DIRECTORY));
                };
                let now = file.metadata().map_err(|e| io_status(&e))?.len();
                let growth = len.saturating_sub(now);
                if self.written_total.saturating_add(growth) > self.max_bytes {
                    return Err(status(STATUS_DISK_FULL));
                }
                file.set_len(len).map_err(|e| io_status(&e))?;
                self.written_total += growth;
                Ok(())
            }
            // Times and preallocation are not kept.
            FileInformationClass::Basic(_) | FileInformationClass::Allocation(_) => Ok(()),
            FileInformationClass::Disposition(d) => {
                let root = self.root.clone();
                let Some(open) = self.files.get_mut(&file_id) else {
                    return Err(status(STATUS_INVALID_HANDLE));
                };
                if d.delete_pending == 0 {
                    open.delete_on_close = false;
                    return Ok(());
                }
                if open.path == root {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                if let Handle::Dir { .. } = open.handle {
                    let mut entries = fs::read_dir(&open.path).map_err(|e| io_status(&e))?;
                    if entries.next().is_some() {
                        return Err(NtStatus::DIRECTORY_NOT_EMPTY);
                    }
                }
                open.delete_on_close = true;
                Ok(())
            }
            FileInformationClass::Rename(r) => {
                let to = self.resolve(&r.file_name)?;
                let Some(open) = self.files.get(&file_id) else {
                    return Err(status(STATUS_INVALID_HANDLE));
                };
                if to.root || open.path == self.root {
                    return Err(NtStatus::ACCESS_DENIED);
                }
                if fs::symlink_metadata(&to.path).is_ok()
                    && !matches!(r.replace_if_exists, Boolean::True)
                {
                    return Err(NtStatus::OBJECT_NAME_COLLISION);
                }
                fs::rename(&open.path, &to.path).map_err(|e| io_status(&e))?;
                let note = format!("drive: renamed {} to {}", open.shown, to.shown);
                if let Some(open) = self.files.get_mut(&file_id) {
                    open.path = to.path;
                    open.shown = to.shown;
                }
                self.events.send(DriveEvent::Note(note));
                Ok(())
            }
            _ => Err(NtStatus::NOT_SUPPORTED),
        }
    }
}

impl SessionDrive {
    /// A new print job: a file `print-NNN.ps` in the session folder (the target's printer
    /// driver writes PostScript).
    fn print_start(&mut self) -> Result<u32, NtStatus> {
        if self.files.len() + self.jobs.len() >= self.max_open {
            return Err(status(STATUS_INSUFFICIENT_RESOURCES));
        }
        for _ in 0..1000 {
            self.printed += 1;
            let name = format!("print-{:03}.ps", self.printed);
            if self.root.join(&name).exists() {
                continue;
            }
            if !self.allowed(
                &format!("{}/{name}", self.name),
                TransferDirection::Download,
                PRINTER_PROTOCOL,
            ) {
                return Err(NtStatus::ACCESS_DENIED);
            }
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.root.join(&name))
            {
                Ok(file) => {
                    let id = self.new_file_id();
                    self.jobs.insert(id, (file, name, Flow::default()));
                    return Ok(id);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_status(&e)),
            }
        }
        Err(NtStatus::OBJECT_NAME_COLLISION)
    }

    fn print_write(&mut self, req: &DeviceWriteRequest) -> Result<u32, NtStatus> {
        let len = req.write_data.len() as u64;
        let length = u32::try_from(len).map_err(|_| status(STATUS_INVALID_PARAMETER))?;
        let (file, _, flow) = self
            .jobs
            .get_mut(&req.device_io_request.file_id)
            .ok_or(status(STATUS_INVALID_HANDLE))?;
        if self.written_total.saturating_add(len) > self.max_bytes {
            return Err(status(STATUS_DISK_FULL));
        }
        // A print job is a stream: its bytes are appended in the order they come.
        let at = flow.bytes;
        file.write_all_at(&req.write_data, at)
            .map_err(|e| io_status(&e))?;
        flow.feed(at, &req.write_data);
        self.written_total += len;
        Ok(length)
    }

    fn print_end(&mut self, file_id: u32) -> NtStatus {
        let Some((_, name, flow)) = self.jobs.remove(&file_id) else {
            return status(STATUS_INVALID_HANDLE);
        };
        let path = format!("{}/{name}", self.name);
        self.events.send(DriveEvent::Transfer {
            protocol: PRINTER_PROTOCOL,
            path: path.clone(),
            direction: TransferDirection::Download,
            size: flow.bytes,
            blake3: flow.whole(flow.bytes),
        });
        self.events.send(DriveEvent::Note(format!(
            "printer: a print job of {} bytes saved as {path}",
            flow.bytes
        )));
        NtStatus::SUCCESS
    }
}

impl Stat {
    fn of_level_supported(level: FileInformationClassLevel) -> Option<()> {
        [
            FileInformationClassLevel::FILE_DIRECTORY_INFORMATION,
            FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION,
            FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION,
            FileInformationClassLevel::FILE_NAMES_INFORMATION,
        ]
        .contains(&level)
        .then_some(())
    }
}

fn wants_write(req: &DeviceCreateRequest) -> bool {
    const FILE_WRITE_DATA: u32 = 0x0000_0002;
    const FILE_APPEND_DATA: u32 = 0x0000_0004;
    const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
    const GENERIC_ALL: u32 = 0x1000_0000;
    const GENERIC_WRITE: u32 = 0x4000_0000;
    req.desired_access.bits()
        & (FILE_WRITE_DATA | FILE_APPEND_DATA | MAXIMUM_ALLOWED | GENERIC_ALL | GENERIC_WRITE)
        != 0
}

/// The entries of `dir` whose names `keep` accepts, in the order the directory gives them,
/// without symbolic links or names that are not UTF-8: at most `limit`, and whether more
/// were left out. The walk shared by the target's listings and the browser page's.
fn entries(
    dir: &Path,
    limit: usize,
    keep: impl Fn(&str) -> bool,
) -> io::Result<(Vec<(String, fs::Metadata)>, bool)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !keep(&name) {
            continue;
        }
        let Ok(m) = entry.metadata() else { continue };
        if m.file_type().is_symlink() {
            continue;
        }
        if out.len() >= limit {
            return Ok((out, true));
        }
        out.push((name, m));
    }
    Ok((out, false))
}

/// The names in `dir` matching `pattern` (`*` and `?` wildcards, ASCII case-insensitive),
/// sorted, without symbolic links or names that are not UTF-8, at most [`MAX_LISTING`].
fn list(dir: &Path, pattern: &str, shown: &str) -> Result<Vec<(String, Stat)>, NtStatus> {
    let (found, truncated) = entries(dir, MAX_LISTING, |name| matches_pattern(pattern, name))
        .map_err(|e| io_status(&e))?;
    if truncated {
        tracing::warn!(dir = %shown, limit = MAX_LISTING, "drive listing truncated");
    }
    let mut out: Vec<_> = found
        .into_iter()
        .map(|(name, m)| (name, Stat::of(&m)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `*` (any run) and `?` (any one character) wildcards, ASCII case-insensitive.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let n: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative wildcard match with one backtrack point: linear in practice, never
    // exponential.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl RdpdrBackend for SessionDrive {
    fn handle_server_device_announce_response(
        &mut self,
        pdu: ServerDeviceAnnounceResponse,
    ) -> PduResult<()> {
        if pdu.result_code == NtStatus::SUCCESS {
            tracing::info!(drive = %self.name, "the target accepted the session drive");
        } else {
            tracing::warn!(drive = %self.name, status = ?pdu.result_code, "the target refused the session drive");
            self.events.send(DriveEvent::Note(format!(
                "drive: the target refused the drive {} ({:?})",
                self.name, pdu.result_code
            )));
        }
        Ok(())
    }

    fn handle_scard_call(
        &mut self,
        _req: DeviceControlRequest<ScardIoCtlCode>,
        _call: ScardCall,
    ) -> PduResult<()> {
        // No smart card is announced, so the library never routes one here.
        Ok(())
    }

    fn handle_printer_io_request(&mut self, req: PrinterIoRequest) -> PduResult<Vec<SvcMessage>> {
        let reply = match req {
            PrinterIoRequest::Create(r) => {
                let (s, file_id) = split(self.print_start());
                let file_id = file_id.unwrap_or(0);
                RdpdrPdu::DeviceCreateResponse(DeviceCreateResponse {
                    device_io_reply: DeviceIoResponse::new(r.device_io_request, s),
                    file_id,
                    information: Information::FILE_OPENED,
                })
            }
            PrinterIoRequest::Write(r) => {
                let (s, length) = split(self.print_write(&r));
                let length = length.unwrap_or(0);
                RdpdrPdu::DeviceWriteResponse(DeviceWriteResponse {
                    device_io_reply: DeviceIoResponse::new(r.device_io_request, s),
                    length,
                })
            }
            PrinterIoRequest::Close(DeviceCloseRequest { device_io_request }) => {
                let s = self.print_end(device_io_request.file_id);
                RdpdrPdu::DeviceCloseResponse(DeviceCloseResponse {
                    device_io_response: DeviceIoResponse::new(device_io_request, s),
                })
            }
        };
        Ok(vec![SvcMessage::from(reply)])
    }

    fn handle_drive_io_request(&mut self, req: ServerDriveIoRequest) -> PduResult<Vec<SvcMessage>> {
        let reply = match req {
            ServerDriveIoRequest::ServerCreateDriveRequest(r) => {
                let (s, opened) = split(self.create(&r));
                let (file_id, information) = opened.unwrap_or((0, Information::empty()));
                tracing::debug!(path = %r.path, status = ?s, file_id, "drive create");
                RdpdrPdu::DeviceCreateResponse(DeviceCreateResponse {
                    device_io_reply: DeviceIoResponse::new(r.device_io_request, s),
                    file_id,
                    information,
                })
            }
            ServerDriveIoRequest::DeviceCloseRequest(DeviceCloseRequest { device_io_request }) => {
                let s = self.close(device_io_request.file_id);
                RdpdrPdu::DeviceCloseResponse(DeviceCloseResponse {
                    device_io_response: DeviceIoResponse::new(device_io_request, s),
                })
            }
            ServerDriveIoRequest::DeviceReadRequest(r) => {
                let (s, read_data) = split(self.read(&r));
                let read_data = read_data.unwrap_or_default();
                RdpdrPdu::DeviceReadResponse(DeviceReadResponse {
                    device_io_reply: DeviceIoResponse::new(r.device_io_request, s),
                    read_data,
                })
            }
            ServerDriveIoRequest::DeviceWriteRequest(r) => {
                let (s, length) = split(self.write(&r));
                let length = length.unwrap_or(0);
                RdpdrPdu::DeviceWriteResponse(DeviceWriteResponse {
                    device_io_reply: DeviceIoResponse::new(r.device_io_request, s),
                    length,
                })
            }
            ServerDriveIoRequest::ServerDriveQueryInformationRequest(r) => {
                let (s, buffer) = split(self.query_information(&r));
                RdpdrPdu::ClientDriveQueryInformationResponse(ClientDriveQueryInformationResponse {
                    device_io_response: DeviceIoResponse::new(r.device_io_request, s),
                    buffer,
                })
            }
            ServerDriveIoRequest::ServerDriveQueryDirectoryRequest(r) => {
                let (s, buffer) = split(self.query_directory(&r));
                RdpdrPdu::ClientDriveQueryDirectoryResponse(ClientDriveQueryDirectoryResponse {
                    device_io_reply: DeviceIoResponse::new(r.device_io_request, s),
                    buffer,
                })
            }
            ServerDriveIoRequest::ServerDriveQueryVolumeInformationRequest(r) => {
                let (s, buffer) = split(self.query_volume(&r));
                RdpdrPdu::ClientDriveQueryVolumeInformationResponse(
                    ClientDriveQueryVolumeInformationResponse::new(r.device_io_request, s, buffer),
                )
            }
            ServerDriveIoRequest::ServerDriveSetInformationRequest(r) => {
                let s = self.set_information(&r);
                match ClientDriveSetInformationResponse::new(&r, s) {
                    Ok(resp) => RdpdrPdu::ClientDriveSetInformationResponse(resp),
                    Err(_) => failed(r.device_io_request, NtStatus::UNSUCCESSFUL),
                }
            }
            ServerDriveIoRequest::DeviceControlRequest(r) => RdpdrPdu::DeviceControlResponse(
                DeviceControlResponse::new(r, NtStatus::NOT_SUPPORTED, None),
            ),
            // Change notifications are never completed (allowed: the target cancels or
            // drops them with the drive).
            ServerDriveIoRequest::ServerDriveNotifyChangeDirectoryRequest(_) => {
                return Ok(Vec::new());
            }
            // Byte-range locks are granted and not enforced (one writer: the target).
            ServerDriveIoRequest::ServerDriveLockControlRequest(r) => {
                failed(r.device_io_request, NtStatus::SUCCESS)
            }
        };
        Ok(vec![SvcMessage::from(reply)])
    }
}

/// A result as the status and the value a completion carries.
fn split<T>(r: Result<T, NtStatus>) -> (NtStatus, Option<T>) {
    match r {
        Ok(v) => (NtStatus::SUCCESS, Some(v)),
        Err(s) => (s, None),
    }
}

/// A completion with only a status (and the padding every short reply carries).
fn failed(request: DeviceIoRequest, s: NtStatus) -> RdpdrPdu {
    RdpdrPdu::DeviceCloseResponse(DeviceCloseResponse {
        device_io_response: DeviceIoResponse::new(request, s),
    })
}

/// A file name the browser page may upload or download: one path component, no `..`, no
/// leading dot, no `/`, `\\`, `:` or control characters, at most 255 bytes.
pub fn check_web_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | ':'))
    {
        return Err(format!("{name:?} is not a file name the drive accepts"));
    }
    Ok(())
}

/// One entry of the browser page's listing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WebEntry {
    /// The file's name in the drive's top folder.
    pub name: String,
    /// Its size in bytes (0 for a directory).
    pub size: u64,
    /// A directory (listed, not downloadable).
    pub dir: bool,
}

/// The drive's top folder as the browser page lists it: sorted, without symbolic links or
/// names that are not UTF-8, at most [`MAX_WEB_LISTING`] entries.
pub fn web_listing(dir: &Path) -> io::Result<Vec<WebEntry>> {
    let (found, _) = entries(dir, MAX_WEB_LISTING, |name| check_web_name(name).is_ok())?;
    let mut out: Vec<_> = found
        .into_iter()
        .map(|(name, m)| WebEntry {
            name,
            size: if m.is_dir() { 0 } else { m.len() },
            dir: m.is_dir(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads a file of the drive's top folder for the browser page (a regular file, not a
/// link, at most [`MAX_WEB_FILE`] bytes).
pub async fn web_read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    check_web_name(name)?;
    let path = dir.join(name);
    let m = tokio::fs::symlink_metadata(&path)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    if !m.is_file() {
        return Err(format!("{name} is not a file"));
    }
    if m.len() > MAX_WEB_FILE as u64 {
        return Err(format!(
            "{name} has {} bytes; the page moves at most {MAX_WEB_FILE}",
            m.len()
        ));
    }
    let mut data = Vec::with_capacity(m.len() as usize);
    use tokio::io::AsyncReadExt as _;
    tokio::fs::File::open(&path)
        .await
        .map_err(|e| format!("{name}: {e}"))?
        .take(MAX_WEB_FILE as u64)
        .read_to_end(&mut data)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(data)
}

/// Writes a new file in the drive's top folder for the browser page: refused when the name
/// exists (nothing on the drive is overwritten from the page); written under a temporary
/// name and renamed, so the target never sees half a file.
pub async fn web_write(dir: &Path, name: &str, data: &[u8]) -> Result<(), String> {
    check_web_name(name)?;
    if data.len() > MAX_WEB_FILE {
        return Err(format!(
            "{name} has {} bytes; the page moves at most {MAX_WEB_FILE}",
            data.len()
        ));
    }
    let path = dir.join(name);
    if tokio::fs::symlink_metadata(&path).await.is_ok() {
        return Err(format!("{name} already exists on the drive"));
    }
    let partial = dir.join(format!(
        ".psm-upload-{}",
        blake3::hash(name.as_bytes()).to_hex()
    ));
    tokio::fs::write(&partial, data)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    // `link` + `unlink` instead of `rename`: fails if the target created the name meanwhile.
    let linked = tokio::fs::hard_link(&partial, &path).await;
    let _ = tokio::fs::remove_file(&partial).await;
    linked.map_err(|e| format!("{name}: {e}"))
}

// RDPDR shared header bytes (component, packet id; little-endian).
const CORE: [u8; 2] = *b"rD";
const PAKID_CLIENTID_CONFIRM: [u8; 2] = *b"CC";
const PAKID_USER_LOGGEDON: [u8; 2] = *b"LU";
const PAKID_DEVICELIST_ANNOUNCE: [u8; 2] = *b"AD";
const PAKID_DEVICE_IOREQUEST: [u8; 2] = *b"RI";

/// The `rdpdr` channel toward the target with the session drive announced: ironrdp's
/// `Rdpdr` client around [`SessionDrive`], which also gives the drive its DOS name (the
/// library announces every drive as `ignored`, the name xrdp shows) and answers a request
/// the library cannot decode with an error instead of ending the session.
#[derive(Debug)]
pub struct DriveChannel {
    inner: Rdpdr,
    dos_name: [u8; 8],
    events: DriveEvents,
}

ironrdp::core::impl_as_any!(DriveChannel);

impl DriveChannel {
    /// The channel serving `drive` as `name` (checked by [`DriveConfig::validate`]).
    pub fn new(drive: SessionDrive) -> Self {
        Self::with_devices(drive, true, false)
    }

    /// The channel announcing the drive (when `drive_device`) and the session printer
    /// [`PRINTER_NAME`] (when `printer`), whose jobs are saved in the session folder as
    /// `print-NNN.ps` and recorded (protocol [`PRINTER_PROTOCOL`]).
    pub fn with_devices(drive: SessionDrive, drive_device: bool, printer: bool) -> Self {
        let mut dos_name = [0u8; 8];
        for (d, b) in dos_name.iter_mut().zip(drive.name.bytes().take(7)) {
            *d = b.to_ascii_uppercase();
        }
        let name = drive.name.clone();
        let events = drive.events.clone();
        let mut inner = Rdpdr::new(Box::new(drive), "psm-gateway".into());
        if drive_device {
            inner = inner.with_drives(None);
            // The announce this returns is sent by the library itself after the target's
            // Client ID Confirm or User Logged On (patched below).
            let _ = inner.add_drive(DEVICE_ID, name);
        }
        if printer {
            inner = inner.with_printer(PRINTER_DEVICE_ID, PRINTER_NAME.into());
        }
        Self {
            inner,
            dos_name,
            events,
        }
    }

    /// The drive's backend (tests, diagnostics).
    pub fn drive(&self) -> Option<&SessionDrive> {
        self.inner.downcast_backend::<SessionDrive>()
    }
}

/// Writes `dos_name` as the PreferredDosName of device `device_id` in an encoded Client
/// Device List Announce; `false` when `pdu` is not one or holds no such device.
pub fn patch_dos_name(pdu: &mut [u8], device_id: u32, dos_name: &[u8; 8]) -> bool {
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    if pdu.len() < 8 || pdu[..2] != CORE || pdu[2..4] != PAKID_DEVICELIST_ANNOUNCE {
        return false;
    }
    let Some(count) = u32_at(pdu, 4) else {
        return false;
    };
    let mut at = 8usize;
    for _ in 0..count {
        let (Some(id), Some(len)) = (u32_at(pdu, at + 4), u32_at(pdu, at + 16)) else {
            return false;
        };
        if id == device_id {
            let Some(slot) = pdu.get_mut(at + 8..at + 16) else {
                return false;
            };
            slot.copy_from_slice(dos_name);
            return true;
        }
        let Some(next) = (at + 20).checked_add(len as usize) else {
            return false;
        };
        at = next;
    }
    false
}

impl SvcProcessor for DriveChannel {
    fn channel_name(&self) -> ChannelName {
        Rdpdr::NAME
    }

    fn compression_condition(&self) -> CompressionCondition {
        CompressionCondition::WhenRdpDataIsCompressed
    }

    fn process(&mut self, payload: &[u8]) -> PduResult<Vec<SvcMessage>> {
        let head = payload.get(..4).unwrap_or(&[]);
        let is = |id: [u8; 2]| head.len() == 4 && head[..2] == CORE && head[2..] == id;
        match self.inner.process(payload) {
            Ok(messages) if is(PAKID_CLIENTID_CONFIRM) || is(PAKID_USER_LOGGEDON) => {
                let mut out = Vec::with_capacity(messages.len());
                for m in messages {
                    match m.encode_unframed_pdu() {
                        Ok(mut bytes) => {
                            if patch_dos_name(&mut bytes, DEVICE_ID, &self.dos_name) {
                                out.push(SvcMessage::from(bytes));
                            } else {
                                out.push(m);
                            }
                        }
                        Err(_) => out.push(m),
                    }
                }
                Ok(out)
            }
            Ok(messages) => Ok(messages),
            Err(e) => {
                tracing::warn!(error = %e, "a drive request from the target was not understood");
                self.events.send(DriveEvent::Note(format!(
                    "drive: refused a request the gateway could not decode ({e})"
                )));
                if is(PAKID_DEVICE_IOREQUEST)
                    && let Ok(request) =
                        DeviceIoRequest::decode(&mut ReadCursor::new(&payload[4..]))
                {
                    return Ok(vec![SvcMessage::from(failed(
                        request,
                        NtStatus::NOT_SUPPORTED,
                    ))]);
                }
                Ok(Vec::new())
            }
        }
    }
}

impl SvcClientProcessor for DriveChannel {}
