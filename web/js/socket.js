// The WebSocket: reconnects with exponential backoff and jitter, notices dead links (no pong,
// browser offline) and reports its state. Catch-up after a reconnect is the store's job.

const PING_EVERY_MS = 20_000;
const PONG_WITHIN_MS = 10_000;
const MAX_BACKOFF_MS = 15_000;

export class Socket {
  constructor(api, onFrame, onState) {
    this.api = api;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = true;
    this.state = 'connecting';
    this.onOffline = () => this.drop();
    this.onOnline = () => this.reconnectNow();
    window.addEventListener('offline', this.onOffline);
    window.addEventListener('online', this.onOnline);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('offline', this.onOffline);
    window.removeEventListener('online', this.onOnline);
    this.teardown();
  }

  setState(state) {
    if (state !== this.state) {
      this.state = state;
      this.onState(state);
    }
  }

  async connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.setState(this.attempt === 0 ? 'connecting' : 'offline');
    if (!navigator.onLine) return this.schedule();
    let token;
    try {
      token = await this.api.freshToken();
    } catch {
      return this.schedule();
    }
    if (!token || this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    let greeted = false;
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type === 'hello') {
        greeted = true;
        this.attempt = 0;
        this.setState('online');
        this.startPings();
      }
      if (frame.type === 'pong') clearTimeout(this.pongTimer);
      this.onFrame(frame);
    };
    ws.onclose = async () => {
      if (this.ws !== ws) return;
      this.teardown();
      // Closed before the greeting: most likely the access token was refused.
      if (!greeted && this.api.loggedIn) await this.api.refresh();
      this.schedule();
    };
  }

  schedule() {
    if (this.stopped) return;
    this.setState('offline');
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  /** The network is gone: close now instead of waiting for a timeout. */
  drop() {
    if (!this.ws) return;
    this.teardown();
    this.schedule();
  }

  reconnectNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= 1)) return;
    this.attempt = 0;
    this.connect();
  }

  teardown() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = null;
      try { ws.close(); } catch { /* already closed */ }
    }
  }

  startPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!this.send({ type: 'ping' })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.drop(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  send(frame) {
    if (this.ws?.readyState !== WebSocket.OPEN || this.state !== 'online') return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
