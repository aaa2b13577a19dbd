// The open conversation: header (name, presence or members, typing), the virtualised message
// list grouped by day and sender, and the composer.

import { h, rafThrottle } from '../dom.js';
import { t, formatDay } from '../i18n.js';
import { VList } from './vlist.js';
import { renderRow, EMOJIS } from './message.js';
import { Composer } from './composer.js';
import { groupDialog } from './dialogs.js';
import { icon } from '../icons.js';
import { errorText } from '../errors.js';

const GROUP_GAP_MS = 5 * 60 * 1000;

export class ChatView {
  constructor(app, conversation) {
    this.app = app;
    this.conversation = conversation;
    this.members = [];
    this.timeline = null;
    this.infoButton = null;
    this.listeners = [];
    this.title = h('h2', { class: 'chat-title', id: 'chat-title' });
    this.subtitle = h('div', { class: 'chat-subtitle', 'aria-live': 'polite' });
    this.scroller = h('div', { class: 'messages', role: 'log', 'aria-labelledby': 'chat-title', tabindex: '0' });
    this.latest = h('button', { type: 'button', class: 'jump-latest', hidden: true, onclick: () => this.list.scrollToBottom() }, '↓ ', t('jumpToLatest'));
    this.composer = new Composer(app, this);
    this.el = h('section', { class: 'chat', 'aria-label': t('chatWith', { name: conversation.name }) },
      h('header', { class: 'chat-header' },
        h('button', { type: 'button', class: 'icon back', 'aria-label': t('back'), onclick: () => app.navigate('/') }, icon('back')),
        h('div', { class: 'chat-heading' }, this.title, this.subtitle),
        conversation.kind === 'group'
          ? (this.infoButton = h('button', { type: 'button', class: 'icon', 'aria-label': t('groupInfo'), title: t('groupInfo'), onclick: () => groupDialog(app, this.conversation.id) }, icon('info')))
          : null),
      h('div', { class: 'messages-wrap' }, this.scroller, this.latest),
      this.composer.el);
    this.list = new VList(this.scroller, {
      render: (item) => renderRow(item, this.ctx),
      estimate: (item) => (item.type === 'msg' ? (item.cont ? 40 : 62) : 36),
      onNearTop: () => this.loadOlder(),
      onScroll: () => this.onScroll(),
      canAnchor: (item) => item.type === 'msg' || item.type === 'pending',
    });
    this.ctx = {
      app,
      timeline: null,
      direct: conversation.kind === 'direct',
      remeasure: () => this.list.remeasure(),
      reply: (m) => this.composer.setReply(m),
      edit: (m) => this.composer.setEdit(m),
      recall: (m) => this.recall(m),
      react: (m, emoji, add) => this.react(m, emoji, add),
      pickReaction: (m, anchor) => this.pickReaction(m, anchor),
      retry: (p) => app.store.retry(this.conversation.id, p.client_msg_id),
      jump: (seq) => this.jump(seq),
      preview: (file) => this.preview(file),
    };
    this.scroller.addEventListener('keydown', (e) => this.onListKey(e));
    this.refresh = rafThrottle(() => this.rebuild());
    this.on('timeline', (e) => e.detail.id === conversation.id && this.refresh());
    this.on('users', () => { this.list.nodes.forEach((n) => n.remove()); this.list.nodes.clear(); this.refresh(); this.header(); });
    this.on('typing', (e) => e.detail === conversation.id && this.header());
    this.on('friends', () => this.header());
    this.on('conversations', () => this.header());
    this.on('members', (e) => e.detail === conversation.id && this.loadMembers());
    this.on('connection', () => this.composer.update());
    this.on('gone', (e) => {
      if (e.detail !== conversation.id) return;
      this.header();
      this.composer.update();
      this.refresh();
    });
    this.composer.update();
    this.header();
    this.loadMembers();
  }

  on(type, fn) {
    this.app.store.addEventListener(type, fn);
    this.listeners.push([type, fn]);
  }

  destroy() {
    for (const [type, fn] of this.listeners) this.app.store.removeEventListener(type, fn);
    this.listeners = [];
    this.app.store.atBottom = undefined;
    this.composer.destroy();
    document.querySelector('.emoji-picker')?.remove();
  }

  async load() {
    this.timeline = await this.app.store.openTimeline(this.conversation.id);
    this.ctx.timeline = this.timeline;
    this.rebuild();
    this.list.scrollToBottom();
    this.app.store.markRead(this.conversation.id);
  }

  async loadMembers() {
    if (this.conversation.kind !== 'group' || this.app.store.gone.has(this.conversation.id)) return;
    try {
      const { members } = await this.app.api.get(`/conversations/${this.conversation.id}/members`);
      this.members = members;
      for (const m of members) this.app.store.rememberUser(m.user);
      this.header();
    } catch {
      // Not a member any more: the conversation list will drop it.
    }
  }

  header() {
    const c = this.app.store.conversations.get(this.conversation.id) || this.conversation;
    this.conversation = c;
    this.title.textContent = c.name;
    const typers = this.app.store.typers(c.id);
    const gone = this.app.store.gone.get(c.id);
    let sub;
    if (gone) sub = t(gone === 'removed' ? 'removedNote' : gone === 'left' ? 'leftNote' : 'dissolvedNote');
    else if (typers.length === 1) sub = t('typing', { name: this.app.store.name(typers[0]) });
    else if (typers.length > 1) sub = t('typingMany');
    else if (c.kind === 'group') sub = t('membersCount', { n: c.member_count });
    else {
      const friend = this.app.store.friends.find((f) => f.user.id === c.peer?.id);
      sub = friend?.online ? t('online') : t('offline');
    }
    this.subtitle.textContent = sub;
    // Not a member: the group's info is not mine to see any more.
    if (this.infoButton) this.infoButton.disabled = Boolean(gone);
    this.subtitle.classList.toggle('typing', typers.length > 0);
  }

  /** Items for the list: day dividers, messages (continued when the same sender goes on), sends. */
  rebuild() {
    const tl = this.timeline;
    if (!tl) return;
    const items = [];
    items.push({ type: 'top', key: 'top', label: tl.hasOlder ? t('loadingOlder') : t('startOfChat'), version: `${tl.hasOlder}` });
    let lastDay = '';
    let prev = null;
    for (const seq of tl.shown) {
      const msg = tl.bySeq.get(seq);
      const day = new Date(msg.created_at).toDateString();
      if (day !== lastDay) {
        items.push({ type: 'day', key: `d-${day}`, label: formatDay(msg.created_at), version: day });
        lastDay = day;
        prev = null;
      }
      const cont = Boolean(prev && prev.kind !== 'system' && msg.kind !== 'system' && prev.sender_id === msg.sender_id
        && new Date(msg.created_at) - new Date(prev.created_at) < GROUP_GAP_MS);
      // A reply shows its quote: an edit or recall of the quoted message redraws the reply too.
      const quoted = msg.reply_to ? tl.bySeq.get(msg.reply_to) : null;
      const quote = quoted ? `${quoted._v || 0}:${quoted.recalled ? 'r' : ''}` : '';
      items.push({ type: 'msg', key: `s-${seq}`, msg, cont, version: `${msg._v || 0}:${cont}:${msg.transcript != null}:${quote}` });
      prev = msg;
    }
    for (const p of tl.pending) {
      items.push({ type: 'pending', key: `p-${p.client_msg_id}`, pending: p, version: `${p.state}:${p.error}:${Math.round(p.progress * 20)}` });
    }
    this.list.setItems(items);
    this.onScroll();
  }

  /** Arrow keys walk the messages (focusing one shows its actions to Tab to); End goes to the latest. */
  onListKey(e) {
    if (e.target.closest('.actions, .reactions, .quote, .media-button, .file-card, audio')) return;
    const rows = this.list.items.filter((item) => item.type === 'msg' && item.msg.kind !== 'system');
    if (!rows.length) return;
    if (e.key === 'End') {
      e.preventDefault();
      this.list.scrollToBottom();
      return;
    }
    if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    e.preventDefault();
    const current = e.target.closest?.('.row.msg')?.dataset.seq;
    let index = rows.findIndex((item) => String(item.msg.seq) === current);
    if (index < 0) index = rows.length;
    index = Math.max(0, Math.min(rows.length - 1, index + (e.key === 'ArrowUp' ? -1 : 1)));
    const key = rows[index].key;
    if (!this.list.nodes.has(key)) this.list.scrollToKey(key);
    const node = this.list.nodes.get(key);
    node?.focus();
    node?.scrollIntoView({ block: 'nearest' });
  }

  onScroll() {
    const atBottom = this.list.distanceFromBottom() < 40;
    this.app.store.atBottom = atBottom;
    this.latest.hidden = atBottom;
    if (atBottom && document.visibilityState === 'visible') this.app.store.markRead(this.conversation.id);
  }

  async loadOlder() {
    if (!this.timeline?.hasOlder) return;
    await this.app.store.loadOlder(this.conversation.id);
  }

  /** Brings an entry into view (loading older pages as needed) and highlights it. */
  async jump(seq) {
    const tl = this.timeline || (await this.app.store.openTimeline(this.conversation.id));
    while (tl.minSeq > seq && tl.hasOlder) {
      if (!(await this.app.store.loadOlder(this.conversation.id, 200))) break;
    }
    this.rebuild();
    if (this.list.scrollToKey(`s-${seq}`)) {
      requestAnimationFrame(() => {
        const node = this.list.nodes.get(`s-${seq}`);
        if (node) {
          node.classList.add('flash');
          node.focus({ preventScroll: true });
          setTimeout(() => node.classList.remove('flash'), 2000);
        }
      });
    }
  }

  async react(m, emoji, add) {
    const path = `/conversations/${this.conversation.id}/messages/${m.seq}/reactions/${encodeURIComponent(emoji)}`;
    try {
      await (add ? this.app.api.put(path) : this.app.api.del(path));
    } catch (error) {
      this.app.toast(errorText(error));
    }
  }

  pickReaction(m, anchor) {
    document.querySelector('.emoji-picker')?.remove();
    // The row keeps its actions shown while the picker is open: focus can then go back to the
    // button that opened it (a hidden button cannot take focus, which dropped it to the body).
    const row = anchor.closest('.row.msg');
    row?.classList.add('picking');
    const close = () => {
      picker.remove();
      // The row may have been redrawn meanwhile: its new React button stands in for the old one.
      const target = anchor.isConnected ? anchor
        : this.scroller.querySelector(`.row.msg[data-seq="${m.seq}"] .actions button[data-action="react"]`);
      const targetRow = target?.closest('.row.msg');
      targetRow?.classList.add('picking');
      target?.focus();
      // Focused, the row shows its actions by itself (:focus-within).
      row?.classList.remove('picking');
      targetRow?.classList.remove('picking');
    };
    const picker = h('div', { class: 'emoji-picker', role: 'menu', 'aria-label': t('react') },
      EMOJIS.map((emoji) => h('button', {
        type: 'button', role: 'menuitem', 'aria-label': emoji,
        onclick: () => { close(); this.react(m, emoji, !(m.reactions || []).some((r) => r.emoji === emoji && r.user_ids.includes(this.app.store.me.id))); },
      }, emoji)));
    picker.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') close();
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        const buttons = [...picker.querySelectorAll('button')];
        const i = buttons.indexOf(document.activeElement);
        buttons[(i + (e.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length].focus();
      }
    });
    const rect = anchor.getBoundingClientRect();
    picker.style.top = `${Math.max(8, rect.top - 48)}px`;
    picker.style.left = `${Math.max(8, Math.min(window.innerWidth - 280, rect.left - 120))}px`;
    document.body.append(picker);
    picker.querySelector('button').focus();
    setTimeout(() => document.addEventListener('click', (e) => {
      if (picker.contains(e.target)) return;
      picker.remove();
      row?.classList.remove('picking');
    }, { once: true }));
  }

  async recall(m) {
    if (!confirm(t('confirmRecall'))) return;
    try {
      await this.app.api.del(`/conversations/${this.conversation.id}/messages/${m.seq}`);
    } catch (error) {
      this.app.toast(errorText(error));
    }
  }

  async preview(file) {
    const url = await this.app.api.fileUrl(file.id);
    const dialog = h('dialog', { class: 'preview', 'aria-label': file.name || t('photo') },
      h('img', { src: url, alt: file.name || t('photo') }),
      h('form', { method: 'dialog' }, h('button', { class: 'icon close', 'aria-label': t('close') }, icon('close'))));
    dialog.addEventListener('close', () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }

  focus() {
    this.composer.input.focus();
  }
}
