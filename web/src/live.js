// A terminal fed by a gateway websocket (docs/live.md): the live view of a session (view or
// control) and the browser terminal. Output is written into xterm.js as terminal data, never
// into the DOM as HTML.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';

export const CLOSE_REASONS = {
  1000: 'the session ended',
  1006: 'the connection to the gateway was lost',
  1009: 'a message was too large',
  4400: 'too many malformed messages',
  4401: 'the ticket is unknown, expired or already used',
  4403: 'the ticket does not allow this',
  4404: 'the session is not live on this gateway',
  4408: 'the viewer was too slow',
  4429: 'too many viewers on this session',
  4503: 'the gateway could not reach the control plane',
};

/**
 * The websocket of a live view (docs/live.md): binary frames go to `onBinary`, JSON messages
 * to `onJson` (counted in `stats.messages`) and then to `opts.onMessage`; the close, with a
 * readable reason, to `opts.onClose(text, code)`.
 */
export function liveSocket(url, opts, stats, onBinary, onJson) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  let closed = false;
  ws.addEventListener('message', (ev) => {
    if (typeof ev.data !== 'string') {
      onBinary(ev.data);
      return;
    }
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    stats.messages[msg.type] = (stats.messages[msg.type] || 0) + 1;
    onJson(msg);
    if (opts.onMessage) opts.onMessage(msg);
  });
  ws.addEventListener('close', (ev) => {
    closed = true;
    const text = CLOSE_REASONS[ev.code] || `closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
    if (opts.onClose) opts.onClose(text, ev.code);
  });
  const send = (obj) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); };
  return { ws, send, isClosed: () => closed };
}

/**
 * Opens `url` and renders it into `el`.
 * opts: { interactive: bool (send keystrokes), fit: bool (size the terminal to the element and
 * tell the gateway: the browser terminal), onMessage(msg), onClose(text) }
 */
export function openTerminal(el, url, opts = {}) {
  const term = new Terminal({
    convertEol: false,
    cursorBlink: !!opts.interactive,
    disableStdin: !opts.interactive,
    scrollback: 5000,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    theme: { background: '#111418', foreground: '#d8dee9' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  if (opts.fit) fit.fit();
  // Counters for tests and troubleshooting (no content).
  const stats = { binary: 0, bytes: 0, messages: {} };
  window.psm.liveStats = stats;
  const { ws, send, isClosed } = liveSocket(url, opts, stats, (data) => {
    stats.binary += 1;
    stats.bytes += data.byteLength;
    term.write(new Uint8Array(data));
  }, (msg) => {
    if (msg.type === 'screen') {
      term.reset();
      if (!opts.fit && msg.cols > 0 && msg.rows > 0) term.resize(Math.min(msg.cols, 1000), Math.min(msg.rows, 500));
      term.write(String(msg.data || ''));
    } else if (msg.type === 'resize' && !opts.fit && msg.cols > 0 && msg.rows > 0) {
      term.resize(Math.min(msg.cols, 1000), Math.min(msg.rows, 500));
    }
  });
  ws.addEventListener('open', () => {
    if (opts.fit) send({ type: 'resize', cols: term.cols, rows: term.rows });
  });
  if (opts.interactive) {
    term.onData((data) => send({ type: 'input', data }));
  }
  let onResize = null;
  if (opts.fit) {
    onResize = () => {
      fit.fit();
      send({ type: 'resize', cols: term.cols, rows: term.rows });
    };
    window.addEventListener('resize', onResize);
  }
  return {
    term,
    ws,
    send,
    focus: () => term.focus(),
    isClosed,
    /** The terminal's visible text, one string per row (for tests and copy). */
    text() {
      const b = term.buffer.active;
      const lines = [];
      for (let i = 0; i < b.length; i++) {
        const l = b.getLine(i);
        if (l) lines.push(l.translateToString(true));
      }
      return lines.join('\n');
    },
    close() {
      if (onResize) window.removeEventListener('resize', onResize);
      try { ws.close(1000); } catch { /* already closed */ }
      term.dispose();
    },
  };
}
