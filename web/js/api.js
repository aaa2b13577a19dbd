// HTTP client for /api/v1: bearer tokens kept in localStorage, one refresh at a time on 401,
// uploads through XHR (for progress), authenticated file bytes turned into blob: URLs.

const BASE = '/api/v1';
const STORAGE_KEY = 'natter.auth';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor() {
    this.auth = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
    this.refreshing = null;
    this.blobs = new Map();
    this.onLogout = () => {};
    window.addEventListener('storage', (event) => {
      if (event.key !== STORAGE_KEY) return;
      this.auth = JSON.parse(event.newValue || 'null');
      if (!this.auth) this.onLogout();
    });
  }

  get loggedIn() {
    return Boolean(this.auth?.access_token);
  }

  get token() {
    return this.auth?.access_token;
  }

  saveAuth(answer) {
    this.auth = {
      access_token: answer.access_token,
      refresh_token: answer.refresh_token,
      expires_at: Date.now() + (answer.expires_in || 900) * 1000,
      user: answer.user ?? this.auth?.user,
    };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.auth));
  }

  clearAuth() {
    this.auth = null;
    localStorage.removeItem(STORAGE_KEY);
    for (const url of this.blobs.values()) url.then((u) => u && URL.revokeObjectURL(u));
    this.blobs.clear();
  }

  async register(username, password, nickname) {
    this.saveAuth(await this.call('POST', '/auth/register', { username, password, nickname: nickname || undefined, device_name: 'web' }, false));
  }

  async login(username, password) {
    this.saveAuth(await this.call('POST', '/auth/login', { username, password, device_name: 'web' }, false));
  }

  async logout() {
    try {
      await this.call('POST', '/auth/logout', { refresh_token: this.auth?.refresh_token });
    } catch {
      // The session ends locally whatever the server said.
    }
    this.clearAuth();
  }

  /** One refresh in flight at a time; a refused refresh logs out. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        // Another tab of this browser may have rotated the shared refresh token already: using
        // the spent one would end the session for every tab.
        const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
        if (stored?.refresh_token && stored.refresh_token !== this.auth?.refresh_token && stored.expires_at - Date.now() > 30_000) {
          this.auth = stored;
          this.refreshing = null;
          return true;
        }
        try {
          const answer = await this.call('POST', '/auth/refresh', { refresh_token: this.auth?.refresh_token }, false);
          this.saveAuth(answer);
          return true;
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) {
            this.clearAuth();
            this.onLogout();
          }
          return false;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /** A fresh-enough access token (for the WebSocket, which cannot answer 401 readably). */
  async freshToken() {
    if (this.auth && this.auth.expires_at - Date.now() < 60_000) await this.refresh();
    return this.token;
  }

  async call(method, path, body, authed = true, retry = true) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (authed && this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401 && authed && retry && this.auth?.refresh_token) {
      if (await this.refresh()) return this.call(method, path, body, authed, false);
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (a proxy's error page, say): the status still says what happened.
    }
    if (!response.ok) throw new ApiError(response.status, json?.error?.code ?? 'http_' + response.status, json?.error?.message);
    return json;
  }

  get(path) { return this.call('GET', path); }
  post(path, body = {}) { return this.call('POST', path, body); }
  patch(path, body) { return this.call('PATCH', path, body); }
  put(path) { return this.call('PUT', path); }
  del(path) { return this.call('DELETE', path); }

  /** POST /files with upload progress (0..1); resolves to {id, name, mime, size, sha256}. */
  upload(file, onProgress = () => {}, retry = true) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', BASE + '/files');
      xhr.setRequestHeader('Authorization', `Bearer ${this.token}`);
      xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
      xhr.onerror = () => reject(new ApiError(0, 'network', 'network error'));
      xhr.onload = async () => {
        let json = null;
        try { json = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status === 401 && retry && (await this.refresh())) {
          this.upload(file, onProgress, false).then(resolve, reject);
        } else if (xhr.status >= 200 && xhr.status < 300) {
          resolve(json);
        } else {
          reject(new ApiError(xhr.status, json?.error?.code ?? 'http_' + xhr.status, json?.error?.message));
        }
      };
      const form = new FormData();
      form.append('file', file, file.name || 'file');
      xhr.send(form);
    });
  }

  /** A blob: URL for a stored file (fetched once with the bearer token). */
  fileUrl(id) {
    if (!this.blobs.has(id)) {
      const load = (async () => {
        let response = await fetch(`${BASE}/files/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${this.token}` } });
        if (response.status === 401 && (await this.refresh())) {
          response = await fetch(`${BASE}/files/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${this.token}` } });
        }
        if (!response.ok) throw new ApiError(response.status, 'file_unavailable');
        return URL.createObjectURL(await response.blob());
      })();
      load.catch(() => this.blobs.delete(id));
      this.blobs.set(id, load);
    }
    return this.blobs.get(id);
  }
}
