// api.js — the page's one door to the API: the login token, JSON in and out, errors as the
// API's sentences. The page is a client like any other: every permission is the API's.

const TOKEN = 'vigia.token';
const USER = 'vigia.user';
let loggedOut = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

export const session = {
  get token() { return localStorage.getItem(TOKEN); },
  get user() {
    try { return JSON.parse(localStorage.getItem(USER)); } catch { return null; }
  },
  set(token, user) {
    localStorage.setItem(TOKEN, token);
    if (user) localStorage.setItem(USER, JSON.stringify(user));
  },
  clear() {
    localStorage.removeItem(TOKEN);
    localStorage.removeItem(USER);
  },
  onLoggedOut(f) { loggedOut = f; },
};

/** What the page offers a role: the API's permission table, mirrored for display only. */
export function can(action) {
  const role = session.user && session.user.role;
  if (role === 'admin') return true;
  const user = ['watch', 'record', 'viewRecordings', 'deleteRecordings'];
  if (role === 'user') return user.includes(action);
  if (role === 'viewer') return action === 'watch' || action === 'viewRecordings';
  return false;
}

export async function api(method, path, body) {
  const headers = {};
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (r.headers.get('content-type') || '').includes('json')
    ? await r.json().catch(() => null) : null;
  // a token that no longer works (expired, revoked, user deleted) ends the page's session;
  // a wrong old password is a 401 too, and is not that
  if (r.status === 401 && token && path !== '/api/auth/password') {
    session.clear();
    loggedOut();
  }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

export const enc = encodeURIComponent;
