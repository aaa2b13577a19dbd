// Client state: the signed-in user, people, conversations and one Timeline per opened
// conversation. Timelines are keyed by seq, so a push, a sync page and a resend can all deliver
// the same entry without it showing twice; a jump in seq or a reconnect triggers a sync.

import { Socket } from './socket.js';

export const CONTENT_KINDS = new Set(['text', 'image', 'file', 'voice']);
const SHOWN_KINDS = new Set([...CONTENT_KINDS, 'system']);
const PAGE = 50;
const SYNC_PAGE = 200;
const TYPING_SHOWN_MS = 5000;

export class Timeline {
  constructor() {
    this.bySeq = new Map();
    this.shown = []; // seqs of entries shown, ascending
    this.minSeq = Infinity; // lowest loaded seq
    this.maxSeq = 0; // every seq up to this one is loaded
    this.hasOlder = true;
    this.pending = []; // local sends not yet stored, in order
    this.version = 0;
  }

  /** Adds an entry; answers whether it was new. Changes to earlier entries are folded in. */
  ingest(entry) {
    if (this.bySeq.has(entry.seq)) {
      // A history page carries the current state of a message: take it.
      if (SHOWN_KINDS.has(entry.kind)) this.bySeq.set(entry.seq, { ...this.bySeq.get(entry.seq), ...entry, _v: (this.bySeq.get(entry.seq)._v || 0) + 1 });
      return false;
    }
    this.bySeq.set(entry.seq, entry);
    this.minSeq = Math.min(this.minSeq, entry.seq);
    while (this.bySeq.has(this.maxSeq + 1)) this.maxSeq += 1;
    if (SHOWN_KINDS.has(entry.kind)) insertSorted(this.shown, entry.seq);
    else this.applyChange(entry);
    if (entry.client_msg_id) this.pending = this.pending.filter((p) => p.client_msg_id !== entry.client_msg_id);
    this.version += 1;
    return true;
  }

  applyChange(entry) {
    const target = this.bySeq.get(entry.target_seq);
    if (!target) return; // older than what is loaded: its history page will carry the state
    const next = { ...target, _v: (target._v || 0) + 1 };
    if (entry.kind === 'edit') {
      next.text = entry.text;
      next.edited_at = entry.created_at;
    } else if (entry.kind === 'recall') {
      next.recalled = true;
      next.text = null;
      next.file = null;
    } else if (entry.kind === 'transcript') {
      next.transcript = entry.text;
    } else if (entry.kind === 'reaction') {
      const reactions = (target.reactions || []).map((r) => ({ ...r, user_ids: [...r.user_ids] }));
      let reaction = reactions.find((r) => r.emoji === entry.emoji);
      if (entry.op === 'remove') {
        if (reaction && reaction.user_ids.includes(entry.sender_id)) {
          reaction.user_ids = reaction.user_ids.filter((id) => id !== entry.sender_id);
          reaction.count = reaction.user_ids.length;
        }
      } else {
        if (!reaction) reactions.push((reaction = { emoji: entry.emoji, count: 0, user_ids: [] }));
        if (!reaction.user_ids.includes(entry.sender_id)) {
          reaction.user_ids.push(entry.sender_id);
          reaction.count = reaction.user_ids.length;
        }
      }
      next.reactions = reactions.filter((r) => r.count > 0);
    } else {
      return;
    }
    this.bySeq.set(target.seq, next);
  }
}

function insertSorted(list, seq) {
  if (!list.length || list[list.length - 1] < seq) return list.push(seq);
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] < seq) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, seq);
}

export class Store extends EventTarget {
  constructor(api) {
    super();
    this.api = api;
    this.me = api.auth?.user ?? null;
    this.users = new Map();
    this.conversations = new Map();
    this.timelines = new Map();
    this.friends = [];
    this.requests = { incoming: [], outgoing: [] };
    this.typing = new Map(); // conversation id -> Map(user id -> expiry)
    this.connection = 'connecting';
    this.openId = null;
    this.socket = new Socket(api, (frame) => this.onFrame(frame), (state) => this.onConnection(state));
    this.syncing = new Map();
    this.opening = new Map();
    this.lastTypingSent = 0;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async start() {
    this.me = await this.api.get('/users/me');
    this.rememberUser(this.me);
    await Promise.all([this.loadConversations(), this.loadFriends(), this.loadRequests()]);
    this.socket.start();
  }

  stop() {
    this.socket.stop();
  }

  rememberUser(user) {
    if (user?.id) this.users.set(user.id, user);
  }

  /** A user's display name; unknown users are fetched once and announced with `users`. */
  name(id) {
    if (id === this.me?.id) return this.me.nickname || this.me.username;
    const user = this.users.get(id);
    if (user) return user.nickname || user.username;
    this.users.set(id, { id, nickname: '…', username: '…', placeholder: true });
    this.api.get(`/users/${encodeURIComponent(id)}`).then((u) => {
      this.rememberUser(u);
      this.emit('users');
    }, () => {});
    return '…';
  }

  async loadConversations() {
    const { conversations } = await this.api.get('/conversations');
    const seen = new Set();
    for (const c of conversations) {
      seen.add(c.id);
      const old = this.conversations.get(c.id);
      this.conversations.set(c.id, c);
      if (c.peer) this.rememberUser(c.peer);
      if (old && c.id === this.openId && this.visibleAndOpen(c.id)) c.unread_count = 0;
    }
    for (const id of [...this.conversations.keys()]) if (!seen.has(id)) this.conversations.delete(id);
    this.emit('conversations');
  }

  async loadFriends() {
    const { friends } = await this.api.get('/friends');
    this.friends = friends;
    for (const f of friends) this.rememberUser(f.user);
    this.emit('friends');
  }

  async loadRequests() {
    const [incoming, outgoing] = await Promise.all([
      this.api.get('/friend-requests?direction=incoming'),
      this.api.get('/friend-requests?direction=outgoing'),
    ]);
    this.requests = {
      incoming: incoming.requests.filter((r) => r.status === 'pending'),
      outgoing: outgoing.requests.filter((r) => r.status === 'pending'),
    };
    this.emit('friends');
  }

  sortedConversations() {
    const at = (c) => c.last_message?.created_at || c.updated_at || c.created_at;
    return [...this.conversations.values()].sort((a, b) => (at(b) > at(a) ? 1 : at(b) < at(a) ? -1 : 0));
  }

  totalUnread() {
    let n = 0;
    for (const c of this.conversations.values()) n += c.unread_count || 0;
    return n;
  }

  // ---- timelines -------------------------------------------------------------------------

  /** The timeline of a conversation, its newest page loaded first (one load at a time). */
  openTimeline(id) {
    if (this.timelines.has(id)) return Promise.resolve(this.timelines.get(id));
    if (!this.opening.has(id)) {
      const load = (async () => {
        const timeline = new Timeline();
        const page = await this.api.get(`/conversations/${id}/messages?limit=${PAGE}`);
        // The newest page is contiguous: its newest entry is where sync continues from.
        if (page.messages.length) timeline.maxSeq = page.messages[page.messages.length - 1].seq - 1;
        for (const entry of page.messages.slice().reverse()) timeline.ingest(entry);
        timeline.hasOlder = page.has_more;
        if (!page.messages.length) timeline.minSeq = 1;
        // Registered only now, so a catch-up never syncs a timeline that has not been placed yet.
        this.timelines.set(id, timeline);
        await this.sync(id);
        return timeline;
      })();
      this.opening.set(id, load);
      load.finally(() => this.opening.delete(id)).catch(() => {});
    }
    return this.opening.get(id);
  }

  async loadOlder(id, limit = PAGE) {
    const timeline = this.timelines.get(id);
    if (!timeline || !timeline.hasOlder || timeline.loadingOlder) return false;
    timeline.loadingOlder = true;
    try {
      const page = await this.api.get(`/conversations/${id}/messages?before_seq=${timeline.minSeq}&limit=${limit}`);
      for (const entry of page.messages) timeline.ingest(entry);
      timeline.hasOlder = page.has_more && page.messages.length > 0;
      this.emit('timeline', { id, older: true });
      return page.messages.length > 0;
    } finally {
      timeline.loadingOlder = false;
    }
  }

  /** Fetches everything after the timeline's contiguous end; one sync per conversation at a time. */
  sync(id) {
    const timeline = this.timelines.get(id);
    if (!timeline) return Promise.resolve();
    if (this.syncing.has(id)) {
      this.syncing.get(id).again = true;
      return this.syncing.get(id).promise;
    }
    const job = { again: false };
    job.promise = (async () => {
      try {
        do {
          job.again = false;
          for (;;) {
            const page = await this.api.get(`/conversations/${id}/messages?after_seq=${timeline.maxSeq}&limit=${SYNC_PAGE}`);
            for (const entry of page.messages) this.accept(id, timeline, entry);
            if (!page.has_more || !page.messages.length) break;
          }
        } while (job.again);
      } finally {
        this.syncing.delete(id);
        this.emit('timeline', { id });
      }
    })();
    this.syncing.set(id, job);
    return job.promise;
  }

  accept(id, timeline, entry) {
    if (!timeline.ingest(entry)) return false;
    const conversation = this.conversations.get(id);
    if (conversation && SHOWN_KINDS.has(entry.kind) && entry.seq >= (conversation.last_message?.seq ?? 0)) {
      conversation.last_message = entry;
    }
    return true;
  }

  // ---- live frames -----------------------------------------------------------------------

  onConnection(state) {
    this.connection = state;
    this.emit('connection', state);
    if (state === 'online') this.catchUp();
  }

  async catchUp() {
    try {
      await Promise.all([this.loadConversations(), this.loadFriends(), this.loadRequests()]);
      await Promise.all([...this.timelines.keys()].filter((id) => this.conversations.has(id)).map((id) => this.sync(id)));
    } catch (error) {
      console.warn('catch-up failed', error);
    }
  }

  onFrame(frame) {
    switch (frame.type) {
      case 'message': return this.onMessage(frame.message);
      case 'typing': return this.onTyping(frame.conversation_id, frame.user_id);
      case 'read': return this.onRead(frame);
      case 'presence': {
        const friend = this.friends.find((f) => f.user.id === frame.user_id);
        if (friend) friend.online = frame.online;
        return this.emit('friends');
      }
      case 'friend_request':
      case 'friend':
        this.loadRequests().catch(() => {});
        this.loadFriends().catch(() => {});
        return this.loadConversations().catch(() => {});
      case 'conversation': return this.onConversation(frame);
      default: return undefined;
    }
  }

  onMessage(entry) {
    const id = entry.conversation_id;
    const conversation = this.conversations.get(id);
    if (!conversation) return this.loadConversations().catch(() => {});
    const timeline = this.timelines.get(id);
    const fresh = timeline ? this.accept(id, timeline, entry) : entry.seq > conversation.last_seq;
    if (!fresh) return undefined;
    conversation.last_seq = Math.max(conversation.last_seq, entry.seq);
    if (SHOWN_KINDS.has(entry.kind)) {
      conversation.last_message = entry;
      conversation.updated_at = entry.created_at;
    }
    const fromOther = entry.sender_id !== this.me.id;
    if (CONTENT_KINDS.has(entry.kind) && fromOther) {
      this.typing.get(id)?.delete(entry.sender_id);
      if (this.visibleAndOpen(id)) this.markRead(id);
      else conversation.unread_count = (conversation.unread_count || 0) + 1;
      this.emit('incoming', { conversation, entry });
    }
    if (entry.kind === 'system') this.loadConversations().catch(() => {});
    if (timeline && entry.seq > timeline.maxSeq) this.sync(id); // a gap: repair it from storage
    this.emit('conversations');
    if (timeline) this.emit('timeline', { id, entry });
    return undefined;
  }

  onTyping(id, userId) {
    if (userId === this.me.id) return;
    if (!this.typing.has(id)) this.typing.set(id, new Map());
    this.typing.get(id).set(userId, Date.now() + TYPING_SHOWN_MS);
    this.emit('typing', id);
    setTimeout(() => this.emit('typing', id), TYPING_SHOWN_MS + 50);
  }

  typers(id) {
    const now = Date.now();
    return [...(this.typing.get(id) || new Map()).entries()].filter(([, until]) => until > now).map(([user]) => user);
  }

  onRead({ conversation_id: id, user_id: userId, seq }) {
    const conversation = this.conversations.get(id);
    if (!conversation) return;
    if (userId === this.me.id) {
      conversation.read_seq = Math.max(conversation.read_seq, seq);
      if (seq >= conversation.last_seq) conversation.unread_count = 0;
      this.emit('conversations');
    } else {
      conversation.peer_read_seq = Math.max(conversation.peer_read_seq || 0, seq);
      this.emit('timeline', { id });
    }
  }

  onConversation({ event, conversation }) {
    if (['left', 'dissolved'].includes(event) || (event === 'member_removed' && !conversation.member_count)) {
      if (event === 'dissolved') {
        this.conversations.set(conversation.id, { ...conversation, dissolved: true });
      }
      return this.loadConversations().catch(() => {});
    }
    const old = this.conversations.get(conversation.id);
    this.conversations.set(conversation.id, { ...old, ...conversation, unread_count: old ? old.unread_count : conversation.unread_count });
    this.emit('conversations');
    this.emit('members', conversation.id);
    return undefined;
  }

  visibleAndOpen(id) {
    return this.openId === id && document.visibilityState === 'visible' && this.atBottom !== false;
  }

  markRead(id) {
    const conversation = this.conversations.get(id);
    const timeline = this.timelines.get(id);
    if (!conversation || !timeline) return;
    const seq = Math.max(timeline.maxSeq, conversation.last_seq || 0);
    if (conversation.unread_count === 0 && conversation.read_seq >= seq) return;
    conversation.unread_count = 0;
    conversation.read_seq = seq;
    if (!this.socket.send({ type: 'read', conversation_id: id, seq })) {
      this.api.post(`/conversations/${id}/read`, { seq }).catch(() => {});
    }
    this.emit('conversations');
  }

  sendTyping(id) {
    const now = Date.now();
    if (now - this.lastTypingSent < 3000) return;
    this.lastTypingSent = now;
    this.socket.send({ type: 'typing', conversation_id: id });
  }

  // ---- sending ---------------------------------------------------------------------------

  /** Queues a send; `draft` = {kind, text?, file?, reply_to?, mentions?}. */
  send(id, draft) {
    const timeline = this.timelines.get(id);
    const pending = { ...draft, client_msg_id: crypto.randomUUID(), state: 'sending', progress: 0, created_at: new Date().toISOString() };
    timeline.pending.push(pending);
    this.deliver(id, pending);
  }

  retry(id, clientMsgId) {
    const pending = this.timelines.get(id)?.pending.find((p) => p.client_msg_id === clientMsgId);
    if (pending) this.deliver(id, pending);
  }

  async deliver(id, pending) {
    const timeline = this.timelines.get(id);
    pending.state = pending.file && !pending.file_id ? 'uploading' : 'sending';
    this.emit('timeline', { id });
    try {
      if (pending.file && !pending.file_id) {
        const stored = await this.api.upload(pending.file, (p) => {
          pending.progress = p;
          this.emit('timeline', { id, pending });
        });
        pending.file_id = stored.id;
        pending.state = 'sending';
      }
      // The same client_msg_id on every try: the server answers a resend with the original entry.
      const entry = await this.api.post(`/conversations/${id}/messages`, {
        client_msg_id: pending.client_msg_id,
        kind: pending.kind,
        text: pending.text || undefined,
        file_id: pending.file_id,
        reply_to: pending.reply_to ?? undefined,
        mentions: pending.mentions?.length ? pending.mentions : undefined,
      });
      timeline.pending = timeline.pending.filter((p) => p !== pending);
      this.accept(id, timeline, entry);
      const conversation = this.conversations.get(id);
      if (conversation) {
        conversation.last_seq = Math.max(conversation.last_seq, entry.seq);
        conversation.read_seq = Math.max(conversation.read_seq, entry.seq);
      }
      if (entry.seq > timeline.maxSeq) this.sync(id);
      this.emit('conversations');
    } catch (error) {
      pending.state = 'failed';
      pending.error = error.code || String(error);
    }
    this.emit('timeline', { id });
  }
}
