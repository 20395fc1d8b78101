// The RDP browser page's script (served as /rdp.js; the page's CSP allows no inline script).
// Minimal client for the PSM RDP gateway's websocket (see psm-proxy/rdp/src/web.rs).
const canvas = document.getElementById('screen');
const ctx = canvas.getContext('2d');
const status = document.getElementById('status');
window.psm = { frames: 0, ready: false, ended: null, error: null, drive: null, files: [], uploaded: [], fileError: null };
const filesBox = document.getElementById('files');
const fileStatus = document.getElementById('file-status');
const fileList = document.getElementById('file-list');
let ws = null;
const send = (m) => { if (ws && ws.readyState === 1) ws.send(JSON.stringify(m)); };

document.getElementById('login').addEventListener('submit', (e) => {
  e.preventDefault();
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => send({ type: 'login', user: document.getElementById('user').value,
    password: document.getElementById('password').value, width: canvas.width, height: canvas.height });
  ws.onmessage = async (ev) => {
    if (typeof ev.data === 'string') {
      const m = JSON.parse(ev.data);
      if (m.type === 'ready') {
        canvas.width = m.width; canvas.height = m.height;
        window.psm.ready = true; status.textContent = `session ${m.session}`; canvas.focus();
        if (m.drive) {
          window.psm.drive = m.drive;
          document.getElementById('drive-name').textContent = m.drive;
          filesBox.hidden = false;
          send({ type: 'files' });
        }
      } else if (m.type === 'resize') {
        canvas.width = m.width; canvas.height = m.height; window.psm.resized = [m.width, m.height];
      } else if (m.type === 'files') {
        window.psm.files = m.files;
        fileList.replaceChildren(...m.files.map((f) => {
          const li = document.createElement('li');
          if (f.dir) { li.textContent = `${f.name}/`; return li; }
          const b = document.createElement('button');
          b.className = 'file'; b.type = 'button'; b.textContent = f.name;
          b.addEventListener('click', () => send({ type: 'download', name: f.name }));
          li.append(b, ` ${f.size} B`);
          return li;
        }));
      } else if (m.type === 'uploaded') {
        window.psm.uploaded.push(m.name); fileStatus.textContent = `uploaded ${m.name}`;
        send({ type: 'files' });
      } else if (m.type === 'file-error') {
        window.psm.fileError = m.message; fileStatus.textContent = m.message;
      } else if (m.type === 'error') { window.psm.error = m.message; status.textContent = m.message; }
      else if (m.type === 'end') { window.psm.ended = m.reason; status.textContent = `ended: ${m.reason}`; }
      return;
    }
    const v = new DataView(ev.data);
    if (v.getUint8(0) === 2) {
      // A downloaded file: name length, name, content.
      const n = v.getUint16(1, true);
      const name = new TextDecoder().decode(new Uint8Array(ev.data, 3, n));
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([ev.data.slice(3 + n)]));
      a.download = name; a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      fileStatus.textContent = `downloaded ${name}`;
      return;
    }
    if (v.getUint8(0) !== 1) return;
    const x = v.getUint16(1, true), y = v.getUint16(3, true);
    const bmp = await createImageBitmap(new Blob([ev.data.slice(9)], { type: 'image/png' }));
    ctx.drawImage(bmp, x, y);
    window.psm.frames += 1;
  };
  ws.onclose = () => { if (!window.psm.ended) window.psm.ended = window.psm.ended || 'closed'; };
});

document.getElementById('refresh').addEventListener('click', () => send({ type: 'files' }));
document.getElementById('upload').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (!f || !ws || ws.readyState !== 1) return;
  const name = new TextEncoder().encode(f.name);
  const body = new Uint8Array(await f.arrayBuffer());
  const m = new Uint8Array(3 + name.length + body.length);
  m[0] = 2; m[1] = name.length & 0xff; m[2] = name.length >> 8;
  m.set(name, 3); m.set(body, 3 + name.length);
  ws.send(m);
  fileStatus.textContent = `uploading ${f.name}…`;
  e.target.value = '';
});

// Keys go by their physical code (KeyboardEvent.code); the gateway maps them to scan codes.
const key = (down) => (e) => {
  if (!/^[A-Za-z0-9]{1,32}$/.test(e.code)) return;
  e.preventDefault();
  send({ type: 'key', key: e.code, down });
};
canvas.addEventListener('keydown', key(true));
canvas.addEventListener('keyup', key(false));
const pos = (e) => { const r = canvas.getBoundingClientRect();
  return { x: Math.max(0, Math.round(e.clientX - r.left)), y: Math.max(0, Math.round(e.clientY - r.top)) }; };
const BUTTONS = ['left', 'middle', 'right'];
canvas.addEventListener('mousemove', (e) => send({ type: 'move', ...pos(e) }));
canvas.addEventListener('mousedown', (e) => { canvas.focus(); send({ type: 'button', button: BUTTONS[e.button] || 'left', down: true, ...pos(e) }); });
canvas.addEventListener('mouseup', (e) => send({ type: 'button', button: BUTTONS[e.button] || 'left', down: false, ...pos(e) }));
canvas.addEventListener('wheel', (e) => { e.preventDefault(); send({ type: 'wheel', delta: e.deltaY < 0 ? 120 : -120, ...pos(e) }); });
canvas.addEventListener('contextmenu', (e) => e.preventDefault());
