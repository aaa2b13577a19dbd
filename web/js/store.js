// Client state: the signed-in user, people, conversations and one Timeline per opened
// conversation. Timelines are keyed by seq, so a push, a sync page and a resend can all deliver
// the same entry without it showing twice; a jump in seq or a reconnect triggers a sync.

import { Socket } from './socket.js';
import { Timeline, CONTENT_KINDS, SHOWN_KINDS } from './timeline.js';
import { Outbox } from './outbox.js';

const PAGE = 50;
const SYNC_PAGE = 200;
const TYPING_SHOWN_MS = 5000;

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
    this.gone = new Map(); // conversation id -> 'removed' | 'dissolved' | 'left': no longer mine
    this.outbox = new Outbox(this);
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
    this.stopped = true;
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
    // Only what was known when the request left can be missing from its answer (a group created
    // meanwhile is not gone).
    const known = new Set(this.conversations.keys());
    const { conversations } = await this.api.get('/conversations');
    const seen = new Set();
    for (const c of conversations) {
      // A list that left before my removal still has the conversation: gone stays gone.
      if (this.gone.has(c.id)) continue;
      seen.add(c.id);
      const old = this.conversations.get(c.id);
      // An answer computed before entries that already reached me live (an edit of the last
      // message, say) would put an older preview and count back: the live summary is newer.
      if (old && (old.last_seq ?? 0) > (c.last_seq ?? 0)) continue;
      this.conversations.set(c.id, c);
      if (c.peer) this.rememberUser(c.peer);
      if (old && c.id === this.openId && this.visibleAndOpen(c.id)) c.unread_count = 0;
    }
    for (const id of [...this.conversations.keys()]) {
      if (seen.has(id) || !known.has(id)) continue;
      const old = this.conversations.get(id);
      this.conversations.delete(id);
      // Gone from my list while I still had it: removed (or dissolved) while I was not looking.
      if (!this.gone.has(id)) this.markGone(id, old?.dissolved ? 'dissolved' : 'removed');
    }
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
      conversation.last_message = timeline.bySeq.get(entry.seq);
    } else if (conversation) {
      this.applyToSummary(conversation, entry, timeline);
    }
    return true;
  }

  /** An edit or recall of a conversation's last message changes its preview. */
  applyToSummary(conversation, entry, timeline) {
    if (entry.kind !== 'edit' && entry.kind !== 'recall') return;
    const last = conversation.last_message;
    if (last && last.seq === entry.target_seq) {
      conversation.last_message = timeline?.bySeq.get(entry.target_seq)
        ?? (entry.kind === 'edit'
          ? { ...last, text: entry.text, edited_at: entry.created_at }
          : { ...last, recalled: true, text: null, file: null, file_id: null });
    }
  }

  /**
   * A live recall of a message I had not read takes it off the unread count (only live: a sync
   * after a reconnect comes after the list's fresh count, which already says what is unread).
   */
  uncountRecalled(conversation, entry, timeline) {
    if (entry.kind !== 'recall' || entry.target_seq <= (conversation.read_seq || 0) || !(conversation.unread_count > 0)) return;
    const last = conversation.last_message;
    const target = timeline?.bySeq.get(entry.target_seq) ?? (last?.seq === entry.target_seq ? last : null);
    const author = target?.sender_id ?? entry.sender_id;
    if (author !== this.me.id && (!target || CONTENT_KINDS.has(target.kind))) conversation.unread_count -= 1;
  }

  /** I am no longer a member: the list drops the conversation, an open chat says why. */
  markGone(id, reason) {
    this.gone.set(id, reason);
    for (const pending of this.timelines.get(id)?.pending ?? []) {
      if (pending.state !== 'sending' && pending.state !== 'uploading') {
        pending.state = 'failed';
        pending.error = reason === 'dissolved' ? 'dissolved' : 'not_member';
      }
    }
    this.emit('gone', id);
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
    this.outbox.flushAll();
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
    if (!timeline) this.applyToSummary(conversation, entry, null);
    this.uncountRecalled(conversation, entry, timeline);
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
    if (entry.kind === 'system') {
      const event = entry.system?.event;
      // Someone who is not a member any more is not typing either.
      if (event === 'member_removed' || event === 'member_left') {
        for (const user of [...(entry.system.user_ids ?? []), entry.system.actor_id]) {
          if (event === 'member_removed' && user === entry.system.actor_id) continue;
          this.typing.get(id)?.delete(user);
        }
        this.emit('typing', id);
      }
      if (event === 'member_removed' && entry.system.user_ids?.includes(this.me.id)) this.markGone(id, 'removed');
      else if (event === 'dissolved') this.markGone(id, 'dissolved');
      this.loadConversations().catch(() => {});
    }
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
    // `member_removed` goes to the removed member too, with a stale summary: whether it was me
    // shows in the system entry (see onMessage) or in the list reloaded here.
    if (event === 'created') this.gone.delete(conversation.id); // added (again)
    if (event === 'dissolved' || event === 'left') {
      this.markGone(conversation.id, event);
      return this.loadConversations().catch(() => {});
    }
    if (event === 'member_removed' || this.gone.has(conversation.id)) {
      return this.loadConversations().then(() => this.emit('members', conversation.id)).catch(() => {});
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

  // ---- sending (see outbox.js) -----------------------------------------------------------

  /** Queues a send; `draft` = {kind, text?, file?, reply_to?, mentions?}. */
  send(id, draft) {
    this.outbox.send(id, draft);
  }

  retry(id, clientMsgId) {
    this.outbox.retry(id, clientMsgId);
  }
}
