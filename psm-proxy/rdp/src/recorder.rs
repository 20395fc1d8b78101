//! Recording an RDP session into `.psmr` (psm-recording's container).
//!
//! What is recorded, on which channel:
//!
//! - the screen as picture events: a whole-screen keyframe at the start, then the changed
//!   region at most once per [`RecordingPolicy::frame_interval`] (changes in between are
//!   merged), and a whole-screen keyframe again at least every
//!   [`RecordingPolicy::keyframe_interval`] while the screen changes, or when a change
//!   covers most of the screen. The keyframes are also the session's periodic screenshots.
//!   With [`RecordingPolicy::raw_pixels`] (the default) a picture is an
//!   [`EventKind::Pixels`]: raw indices into a palette kept for the whole session, so
//!   unchanged pixels are unchanged bytes and the recording's zstd stream (16 MiB window,
//!   long-distance matching) stores a scrolled terminal or a redrawn window as matches
//!   against earlier frames; a region with more colours than a palette holds is an
//!   [`EventKind::Frame`] PNG. Without it every picture is a PNG still.
//! - keystrokes as text ([`KeyText`]: characters through the session's keyboard layout,
//!   shortcuts such as `<Win+R>` and `<Ctrl+Alt+End>`) in `Input` events on channel 1
//!   (`rdp-keyboard`), redacted as [`RecordingPolicy::keystrokes`] says, and never the
//!   target account's password ([`SecretWatch`]: an `InputRedacted` event and a marker
//!   instead);
//! - pointer moves (throttled) and clicks as text lines in `Input` events on channel 2
//!   (`rdp-pointer`): `down left X Y`, `up right X Y`;
//! - clipboard text as `Clipboard` events when capture is on;
//! - the session drive's files as `FileTransfer` events on channel 3 (`rdp-drive`, opened
//!   with the first one), its deletions and renames as markers ([`crate::drive`]);
//! - markers for what the gateway did (pause, terminate, dropped input).
//!
//! Memory is bounded: the recorder holds one damage rectangle (merged), one frame being
//! encoded, the palette, and a bounded command queue; input that finds the queue full is
//! counted and a marker says how much was dropped. Encoding runs on a blocking thread, one
//! at a time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use psm_recording::{
    ChannelId, ChannelKind, ClipboardDirection, EventKind, FinishedRecording, Header, InputPolicy,
    RecordingWriter, SigningKey, WriterConfig,
    graphics::{self, Palette},
};
use tokio::sync::{mpsc, oneshot};

use crate::config::RecordingPolicy;
use crate::error::RdpError;
use crate::input::{InputEvent, KeyText, SecretWatch, Watched, pointer_text};
use crate::layout::KeyboardLayout;
use crate::screen::{DesktopScreen, Rect, Region};

/// The keyboard channel of an RDP recording.
pub const KEYBOARD_CHANNEL: ChannelId = ChannelId(1);
/// The pointer channel of an RDP recording.
pub const POINTER_CHANNEL: ChannelId = ChannelId(2);
/// The session drive's channel of an RDP recording.
pub const DRIVE_CHANNEL: ChannelId = ChannelId(3);

/// Creates the recording of each new session. An error refuses the session: PSM never
/// proxies a session it cannot record.
#[async_trait]
pub trait RecordingFactory: Send + Sync {
    /// A writer for the session `header` describes.
    async fn create(&self, header: Header) -> Result<RecordingWriter, RdpError>;
}

/// Writes `<dir>/<session id>.psmr`, signed with one key.
#[derive(Clone)]
pub struct DirRecordings {
    dir: PathBuf,
    key: SigningKey,
    config: WriterConfig,
}

impl std::fmt::Debug for DirRecordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirRecordings")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DirRecordings {
    /// Recordings in `dir` (created if missing), signed with `key`.
    pub fn new(dir: impl Into<PathBuf>, key: SigningKey, config: WriterConfig) -> Self {
        Self {
            dir: dir.into(),
            key,
            config,
        }
    }

    /// Where a session's recording goes.
    pub fn path_of(&self, session: psm_core::SessionId) -> PathBuf {
        self.dir.join(format!("{session}.psmr"))
    }
}

#[async_trait]
impl RecordingFactory for DirRecordings {
    async fn create(&self, header: Header) -> Result<RecordingWriter, RdpError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| RdpError::io(format!("creating {}", self.dir.display()), e))?;
        let path = self.path_of(header.session_id);
        Ok(RecordingWriter::create(path, header, self.key.clone(), self.config.clone()).await?)
    }
}

/// What the recorder knows of a session's keyboard.
#[derive(Debug, Default)]
pub struct KeyboardSetup {
    /// The layout the user's client announced (keys are mapped through it).
    pub layout: KeyboardLayout,
    /// The target account's password: held back and never recorded when typed.
    pub secret: Option<SecretWatch>,
}

enum Command {
    Input(InputEvent),
    Clipboard(ClipboardDirection, String),
    Marker(String),
    Drive(crate::drive::DriveEvent),
    Finish(String, oneshot::Sender<Result<FinishedRecording, RdpError>>),
}

/// The recorder of one session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DesktopRecorder {
    tx: mpsc::Sender<Command>,
    dropped: Arc<AtomicU64>,
}

/// Commands queued before input is dropped (and counted).
const QUEUE: usize = 4096;

impl DesktopRecorder {
    /// Starts recording `screen` into `writer`.
    pub async fn start(
        writer: RecordingWriter,
        screen: DesktopScreen,
        policy: RecordingPolicy,
        keyboard: KeyboardSetup,
    ) -> Result<Self, RdpError> {
        writer
            .record(EventKind::ChannelOpen {
                channel: KEYBOARD_CHANNEL,
                kind: ChannelKind::Other {
                    name: "rdp-keyboard".into(),
                },
            })
            .await?;
        writer
            .record(EventKind::ChannelOpen {
                channel: POINTER_CHANNEL,
                kind: ChannelKind::Other {
                    name: "rdp-pointer".into(),
                },
            })
            .await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let task = Task {
            writer,
            watch: screen.watch(),
            screen,
            policy,
            keys: KeyText::with_layout(keyboard.layout),
            secret: keyboard.secret,
            last_pointer: None,
            last_keyframe: None,
            dropped: dropped.clone(),
            reported_drops: 0,
            failed: None,
            palette: Palette::new(),
            drive_open: false,
        };
        tokio::spawn(task.run(rx));
        Ok(Self { tx, dropped })
    }

    /// Records an input event (never waits; a full queue drops and counts it).
    pub fn input(&self, event: InputEvent) {
        if self.tx.try_send(Command::Input(event)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records clipboard text.
    pub async fn clipboard(&self, direction: ClipboardDirection, text: String) {
        let _ = self.tx.send(Command::Clipboard(direction, text)).await;
    }

    /// Records a marker.
    pub async fn marker(&self, label: impl Into<String>) {
        let _ = self.tx.send(Command::Marker(label.into())).await;
    }

    /// Records what the session drive reported.
    pub async fn drive(&self, event: crate::drive::DriveEvent) {
        let _ = self.tx.send(Command::Drive(event)).await;
    }

    /// Records the last frame, the end and `reason`, and seals the file.
    pub async fn finish(&self, reason: &str) -> Result<FinishedRecording, RdpError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Finish(reason.to_owned(), reply))
            .await
            .map_err(|_| RdpError::Session("the recorder already stopped".into()))?;
        rx.await
            .map_err(|_| RdpError::Session("the recorder stopped before finishing".into()))?
    }
}

struct Task {
    writer: RecordingWriter,
    screen: DesktopScreen,
    watch: crate::screen::ScreenWatch,
    policy: RecordingPolicy,
    keys: KeyText,
    secret: Option<SecretWatch>,
    last_pointer: Option<Instant>,
    last_keyframe: Option<Instant>,
    dropped: Arc<AtomicU64>,
    reported_drops: u64,
    failed: Option<String>,
    /// The colours of the session's `Pixels` events so far.
    palette: Palette,
    /// Whether the drive channel was opened in the recording.
    drive_open: bool,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut tick =
            tokio::time::interval(self.policy.frame_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else {
                        // Every handle dropped without finish: seal what we have.
                        let _ = self.frame(true).await;
                        let _ = self.writer.clone().finish("recorder dropped").await;
                        return;
                    };
                    match cmd {
                        Command::Finish(reason, reply) => {
                            if let Some(held) = self.secret.as_mut().map(SecretWatch::release_all)
                                && !held.is_empty()
                            {
                                let hide = self.policy.keystrokes == InputPolicy::RedactAll;
                                if let Err(e) = self.writer.input(KEYBOARD_CHANNEL, held.as_bytes(), hide).await {
                                    self.fail(e.into());
                                }
                            }
                            let _ = self.frame(false).await;
                            self.report_drops().await;
                            let r = self.writer.clone().finish(&reason).await.map_err(RdpError::from);
                            let r = match (&self.failed, r) {
                                (Some(f), Ok(_)) => Err(RdpError::Session(format!("recording was incomplete: {f}"))),
                                (_, r) => r,
                            };
                            let _ = reply.send(r);
                            return;
                        }
                        other => self.command(other).await,
                    }
                }
                _ = tick.tick() => {
                    self.report_drops().await;
                    if let Err(e) = self.frame(false).await {
                        self.fail(e);
                    }
                }
            }
        }
    }

    async fn drive(
        &mut self,
        event: crate::drive::DriveEvent,
    ) -> Result<(), psm_recording::RecordingError> {
        use crate::drive::DriveEvent;
        match event {
            DriveEvent::Note(label) => self.writer.record(EventKind::Marker { label }).await,
            DriveEvent::Transfer {
                protocol,
                path,
                direction,
                size,
                blake3,
            } => {
                if !self.drive_open {
                    self.writer
                        .record(EventKind::ChannelOpen {
                            channel: DRIVE_CHANNEL,
                            kind: ChannelKind::Other {
                                name: "rdp-drive".into(),
                            },
                        })
                        .await?;
                    self.drive_open = true;
                }
                self.writer
                    .record(EventKind::FileTransfer(psm_recording::FileTransfer {
                        channel: DRIVE_CHANNEL,
                        direction,
                        protocol: protocol.into(),
                        path,
                        size: Some(size),
                        blake3,
                    }))
                    .await
            }
        }
    }

    /// Records what a key typed (`hide`: as typed into a password field), with the
    /// target account's password held back.
    async fn typed(
        &mut self,
        text: String,
        hide: bool,
    ) -> Result<(), psm_recording::RecordingError> {
        let w = match &mut self.secret {
            Some(s) => s.feed(&text),
            None => Watched {
                release: text,
                secret_typed: false,
            },
        };
        if !w.release.is_empty() {
            self.writer
                .input(KEYBOARD_CHANNEL, w.release.as_bytes(), hide)
                .await?;
        }
        if w.secret_typed {
            self.writer
                .record(EventKind::InputRedacted {
                    channel: KEYBOARD_CHANNEL,
                })
                .await?;
            self.writer
                .record(EventKind::Marker {
                    label: "keyboard: the target account's password was typed (not recorded)"
                        .into(),
                })
                .await?;
        }
        Ok(())
    }

    fn fail(&mut self, e: RdpError) {
        tracing::error!(error = %e, "RDP recording failed");
        if self.failed.is_none() {
            self.failed = Some(e.to_string());
        }
    }

    async fn report_drops(&mut self) {
        let d = self.dropped.load(Ordering::Relaxed);
        if d > self.reported_drops {
            let n = d - self.reported_drops;
            self.reported_drops = d;
            let _ = self
                .writer
                .record(EventKind::Marker {
                    label: format!("{n} input events were not recorded (recorder queue full)"),
                })
                .await;
        }
    }

    async fn command(&mut self, cmd: Command) {
        let r = match cmd {
            Command::Input(ev) => {
                let before = self.keys.password_prompt();
                if let Some(text) = self.keys.feed(ev) {
                    let hide = self.policy.keystrokes == InputPolicy::RedactAll
                        || (before && self.keys.password_prompt());
                    self.typed(text, hide).await
                } else if let Some(line) = pointer_text(ev) {
                    let is_move = matches!(ev, InputEvent::Move { .. });
                    let due = self
                        .last_pointer
                        .is_none_or(|t| t.elapsed() >= self.policy.pointer_interval);
                    if !is_move || due {
                        self.last_pointer = Some(Instant::now());
                        self.writer
                            .input(POINTER_CHANNEL, line.as_bytes(), false)
                            .await
                    } else {
                        Ok(())
                    }
                } else {
                    Ok(())
                }
            }
            Command::Clipboard(direction, text) => {
                if self.policy.capture_clipboard {
                    self.writer
                        .record(EventKind::Clipboard {
                            direction,
                            mime: "text/plain;charset=utf-8".into(),
                            data: text.into_bytes(),
                        })
                        .await
                } else {
                    Ok(())
                }
            }
            Command::Marker(label) => self.writer.record(EventKind::Marker { label }).await,
            Command::Drive(event) => self.drive(event).await,
            Command::Finish(..) => Ok(()),
        };
        if let Err(e) = r {
            self.fail(e.into());
        }
    }

    /// Records the damage since the last frame (or a keyframe when due); `force_key`
    /// records a whole-screen keyframe whatever changed.
    async fn frame(&mut self, force_key: bool) -> Result<(), RdpError> {
        let damage = self.watch.take_rects();
        let (w, h) = self.screen.size();
        let full = Rect {
            x: 0,
            y: 0,
            width: w,
            height: h,
        };
        if damage.is_empty() && !force_key {
            return Ok(());
        }
        let key_due = self
            .last_keyframe
            .is_none_or(|t| t.elapsed() >= self.policy.keyframe_interval);
        let area: u64 = damage.iter().map(|r| r.area()).sum();
        let big = area * 100 >= full.area() * u64::from(self.policy.keyframe_area_percent.min(100));
        let regions: Vec<Region> = if force_key || key_due || big {
            self.last_keyframe = Some(Instant::now());
            vec![self.screen.snapshot()]
        } else {
            damage
                .into_iter()
                .filter_map(|r| self.screen.region(r))
                .collect()
        };
        if regions.is_empty() {
            return Ok(());
        }
        let raw = self.policy.raw_pixels;
        let mut palette = std::mem::take(&mut self.palette);
        let (events, palette) = tokio::task::spawn_blocking(move || {
            let events = regions
                .into_iter()
                .map(|region| picture(region, raw.then_some(&mut palette)))
                .collect::<Result<Vec<_>, _>>();
            (events, palette)
        })
        .await
        .map_err(|e| RdpError::Session(format!("frame encoder thread: {e}")))?;
        self.palette = palette;
        for event in events.map_err(|e| RdpError::Session(format!("frame encoding: {e}")))? {
            self.writer.record(event).await?;
        }
        Ok(())
    }
}

/// A changed region as a recording event: raw indices into the session's palette when its
/// colours fit (a full palette is started afresh once), else a PNG still. A region too large
/// for one event (past any desktop the gateway allows) is a PNG too.
fn picture(
    region: Region,
    palette: Option<&mut Palette>,
) -> Result<EventKind, psm_recording::RecordingError> {
    let Region { rect, rgba } = region;
    let (x, y, width, height) = (
        u32::from(rect.x),
        u32::from(rect.y),
        u32::from(rect.width),
        u32::from(rect.height),
    );
    if let Some(palette) = palette
        && rgba.len() / 4 <= psm_recording::writer::MAX_EVENT_BYTES
    {
        let indices = palette.indices(&rgba).or_else(|| {
            palette.clear();
            palette.indices(&rgba)
        });
        if let Some(indices) = indices {
            return Ok(EventKind::Pixels {
                x,
                y,
                width,
                height,
                palette: palette.rgb(),
                indices,
            });
        }
    }
    Ok(EventKind::Frame {
        x,
        y,
        width,
        height,
        png: graphics::encode_png(width, height, &rgba)?,
    })
}

/// The writer configuration a gateway should use for RDP: keys the recorder marks as typed
/// into a password field (or every key, with [`InputPolicy::RedactAll`]) are recorded as
/// `InputRedacted` unless the policy is [`InputPolicy::RecordAll`]; the pointer is always
/// recorded. With `raw_pixels` the screen's raw pixels are
/// compressed by the group's zstd stream against the frames before them: a large window
/// (16 MiB, about twenty 1024x768 screens) with the long-distance matcher finds a scrolled
/// region or a redrawn line far back. Level 3 holds about 22 MiB per active session;
/// `compression_level: 9` stores 15-20 % less for about 32 MiB (docs/benchmarks.md). PNG
/// stills are already compressed: level 1 and the default 1 MiB groups (about 2.5 MiB).
/// Big chunks keep the index small either way.
pub fn writer_config(policy: &RecordingPolicy) -> WriterConfig {
    let base = WriterConfig {
        // RedactAll is applied by the recorder to the keyboard alone (clicks stay).
        input_policy: match policy.keystrokes {
            InputPolicy::RecordAll => InputPolicy::RecordAll,
            _ => InputPolicy::RedactEchoOff,
        },
        chunk_bytes: 1 << 20,
        ..WriterConfig::default()
    };
    if policy.raw_pixels {
        WriterConfig {
            group_bytes: 16 << 20,
            long_distance_matching: true,
            compression_level: 3,
            ..base
        }
    } else {
        WriterConfig {
            compression_level: 1,
            ..base
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn region(w: u16, h: u16, colour: impl Fn(usize) -> [u8; 3]) -> Region {
        let rgba = (0..usize::from(w) * usize::from(h))
            .flat_map(|i| {
                let c = colour(i);
                [c[0], c[1], c[2], 0xff]
            })
            .collect();
        Region {
            rect: Rect {
                x: 3,
                y: 4,
                width: w,
                height: h,
            },
            rgba,
        }
    }

    /// The picture an event paints, as RGBA.
    fn painted(e: &EventKind) -> Vec<u8> {
        graphics::Canvas::of_picture(e)
            .unwrap()
            .unwrap()
            .rgba()
            .to_vec()
    }

    #[test]
    fn few_colours_are_raw_pixels_with_a_stable_palette_and_many_are_png() {
        let mut palette = Palette::new();
        let text = region(8, 4, |i| if i % 3 == 0 { [0, 0, 0] } else { [255; 3] });
        let e = picture(text.clone(), Some(&mut palette)).unwrap();
        assert!(matches!(e, EventKind::Pixels { x: 3, y: 4, .. }), "{e:?}");
        assert_eq!(painted(&e), text.rgba);
        // The same pixels later are the same bytes (the palette kept its order).
        let again = picture(text.clone(), Some(&mut palette)).unwrap();
        assert_eq!(again, e);
        // 400 colours do not fit a palette: a PNG still of the same pixels, and the
        // palette starts afresh for the next region.
        let photo = region(20, 20, |i| [(i % 256) as u8, (i / 256) as u8, 9]);
        let e = picture(photo.clone(), Some(&mut palette)).unwrap();
        assert!(matches!(e, EventKind::Frame { .. }), "{e:?}");
        assert_eq!(painted(&e), photo.rgba);
        // A full palette is cleared once for a region that fits on its own.
        let mut full = Palette::new();
        let many: Vec<u8> = (0..256u32).flat_map(|i| [i as u8, 1, 2, 255]).collect();
        full.indices(&many).unwrap();
        let e = picture(text.clone(), Some(&mut full)).unwrap();
        assert!(matches!(e, EventKind::Pixels { .. }));
        assert_eq!(full.len(), 2);
        // Without raw pixels every picture is a PNG.
        let e = picture(text.clone(), None).unwrap();
        assert!(matches!(e, EventKind::Frame { .. }));
        assert_eq!(painted(&e), text.rgba);
    }

    /// Records `keys` (scan codes, as a client sends them: press and release each, Shift
    /// for capitals) and two clicks under `policy`, with the target account's password
    /// watched; returns the keyboard text, the count of redacted keys, the pointer text and
    /// the markers.
    async fn record_keys(
        policy: InputPolicy,
        script: &[&str],
    ) -> (String, usize, String, Vec<String>) {
        use crate::input::keys_for_char;
        let dir = tempfile::tempdir().unwrap();
        let policy = RecordingPolicy {
            keystrokes: policy,
            ..RecordingPolicy::default()
        };
        let recordings = DirRecordings::new(
            dir.path(),
            psm_recording::SigningKey::generate().unwrap(),
            writer_config(&policy),
        );
        let id = psm_core::SessionId::new();
        let writer = recordings
            .create(Header::new(
                id,
                psm_recording::Protocol::Rdp,
                "alice",
                "desk-01",
                "test",
            ))
            .await
            .unwrap();
        let recorder = DesktopRecorder::start(
            writer,
            DesktopScreen::new(64, 64),
            policy,
            KeyboardSetup {
                layout: KeyboardLayout::UsEnglish,
                secret: SecretWatch::new("Tgt-0a1b2c"),
            },
        )
        .await
        .unwrap();
        let key = |code: u8, extended: bool, down: bool| InputEvent::Key {
            code,
            extended,
            down,
        };
        for step in script {
            match *step {
                // Ctrl+Alt+End, Win+R: modifiers down, key, all up.
                "<Ctrl+Alt+End>" | "<Win+R>" => {
                    let keys: &[(u8, bool)] = if step.starts_with("<Ctrl") {
                        &[(0x1d, false), (0x38, false), (0x4f, true)]
                    } else {
                        &[(0x5b, true), (0x13, false)]
                    };
                    for &(c, e) in keys {
                        recorder.input(key(c, e, true));
                    }
                    for &(c, e) in keys.iter().rev() {
                        recorder.input(key(c, e, false));
                    }
                }
                text => {
                    for ch in text.chars() {
                        for e in keys_for_char(ch).unwrap() {
                            recorder.input(e);
                        }
                    }
                }
            }
        }
        for (button, x, y) in [
            (psm_proxy::live::PointerButton::Left, 300, 250),
            (psm_proxy::live::PointerButton::Right, 320, 260),
        ] {
            for down in [true, false] {
                recorder.input(InputEvent::Button { button, down, x, y });
            }
        }
        recorder.finish("done").await.unwrap();
        let mut reader = psm_recording::Reader::open(
            recordings.path_of(id),
            psm_recording::ReadOptions::default(),
        )
        .unwrap();
        let (mut typed, mut redacted, mut pointer, mut markers) =
            (String::new(), 0, String::new(), Vec::new());
        for e in reader.events() {
            match e.unwrap().kind {
                EventKind::Input { channel, data, .. } if channel == KEYBOARD_CHANNEL => {
                    typed += &String::from_utf8_lossy(&data)
                }
                EventKind::Input { channel, data, .. } if channel == POINTER_CHANNEL => {
                    pointer += &String::from_utf8_lossy(&data)
                }
                EventKind::InputRedacted { channel } if channel == KEYBOARD_CHANNEL => {
                    redacted += 1
                }
                EventKind::Marker { label } => markers.push(label),
                _ => {}
            }
        }
        (typed, redacted, pointer, markers)
    }

    const SCRIPT: [&str; 6] = [
        "ls\r",
        "<Win+R>",
        "regedit\r",
        "<Ctrl+Alt+End>",
        "Unlock9\r",
        "sudo -k; sudo id\rTgt-0a1b2c\r",
    ];
    const PASSWORD_MARKER: &str =
        "keyboard: the target account's password was typed (not recorded)";

    #[tokio::test]
    async fn keys_are_redacted_as_the_policy_says_and_the_vaulted_password_never_recorded() {
        let (typed, redacted, pointer, markers) =
            record_keys(InputPolicy::RedactEchoOff, &SCRIPT).await;
        assert_eq!(
            typed, "ls\r<Win+R>regedit\r<Ctrl+Alt+End>\rsudo -k; sudo id\r\r",
            "redact-passwords"
        );
        assert_eq!(redacted, "Unlock9".len() + 1);
        assert_eq!(
            pointer,
            "down left 300 250\nup left 300 250\ndown right 320 260\nup right 320 260\n"
        );
        assert!(markers.iter().any(|m| m == PASSWORD_MARKER), "{markers:?}");

        let (typed, redacted, pointer2, _) = record_keys(InputPolicy::RecordAll, &SCRIPT).await;
        assert_eq!(
            typed, "ls\r<Win+R>regedit\r<Ctrl+Alt+End>Unlock9\rsudo -k; sudo id\r\r",
            "record-all"
        );
        assert_eq!(redacted, 1, "the vaulted password, even so");
        assert_eq!(pointer2, pointer);

        let (typed, redacted, pointer3, markers) =
            record_keys(InputPolicy::RedactAll, &SCRIPT).await;
        assert_eq!(typed, "", "redact-all");
        assert!(redacted > 30);
        assert_eq!(
            pointer3, pointer,
            "clicks are recorded whatever the keys policy"
        );
        assert!(markers.iter().any(|m| m == PASSWORD_MARKER));
    }

    #[test]
    fn the_writer_settings_follow_the_picture_kind() {
        let raw = writer_config(&RecordingPolicy::default());
        assert!(raw.long_distance_matching && raw.group_bytes == 16 << 20);
        let png = writer_config(&RecordingPolicy {
            raw_pixels: false,
            keystrokes: InputPolicy::RedactAll,
            ..RecordingPolicy::default()
        });
        assert!(!png.long_distance_matching);
        assert_eq!(png.compression_level, 1);
        assert_eq!(png.input_policy, InputPolicy::RedactEchoOff);
    }
}
