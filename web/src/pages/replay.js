import * as AsciinemaPlayer from 'asciinema-player';
import { api, query } from '../api.js';
import { h, append, clear, offset, when, highlight } from '../dom.js';

export async function replayPage(main, params) {
  const id = params.get('id') || '';
  const startAt = Math.max(0, Number(params.get('t') || 0) || 0);
  const enc = encodeURIComponent(id);
  const detail = await api.get(`/sessions/${enc}`);
  const s = detail.session;
  const playerBox = h('div', { class: 'player', id: 'player' });
  const commandsBox = h('ol', { class: 'commands', id: 'commands' });
  const indexBox = h('div', { class: 'index', id: 'index' });
  const status = h('p', { class: 'muted', id: 'replay-status' });
  const files = h('ul', { class: 'files' });
  const filter = h('input', { id: 'command-filter', placeholder: 'filter commands' });
  // A graphical (RDP) session has a video and no command list to filter.
  const graphical = s.protocol === 'rdp';

  append(main,
    h('h1', {}, `Replay ${s.user}@${s.target}`),
    h('p', { class: 'muted' }, `${when(s.start)} · ${s.stage}${s.live ? ' (live: replay shows what is recorded so far)' : ''}`),
    h('div', { class: 'replay' },
      h('div', { class: 'replay-main' }, playerBox, indexBox, status),
      h('aside', { class: 'replay-side' },
        h('h2', {}, graphical ? 'Keys and clicks' : 'Commands'), graphical ? null : filter, commandsBox,
        h('h2', {}, 'Downloads'), files)));

  for (const f of detail.files) {
    append(files, h('li', {}, h('a', { href: `/ui/api/recordings/${enc}/files/${encodeURIComponent(f.name)}`, download: `${id}-${f.name}` }, f.name),
      ' ', h('span', { class: 'muted' }, `${f.size} bytes`)));
  }

  if (graphical) {
    await graphicalReplay(main, enc, detail, startAt, playerBox, indexBox, status, commandsBox);
    return;
  }

  let commands = [];
  try {
    const idx = await api.get(`/recordings/${enc}/commands`);
    commands = (idx && idx.commands) || [];
  } catch (e) {
    append(commandsBox, h('li', { class: 'muted' }, `No command index: ${e.message}`));
  }

  let player = null;
  let base = 0; // the recording time at the player's 0 (a window cast starts later)
  const seek = async (t) => {
    if (!player) return;
    if (t < base) { await load(t); return; }
    await player.seek(Math.max(0, t - base));
    window.psm.replay.seekedTo = t;
  };

  async function load(from) {
    if (player) player.dispose();
    clear(playerBox);
    const windowed = from > 0 && window.psm.replay && window.psm.replay.windowed;
    base = windowed ? from : 0;
    const url = `/ui/api/recordings/${enc}/cast${windowed ? query({ from }) : ''}`;
    // Fetch first so errors are shown (the player only says "failed").
    const res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) {
      let msg = `${res.status}`;
      try { msg = (await res.json()).Content || msg; } catch { /* not JSON */ }
      if (res.status === 413 && !windowed) {
        window.psm.replay.windowed = true;
        status.textContent = 'Large recording: playing from the index position.';
        return load(Math.max(from, 0.000001));
      }
      status.textContent = `Cannot replay: ${msg}`;
      window.psm.replay.error = msg;
      return null;
    }
    const data = await res.text();
    const markers = commands.filter((c) => c.time_us / 1e6 >= base).map((c) => [c.time_us / 1e6 - base, c.command.slice(0, 80)]);
    player = AsciinemaPlayer.create({ data }, playerBox, {
      fit: 'width', terminalFontSize: 'small', idleTimeLimit: 2, markers,
      startAt: windowed ? 0 : from, preload: true, controls: true,
    });
    player.addEventListener('marker', ({ time }) => { window.psm.replay.marker = base + time; });
    window.psm.replay.ready = true;
    window.psm.replay.player = player;
    window.psm.replay.currentTime = () => base + player.getCurrentTime();
    return player;
  }

  window.psm.replay = { ready: false, seekedTo: startAt };

  const renderCommands = () => {
    clear(commandsBox);
    const f = filter.value.trim().toLowerCase();
    const shown = commands.filter((c) => !f || c.command.toLowerCase().includes(f));
    for (const c of shown) {
      append(commandsBox, h('li', {},
        h('button', { type: 'button', class: 'link jump', dataset: { t: c.time_us / 1e6 }, on: { click: () => seek(c.time_us / 1e6) } },
          h('span', { class: 'muted' }, c.offset.slice(0, 8)), ' ', h('code', {}, highlight(c.command, f))),
        c.exit_status !== null && c.exit_status !== undefined && c.exit_status !== 0 ? h('span', { class: 'badge' }, `exit ${c.exit_status}`) : null));
    }
    if (commands.length && !shown.length) append(commandsBox, h('li', { class: 'muted' }, 'No command matches.'));
    if (!commands.length) append(commandsBox, h('li', { class: 'muted' }, 'No commands recorded.'));
  };
  filter.addEventListener('input', renderCommands);
  renderCommands();

  // The recording's chunk index: every chunk with a keyframe is a place the player (and the
  // server, for large recordings) can seek to directly.
  await renderIndex(indexBox, enc, seek);

  await load(startAt);
  if (startAt > 0) status.textContent = `Opened at ${offset(startAt)}.`;
}

// A graphical (RDP) session: the encoder's video in the browser's own player (seekable: the
// server answers byte ranges), its contact sheet, and the recording's index bar seeking the
// video. Before the encoder made the video, the page says so.
async function graphicalReplay(main, enc, detail, startAt, playerBox, indexBox, status, commandsBox) {
  window.psm.replay = { ready: false, seekedTo: startAt, graphical: true };
  // The input timeline works from the recording alone: shown before (and without) a video.
  let seekVideo = null;
  await renderInputTimeline(indexBox, commandsBox, enc, (t) => { if (seekVideo) seekVideo(t); });
  const names = new Set(detail.files.map((f) => f.name));
  if (!names.has('session.mp4')) {
    status.textContent = 'No video yet: the encoder makes session.mp4 after the session ends.';
    window.psm.replay.error = 'no video';
    return;
  }
  const video = h('video', {
    id: 'rdp-video', controls: true, preload: 'metadata',
    src: `/ui/api/recordings/${enc}/media/session.mp4`,
  });
  append(playerBox, video);
  if (names.has('contact-sheet.png')) {
    append(playerBox, h('img', {
      id: 'contact-sheet', class: 'contact-sheet', alt: 'contact sheet',
      src: `/ui/api/recordings/${enc}/media/contact-sheet.png`,
    }));
  }
  const seek = (t) => {
    video.currentTime = Math.max(0, Math.min(t, video.duration || t));
    window.psm.replay.seekedTo = t;
  };
  video.addEventListener('seeked', () => { window.psm.replay.seekedAt = video.currentTime; });
  video.addEventListener('error', () => {
    status.textContent = 'The browser cannot play this video.';
    window.psm.replay.error = 'video error';
  });
  await new Promise((resolve) => {
    if (video.readyState >= 1) resolve();
    else video.addEventListener('loadedmetadata', resolve, { once: true });
    video.addEventListener('error', resolve, { once: true });
  });
  window.psm.replay.video = video;
  window.psm.replay.seek = seek;
  seekVideo = seek;
  window.psm.replay.currentTime = () => video.currentTime;
  await renderIndex(indexBox, enc, seek);
  if (startAt > 0) {
    seek(startAt);
    status.textContent = `Opened at ${offset(startAt)}.`;
  }
  window.psm.replay.ready = !window.psm.replay.error;
}

// The recording's chunk index as a bar under the player: a button per chunk (keyframe chunks
// marked), each seeking to its start.
async function renderIndex(indexBox, enc, seek) {
  try {
    const idx = await api.get(`/recordings/${enc}/index`);
    const total = Math.max(idx.duration, 0.001);
    const bar = h('div', { class: 'index-bar', title: 'recording index: click to seek' });
    for (const c of idx.chunks) {
      const left = (c.start / total) * 100;
      const width = Math.max(((c.end - c.start) / total) * 100, 0.5);
      append(bar, h('button', {
        type: 'button', class: c.keyframe ? 'chunk keyframe' : 'chunk',
        title: `chunk ${c.seq}: ${offset(c.start)} – ${offset(c.end)}, ${c.events} events`,
        dataset: { left: left.toFixed(3), width: width.toFixed(3) },
        on: { click: () => seek(c.start) },
      }));
    }
    append(indexBox, h('span', { class: 'muted' }, `index: ${idx.chunks.length} chunk(s), ${offset(idx.duration)}. `),
      h('span', { id: 'integrity', class: idx.intact ? 'muted' : 'error' }, idx.integrity), bar);
    for (const b of bar.children) {
      b.style.left = `${b.dataset.left}%`;
      b.style.width = `${b.dataset.width}%`;
    }
    window.psm.replay.index = idx;
  } catch (e) {
    append(indexBox, h('span', { class: 'muted' }, `index unavailable: ${e.message}`));
  }
}

// What the user typed, what was redacted and where they clicked (the gateway's keyboard and
// pointer channels), as marks on a bar under the player and a list beside it; each seeks the
// video to its second.
async function renderInputTimeline(indexBox, listBox, enc, seek) {
  clear(listBox);
  let tl;
  try {
    tl = await api.get(`/recordings/${enc}/input`);
  } catch (e) {
    append(listBox, h('li', { class: 'muted' }, `No input timeline: ${e.message}`));
    return;
  }
  window.psm.replay.input = tl;
  if (!tl.entries.length) {
    append(listBox, h('li', { class: 'muted' }, 'No keys or clicks were recorded.'));
    return;
  }
  const label = (e) => {
    if (e.kind === 'click') return `click ${e.text}`;
    if (e.kind === 'redacted') return 'keys typed (redacted)';
    return e.text.replace(/\r/g, '⏎').replace(/\t/g, '⇥').replace(/\x7f/g, '⌫');
  };
  const total = Math.max(tl.duration, 0.001);
  const bar = h('div', { class: 'input-bar', id: 'input-bar', title: 'keys and clicks: click to seek' });
  for (const e of tl.entries) {
    append(bar, h('button', {
      type: 'button', class: `mark ${e.kind}`, title: `${offset(e.t)} ${label(e)}`,
      dataset: { left: ((e.t / total) * 100).toFixed(3) },
      on: { click: () => seek(e.t) },
    }));
    append(listBox, h('li', { class: `input ${e.kind}` },
      h('button', { type: 'button', class: 'link', on: { click: () => seek(e.t) } }, offset(e.t)), ' ',
      h('span', { class: e.kind === 'keys' ? 'typed' : 'muted' }, label(e))));
  }
  if (tl.truncated) append(listBox, h('li', { class: 'muted' }, 'Later input left out (too many entries).'));
  append(indexBox, h('div', { class: 'muted' }, `keys and clicks: ${tl.entries.length}`), bar);
  for (const b of bar.children) b.style.left = `${b.dataset.left}%`;
}
