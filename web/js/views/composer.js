// The message composer: a growing textarea (Enter sends, Shift+Enter breaks the line, and Enter
// while an IME is composing never sends), @mention autocomplete in groups, reply and edit modes,
// file and image attachments, and voice recording with MediaRecorder.

import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { summary } from './message.js';
import { icon } from '../icons.js';
import { errorText } from '../errors.js';

export class Composer {
  constructor(app, chat) {
    this.app = app;
    this.chat = chat;
    this.replyTo = null;
    this.editing = null;
    this.mentions = new Map(); // display text -> user id
    this.suggest = { items: [], index: 0, start: -1 };
    this.banner = h('div', { class: 'composer-banner', hidden: true });
    this.popup = h('ul', { class: 'mention-popup', role: 'listbox', id: 'mention-popup', hidden: true });
    this.input = h('textarea', {
      rows: '1', class: 'composer-input', placeholder: t('messagePlaceholder'), 'aria-label': t('messagePlaceholder'),
      'aria-autocomplete': 'list', 'aria-controls': 'mention-popup',
    });
    this.fileInput = h('input', { type: 'file', hidden: true, 'aria-hidden': 'true', tabindex: '-1' });
    this.recordButton = h('button', { type: 'button', class: 'icon', 'aria-label': t('record'), title: t('record'), onclick: () => this.toggleRecording() }, icon('mic'));
    // Said near where one types: offline (sends wait in the outbox), or no longer a member.
    this.notice = h('p', { class: 'composer-notice', role: 'status', hidden: true });
    this.el = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      this.notice, this.banner, this.popup,
      h('div', { class: 'composer-row' },
        h('button', { type: 'button', class: 'icon', 'aria-label': t('attach'), title: t('attach'), onclick: () => this.pick('') }, icon('attach')),
        h('button', { type: 'button', class: 'icon', 'aria-label': t('image'), title: t('image'), onclick: () => this.pick('image/*') }, icon('image')),
        this.input, this.recordButton,
        h('button', { type: 'submit', class: 'send', 'aria-label': t('send') }, t('send'))),
      this.fileInput);
    this.input.addEventListener('keydown', (e) => this.onKey(e));
    this.input.addEventListener('input', () => this.onInput());
    this.fileInput.addEventListener('change', () => this.onFiles());
  }

  get conversation() {
    return this.chat.conversation;
  }

  /** Shows the offline notice, or closes the composer for good when I am not a member any more. */
  update() {
    const store = this.app.store;
    const gone = store.gone.get(this.conversation.id);
    let notice = null;
    if (gone) notice = t(`${gone}Composer`);
    else if (store.connection === 'offline') notice = t('offlineNotice');
    this.notice.hidden = !notice;
    this.notice.textContent = notice ?? '';
    this.notice.classList.toggle('gone', Boolean(gone));
    if (gone && !this.closed) {
      this.closed = true;
      if (this.recorder) this.recorder.stop();
      this.reset();
      this.closeSuggestions();
      this.input.value = '';
      for (const control of this.el.querySelectorAll('button, textarea, input')) control.disabled = true;
    }
  }

  /** The view is going away: a recording in progress is dropped, not sent. */
  destroy() {
    if (this.recorder) {
      this.recorder.onstop = null;
      this.recorder.stream?.getTracks().forEach((track) => track.stop());
      this.recorder.stop();
      this.recorder = null;
    }
    clearInterval(this.recordTimer);
  }

  onKey(e) {
    // An IME (Chinese, Japanese, …) uses Enter to confirm its candidate: that Enter is not ours.
    if (e.isComposing || e.keyCode === 229) return;
    if (!this.popup.hidden) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const n = this.suggest.items.length;
        this.suggest.index = (this.suggest.index + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
        this.drawSuggestions();
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') {
        e.preventDefault();
        this.choose(this.suggest.items[this.suggest.index]);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        this.closeSuggestions();
        return;
      }
    }
    if (e.key === 'Escape' && (this.replyTo || this.editing)) {
      e.preventDefault();
      this.reset();
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      this.submit();
    }
  }

  onInput() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
    if (this.input.value.trim() && !this.editing) this.app.store.sendTyping(this.conversation.id);
    this.updateSuggestions();
  }

  // ---- mentions --------------------------------------------------------------------------

  updateSuggestions() {
    if (this.conversation.kind !== 'group') return this.closeSuggestions();
    const caret = this.input.selectionStart;
    const before = this.input.value.slice(0, caret);
    const match = /(^|\s)@([^\s@]*)$/.exec(before);
    if (!match) return this.closeSuggestions();
    const query = match[2].toLowerCase();
    const members = this.chat.members.filter((m) => m.user.id !== this.app.store.me.id);
    const items = members.filter((m) => (m.user.nickname || '').toLowerCase().includes(query) || m.user.username.toLowerCase().includes(query)).slice(0, 6);
    if (!items.length) return this.closeSuggestions();
    this.suggest = { items, index: 0, start: caret - match[2].length - 1 };
    this.drawSuggestions();
    return undefined;
  }

  drawSuggestions() {
    replace(this.popup, this.suggest.items.map((m, i) => h('li', {
      role: 'option', id: `mention-${i}`, 'aria-selected': String(i === this.suggest.index), class: i === this.suggest.index ? 'active' : '',
      onmousedown: (e) => { e.preventDefault(); this.choose(m); },
    }, m.user.nickname || m.user.username, h('small', null, ` @${m.user.username}`))));
    this.popup.hidden = false;
    this.input.setAttribute('aria-activedescendant', `mention-${this.suggest.index}`);
  }

  closeSuggestions() {
    this.popup.hidden = true;
    this.input.removeAttribute('aria-activedescendant');
  }

  choose(member) {
    const label = `@${member.user.nickname || member.user.username}`;
    const value = this.input.value;
    const caret = this.input.selectionStart;
    this.input.value = `${value.slice(0, this.suggest.start)}${label} ${value.slice(caret)}`;
    const at = this.suggest.start + label.length + 1;
    this.input.setSelectionRange(at, at);
    this.mentions.set(label, member.user.id);
    this.closeSuggestions();
    this.input.focus();
  }

  // ---- modes -----------------------------------------------------------------------------

  setReply(m) {
    this.editing = null;
    this.replyTo = m;
    this.showBanner(t('replyingTo', { name: this.app.store.name(m.sender_id) }), summary(m));
    this.input.focus();
  }

  setEdit(m) {
    this.replyTo = null;
    this.editing = m;
    this.input.value = m.text || '';
    this.showBanner(t('editing'), summary(m));
    this.input.focus();
  }

  showBanner(title, text) {
    replace(this.banner, h('strong', null, title), h('span', { class: 'banner-text' }, text),
      h('button', { type: 'button', class: 'icon', 'aria-label': t('cancel'), onclick: () => this.reset() }, icon('close', 16)));
    this.banner.hidden = false;
  }

  reset() {
    if (this.editing) this.input.value = '';
    this.replyTo = null;
    this.editing = null;
    this.banner.hidden = true;
    this.onInput();
  }

  // ---- sending ---------------------------------------------------------------------------

  async submit() {
    const text = this.input.value.trim();
    if (!text || this.closed) return;
    const id = this.conversation.id;
    if (this.editing) {
      const seq = this.editing.seq;
      this.reset();
      this.input.value = '';
      try {
        await this.app.api.patch(`/conversations/${id}/messages/${seq}`, { text });
      } catch (error) {
        this.app.toast(errorText(error));
      }
      return;
    }
    const mentions = [...this.mentions.entries()].filter(([label]) => text.includes(label)).map(([, userId]) => userId);
    this.app.store.send(id, { kind: 'text', text, reply_to: this.replyTo?.seq, mentions: [...new Set(mentions)] });
    this.input.value = '';
    this.mentions.clear();
    this.reset();
    this.chat.list.scrollToBottom();
  }

  pick(accept) {
    this.fileInput.accept = accept;
    this.fileInput.click();
  }

  onFiles() {
    for (const file of this.fileInput.files) this.sendFile(file);
    this.fileInput.value = '';
  }

  sendFile(file, kind) {
    if (this.closed) return;
    const chosen = kind || (file.type.startsWith('image/') ? 'image' : 'file');
    this.app.store.send(this.conversation.id, { kind: chosen, file, reply_to: this.replyTo?.seq });
    this.reset();
    this.chat.list.scrollToBottom();
  }

  // ---- voice -----------------------------------------------------------------------------

  async toggleRecording() {
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      this.app.toast(t('micDenied'));
      return;
    }
    const type = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm'].find((m) => MediaRecorder.isTypeSupported(m)) || '';
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks = [];
    const started = Date.now();
    this.recorder = recorder;
    recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    recorder.onstop = () => {
      clearInterval(this.recordTimer);
      stream.getTracks().forEach((track) => track.stop());
      this.recorder = null;
      this.recordButton.replaceChildren(icon('mic'));
      this.recordButton.setAttribute('aria-label', t('record'));
      this.recordButton.classList.remove('recording');
      const mime = (recorder.mimeType || 'audio/webm').split(';')[0];
      const blob = new Blob(chunks, { type: mime });
      if (blob.size && Date.now() - started > 300) {
        const ext = mime.includes('ogg') ? 'ogg' : 'webm';
        this.sendFile(new File([blob], `voice-${new Date().toISOString().replace(/[:.]/g, '-')}.${ext}`, { type: mime }), 'voice');
      }
    };
    recorder.start();
    this.recordButton.classList.add('recording');
    this.recordButton.replaceChildren(icon('stop'));
    this.recordButton.setAttribute('aria-label', t('stopRecording'));
    this.recordTimer = setInterval(() => {
      this.recordButton.title = t('recording', { s: Math.round((Date.now() - started) / 1000) });
    }, 500);
  }
}
