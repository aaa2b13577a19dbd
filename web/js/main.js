// natter's web client: boots the app, owns routing (/ and /c/<conversation id>), the page title,
// desktop notifications and toasts. Served by natter itself; plain ES modules, no build step.

import { h, replace } from './dom.js';
import { t, setLang, lang } from './i18n.js';
import { Api } from './api.js';
import { Store } from './store.js';
import { loginView } from './views/login.js';
import { Sidebar } from './views/sidebar.js';
import { ChatView } from './views/chat.js';
import { summary } from './views/message.js';
import { icon } from './icons.js';

class App {
  constructor(root) {
    this.root = root;
    this.api = new Api();
    this.api.onLogout = () => this.showLogin();
    this.store = null;
    this.chat = null;
    this.toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(this.toasts);
    window.addEventListener('popstate', () => this.route());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.store?.openId && this.store.atBottom !== false) this.store.markRead(this.store.openId);
    });
    setLang(lang());
  }

  async boot() {
    if (!this.api.loggedIn) return this.showLogin();
    try {
      await this.enter();
    } catch {
      this.api.clearAuth();
      this.showLogin();
    }
    return undefined;
  }

  showLogin(mode = 'login') {
    this.teardown();
    // Whatever the address was, the login screen lives at / (Back then never lands on a chat route).
    if (location.pathname !== '/') history.replaceState(null, '', '/');
    document.body.dataset.view = 'login';
    replace(this.root, loginView(this, mode));
    document.title = `${t('login')} · natter`;
  }

  /**
   * Ends the signed-in app: every view lets go of the store (views first, as they unsubscribe
   * from it), dialogs and pickers close, the socket closes and the state is dropped.
   */
  teardown() {
    this.closeChat();
    this.sidebar?.destroy();
    this.sidebar = null;
    this.main = null;
    this.store?.stop();
    this.store = null;
    for (const el of document.querySelectorAll('dialog, .emoji-picker')) el.remove();
    this.toasts.replaceChildren();
  }

  async enter() {
    this.teardown();
    this.store = new Store(this.api);
    await this.store.start();
    this.store.addEventListener('incoming', (e) => this.notify(e.detail));
    this.store.addEventListener('conversations', () => this.updateTitle());
    this.main = h('main', { class: 'main' });
    this.sidebar = new Sidebar(this);
    document.body.dataset.view = 'app';
    this.mountShell();
    await this.route();
  }

  /** The app screen: its one h1 (for screen readers and the outline; the design needs no title). */
  mountShell() {
    replace(this.root, h('div', { class: 'shell' }, h('h1', { class: 'visually-hidden' }, 'natter'), this.sidebar.el, this.main));
  }

  navigate(path, seq) {
    if (location.pathname !== path) history.pushState(null, '', path);
    return this.route(seq);
  }

  async route(seq) {
    if (!this.store) {
      // Logged out (Back after logging out, say): no chat route shows without a session.
      if (location.pathname !== '/') history.replaceState(null, '', '/');
      return;
    }
    const match = /^\/c\/([^/]+)$/.exec(location.pathname);
    const id = match ? decodeURIComponent(match[1]) : null;
    const conversation = id && this.store.conversations.get(id);
    if (!conversation) {
      if (id) history.replaceState(null, '', '/');
      this.closeChat();
      replace(this.main, h('div', { class: 'placeholder' }, h('span', { class: 'logo' }, icon('chat', 56)), h('p', null, t('pickChat'))));
      document.body.dataset.pane = 'list';
      this.sidebar.draw();
      return;
    }
    if (this.chat?.conversation.id !== id) {
      this.closeChat();
      this.store.openId = id;
      this.chat = new ChatView(this, conversation);
      replace(this.main, this.chat.el);
      await this.chat.load();
      this.chat.focus();
    }
    document.body.dataset.pane = 'chat';
    this.sidebar.draw();
    if (seq) await this.chat.jump(seq);
  }

  closeChat() {
    this.chat?.destroy();
    this.chat = null;
    if (this.store) this.store.openId = null;
  }



  leftConversation(id) {
    this.store.conversations.delete(id);
    this.store.emit('conversations');
    this.navigate('/');
  }

  async logout() {
    // The views go first: nothing may act on the session while it is being ended.
    this.teardown();
    await this.api.logout();
    this.showLogin();
  }

  switchLanguage(code) {
    setLang(code);
    if (this.store) {
      const path = location.pathname;
      this.chat?.destroy();
      this.chat = null;
      this.main = h('main', { class: 'main' });
      this.sidebar.destroy();
      this.sidebar = new Sidebar(this);
      this.mountShell();
      history.replaceState(null, '', path);
      this.route();
    } else {
      this.showLogin();
    }
  }

  updateTitle() {
    if (!this.store) return;
    const unread = this.store.totalUnread();
    document.title = `${unread ? `(${unread}) ` : ''}natter`;
  }

  notify({ conversation, entry }) {
    if (document.visibilityState === 'visible' || !('Notification' in window) || Notification.permission !== 'granted') return;
    const from = this.store.name(entry.sender_id);
    const note = new Notification(conversation.kind === 'group' ? conversation.name : from, {
      body: conversation.kind === 'group' ? `${from}: ${summary(entry)}` : summary(entry),
      tag: conversation.id,
    });
    note.onclick = () => {
      window.focus();
      this.navigate(`/c/${conversation.id}`);
      note.close();
    };
  }

  toast(text) {
    const el = h('div', { class: 'toast' }, text);
    this.toasts.append(el);
    setTimeout(() => el.remove(), 5000);
  }
}

const app = new App(document.getElementById('app'));
app.boot();
// For the browser tests and for debugging from the console.
window.natter = app;
