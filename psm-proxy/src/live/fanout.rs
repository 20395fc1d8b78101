//! Handing a session's output to its live viewers without ever slowing the session, and
//! keeping the screen of each terminal channel so a viewer who joins sees it at once.
//!
//! The proxy calls [`Fanout::output`] for every chunk of terminal output: it feeds the
//! channel's emulated screen (psm-recording's [`TerminalState`]) and, for the channel
//! viewers follow (the *primary*), offers the bytes to each viewer's queue with `try_send`.
//! A viewer whose queue holds more than its byte budget is marked *behind*: it gets no more
//! bytes until it has drained its queue, then a fresh snapshot of the screen (at most every
//! `resync_every`, one snapshot shared by all viewers that need it at the same moment). A
//! viewer whose queue is full of events (it reads nothing at all) is cut off.
//!
//! The work of the fan-out is bounded per session, not only per viewer: the output rate of
//! the primary channel times the number of viewers is held under
//! [`FanoutConfig::stream_rate`]. Above it (bulk output, or many viewers) the fan-out is in
//! *screen mode*: no viewer gets the raw stream; each is marked behind and woken, and takes
//! a screen at most every `resync_every`, from a snapshot shared by every viewer that asks
//! within a quarter of that interval. A human cannot read a terminal scrolling faster than
//! that anyway, and the recording still holds every byte. A window of
//! [`RATE_WINDOW`] below the rate brings the stream back (after one fresh screen each).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psm_core::live::{LiveMode, ViewerInfo};
use psm_recording::{TermSize, TerminalState};
use tokio::sync::mpsc;

use crate::session::LiveEvent;

/// Limits of the fan-out.
#[derive(Clone, Copy, Debug)]
pub struct FanoutConfig {
    /// Bytes of output a viewer may have queued before it skips ahead to a fresh screen.
    pub budget: usize,
    /// Events a viewer may have queued before it is cut off (it reads nothing).
    pub capacity: usize,
    /// The shortest time between two screens sent to one viewer that fell behind.
    pub resync_every: Duration,
    /// Most viewers of one session.
    pub max_viewers: usize,
    /// Bytes per second of the followed channel's output, summed over all viewers, that the
    /// fan-out streams; above it viewers get screens instead (see the module docs).
    pub stream_rate: u64,
}

/// The window over which the output rate is measured.
pub const RATE_WINDOW: Duration = Duration::from_millis(100);

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            budget: 256 << 10,
            capacity: 4096,
            resync_every: Duration::from_millis(100),
            max_viewers: 200,
            stream_rate: 8 << 20,
        }
    }
}

/// A terminal screen, as a viewer rebuilds it: reset, resize to `cols`×`rows`, write `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Screen {
    /// The channel.
    pub channel: u32,
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// An escape-sequence dump that rebuilds the screen in a fresh terminal.
    pub data: Arc<str>,
}

struct SlotShared {
    queued: AtomicUsize,
    behind: AtomicBool,
    /// Woken when the slot falls behind, so a viewer waiting for output takes a screen.
    wake: tokio::sync::Notify,
}

impl SlotShared {
    fn fall_behind(&self) {
        if !self.behind.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<LiveEvent>,
    shared: Arc<SlotShared>,
}

struct Inner {
    screens: BTreeMap<u32, TerminalState>,
    primary: Option<u32>,
    slots: Vec<Slot>,
    named: Vec<(u64, ViewerInfo)>,
    next_id: u64,
    generation: u64,
    cached: Option<Cached>,
    /// Start of the current rate window and the followed channel's bytes in it.
    window: Option<(Instant, u64)>,
    /// Viewers get screens, not the stream (the rate is over `stream_rate`).
    screen_mode: bool,
}

struct Cached {
    generation: u64,
    primary: u32,
    taken: Instant,
    screen: Screen,
}

/// The viewers and screens of one session (see the module docs).
pub struct Fanout {
    inner: Mutex<Inner>,
    viewers: AtomicUsize,
    config: FanoutConfig,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("viewers", &self.viewers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why a viewer could not join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinRefused {
    /// The session has its most viewers already.
    TooManyViewers,
}

impl Fanout {
    /// No viewers, no screens.
    pub fn new(config: FanoutConfig) -> Self {
        Self {
            inner: Mutex::new(Inner {
                screens: BTreeMap::new(),
                primary: None,
                slots: Vec::new(),
                named: Vec::new(),
                next_id: 1,
                generation: 0,
                cached: None,
                window: None,
                screen_mode: false,
            }),
            viewers: AtomicUsize::new(0),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many viewers are attached.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// The named viewers (for `hello` and the `viewers` message).
    pub fn viewer_list(&self) -> Vec<ViewerInfo> {
        self.lock().named.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Whether a viewer with control is attached.
    pub fn has_controller(&self) -> bool {
        self.lock()
            .named
            .iter()
            .any(|(_, v)| v.mode == LiveMode::Control)
    }

    /// The channel viewers follow.
    pub fn primary(&self) -> Option<u32> {
        self.lock().primary
    }

    /// A channel got a terminal: its screen is kept from now on; the first becomes primary.
    pub fn terminal(&self, channel: u32, cols: u16, rows: u16) {
        let size = clamp(cols, rows);
        let Ok(t) = TerminalState::new(size) else {
            return;
        };
        let mut g = self.lock();
        g.screens.insert(channel, t);
        g.generation += 1;
        if g.primary.is_none() {
            g.primary = Some(channel);
            mark_all_behind(&g);
        }
    }

    /// A terminal channel changed size. Returns whether it is the primary (viewers are told).
    pub fn resize(&self, channel: u32, cols: u16, rows: u16) -> bool {
        let mut g = self.lock();
        let Some(t) = g.screens.get_mut(&channel) else {
            return false;
        };
        t.resize(clamp(cols, rows));
        g.generation += 1;
        let primary = g.primary == Some(channel);
        if primary {
            send_all(
                &mut g,
                &LiveEvent::Resize {
                    channel,
                    cols,
                    rows,
                },
                0,
                &self.config,
            );
        }
        primary
    }

    /// A channel closed: its screen goes; if it was primary, the next terminal channel is.
    pub fn closed(&self, channel: u32) {
        let mut g = self.lock();
        if g.screens.remove(&channel).is_none() {
            return;
        }
        g.generation += 1;
        if g.primary == Some(channel) {
            g.primary = g.screens.keys().next().copied();
            mark_all_behind(&g);
        }
    }

    /// Output of a channel: feeds its screen and, for the primary, the viewers.
    pub fn output(&self, channel: u32, bytes: &bytes::Bytes) {
        let mut g = self.lock();
        if let Some(t) = g.screens.get_mut(&channel) {
            t.feed(bytes);
            g.generation += 1;
        }
        if g.slots.is_empty() || g.primary != Some(channel) {
            return;
        }
        if self.over_rate(&mut g, bytes.len()) {
            for s in &g.slots {
                s.shared.fall_behind();
            }
            return;
        }
        let event = LiveEvent::Output {
            channel,
            bytes: bytes.clone(),
        };
        send_all(&mut g, &event, bytes.len(), &self.config);
        self.viewers.store(g.slots.len(), Ordering::Relaxed);
    }

    /// Counts `len` bytes of the followed channel into the rate window; whether the fan-out
    /// is (now) in screen mode.
    fn over_rate(&self, g: &mut Inner, len: usize) -> bool {
        let now = Instant::now();
        let viewers = g.slots.len() as u64;
        let limit = |elapsed: Duration| {
            let secs = elapsed.max(RATE_WINDOW).as_secs_f64();
            (self.config.stream_rate as f64 * secs) as u64
        };
        let (start, bytes) = *g.window.get_or_insert((now, 0));
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            // The window closed: the rate over it decides the mode of the next one.
            g.screen_mode = bytes.saturating_mul(viewers) > limit(elapsed)
                || (len as u64).saturating_mul(viewers) > limit(RATE_WINDOW);
            g.window = Some((now, len as u64));
        } else {
            let bytes = bytes + len as u64;
            g.window = Some((start, bytes));
            if bytes.saturating_mul(viewers) > limit(RATE_WINDOW) {
                g.screen_mode = true;
            }
        }
        g.screen_mode
    }

    /// Whether viewers get screens rather than the stream (the output rate is too high).
    pub fn screen_mode(&self) -> bool {
        self.lock().screen_mode
    }

    /// Any other event, to every viewer.
    pub fn broadcast(&self, event: &LiveEvent) {
        if self.viewers() == 0 {
            return;
        }
        let mut g = self.lock();
        send_all(&mut g, event, 0, &self.config);
        self.viewers.store(g.slots.len(), Ordering::Relaxed);
    }

    /// Attaches a viewer; it starts with a fresh screen.
    pub(crate) fn attach(
        &self,
        info: Option<ViewerInfo>,
    ) -> Result<(u64, mpsc::Receiver<LiveEvent>, Arc<SlotHandle>), JoinRefused> {
        let mut g = self.lock();
        if g.slots.len() >= self.config.max_viewers {
            return Err(JoinRefused::TooManyViewers);
        }
        let id = g.next_id;
        g.next_id += 1;
        let (tx, rx) = mpsc::channel(self.config.capacity.max(1));
        let shared = Arc::new(SlotShared {
            queued: AtomicUsize::new(0),
            behind: AtomicBool::new(true),
            wake: tokio::sync::Notify::new(),
        });
        g.slots.push(Slot {
            id,
            tx,
            shared: shared.clone(),
        });
        if let Some(info) = info {
            g.named.push((id, info));
        }
        self.viewers.store(g.slots.len(), Ordering::Relaxed);
        Ok((id, rx, Arc::new(SlotHandle { shared })))
    }

    /// Disconnects the viewers named `name`: each gets a last
    /// [`LiveEvent::Disconnected`](crate::session::LiveEvent::Disconnected) (if its queue has
    /// room) and its stream ends. Returns how many.
    pub(crate) fn evict(&self, name: &str, reason: &str) -> usize {
        let mut g = self.lock();
        let ids: Vec<u64> = g
            .named
            .iter()
            .filter(|(_, v)| v.name == name)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(slot) = g.slots.iter().find(|s| s.id == *id) {
                let _ = slot.tx.try_send(crate::session::LiveEvent::Disconnected {
                    reason: reason.to_owned(),
                });
                slot.shared.fall_behind();
            }
        }
        // Dropping the sender ends the stream; the viewer's own drop detaches its name (and
        // reports that it left).
        g.slots.retain(|s| !ids.contains(&s.id));
        self.viewers.store(g.slots.len(), Ordering::Relaxed);
        ids.len()
    }

    /// Detaches a viewer; returns its name and mode if it had one.
    pub(crate) fn detach(&self, id: u64) -> Option<ViewerInfo> {
        let mut g = self.lock();
        g.slots.retain(|s| s.id != id);
        self.viewers.store(g.slots.len(), Ordering::Relaxed);
        let i = g.named.iter().position(|(n, _)| *n == id)?;
        Some(g.named.remove(i).1)
    }

    /// The primary screen for a viewer that needs one; clears its *behind* mark under the
    /// same lock output takes, so nothing is missed or repeated. In screen mode a screen at
    /// most a quarter of `resync_every` old may be shared; the viewer then stays behind (the
    /// stream moved on) and asks again.
    pub(crate) fn snapshot(&self, slot: &SlotHandle) -> Option<Screen> {
        let mut g = self.lock();
        let Some(primary) = g.primary else {
            // No terminal (yet, or ever: a desktop session): nothing to catch up with. A
            // terminal that appears marks every viewer behind again.
            slot.shared.behind.store(false, Ordering::Relaxed);
            slot.shared.queued.store(0, Ordering::Relaxed);
            return None;
        };
        let generation = g.generation;
        if let Some(c) = &g.cached
            && c.primary == primary
        {
            if c.generation == generation {
                slot.shared.behind.store(false, Ordering::Relaxed);
                slot.shared.queued.store(0, Ordering::Relaxed);
                return Some(c.screen.clone());
            }
            if g.screen_mode && c.taken.elapsed() < self.config.resync_every / 4 {
                return Some(c.screen.clone());
            }
        }
        slot.shared.behind.store(false, Ordering::Relaxed);
        slot.shared.queued.store(0, Ordering::Relaxed);
        let t = g.screens.get_mut(&primary)?;
        let size = t.size();
        let screen = Screen {
            channel: primary,
            cols: size.cols,
            rows: size.rows,
            data: Arc::from(t.dump().as_str()),
        };
        g.cached = Some(Cached {
            generation,
            primary,
            taken: Instant::now(),
            screen: screen.clone(),
        });
        Some(screen)
    }

    /// The resync interval.
    pub(crate) fn resync_every(&self) -> Duration {
        self.config.resync_every
    }
}

/// A viewer's view of its slot.
pub(crate) struct SlotHandle {
    shared: Arc<SlotShared>,
}

impl SlotHandle {
    pub(crate) fn behind(&self) -> bool {
        self.shared.behind.load(Ordering::Relaxed)
    }

    /// Resolves once the slot fell behind after the last call (cancel-safe: a wake that
    /// came while nobody waited is kept).
    pub(crate) async fn fell_behind(&self) {
        self.shared.wake.notified().await;
    }

    pub(crate) fn consumed(&self, n: usize) {
        let _ = self
            .shared
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }
}

fn clamp(cols: u16, rows: u16) -> TermSize {
    TermSize::new(
        cols.clamp(1, psm_recording::terminal::MAX_COLS),
        rows.clamp(1, psm_recording::terminal::MAX_ROWS),
    )
}

fn mark_all_behind(g: &Inner) {
    for s in &g.slots {
        s.shared.fall_behind();
    }
}

fn send_all(g: &mut Inner, event: &LiveEvent, len: usize, config: &FanoutConfig) {
    let mut dead = Vec::new();
    for s in &g.slots {
        if len > 0 {
            if s.shared.behind.load(Ordering::Relaxed) {
                continue;
            }
            if s.shared.queued.load(Ordering::Relaxed) + len > config.budget {
                s.shared.fall_behind();
                continue;
            }
        }
        match s.tx.try_send(event.clone()) {
            Ok(()) => {
                if len > 0 {
                    s.shared.queued.fetch_add(len, Ordering::Relaxed);
                }
            }
            Err(_) => dead.push(s.id),
        }
    }
    if !dead.is_empty() {
        g.slots.retain(|s| !dead.contains(&s.id));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_that_never_reads_costs_a_bounded_queue_and_is_skipped() {
        let f = Fanout::new(FanoutConfig {
            budget: 1000,
            ..FanoutConfig::default()
        });
        f.terminal(0, 80, 24);
        let (_id, mut rx, slot) = f.attach(None).unwrap();
        // Starts behind: nothing queued until it took its first screen.
        f.output(0, &bytes::Bytes::from_static(b"hello"));
        assert!(rx.try_recv().is_err());
        let s = f.snapshot(&slot).unwrap();
        assert!(s.data.contains("hello"));
        for _ in 0..100 {
            f.output(0, &bytes::Bytes::from(vec![b'x'; 100]));
        }
        assert!(slot.behind(), "over budget");
        let mut n = 0;
        while let Ok(LiveEvent::Output { bytes, .. }) = rx.try_recv() {
            n += bytes.len();
        }
        assert!(n <= 1000, "{n}");
        // The screen it resyncs to has everything.
        let s = f.snapshot(&slot).unwrap();
        let mut reference = TerminalState::new(TermSize::new(80, 24)).unwrap();
        reference.feed(b"hello");
        for _ in 0..100 {
            reference.feed(&[b'x'; 100]);
        }
        assert_eq!(&*s.data, reference.dump().as_str());
    }

    #[test]
    fn primary_moves_to_the_next_terminal() {
        let f = Fanout::new(FanoutConfig::default());
        f.terminal(3, 10, 2);
        f.terminal(5, 10, 2);
        assert_eq!(f.primary(), Some(3));
        f.closed(3);
        assert_eq!(f.primary(), Some(5));
        f.closed(5);
        assert_eq!(f.primary(), None);
    }

    #[test]
    fn viewers_are_bounded() {
        let f = Fanout::new(FanoutConfig {
            max_viewers: 2,
            ..FanoutConfig::default()
        });
        let _a = f.attach(None).unwrap();
        let b = f.attach(None).unwrap();
        assert!(matches!(f.attach(None), Err(JoinRefused::TooManyViewers)));
        f.detach(b.0);
        assert!(f.attach(None).is_ok());
    }

    fn drain_output(rx: &mut mpsc::Receiver<LiveEvent>) -> usize {
        let mut n = 0;
        while let Ok(e) = rx.try_recv() {
            if let LiveEvent::Output { bytes, .. } = e {
                n += bytes.len();
            }
        }
        n
    }

    #[test]
    fn output_over_the_stream_rate_becomes_screens_and_a_quiet_window_brings_the_stream_back() {
        // 10 viewers × 2 KiB in one window = 20 KiB > 100 KiB/s × 100 ms = 10 KiB.
        let f = Fanout::new(FanoutConfig {
            stream_rate: 100 << 10,
            // Screens may be shared for 50 ms.
            resync_every: Duration::from_millis(200),
            ..FanoutConfig::default()
        });
        f.terminal(0, 80, 24);
        let mut viewers: Vec<_> = (0..10).map(|_| f.attach(None).unwrap()).collect();
        for (_, _, slot) in &viewers {
            f.snapshot(slot).unwrap();
            assert!(!slot.behind());
        }
        f.output(0, &bytes::Bytes::from_static(b"small\r\n"));
        assert!(!f.screen_mode(), "70 bytes × 10 is under the rate");
        for (_, rx, _) in &mut viewers {
            assert_eq!(drain_output(rx), 7);
        }
        for i in 0..20 {
            f.output(
                0,
                &bytes::Bytes::from(format!("bulk line {i:04}\r\n").repeat(8)),
            );
        }
        assert!(f.screen_mode());
        // Every viewer got at most what was under the rate, then was marked behind; once the
        // shared screen is older than 50 ms, the screen a viewer takes has everything.
        std::thread::sleep(Duration::from_millis(60));
        let mut reference = TerminalState::new(TermSize::new(80, 24)).unwrap();
        reference.feed(b"small\r\n");
        for i in 0..20 {
            reference.feed(format!("bulk line {i:04}\r\n").repeat(8).as_bytes());
        }
        for (_, rx, slot) in &mut viewers {
            assert!(slot.behind());
            assert!(drain_output(rx) <= 1024);
            let s = f.snapshot(slot).unwrap();
            assert_eq!(&*s.data, reference.dump().as_str());
            assert!(!slot.behind(), "an exact screen clears the mark");
        }
        // Still in screen mode: more output only marks viewers behind (nothing queued), and
        // viewers asking within 50 ms share one screen but stay behind.
        let asked = Instant::now();
        f.output(0, &bytes::Bytes::from_static(b"more\r\n"));
        for (_, rx, slot) in &mut viewers {
            assert!(slot.behind());
            assert_eq!(drain_output(rx), 0);
        }
        let first = f.snapshot(&viewers[0].2).unwrap();
        let second = f.snapshot(&viewers[1].2).unwrap();
        if asked.elapsed() < Duration::from_millis(50) {
            assert!(Arc::ptr_eq(&first.data, &second.data), "one dump shared");
            assert!(!first.data.contains("more"));
            assert!(viewers[0].2.behind() && viewers[1].2.behind());
        }
        // A quiet window: the next small output is streamed again to whoever took a screen.
        std::thread::sleep(RATE_WINDOW + Duration::from_millis(20));
        f.output(0, &bytes::Bytes::from_static(b"x"));
        std::thread::sleep(RATE_WINDOW + Duration::from_millis(20));
        f.output(0, &bytes::Bytes::from_static(b"y"));
        assert!(!f.screen_mode());
        for (_, rx, slot) in &mut viewers {
            drain_output(rx);
            let s = f.snapshot(slot).unwrap();
            assert!(s.data.contains("more"));
            assert!(!slot.behind());
        }
        f.output(0, &bytes::Bytes::from_static(b"z"));
        for (_, rx, _) in &mut viewers {
            assert_eq!(drain_output(rx), 1);
        }
    }

    #[tokio::test]
    async fn a_waiting_viewer_is_woken_when_it_falls_behind() {
        let f = Fanout::new(FanoutConfig {
            stream_rate: 1,
            ..FanoutConfig::default()
        });
        f.terminal(0, 80, 24);
        let (_id, mut rx, slot) = f.attach(None).unwrap();
        f.snapshot(&slot).unwrap();
        let slot = Arc::new(slot);
        let waiter = {
            let slot = slot.clone();
            tokio::spawn(async move { slot.fell_behind().await })
        };
        tokio::task::yield_now().await;
        f.output(0, &bytes::Bytes::from_static(b"over the rate"));
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(rx.try_recv().is_err(), "nothing queued in screen mode");
    }
}
