// Errors people can read (in their language, plain for the expected ones) and accessibility:
// WCAG AA contrast of avatar initials and role labels, focus back to the opener after the
// reaction picker, an h1 on the app screen (issue 9, items 20 and 21).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { natterAndBrowser, newPage, registerViaUi, username, api } from './harness.js';

const env = natterAndBrowser();

async function registerApi(nickname) {
  const auth = await api(env.server, 'POST', '/auth/register', null, { username: username(nickname.toLowerCase()), password: 'correct horse battery', nickname });
  return { auth, id: auth.user.id, token: auth.access_token, username: auth.user.username };
}

/** In the page: WCAG contrast of an element's text against the first opaque background behind it. */
function contrastOf(el) {
  const rgba = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const lin = (c) => { const v = c / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  let node = el;
  let bg = null;
  while (node && node.nodeType === 1) {
    const c = rgba(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
    node = node.parentElement;
  }
  bg ??= [255, 255, 255];
  const fg = rgba(getComputedStyle(el).color).slice(0, 3);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}

test('expected errors read as plain sentences, in English and in Chinese', { timeout: 60_000 }, async () => {
  const taken = await registerApi('Taken');
  for (const [locale, takenText, wrongText] of [
    ['en-US', 'That username is taken. Choose another one.', 'Wrong username or password.'],
    ['zh-CN', '该用户名已被占用，请换一个。', '用户名或密码错误。'],
  ]) {
    const page = await newPage(env.browser, env.server, { locale });
    await page.getByRole('button', { name: /Create an account|注册账号/ }).click();
    await page.locator('#lg-user').fill(taken.username);
    await page.locator('#lg-pass').fill('correct horse battery');
    await page.locator('form.login-form button[type=submit]').click();
    await page.locator('.login-form .error', { hasText: takenText }).waitFor();
    assert.equal(await page.locator('.login-form .error').textContent(), takenText);

    await page.getByRole('button', { name: /Have an account|已有账号/ }).click();
    await page.locator('#lg-user').fill(taken.username);
    await page.locator('#lg-pass').fill('not the password');
    await page.locator('form.login-form button[type=submit]').click();
    await page.locator('.login-form .error', { hasText: wrongText }).waitFor();
    await page.context().close();
  }
});

test('an error the server sends inside the app is translated too', { timeout: 60_000 }, async () => {
  const page = await newPage(env.browser, env.server, { locale: 'zh-CN' });
  await registerViaUi(page, username('wen'), 'Wen');
  // Asking the same person twice: the second request is `request_pending`.
  const other = await registerApi('Other');
  await page.getByRole('tab', { name: '联系人' }).click();
  await page.getByRole('searchbox', { name: '按用户名或昵称查找用户' }).fill(other.username);
  const add = page.locator('.person', { hasText: other.username }).getByRole('button', { name: '加为好友' });
  await add.waitFor();
  await page.evaluate((id) => window.natter.api.post('/friend-requests', { user_id: id }), other.id);
  await add.click();
  await page.locator('.toast', { hasText: '已有一条待处理的好友申请。' }).waitFor();
  assert.equal(await page.locator('.toast', { hasText: /出错了|already/ }).count(), 0);
  await page.context().close();
});

test('avatar initials and the owner label reach WCAG AA contrast; the app screen has an h1', { timeout: 60_000 }, async () => {
  const owner = await registerApi('Gold');
  const friends = [];
  for (const name of ['Ann', 'Ben', 'Cy', 'Dee', 'Eve', 'Fay']) {
    const friend = await registerApi(name);
    const request = await api(env.server, 'POST', '/friend-requests', friend.token, { user_id: owner.id });
    await api(env.server, 'POST', `/friend-requests/${request.id}/accept`, owner.token);
    friends.push(friend);
  }
  await api(env.server, 'POST', '/conversations', owner.token, { kind: 'group', name: 'Colours', member_ids: friends.map((f) => f.id) });
  for (const scheme of ['light', 'dark']) {
    const page = await newPage(env.browser, env.server, { colorScheme: scheme });
    await page.evaluate((a) => localStorage.setItem('natter.auth', JSON.stringify({ ...a, expires_at: Date.now() + 600_000 })), owner.auth);
    await page.goto(env.server.url);
    await page.locator('.convs .conv', { hasText: 'Colours' }).waitFor();
    const onScreen = await page.evaluate((measure) => {
      const contrast = new Function(`return (${measure})`)();
      return Math.min(...[...document.querySelectorAll('.avatar')].filter((a) => !a.querySelector('img')).map(contrast));
    }, contrastOf.toString());
    assert.ok(onScreen >= 4.5, `avatar initials on screen: contrast ${onScreen.toFixed(2)}:1 (${scheme})`);
    // Every hue an id can give, not only the ones on screen.
    const worst = await page.evaluate(async (measure) => {
      const contrast = new Function(`return (${measure})`)();
      const base = document.querySelector('link[rel=modulepreload]').href.replace(/main\.js$/, '');
      const { avatarBackground } = await import(`${base}dom.js`);
      const probe = document.createElement('span');
      probe.className = 'avatar';
      probe.textContent = 'AB';
      document.body.append(probe);
      let min = Infinity;
      for (let i = 0; i < 3000; i += 1) {
        probe.style.setProperty('--avatar-bg', avatarBackground(`user-${i}-${i * 7919}`));
        min = Math.min(min, contrast(probe));
      }
      probe.remove();
      return min;
    }, contrastOf.toString());
    assert.ok(worst >= 4.5, `avatar initials contrast ${worst.toFixed(2)}:1 (${scheme})`);

    await page.locator('.convs .conv', { hasText: 'Colours' }).click();
    await page.getByRole('button', { name: 'Group info' }).click();
    const label = page.getByRole('dialog', { name: 'Group info' }).locator('.role-owner');
    await label.waitFor();
    const ratio = await label.evaluate((el, measure) => new Function(`return (${measure})`)()(el), contrastOf.toString());
    assert.ok(ratio >= 4.5, `owner label contrast ${ratio.toFixed(2)}:1 (${scheme})`);
    await page.getByRole('dialog', { name: 'Group info' }).getByRole('button', { name: 'Close' }).click();
    assert.equal(await page.locator('h1').count(), 1, 'one h1 on the app screen');
    assert.equal(await page.locator('h1').textContent(), 'natter');
    assert.deepEqual(page.errors.map(String), []);
    await page.context().close();
  }
});

test('Escape in the reaction picker gives focus back to the React button', { timeout: 60_000 }, async () => {
  const a = await registerApi('Pia');
  const b = await registerApi('Quinn');
  const request = await api(env.server, 'POST', '/friend-requests', a.token, { user_id: b.id });
  const { conversation } = await api(env.server, 'POST', `/friend-requests/${request.id}/accept`, b.token);
  await api(env.server, 'POST', `/conversations/${conversation.id}/messages`, b.token, { client_msg_id: randomUUID(), kind: 'text', text: 'react to me' });
  const page = await newPage(env.browser, env.server);
  await page.evaluate((auth) => localStorage.setItem('natter.auth', JSON.stringify({ ...auth, expires_at: Date.now() + 600_000 })), a.auth);
  await page.goto(`${env.server.url}/c/${conversation.id}`);
  await page.locator('.messages .row.msg', { hasText: 'react to me' }).waitFor();

  // Keyboard only: into the log, up to the message, Tab to Reply, Tab to React, Enter.
  await page.locator('.messages').focus();
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'React');
  await page.keyboard.press('Enter');
  await page.locator('.emoji-picker').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('role')), 'menuitem');
  await page.keyboard.press('Escape');
  await page.locator('.emoji-picker').waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'React');
  assert.equal(await page.evaluate(() => document.activeElement.closest('.row.msg')?.textContent.includes('react to me')), true);
  assert.deepEqual(page.errors.map(String), []);
});

test('every visible text on the chat list, a chat and the contacts reaches WCAG AA, light and dark', { timeout: 60_000 }, async () => {
  const a = await registerApi('Ann');
  const b = await registerApi('Bo');
  const request = await api(env.server, 'POST', '/friend-requests', b.token, { user_id: a.id });
  const { conversation } = await api(env.server, 'POST', `/friend-requests/${request.id}/accept`, a.token);
  const say = (who, text) => api(env.server, 'POST', `/conversations/${conversation.id}/messages`, who.token, { client_msg_id: randomUUID(), kind: 'text', text });
  await say(b, 'hi');
  await say(a, 'mine');
  await say(b, 'unread one');
  await api(env.server, 'POST', '/conversations', a.token, { kind: 'group', name: 'G', member_ids: [b.id] });
  for (const scheme of ['light', 'dark']) {
    const page = await newPage(env.browser, env.server, { colorScheme: scheme });
    await page.evaluate((auth) => localStorage.setItem('natter.auth', JSON.stringify({ ...auth, expires_at: Date.now() + 600_000 })), a.auth);
    await page.goto(env.server.url);
    await page.locator('.conn[data-state=online]').waitFor();
    // Text (direct text nodes) against the first opaque background behind it; 3:1 for large text.
    const scan = () => page.evaluate(() => {
      const rgba = (t) => (t.match(/[\d.]+/g) || []).map(Number);
      const lum = ([r, g, b]) => { const l = (c) => { const v = c / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * l(r) + 0.7152 * l(g) + 0.0722 * l(b); };
      const out = [];
      for (const el of document.querySelectorAll('body *')) {
        if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
        const cs = getComputedStyle(el);
        if (cs.visibility === 'hidden' || cs.display === 'none' || el.closest('.visually-hidden')) continue;
        let node = el; let bg = null;
        while (node && node.nodeType === 1) { const c = rgba(getComputedStyle(node).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; } node = node.parentElement; }
        bg ??= rgba(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3);
        if (bg.length < 3) bg = [255, 255, 255];
        let fg = rgba(cs.color); const alpha = (fg[3] ?? 1) * Number(cs.opacity);
        fg = fg.slice(0, 3).map((c, i) => c * alpha + bg[i] * (1 - alpha));
        const [x, y] = [lum(fg), lum(bg)].sort((p, q) => q - p);
        const ratio = (x + 0.05) / (y + 0.05);
        const large = parseFloat(cs.fontSize) >= 24 || (parseFloat(cs.fontSize) >= 18.66 && Number(cs.fontWeight) >= 700);
        if (ratio < (large ? 3 : 4.5)) out.push(`${ratio.toFixed(2)} ${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}" fg=${cs.color} bg=${bg}`);
      }
      return out;
    });
    assert.deepEqual(await scan(), [], `chat list (${scheme})`);
    await page.locator('.convs .conv', { hasText: 'Bo' }).click();
    await page.locator('.row.msg', { hasText: 'mine' }).hover();
    assert.deepEqual(await scan(), [], `chat (${scheme})`);
    await page.getByRole('tab', { name: 'Contacts' }).click();
    assert.deepEqual(await scan(), [], `contacts (${scheme})`);
    await page.context().close();
  }
});
