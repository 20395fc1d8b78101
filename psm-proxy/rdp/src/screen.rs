//! The session's screen: the target's desktop as decoded by the gateway, shared by every
//! consumer (the user's native client, browser viewers, the recorder). Each consumer has its
//! own damage rectangle: a slow consumer sees changes merged, never queued, so memory stays
//! bounded whatever the target sends.

use std::sync::{Arc, Mutex, MutexGuard};

use ironrdp::graphics::image_processing::PixelFormat;
use ironrdp::session::image::DecodedImage;
use tokio::sync::Notify;

/// A rectangle in pixels, `x..x+width`, `y..y+height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left.
    pub x: u16,
    /// Top.
    pub y: u16,
    /// Width (>= 1).
    pub width: u16,
    /// Height (>= 1).
    pub height: u16,
}

impl Rect {
    /// The smallest rectangle holding both.
    pub fn union(self, o: Rect) -> Rect {
        let x = self.x.min(o.x);
        let y = self.y.min(o.y);
        let r =
            (u32::from(self.x) + u32::from(self.width)).max(u32::from(o.x) + u32::from(o.width));
        let b =
            (u32::from(self.y) + u32::from(self.height)).max(u32::from(o.y) + u32::from(o.height));
        Rect {
            x,
            y,
            width: u16::try_from(r - u32::from(x)).unwrap_or(u16::MAX),
            height: u16::try_from(b - u32::from(y)).unwrap_or(u16::MAX),
        }
    }

    /// This rectangle cut to a `width` x `height` screen; `None` if nothing is left.
    pub fn clip(self, width: u16, height: u16) -> Option<Rect> {
        if self.x >= width || self.y >= height || self.width == 0 || self.height == 0 {
            return None;
        }
        Some(Rect {
            x: self.x,
            y: self.y,
            width: self.width.min(width - self.x),
            height: self.height.min(height - self.y),
        })
    }

    /// Pixels covered.
    pub fn area(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// A region's pixels, RGBA, row after row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Where.
    pub rect: Rect,
    /// `rect.width * rect.height * 4` bytes of RGBA.
    pub rgba: Vec<u8>,
}

impl Region {
    /// Encodes the region as PNG (indexed colour when it has at most 256 colours; see
    /// [`psm_recording::graphics::encode_png`]).
    pub fn to_png(&self) -> Result<Vec<u8>, psm_recording::RecordingError> {
        psm_recording::graphics::encode_png(
            u32::from(self.rect.width),
            u32::from(self.rect.height),
            &self.rgba,
        )
    }
}

/// One consumer of the screen.
#[derive(Debug)]
struct Slot {
    id: u64,
    /// Damaged rectangles (at most `MAX_RECTS`; more collapse into their union).
    damage: Vec<Rect>,
    notify: Arc<Notify>,
}

/// Most separate damaged rectangles kept per consumer.
pub const MAX_RECTS: usize = 16;

fn add_damage(list: &mut Vec<Rect>, r: Rect) {
    // Merge with a rectangle it touches; keep the list short.
    if let Some(i) = list.iter().position(|o| touches(*o, r)) {
        let merged = list.swap_remove(i).union(r);
        add_damage(list, merged);
        return;
    }
    list.push(r);
    if list.len() > MAX_RECTS {
        let u = list.iter().copied().reduce(Rect::union);
        list.clear();
        list.extend(u);
    }
}

fn touches(a: Rect, b: Rect) -> bool {
    let (ax2, ay2) = (
        u32::from(a.x) + u32::from(a.width),
        u32::from(a.y) + u32::from(a.height),
    );
    let (bx2, by2) = (
        u32::from(b.x) + u32::from(b.width),
        u32::from(b.y) + u32::from(b.height),
    );
    u32::from(a.x) <= bx2 && u32::from(b.x) <= ax2 && u32::from(a.y) <= by2 && u32::from(b.y) <= ay2
}

struct State {
    image: DecodedImage,
    slots: Vec<Slot>,
    next_id: u64,
    generation: u64,
}

/// The shared screen. Cheap to clone.
#[derive(Clone)]
pub struct DesktopScreen {
    inner: Arc<Mutex<State>>,
}

impl std::fmt::Debug for DesktopScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, h) = self.size();
        f.debug_struct("DesktopScreen")
            .field("width", &w)
            .field("height", &h)
            .finish()
    }
}

/// A consumer's handle: wait for damage, take it. Dropping it unregisters.
#[derive(Debug)]
pub struct ScreenWatch {
    screen: DesktopScreen,
    id: u64,
    notify: Arc<Notify>,
}

impl DesktopScreen {
    /// A black screen of `width` x `height`.
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                image: DecodedImage::new(PixelFormat::RgbA32, width, height),
                slots: Vec::new(),
                next_id: 0,
                generation: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Width and height.
    pub fn size(&self) -> (u16, u16) {
        let s = self.lock();
        (s.image.width(), s.image.height())
    }

    /// Runs `f` on the decoded image (the target side decodes into it), then marks the
    /// rectangles it returns as damaged for every consumer.
    pub fn update<T>(&self, f: impl FnOnce(&mut DecodedImage) -> (T, Vec<Rect>)) -> T {
        let mut s = self.lock();
        let (out, rects) = f(&mut s.image);
        let (w, h) = (s.image.width(), s.image.height());
        let rects: Vec<Rect> = rects.into_iter().filter_map(|r| r.clip(w, h)).collect();
        if !rects.is_empty() {
            s.generation += 1;
            for slot in &mut s.slots {
                for r in &rects {
                    add_damage(&mut slot.damage, *r);
                }
                slot.notify.notify_one();
            }
        }
        out
    }

    /// Replaces the image by a black one of a new size (the target resized); every
    /// consumer sees the whole screen damaged.
    pub fn resize(&self, width: u16, height: u16) {
        let mut s = self.lock();
        s.image = DecodedImage::new(PixelFormat::RgbA32, width, height);
        let all = Rect {
            x: 0,
            y: 0,
            width,
            height,
        };
        for slot in &mut s.slots {
            slot.damage = vec![all];
            slot.notify.notify_one();
        }
    }

    /// Registers a consumer; its first damage is the whole screen.
    pub fn watch(&self) -> ScreenWatch {
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        let notify = Arc::new(Notify::new());
        let (w, h) = (s.image.width(), s.image.height());
        s.slots.push(Slot {
            id,
            damage: Rect {
                x: 0,
                y: 0,
                width: w,
                height: h,
            }
            .clip(w, h)
            .into_iter()
            .collect(),
            notify: notify.clone(),
        });
        notify.notify_one();
        ScreenWatch {
            screen: self.clone(),
            id,
            notify,
        }
    }

    /// A copy of `rect`'s pixels (clipped to the screen).
    pub fn region(&self, rect: Rect) -> Option<Region> {
        let s = self.lock();
        copy_region(&s.image, rect)
    }

    /// A copy of the whole screen.
    pub fn snapshot(&self) -> Region {
        let s = self.lock();
        let rect = Rect {
            x: 0,
            y: 0,
            width: s.image.width(),
            height: s.image.height(),
        };
        copy_region(&s.image, rect).unwrap_or(Region {
            rect,
            rgba: Vec::new(),
        })
    }

    /// How many changes were applied so far.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }
}

fn copy_region(image: &DecodedImage, rect: Rect) -> Option<Region> {
    let rect = rect.clip(image.width(), image.height())?;
    let bpp = image.bytes_per_pixel();
    let stride = image.stride();
    let data = image.data();
    let row = usize::from(rect.width) * bpp;
    let mut rgba = Vec::with_capacity(row * usize::from(rect.height));
    for y in rect.y..rect.y + rect.height {
        let start = usize::from(y) * stride + usize::from(rect.x) * bpp;
        let line = data.get(start..start + row)?;
        rgba.extend_from_slice(line);
    }
    // The decoder may leave alpha at 0: a recording's PNG must be opaque.
    for px in rgba.chunks_exact_mut(4) {
        px[3] = 0xff;
    }
    Some(Region { rect, rgba })
}

impl ScreenWatch {
    /// Waits until some part of the screen changed since the last [`take`](Self::take).
    pub async fn changed(&self) {
        loop {
            if self.peek().is_some() {
                return;
            }
            self.notify.notified().await;
        }
    }

    fn peek(&self) -> Option<Rect> {
        let s = self.screen.lock();
        s.slots
            .iter()
            .find(|x| x.id == self.id)
            .and_then(|x| x.damage.first().copied())
    }

    /// The damaged rectangles since the last call (separate ones stay separate, up to
    /// [`MAX_RECTS`]), and clears them.
    pub fn take_rects(&self) -> Vec<Rect> {
        let mut s = self.screen.lock();
        s.slots
            .iter_mut()
            .find(|x| x.id == self.id)
            .map(|x| std::mem::take(&mut x.damage))
            .unwrap_or_default()
    }

    /// The union of the damage since the last call, and clears it.
    pub fn take(&self) -> Option<Rect> {
        self.take_rects().into_iter().reduce(Rect::union)
    }

    /// The pixels of the union of the damage since the last call, and clears it.
    pub fn take_region(&self) -> Option<Region> {
        let mut s = self.screen.lock();
        let damage = s
            .slots
            .iter_mut()
            .find(|x| x.id == self.id)
            .map(|x| std::mem::take(&mut x.damage))?
            .into_iter()
            .reduce(Rect::union)?;
        copy_region(&s.image, damage)
    }

    /// The screen.
    pub fn screen(&self) -> &DesktopScreen {
        &self.screen
    }
}

impl Drop for ScreenWatch {
    fn drop(&mut self) {
        let mut s = self.screen.lock();
        s.slots.retain(|x| x.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u16, y: u16, width: u16, height: u16) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn damage_merges_per_consumer() {
        let s = DesktopScreen::new(100, 50);
        let a = s.watch();
        assert_eq!(a.take(), Some(r(0, 0, 100, 50)));
        s.update(|_| ((), vec![r(1, 1, 2, 2), r(10, 10, 5, 5)]));
        let b = s.watch();
        let mut rects = a.take_rects();
        rects.sort_by_key(|x| x.x);
        assert_eq!(
            rects,
            vec![r(1, 1, 2, 2), r(10, 10, 5, 5)],
            "apart: kept apart"
        );
        s.update(|_| ((), vec![r(1, 1, 2, 2), r(3, 3, 5, 5)]));
        assert_eq!(a.take(), Some(r(1, 1, 7, 7)), "touching: merged");
        assert_eq!(a.take(), None);
        assert_eq!(b.take(), Some(r(0, 0, 100, 50)));
        s.update(|_| ((), vec![r(90, 40, 50, 50)]));
        assert_eq!(a.take(), Some(r(90, 40, 10, 10)));
        drop(b);
        assert_eq!(s.lock().slots.len(), 1);
    }

    #[test]
    fn regions_are_opaque_png() {
        let s = DesktopScreen::new(8, 8);
        let reg = s.region(r(2, 2, 4, 3)).expect("inside");
        assert_eq!(reg.rgba.len(), 4 * 3 * 4);
        assert!(reg.rgba.chunks(4).all(|p| p[3] == 0xff));
        let png = reg.to_png().expect("png");
        assert_eq!(&png[1..4], b"PNG");
        assert!(s.region(r(9, 9, 1, 1)).is_none());
    }

    proptest::proptest! {
        #[test]
        fn union_contains_both(ax in 0u16..500, ay in 0u16..500, aw in 1u16..500, ah in 1u16..500,
                               bx in 0u16..500, by in 0u16..500, bw in 1u16..500, bh in 1u16..500) {
            let a = r(ax, ay, aw, ah);
            let b = r(bx, by, bw, bh);
            let u = a.union(b);
            for x in [a, b] {
                proptest::prop_assert!(u.x <= x.x && u.y <= x.y);
                proptest::prop_assert!(u32::from(u.x) + u32::from(u.width) >= u32::from(x.x) + u32::from(x.width));
                proptest::prop_assert!(u32::from(u.y) + u32::from(u.height) >= u32::from(x.y) + u32::from(x.height));
            }
            if let Some(c) = u.clip(300, 200) {
                proptest::prop_assert!(c.x + c.width <= 300 && c.y + c.height <= 200);
            }
        }
    }
}
