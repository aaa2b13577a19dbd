// Staying logged in: short-lived access tokens are refreshed without the person noticing, a
// reload keeps the session, and logging out ends it on the server too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natterAndBrowser, newPage, registerViaUi, username, api } from './harness.js';

const env = natterAndBrowser();

test('expired access tokens are refreshed; a reload stays logged in; logout ends the session', { timeout: 60_000 }, async () => {
  const page = await newPage(env.browser, env.server);
  const first = await registerViaUi(page, username('sam'), 'Sam');
  await page.locator('.conn[data-state=online]').waitFor();
  // The server refuses the access token from now on (as when it has expired).
  await page.evaluate(() => { window.natter.api.auth.access_token = 'expired'; });

  // A profile change then: the 401 is answered by one refresh and a retry.
  await page.getByRole('button', { name: /Profile/ }).click();
  const dialog = page.getByRole('dialog', { name: 'Profile' });
  await dialog.getByLabel('About me').fill('still here');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'detached' });
  const rotated = await page.evaluate(() => window.natter.api.auth);
  assert.notEqual(rotated.refresh_token, first.refresh_token);
  assert.equal((await api(env.server, 'GET', '/users/me', rotated.access_token)).bio, 'still here');

  // A reload with a refused access token comes back to the app, not to the login form.
  await page.evaluate(() => {
    const auth = JSON.parse(localStorage.getItem('natter.auth'));
    localStorage.setItem('natter.auth', JSON.stringify({ ...auth, access_token: 'expired', expires_at: 0 }));
  });
  await page.reload();
  await page.locator('.sidebar').waitFor();
  await page.locator('.conn[data-state=online]').waitFor();
  assert.equal(await page.locator('.login-form').count(), 0);

  const beforeLogout = await page.evaluate(() => window.natter.api.auth);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('.login-form').waitFor();
  const refused = await fetch(`${env.server.url}/api/v1/auth/refresh`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ refresh_token: beforeLogout.refresh_token }),
  });
  assert.equal(refused.status, 401);
  assert.equal(await page.evaluate(() => localStorage.getItem('natter.auth')), null);
  assert.deepEqual(page.errors.map(String).filter((e) => !e.includes('401')), []);
});

test('logging out with a conversation open ends everything; Back does not bring the app back', { timeout: 60_000 }, async () => {
  const page = await newPage(env.browser, env.server);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws));
  const me = await registerViaUi(page, username('lena'), 'Lena');
  const other = await api(env.server, 'POST', '/auth/register', null, { username: username('max'), password: 'correct horse battery', nickname: 'Max' });
  const request = await api(env.server, 'POST', '/friend-requests', other.access_token, { user_id: me.user.id });
  await api(env.server, 'POST', `/friend-requests/${request.id}/accept`, me.access_token);
  await page.locator('.convs .conv', { hasText: 'Max' }).click();
  await page.locator('.chat-title', { hasText: 'Max' }).waitFor();
  await page.locator('.conn[data-state=online]').waitFor();
  await page.locator('.composer-input').fill('a draft');

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('.login-form').waitFor();
  assert.equal(await page.locator('.chat, .sidebar, .composer-input').count(), 0);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.deepEqual(await page.evaluate(() => [window.natter.store, window.natter.chat, window.natter.sidebar]), [null, null, null]);
  // Every socket the app opened is closed.
  assert.ok(sockets.length > 0);
  for (const ws of sockets) if (!ws.isClosed()) await ws.waitForEvent('close');

  // Back goes to the chat's address, but without a session it shows the login form, at /.
  await page.goBack();
  await page.locator('.login-form').waitFor();
  assert.equal(await page.locator('.sidebar, .chat').count(), 0);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.deepEqual(page.errors.map(String), []);
});
