// Round avatars: the picture when there is one, else initials on a colour of the person's own.

import { h, avatarBackground } from '../dom.js';

export function avatar(app, { id, name, file }, size = 36) {
  const initials = (name || '?').trim().slice(0, 2).toUpperCase();
  const el = h('span', { class: 'avatar', 'aria-hidden': 'true', dataset: { size: String(size) } }, initials);
  el.style.setProperty('--avatar-bg', avatarBackground(id));
  el.style.width = el.style.height = `${size}px`;
  if (file) {
    app.api.fileUrl(file).then((url) => {
      el.replaceChildren(h('img', { src: url, alt: '' }));
    }, () => {});
  }
  return el;
}

export function userAvatar(app, user, size) {
  return avatar(app, { id: user?.id, name: user?.nickname || user?.username, file: user?.avatar }, size);
}
