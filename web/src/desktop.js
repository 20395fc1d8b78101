// The live view of a graphical (RDP) session (docs/live.md, "Desktops"): the gateway sends
// the desktop's size and PNG tiles of what changed; a viewer with control sends keys (by
// KeyboardEvent.code) and pointer events. Tiles are drawn into a canvas, never into the DOM.
import { liveSocket } from './live.js';

const BUTTONS = ['left', 'middle', 'right'];

/**
 * Opens `url` and renders the desktop into `el`.
 * opts: { interactive: bool (send keyboard and mouse), onMessage(msg), onClose(text, code) }
 */
export function openDesktop(el, url, opts = {}) {
  const canvas = document.createElement('canvas');
  canvas.className = 'desktop';
  canvas.id = 'live-desktop';
  canvas.width = 1;
  canvas.height = 1;
  canvas.tabIndex = 0;
  el.appendChild(canvas);
  const ctx = canvas.getContext('2d');
  // Counters for tests and troubleshooting (no content).
  const stats = { tiles: 0, bytes: 0, messages: {}, width: 0, height: 0 };
  window.psm.liveStats = stats;
  // Tiles are drawn in arrival order even though decoding is asynchronous.
  let drawing = Promise.resolve();
  const { ws, send, isClosed } = liveSocket(url, opts, stats, (data) => {
    if (data.byteLength < 9) return;
    const v = new DataView(data);
    if (v.getUint8(0) !== 1) return;
    const x = v.getUint16(1, true);
    const y = v.getUint16(3, true);
    const png = new Blob([data.slice(9)], { type: 'image/png' });
    drawing = drawing.then(async () => {
      try {
        const bmp = await createImageBitmap(png);
        ctx.drawImage(bmp, x, y);
        bmp.close();
        stats.tiles += 1;
        stats.bytes += data.byteLength;
      } catch { /* a tile that does not decode is skipped */ }
    });
  }, (msg) => {
    if (msg.type === 'desktop' && msg.width > 0 && msg.height > 0) {
      drawing = drawing.then(() => {
        canvas.width = Math.min(msg.width, 8192);
        canvas.height = Math.min(msg.height, 8192);
        stats.width = canvas.width;
        stats.height = canvas.height;
      });
    }
  });
  if (opts.interactive) {
    // Canvas pixels, whatever the canvas's displayed size.
    const pos = (e) => {
      const r = canvas.getBoundingClientRect();
      const sx = canvas.width / Math.max(1, r.width);
      const sy = canvas.height / Math.max(1, r.height);
      const clamp = (n, max) => Math.max(0, Math.min(max - 1, Math.round(n)));
      return { x: clamp((e.clientX - r.left) * sx, canvas.width), y: clamp((e.clientY - r.top) * sy, canvas.height) };
    };
    const key = (down) => (e) => {
      if (!/^[A-Za-z0-9]{1,32}$/.test(e.code)) return;
      e.preventDefault();
      send({ type: 'key', key: e.code, down });
    };
    canvas.addEventListener('keydown', key(true));
    canvas.addEventListener('keyup', key(false));
    let lastMove = 0;
    canvas.addEventListener('mousemove', (e) => {
      // At most one move every 20 ms: enough to follow a hand, not a flood.
      const now = performance.now();
      if (now - lastMove < 20) return;
      lastMove = now;
      send({ type: 'move', ...pos(e) });
    });
    canvas.addEventListener('mousedown', (e) => {
      canvas.focus();
      send({ type: 'button', button: BUTTONS[e.button] || 'left', down: true, ...pos(e) });
    });
    canvas.addEventListener('mouseup', (e) => send({ type: 'button', button: BUTTONS[e.button] || 'left', down: false, ...pos(e) }));
    canvas.addEventListener('wheel', (e) => {
      e.preventDefault();
      send({ type: 'wheel', delta: e.deltaY < 0 ? 120 : -120, ...pos(e) });
    }, { passive: false });
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  }
  return {
    ws,
    send,
    canvas,
    focus: () => canvas.focus(),
    isClosed,
    /** A desktop has no text to read back; tests read the canvas. */
    text: () => '',
    close() {
      try { ws.close(1000); } catch { /* already closed */ }
      canvas.remove();
    },
  };
}
