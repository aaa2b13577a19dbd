// One row of the message list: a day divider, a message (text, image, file, voice, system) or a
// local send that is not stored yet.

import { h, formatBytes } from '../dom.js';
import { t, formatTime } from '../i18n.js';
import { avatar } from './avatar.js';
import { icon } from '../icons.js';
import { errorText } from '../errors.js';

export const EMOJIS = ['👍', '❤️', '😂', '😮', '😢', '🎉'];
const MAX_MEDIA = 240;
/** How long a voice message says its transcript is coming (no speech engine never sends one). */
const TRANSCRIPT_WAIT_MS = 2 * 60 * 1000;

export function renderRow(item, ctx) {
  if (item.type === 'day') return h('div', { class: 'row day', role: 'separator' }, h('span', null, item.label));
  if (item.type === 'top') return h('div', { class: 'row top' }, item.label);
  if (item.type === 'pending') return renderPending(item.pending, ctx);
  const m = item.msg;
  if (m.kind === 'system') return h('div', { class: 'row system', dataset: { seq: m.seq } }, systemText(m, ctx.app));
  return renderMessage(m, item.cont, ctx);
}

function renderMessage(m, cont, ctx) {
  const { app } = ctx;
  const own = m.sender_id === app.store.me.id;
  const sender = app.store.users.get(m.sender_id);
  const name = app.store.name(m.sender_id);
  const body = h('div', { class: 'bubble' });
  if (m.reply_to) body.append(replyQuote(m.reply_to, ctx));
  if (m.recalled) {
    body.append(h('em', { class: 'recalled' }, t('recalled')));
  } else {
    body.append(content(m, ctx));
  }
  const foot = h('span', { class: 'stamp' },
    m.edited_at && !m.recalled ? h('span', { class: 'edited' }, t('edited'), ' · ') : null,
    h('time', { datetime: m.created_at }, formatTime(m.created_at)));
  body.append(foot);
  const row = h('div', {
    class: `row msg${own ? ' own' : ''}${cont ? ' cont' : ''}`,
    dataset: { seq: m.seq },
    role: 'article',
    tabindex: '-1',
    'aria-label': `${name}, ${formatTime(m.created_at)}`,
  },
  cont || own ? h('span', { class: 'avatar-gap' }) : avatar(app, { id: m.sender_id, name, file: sender?.avatar }, 32),
  h('div', { class: 'stack' },
    cont || own || ctx.direct ? null : h('div', { class: 'sender' }, name),
    body,
    reactions(m, ctx),
    m.kind === 'voice' && !m.recalled && (m.transcript != null || Date.now() - new Date(m.created_at) < TRANSCRIPT_WAIT_MS) ? transcript(m) : null),
  m.recalled ? null : actions(m, own, ctx));
  return row;
}

function content(m, ctx) {
  const file = m.file || (m.file_id ? { id: m.file_id } : null);
  if (m.kind === 'image' && file) return h('div', { class: 'media-wrap' }, image(file, ctx), m.text ? textNode(m.text, m.mentions, ctx) : null);
  if (m.kind === 'file' && file) return fileCard(file, ctx);
  if (m.kind === 'voice' && file) return voice(file, ctx);
  return textNode(m.text ?? '', m.mentions, ctx);
}

/** Text with @mentions highlighted; built from text nodes, never parsed as HTML. */
function textNode(text, mentions, ctx) {
  const p = h('p', { class: 'text' });
  const names = (mentions || []).map((id) => '@' + ctx.app.store.name(id)).filter((n) => n.length > 1);
  if (!names.length) {
    p.textContent = text;
    return p;
  }
  let rest = text;
  while (rest) {
    let best = -1;
    let found = '';
    for (const n of names) {
      const i = rest.indexOf(n);
      if (i >= 0 && (best < 0 || i < best)) { best = i; found = n; }
    }
    if (best < 0) { p.append(rest); break; }
    p.append(rest.slice(0, best), h('span', { class: 'mention' }, found));
    rest = rest.slice(best + found.length);
  }
  return p;
}

function fitBox(file) {
  if (!file.width || !file.height) return { w: 200, h: 150 };
  const scale = Math.min(1, MAX_MEDIA / Math.max(file.width, file.height));
  return { w: Math.max(40, Math.round(file.width * scale)), h: Math.max(40, Math.round(file.height * scale)) };
}

function image(file, ctx) {
  const box = fitBox(file);
  const img = h('img', { class: 'media', alt: file.name || t('photo'), width: box.w, height: box.h });
  const button = h('button', { class: 'media-button', type: 'button', 'aria-label': `${t('photo')} ${file.name || ''}`, onclick: () => ctx.preview(file) }, img);
  ctx.app.api.fileUrl(file.thumbnail_id || file.id).then((url) => {
    img.src = url;
    img.onload = () => {
      if (!file.width && img.naturalWidth) {
        const fitted = fitBox({ width: img.naturalWidth, height: img.naturalHeight });
        img.width = fitted.w;
        img.height = fitted.h;
        ctx.remeasure();
      }
    };
  }, () => img.classList.add('broken'));
  return button;
}

function fileCard(file, ctx) {
  const link = h('a', { class: 'file-card', href: '#', download: file.name || 'file', 'aria-label': `${t('download')} ${file.name || ''}` },
    h('span', { class: 'file-icon' }, icon('file', 28)),
    h('span', { class: 'file-meta' }, h('span', { class: 'file-name' }, file.name || t('file')),
      h('span', { class: 'file-size' }, file.size != null ? formatBytes(file.size) : '')));
  link.addEventListener('click', async (event) => {
    if (link.dataset.ready) return;
    event.preventDefault();
    link.href = await ctx.app.api.fileUrl(file.id);
    link.dataset.ready = '1';
    link.click();
  });
  return link;
}

function voice(file, ctx) {
  const audio = h('audio', { controls: true, preload: 'none', 'aria-label': t('voice') });
  ctx.app.api.fileUrl(file.id).then((url) => { audio.src = url; }, () => {});
  const seconds = file.duration_ms ? ` ${Math.round(file.duration_ms / 1000)}″` : '';
  return h('div', { class: 'voice' }, h('span', { class: 'voice-label' }, icon('mic', 16), ' ', t('voice'), seconds), audio);
}

function transcript(m) {
  return h('div', { class: 'transcript', 'aria-label': t('transcript') },
    m.transcript != null ? (m.transcript || '—') : h('em', null, t('transcribing')));
}

function replyQuote(seq, ctx) {
  const target = ctx.timeline.bySeq.get(seq);
  const label = target ? `${ctx.app.store.name(target.sender_id)}: ${summary(target)}` : `#${seq}`;
  return h('button', { class: 'quote', type: 'button', onclick: () => ctx.jump(seq) }, label);
}

export function summary(m) {
  if (!m) return '';
  if (m.recalled) return t('recalled');
  if (m.kind === 'image') return `[${t('photo')}]`;
  if (m.kind === 'file') return `[${t('file')}] ${m.file?.name || ''}`;
  if (m.kind === 'voice') return `[${t('voice')}]`;
  return m.text || '';
}

function reactions(m, ctx) {
  if (!m.reactions?.length) return null;
  const me = ctx.app.store.me.id;
  return h('div', { class: 'reactions' }, m.reactions.map((r) => {
    const mine = r.user_ids.includes(me);
    return h('button', {
      type: 'button', class: `reaction${mine ? ' mine' : ''}`, 'aria-pressed': String(mine),
      title: r.user_ids.map((id) => ctx.app.store.name(id)).join(', '),
      onclick: () => ctx.react(m, r.emoji, !mine),
    }, `${r.emoji} ${r.count}`);
  }));
}

function actions(m, own, ctx) {
  const bar = h('div', { class: 'actions' },
    h('button', { type: 'button', 'aria-label': t('reply'), title: t('reply'), onclick: () => ctx.reply(m) }, icon('reply', 18)),
    h('button', { type: 'button', 'aria-label': t('react'), title: t('react'), dataset: { action: 'react' }, onclick: (e) => ctx.pickReaction(m, e.currentTarget) }, icon('smile', 18)),
    own && m.kind === 'text' ? h('button', { type: 'button', 'aria-label': t('edit'), title: t('edit'), onclick: () => ctx.edit(m) }, icon('edit', 18)) : null,
    own ? h('button', { type: 'button', 'aria-label': t('recall'), title: t('recall'), onclick: () => ctx.recall(m) }, icon('recall', 18)) : null);
  return bar;
}

function renderPending(p, ctx) {
  let status;
  if (p.state === 'failed') {
    const permanent = p.error === 'not_member' || p.error === 'dissolved';
    status = h('span', { class: 'failed' }, t('failed'), ': ', errorText(p.error), ' ',
      permanent ? null : h('button', { type: 'button', class: 'link', onclick: () => ctx.retry(p) }, t('retry')));
  } else if (p.state === 'queued') {
    status = h('span', { class: 'queued' }, t('queued'));
  } else if (p.state === 'uploading') {
    status = h('span', null, t('uploading', { p: Math.round(p.progress * 100) }),
      h('progress', { max: '100', value: String(Math.round(p.progress * 100)), 'aria-label': t('uploading', { p: Math.round(p.progress * 100) }) }));
  } else {
    status = h('span', null, t('sending'));
  }
  const what = p.kind === 'text' ? p.text : `[${t(p.kind === 'image' ? 'photo' : p.kind)}] ${p.file?.name || ''}`;
  return h('div', { class: `row msg own pending ${p.state}`, dataset: { cmid: p.client_msg_id } },
    h('span', { class: 'avatar-gap' }),
    h('div', { class: 'stack' },
      h('div', { class: 'bubble' }, h('p', { class: 'text' }, what), h('span', { class: 'stamp state' }, status))));
}

export function systemText(m, app) {
  const s = m.system || {};
  const users = (s.user_ids || []).map((id) => app.store.name(id)).join(', ');
  return t(`sys_${s.event}`, { actor: app.store.name(s.actor_id), users, name: s.name || '', role: s.role ? t(`role_${s.role}`) : '' });
}
