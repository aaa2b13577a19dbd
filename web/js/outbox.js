// The outbox: local sends not stored yet, per conversation and in order. A send that cannot reach
// the server waits (`queued`) and goes out again when the connection is back, with the same
// client_msg_id, so the server answers a resend of something it already stored with that entry and
// nothing doubles. A send the server refused for good is `failed`, with the reason, and waits for
// Retry.

/** Sends that did not reach the server (or met a server in trouble) are worth repeating. */
export function isTransient(error) {
  return !error?.status || error.status >= 500 || error.status === 429;
}

const RETRY_WHILE_ONLINE_MS = 3000;

export class Outbox {
  constructor(store) {
    this.store = store;
    this.running = new Map(); // conversation id -> {again} of the flush under way
    this.timer = null;
  }

  /** Queues a send; `draft` = {kind, text?, file?, reply_to?, mentions?}. */
  send(id, draft) {
    const pending = { ...draft, client_msg_id: crypto.randomUUID(), state: 'queued', progress: 0, created_at: new Date().toISOString() };
    this.store.timelines.get(id).pending.push(pending);
    this.store.emit('timeline', { id });
    this.flush(id);
  }

  retry(id, clientMsgId) {
    const pending = this.store.timelines.get(id)?.pending.find((p) => p.client_msg_id === clientMsgId);
    if (!pending || pending.state !== 'failed') return;
    pending.state = 'queued';
    pending.error = null;
    this.flush(id);
  }

  flushAll() {
    for (const id of this.store.timelines.keys()) this.flush(id);
  }

  /** Delivers the queued sends of a conversation one after the other (so they keep their order). */
  async flush(id) {
    if (this.running.has(id)) {
      this.running.get(id).again = true;
      return;
    }
    const run = { again: true };
    this.running.set(id, run);
    try {
      while (run.again && !this.store.stopped) {
        run.again = false;
        const timeline = this.store.timelines.get(id);
        for (const pending of [...(timeline?.pending ?? [])]) {
          if (pending.state !== 'queued' || this.store.gone.has(id)) continue;
          if (!(await this.deliver(id, pending))) break;
        }
      }
    } finally {
      this.running.delete(id);
    }
    const waiting = this.store.timelines.get(id)?.pending.some((p) => p.state === 'queued');
    // Still queued though the socket is up (the HTTP request failed on its own): try again soon;
    // otherwise the reconnect flushes.
    if (waiting && this.store.connection === 'online' && !this.store.stopped) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.flushAll(), RETRY_WHILE_ONLINE_MS);
    }
  }

  /** One try; answers false when the server could not be reached (the rest then waits too). */
  async deliver(id, pending) {
    const { store } = this;
    const timeline = store.timelines.get(id);
    pending.state = pending.file && !pending.file_id ? 'uploading' : 'sending';
    store.emit('timeline', { id });
    let reached = true;
    try {
      if (pending.file && !pending.file_id) {
        const stored = await store.api.upload(pending.file, (p) => {
          pending.progress = p;
          store.emit('timeline', { id, pending });
        });
        pending.file_id = stored.id;
        pending.state = 'sending';
      }
      // The same client_msg_id on every try: the server answers a resend with the original entry.
      const entry = await store.api.post(`/conversations/${id}/messages`, {
        client_msg_id: pending.client_msg_id,
        kind: pending.kind,
        text: pending.text || undefined,
        file_id: pending.file_id,
        reply_to: pending.reply_to ?? undefined,
        mentions: pending.mentions?.length ? pending.mentions : undefined,
      });
      timeline.pending = timeline.pending.filter((p) => p !== pending);
      store.accept(id, timeline, entry);
      const conversation = store.conversations.get(id);
      if (conversation) {
        conversation.last_seq = Math.max(conversation.last_seq, entry.seq);
        conversation.read_seq = Math.max(conversation.read_seq, entry.seq);
      }
      if (entry.seq > timeline.maxSeq) store.sync(id);
      store.emit('conversations');
    } catch (error) {
      if (isTransient(error)) {
        pending.state = 'queued';
        reached = false;
      } else {
        pending.state = 'failed';
        pending.error = error.code || 'unknown';
        // Not a member any more (removed, or the group dissolved): the chat says so.
        if (error.status === 404 || error.code === 'not_a_group') store.loadConversations().catch(() => {});
      }
    }
    store.emit('timeline', { id });
    return reached;
  }
}
