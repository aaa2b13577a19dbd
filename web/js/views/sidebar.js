// The sidebar: who I am and the connection state, then three tabs — chats (ordered by activity,
// with last message, unread badge and typing), contacts (requests, friends with presence, find
// people) and message search.

import { h, replace, rafThrottle } from '../dom.js';
import { t, formatTime, languages, lang } from '../i18n.js';
import { userAvatar, avatar } from './avatar.js';
import { summary, systemText } from './message.js';
import { profileDialog, newGroupDialog } from './dialogs.js';
import { icon } from '../icons.js';
import { errorText } from '../errors.js';

export class Sidebar {
  constructor(app) {
    this.app = app;
    this.tab = 'chats';
    this.connection = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite' });
    this.meBox = h('div', { class: 'me' });
    this.panel = h('div', { class: 'panel' });
    this.tabs = ['chats', 'contacts', 'search'].map((name) => h('button', {
      type: 'button', role: 'tab', id: `tab-${name}`, 'aria-controls': 'side-panel', class: 'tab',
      onclick: () => this.show(name),
    }, t(name), name === 'chats' ? h('span', { class: 'badge tab-badge', hidden: true }) : null,
    name === 'contacts' ? h('span', { class: 'badge tab-badge', hidden: true }) : null));
    this.tabs.forEach((tab) => tab.addEventListener('keydown', (e) => this.tabKeys(e)));
    this.panel.id = 'side-panel';
    this.panel.setAttribute('role', 'tabpanel');
    this.searchInput = h('input', { type: 'search', placeholder: t('searchMessages'), 'aria-label': t('searchMessages') });
    this.searchResults = h('ul', { class: 'list results' });
    this.peopleInput = h('input', { type: 'search', placeholder: t('searchPeople'), 'aria-label': t('searchPeople') });
    this.peopleResults = h('ul', { class: 'list' });
    this.searchInput.addEventListener('input', debounce(() => this.searchMessages(), 250));
    this.peopleInput.addEventListener('input', debounce(() => this.searchPeople(), 250));
    this.el = h('aside', { class: 'sidebar', 'aria-label': t('menu') },
      h('header', { class: 'side-header' }, this.meBox, this.connection),
      h('div', { class: 'tabs', role: 'tablist' }, this.tabs),
      this.panel);
    const draw = rafThrottle(() => this.draw());
    const drawMe = () => this.drawMe();
    const drawConnection = () => this.drawConnection();
    this.listeners = [['conversations', draw], ['friends', draw], ['typing', draw], ['users', draw], ['users', drawMe], ['connection', drawConnection]];
    for (const [type, fn] of this.listeners) app.store.addEventListener(type, fn);
    this.drawMe();
    this.drawConnection();
    this.draw();
  }

  destroy() {
    for (const [type, fn] of this.listeners) this.app.store.removeEventListener(type, fn);
  }

  tabKeys(e) {
    const i = this.tabs.indexOf(e.currentTarget);
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      const next = this.tabs[(i + (e.key === 'ArrowRight' ? 1 : this.tabs.length - 1)) % this.tabs.length];
      next.focus();
      next.click();
    }
  }

  show(name) {
    this.tab = name;
    this.draw();
    if (name === 'search') this.searchInput.focus();
  }

  drawMe() {
    const me = this.app.store.me;
    const select = h('select', { 'aria-label': t('language'), class: 'lang', onchange: (e) => this.app.switchLanguage(e.target.value) },
      languages.map(([code, label]) => h('option', { value: code, selected: code === lang() }, label)));
    const notify = 'Notification' in window && Notification.permission === 'default'
      ? h('button', { type: 'button', class: 'icon', 'aria-label': t('notifications'), title: t('notifications'),
        onclick: (e) => { Notification.requestPermission(); e.currentTarget.remove(); } }, icon('bell'))
      : null;
    replace(this.meBox,
      h('button', { type: 'button', class: 'me-button', 'aria-label': `${t('profile')}: ${me.nickname}`, onclick: () => profileDialog(this.app) },
        userAvatar(this.app, me, 36), h('span', { class: 'me-name' }, me.nickname || me.username)),
      h('div', { class: 'me-tools' }, notify, select,
        h('button', { type: 'button', class: 'icon', 'aria-label': t('logout'), title: t('logout'), onclick: () => this.app.logout() }, icon('logout'))));
  }

  drawConnection() {
    const state = this.app.store.connection;
    this.connection.className = `conn conn-${state}`;
    this.connection.dataset.state = state;
    replace(this.connection, h('span', { class: 'dot', 'aria-hidden': 'true' }), t(`conn_${state}`));
  }

  draw() {
    for (const tab of this.tabs) {
      const selected = tab.id === `tab-${this.tab}`;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    const unread = this.app.store.totalUnread();
    const chatsBadge = this.tabs[0].querySelector('.badge');
    chatsBadge.hidden = !unread;
    chatsBadge.textContent = unread > 99 ? '99+' : String(unread);
    const requests = this.app.store.requests.incoming.length;
    const contactsBadge = this.tabs[1].querySelector('.badge');
    contactsBadge.hidden = !requests;
    contactsBadge.textContent = String(requests);
    this.panel.setAttribute('aria-labelledby', `tab-${this.tab}`);
    if (this.drawnTab !== this.tab) {
      // The search fields persist across redraws, so typing in them never loses focus.
      this.drawnTab = this.tab;
      this.dynamic = h('div', { class: 'dynamic' });
      const tools = {
        chats: h('div', { class: 'panel-tools' }, h('button', { type: 'button', class: 'small', onclick: () => newGroupDialog(this.app) }, icon('plus', 14), ' ', t('newGroup'))),
        contacts: [h('div', { class: 'panel-tools' }, this.peopleInput), this.peopleResults],
        search: [h('div', { class: 'panel-tools' }, this.searchInput), this.searchResults],
      }[this.tab];
      replace(this.panel, tools, this.dynamic);
    }
    if (this.tab === 'chats') this.drawChats();
    else if (this.tab === 'contacts') this.drawContacts();
    this.app.updateTitle();
  }

  drawChats() {
    const store = this.app.store;
    const list = store.sortedConversations();
    const items = list.map((c) => {
      const typers = store.typers(c.id);
      const last = c.last_message;
      let preview = last ? (last.kind === 'system' ? systemText(last, this.app) : summary(last)) : '';
      if (last && c.kind === 'group' && last.kind !== 'system') preview = `${store.name(last.sender_id)}: ${preview}`;
      const unread = c.unread_count || 0;
      const active = store.openId === c.id;
      return h('li', null, h('a', {
        href: `/c/${c.id}`, class: `conv${active ? ' active' : ''}${unread ? ' unread' : ''}`, dataset: { id: c.id },
        'aria-current': active ? 'page' : null,
        onclick: (e) => { e.preventDefault(); this.app.navigate(`/c/${c.id}`); },
      },
      c.kind === 'direct' && c.peer ? userAvatar(this.app, c.peer, 40) : avatar(this.app, { id: c.id, name: c.name, file: c.avatar }, 40),
      h('span', { class: 'conv-main' },
        h('span', { class: 'conv-top' }, h('span', { class: 'conv-name' }, c.kind === 'group' ? icon('group', 15) : null, c.kind === 'group' ? ' ' : '', c.name),
          last ? h('time', { class: 'conv-time' }, formatTime(last.created_at)) : null),
        h('span', { class: 'conv-bottom' },
          typers.length ? h('span', { class: 'conv-typing' }, t('typing', { name: store.name(typers[0]) })) : h('span', { class: 'conv-last' }, preview),
          unread ? h('span', { class: 'badge', 'aria-label': t('unreadBadge', { n: unread }) }, unread > 99 ? '99+' : String(unread)) : null))));
    });
    replace(this.dynamic,
      items.length ? h('ul', { class: 'list convs', 'aria-label': t('chats') }, items) : h('p', { class: 'empty' }, t('noChats')));
  }

  drawContacts() {
    const store = this.app.store;
    const incoming = store.requests.incoming.map((r) => h('li', { class: 'person' }, userAvatar(this.app, r.from_user, 36),
      h('span', { class: 'person-main' }, h('span', { class: 'person-name' }, r.from_user.nickname), h('small', null, r.message || `@${r.from_user.username}`)),
      h('button', { type: 'button', class: 'small primary', onclick: () => this.answer(r, 'accept') }, t('accept')),
      h('button', { type: 'button', class: 'small', onclick: () => this.answer(r, 'reject') }, t('reject'))));
    const outgoing = store.requests.outgoing.map((r) => h('li', { class: 'person' }, userAvatar(this.app, r.to_user, 36),
      h('span', { class: 'person-main' }, h('span', { class: 'person-name' }, r.to_user.nickname), h('small', null, `@${r.to_user.username}`)),
      h('button', { type: 'button', class: 'small', onclick: () => this.answer(r, 'cancel') }, t('cancel'))));
    const friends = [...store.friends].sort((a, b) => Number(b.online) - Number(a.online)).map((f) => h('li', null,
      h('a', { href: `/c/${f.conversation_id}`, class: 'person', onclick: (e) => { e.preventDefault(); this.app.navigate(`/c/${f.conversation_id}`); } },
        h('span', { class: 'presence-wrap' }, userAvatar(this.app, f.user, 36), h('span', { class: `presence ${f.online ? 'on' : 'off'}`, 'aria-hidden': 'true' })),
        h('span', { class: 'person-main' }, h('span', { class: 'person-name' }, f.user.nickname || f.user.username),
          h('small', { class: f.online ? 'online' : 'offline' }, f.online ? t('online') : t('offline'))))));
    replace(this.dynamic,
      incoming.length ? [h('h3', null, t('incoming')), h('ul', { class: 'list', 'aria-label': t('incoming') }, incoming)] : null,
      outgoing.length ? [h('h3', null, t('outgoing')), h('ul', { class: 'list', 'aria-label': t('outgoing') }, outgoing)] : null,
      h('h3', null, t('friends'), ` (${friends.length})`), h('ul', { class: 'list friends', 'aria-label': t('friends') }, friends));
  }

  async answer(request, action) {
    try {
      const answer = await this.app.api.post(`/friend-requests/${request.id}/${action}`);
      await Promise.all([this.app.store.loadRequests(), this.app.store.loadFriends(), this.app.store.loadConversations()]);
      if (action === 'accept' && answer?.conversation) this.app.navigate(`/c/${answer.conversation.id}`);
    } catch (error) {
      this.app.toast(errorText(error));
    }
  }

  async searchPeople() {
    const query = this.peopleInput.value.trim();
    if (!query) return replace(this.peopleResults);
    const { users } = await this.app.api.get(`/users?query=${encodeURIComponent(query)}`);
    const store = this.app.store;
    const friendIds = new Set(store.friends.map((f) => f.user.id));
    const pendingIds = new Set(store.requests.outgoing.map((r) => r.to_user.id));
    replace(this.peopleResults, users.filter((u) => u.id !== store.me.id).map((u) => h('li', { class: 'person' },
      userAvatar(this.app, u, 36),
      h('span', { class: 'person-main' }, h('span', { class: 'person-name' }, u.nickname), h('small', null, `@${u.username}`)),
      friendIds.has(u.id) ? null : h('button', {
        type: 'button', class: 'small primary', disabled: pendingIds.has(u.id),
        onclick: async (e) => {
          const button = e.currentTarget;
          try {
            await this.app.api.post('/friend-requests', { user_id: u.id });
            button.disabled = true;
            button.textContent = t('requested');
            store.loadRequests();
          } catch (error) {
            this.app.toast(errorText(error));
          }
        },
      }, pendingIds.has(u.id) ? t('requested') : t('addFriend')))));
    if (!users.length) this.peopleResults.append(h('li', { class: 'empty' }, t('noResults')));
    return undefined;
  }

  async searchMessages() {
    const query = this.searchInput.value.trim();
    if (!query) return replace(this.searchResults);
    let hits;
    try {
      const answer = await this.app.api.get(`/search/messages?q=${encodeURIComponent(query)}`);
      hits = answer.hits ?? answer.results ?? answer.messages ?? [];
    } catch (error) {
      return replace(this.searchResults, h('li', { class: 'empty' }, errorText(error)));
    }
    const store = this.app.store;
    replace(this.searchResults, hits.length ? hits.map((hit) => {
      const message = hit.message || {};
      const conversation = store.conversations.get(hit.conversation_id);
      return h('li', null, h('a', {
        href: `/c/${hit.conversation_id}#${hit.seq}`, class: 'hit',
        onclick: (e) => { e.preventDefault(); this.app.navigate(`/c/${hit.conversation_id}`, hit.seq); },
      },
      h('span', { class: 'conv-top' }, h('span', { class: 'conv-name' }, conversation?.name || '…'),
        message.created_at ? h('time', { class: 'conv-time' }, formatTime(message.created_at)) : null),
      h('span', { class: 'snippet' }, message.sender_id ? `${store.name(message.sender_id)}: ` : '', snippet(hit.snippet ?? message.text ?? ''))));
    }) : h('li', { class: 'empty' }, t('noResults')));
    return undefined;
  }
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** HTML-escaped text back to text. */
function unescape(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name) => {
    if (name[0] === '#') return String.fromCodePoint(parseInt(name[1].toLowerCase() === 'x' ? name.slice(2) : name.slice(1), name[1].toLowerCase() === 'x' ? 16 : 10));
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

/** A search snippet (HTML-escaped, matches in <mark>) as text nodes and <mark>s, never parsed as HTML. */
function snippet(text) {
  const parts = String(text).split(/<\/?mark>/);
  return parts.map((part, i) => (i % 2 ? h('mark', null, unescape(part)) : unescape(part.replace(/<[^>]*>/g, ''))));
}

function debounce(fn, ms) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}
