// Modal dialogs (native <dialog>: focus stays inside, Escape closes): profile, new group, group info.

import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { userAvatar } from './avatar.js';
import { icon } from '../icons.js';
import { errorText } from '../errors.js';

export function modal(title, body, { onClose } = {}) {
  const heading = h('h2', { id: `dlg-${Date.now()}` }, title);
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': heading.id },
    h('header', null, heading,
      h('button', { type: 'button', class: 'icon', 'aria-label': t('close'), onclick: () => dialog.close() }, icon('close'))),
    body);
  dialog.addEventListener('close', () => { dialog.remove(); onClose?.(); });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

export function profileDialog(app) {
  const me = app.store.me;
  const nickname = h('input', { id: 'pf-nick', value: me.nickname, maxlength: '64', required: true });
  const bio = h('textarea', { id: 'pf-bio', rows: '3', maxlength: '500' });
  bio.value = me.bio || '';
  const avatarBox = h('div', { class: 'avatar-edit' }, userAvatar(app, me, 72));
  const file = h('input', { type: 'file', accept: 'image/*', id: 'pf-avatar' });
  let avatarId;
  file.addEventListener('change', async () => {
    const chosen = file.files[0];
    if (!chosen) return;
    try {
      const stored = await app.api.upload(chosen);
      avatarId = stored.id;
      replace(avatarBox, userAvatar(app, { ...me, avatar: stored.id }, 72));
    } catch (error) {
      app.toast(errorText(error));
    }
  });
  const form = h('form', { class: 'form' },
    avatarBox,
    h('label', { for: 'pf-avatar' }, t('changeAvatar')), file,
    h('label', { for: 'pf-nick' }, t('nickname')), nickname,
    h('label', { for: 'pf-bio' }, t('bio')), bio,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('save'))));
  const dialog = modal(t('profile'), form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body = { nickname: nickname.value.trim(), bio: bio.value };
      if (avatarId) body.avatar = avatarId;
      app.store.me = await app.api.patch('/users/me', body);
      app.store.rememberUser(app.store.me);
      app.store.emit('users');
      dialog.close();
    } catch (error) {
      app.toast(errorText(error));
    }
  });
}

// Live: redrawn (keeping what is ticked) when the friend list changes, e.g. a request accepted
// while the dialog is open; it stops listening once it has left the page.
function friendPicker(app, exclude = new Set()) {
  const picker = h('fieldset', { class: 'picker' });
  const draw = () => {
    const ticked = new Set(checked(picker));
    const boxes = app.store.friends.filter((f) => !exclude.has(f.user.id)).map((f) => {
      const id = `pick-${f.user.id}`;
      const box = h('input', { type: 'checkbox', id, value: f.user.id });
      box.checked = ticked.has(f.user.id);
      return h('label', { class: 'pick', for: id }, box, userAvatar(app, f.user, 28), f.user.nickname || f.user.username);
    });
    picker.replaceChildren(h('legend', null, t('friends')), ...(boxes.length ? boxes : [h('p', { class: 'muted' }, t('noResults'))]));
  };
  draw();
  let shown = false;
  const redraw = () => {
    if (picker.isConnected) shown = true;
    else if (shown) return app.store.removeEventListener('friends', redraw);
    draw();
  };
  app.store.addEventListener('friends', redraw);
  return picker;
}

const checked = (root) => [...root.querySelectorAll('input[type=checkbox]:checked')].map((i) => i.value);

export function newGroupDialog(app) {
  const name = h('input', { id: 'grp-name', required: true, maxlength: '64' });
  const picker = friendPicker(app);
  const form = h('form', { class: 'form' },
    h('label', { for: 'grp-name' }, t('groupName')), name, picker,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('create'))));
  const dialog = modal(t('newGroup'), form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const conversation = await app.api.post('/conversations', { kind: 'group', name: name.value.trim(), member_ids: checked(picker) });
      app.store.conversations.set(conversation.id, conversation);
      app.store.emit('conversations');
      dialog.close();
      app.navigate(`/c/${conversation.id}`);
    } catch (error) {
      app.toast(errorText(error));
    }
  });
}

export async function groupDialog(app, id) {
  const body = h('div', { class: 'group-info' });
  const dialog = modal(t('groupInfo'), body);
  const draw = async () => {
    const conversation = await app.api.get(`/conversations/${id}`);
    const { members } = await app.api.get(`/conversations/${id}/members`);
    const myRole = conversation.role;
    const manage = myRole === 'owner' || myRole === 'admin';
    const act = (fn) => async () => {
      try { await fn(); await draw(); } catch (error) { app.toast(errorText(error)); }
    };
    const name = h('input', { id: 'gi-name', value: conversation.name, maxlength: '64', disabled: !manage });
    const memberRows = members.map((m) => {
      const me = m.user.id === app.store.me.id;
      const canChange = !me && m.role !== 'owner' && myRole === 'owner';
      const canRemove = !me && m.role !== 'owner' && (myRole === 'owner' || (myRole === 'admin' && m.role === 'member'));
      return h('li', { class: 'member' }, userAvatar(app, m.user, 28),
        h('span', { class: 'member-name' }, m.user.nickname || m.user.username),
        h('span', { class: `role role-${m.role}` }, t(`role_${m.role}`)),
        canChange ? h('button', { type: 'button', class: 'small', onclick: act(() => app.api.patch(`/conversations/${id}/members/${m.user.id}`, { role: m.role === 'admin' ? 'member' : 'admin' })) },
          m.role === 'admin' ? t('makeMember') : t('makeAdmin')) : null,
        canRemove ? h('button', { type: 'button', class: 'small danger', onclick: act(() => app.api.del(`/conversations/${id}/members/${m.user.id}`)) }, t('remove')) : null);
    });
    const picker = friendPicker(app, new Set(members.map((m) => m.user.id)));
    replace(body,
      h('form', { class: 'form inline', onsubmit: (e) => { e.preventDefault(); act(() => app.api.patch(`/conversations/${id}`, { name: name.value.trim() }))(); } },
        h('label', { for: 'gi-name' }, t('groupName')), name,
        manage ? h('button', { type: 'submit' }, t('rename')) : null),
      h('h3', null, t('members'), ` (${members.length})`),
      h('ul', { class: 'members' }, memberRows),
      manage ? h('form', { class: 'form', onsubmit: (e) => { e.preventDefault(); const ids = checked(picker); if (ids.length) act(() => app.api.post(`/conversations/${id}/members`, { user_ids: ids }))(); } },
        h('h3', null, t('addMembers')), picker, h('button', { type: 'submit' }, t('add'))) : null,
      h('div', { class: 'buttons' },
        myRole !== 'owner' ? h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!confirm(t('confirmLeave'))) return;
          try { await app.api.del(`/conversations/${id}/members/${app.store.me.id}`); dialog.close(); app.leftConversation(id); } catch (error) { app.toast(errorText(error)); }
        } }, t('leave')) : null,
        myRole === 'owner' ? h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!confirm(t('confirmDissolve'))) return;
          try { await app.api.del(`/conversations/${id}`); dialog.close(); app.leftConversation(id); } catch (error) { app.toast(errorText(error)); }
        } }, t('dissolve')) : null));
  };
  try {
    await draw();
  } catch (error) {
    app.toast(errorText(error));
    dialog.close();
  }
}
