// The web API: same-origin fetch with the session cookie; every state-changing request
// carries the CSRF token in X-PSM-CSRF.

export const state = { me: null };

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (state.me) headers['X-PSM-CSRF'] = state.me.csrf;
  }
  const res = await fetch(`/ui/api${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    const message = (data && data.Content) || `${res.status} ${res.statusText}`;
    const code = (data && data.Code) || String(res.status);
    if (res.status === 401 && code === 'unauthenticated' && !location.pathname.startsWith('/ui/login')) {
      const next = encodeURIComponent(location.pathname + location.search);
      location.assign(`/ui/login?next=${next}`);
    }
    throw new ApiError(res.status, code, message);
  }
  return data;
}

export const api = {
  get: (path) => request('GET', path),
  post: (path, body = {}) => request('POST', path, body),
};

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '' && v !== false) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
