// Building the page without ever parsing data as HTML: every text goes through
// textContent / createTextNode, every attribute through setAttribute with a fixed name, and
// links through safeHref. Recorded output, search terms and session fields are untrusted.

const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction']);

/** A link target that cannot run script: same-origin paths only. */
export function safeHref(href) {
  const s = String(href);
  return s.startsWith('/') && !s.startsWith('//') ? s : '#';
}

/**
 * h('a', {href: '/ui/', class: 'x', on: {click: f}}, 'text', child, [more])
 * Children: strings (text nodes), nodes, arrays, null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
    } else if (k === 'value') {
      el.value = String(v);
    } else if (k === 'checked' || k === 'disabled' || k === 'selected') {
      el[k] = Boolean(v);
    } else if (/^on/i.test(k) || k === 'style' || k === 'srcdoc') {
      throw new Error(`attribute ${k} is not allowed`);
    } else {
      el.setAttribute(k, URL_ATTRS.has(k) ? safeHref(v) : String(v === true ? '' : v));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/**
 * Text with every case-insensitive occurrence of `needle` in <mark>, as text nodes. Matched
 * on the text itself (not a lower-cased copy, whose length can differ from the text's for
 * some letters), so marks never cut a character.
 */
export function highlight(text, needle) {
  const t = String(text);
  const n = String(needle || '');
  if (!n) return [t];
  const re = new RegExp(n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'), 'giu');
  const out = [];
  let i = 0;
  for (const m of t.matchAll(re)) {
    if (m.index > i) out.push(t.slice(i, m.index));
    out.push(h('mark', {}, m[0]));
    i = m.index + m[0].length;
  }
  if (i < t.length) out.push(t.slice(i));
  return out;
}

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const p = (x) => String(x).padStart(2, '0');
  return hh > 0 ? `${hh}h ${p(mm)}m ${p(ss)}s` : mm > 0 ? `${mm}m ${p(ss)}s` : `${ss}s`;
}

export function when(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return String(rfc3339);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function offset(t) {
  const ms = Math.max(0, Math.round(t * 1000));
  const p = (x, n = 2) => String(x).padStart(n, '0');
  return `${p(Math.floor(ms / 3600000))}:${p(Math.floor(ms / 60000) % 60)}:${p(Math.floor(ms / 1000) % 60)}.${p(ms % 1000, 3)}`;
}
