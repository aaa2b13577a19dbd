// What changes under an open screen: a recall or edit reaches the chat list and the quotes of
// replies, a person removed from a group is told so and cannot type into it, and a message sent
// while offline waits in the outbox and goes out by itself on reconnect (issue 9, items 16–19).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { natterAndBrowser, newPage, username, api, shot } from './harness.js';

const env = natterAndBrowser();
const people = {};

/** A person registered through the API, and a browser page logged in as them. */
async function person(nickname, page = true) {
  const auth = await api(env.server, 'POST', '/auth/register', null, { username: username(nickname.toLowerCase()), password: 'correct horse battery', nickname });
  const who = { auth, id: auth.user.id, token: auth.access_token };
  if (page) who.page = await openAs(who);
  return who;
}

async function openAs(who, options) {
  const page = await newPage(env.browser, env.server, options);
  await page.evaluate((a) => localStorage.setItem('natter.auth', JSON.stringify({
    access_token: a.access_token, refresh_token: a.refresh_token, expires_at: Date.now() + a.expires_in * 1000, user: a.user,
  })), who.auth);
  await page.goto(env.server.url);
  await page.locator('.conn[data-state=online]').waitFor();
  return page;
}

async function befriend(a, b) {
  const request = await api(env.server, 'POST', '/friend-requests', a.token, { user_id: b.id });
  const { conversation } = await api(env.server, 'POST', `/friend-requests/${request.id}/accept`, b.token);
  return conversation.id;
}

const say = (who, conversation, text, extra = {}) => api(env.server, 'POST', `/conversations/${conversation}/messages`, who.token,
  { client_msg_id: randomUUID(), kind: 'text', text, ...extra });
const conv = (page, name) => page.locator('.convs .conv').filter({ has: page.locator('.conv-name', { hasText: name }) });
const row = (page, text) => page.locator('.messages .row.msg:not(.pending)', { hasText: text });
const openChat = async (page, name) => {
  await conv(page, name).click();
  await page.locator('.chat-title', { hasText: name }).waitFor();
};

// Alice and Bob, friends, each with a page open (made by the first test that needs them: a
// `before` hook of this file could run before the harness has started natter).
let ready;
function friends() {
  ready ??= (async () => {
    people.alice = await person('Alice');
    people.bob = await person('Bob');
    people.direct = await befriend(people.alice, people.bob);
  })();
  return ready;
}

test('a recalled or edited last message changes the chat-list preview live, and a recalled unread one is not unread', { timeout: 60_000 }, async () => {
  await friends();
  const { alice, bob, direct } = people;
  const bobList = bob.page;
  await conv(bobList, 'Alice').waitFor();
  const first = await say(alice, direct, 'first words');
  await conv(bobList, 'Alice').locator('.conv-last', { hasText: 'first words' }).waitFor();
  await api(env.server, 'PATCH', `/conversations/${direct}/messages/${first.seq}`, alice.token, { text: 'first words, corrected' });
  await conv(bobList, 'Alice').locator('.conv-last', { hasText: 'first words, corrected' }).waitFor();

  const secret = await say(alice, direct, 'the secret plan');
  await conv(bobList, 'Alice').locator('.conv-last', { hasText: 'the secret plan' }).waitFor();
  await conv(bobList, 'Alice').locator('.badge', { hasText: '2' }).waitFor();
  await api(env.server, 'DELETE', `/conversations/${direct}/messages/${secret.seq}`, alice.token);
  await conv(bobList, 'Alice').locator('.conv-last', { hasText: 'This message was recalled' }).waitFor();
  assert.equal(await conv(bobList, 'Alice').locator('.conv-last', { hasText: 'secret' }).count(), 0);
  // Only the corrected first message is unread now.
  await conv(bobList, 'Alice').locator('.badge', { hasText: /^1$/ }).waitFor();
  await bobList.waitForFunction(() => document.title === '(1) natter');
  assert.deepEqual(bobList.errors.map(String), []);
});

test('after a reload a recalled message is not counted as unread', { timeout: 60_000 }, async () => {
  await friends();
  const page = await openAs(people.bob);
  await conv(page, 'Alice').locator('.conv-last', { hasText: 'This message was recalled' }).waitFor();
  assert.equal(await conv(page, 'Alice').locator('.badge').textContent(), '1');
  await page.context().close();
});

test('a reply quote follows an edit and a recall of the quoted message', { timeout: 60_000 }, async () => {
  await friends();
  const { alice, bob, direct } = people;
  await openChat(bob.page, 'Alice');
  const quoted = await say(alice, direct, 'meet at noon');
  await say(bob, direct, 'sounds good', { reply_to: quoted.seq });
  const reply = row(bob.page, 'sounds good');
  await reply.locator('.quote', { hasText: 'Alice: meet at noon' }).waitFor();

  await api(env.server, 'PATCH', `/conversations/${direct}/messages/${quoted.seq}`, alice.token, { text: 'meet at one' });
  await row(bob.page, 'meet at one').locator('.edited').waitFor();
  await reply.locator('.quote', { hasText: 'Alice: meet at one' }).waitFor();

  await api(env.server, 'DELETE', `/conversations/${direct}/messages/${quoted.seq}`, alice.token);
  await reply.locator('.quote', { hasText: 'Alice: This message was recalled' }).waitFor();
  assert.equal(await reply.locator('.quote', { hasText: 'meet at' }).count(), 0);
});

test('someone removed from a group with its chat open is told so and cannot send', { timeout: 60_000 }, async () => {
  await friends();
  const { alice, bob } = people;
  const carol = await person('Carol');
  await befriend(carol, alice);
  const group = await api(env.server, 'POST', '/conversations', alice.token, { kind: 'group', name: 'Book club', member_ids: [bob.id, carol.id] });
  await openChat(carol.page, 'Book club');
  await carol.page.locator('.chat-subtitle', { hasText: '3 members' }).waitFor();
  await carol.page.locator('.composer-input').fill('half-typed');

  await api(env.server, 'DELETE', `/conversations/${group.id}/members/${carol.id}`, alice.token);
  await carol.page.locator('.chat-subtitle', { hasText: 'You were removed from this group' }).waitFor();
  await carol.page.locator('.composer-notice', { hasText: 'You were removed from this group' }).waitFor();
  assert.ok(await carol.page.locator('.composer-input').isDisabled());
  assert.ok(await carol.page.locator('.composer button.send').isDisabled());
  assert.ok(await carol.page.getByRole('button', { name: 'Group info' }).isDisabled());
  await shot(carol.page, 'desktop-en-removed');
  await conv(carol.page, 'Book club').waitFor({ state: 'detached' });
  // The history stays readable; the others see one member fewer.
  await carol.page.locator('.row.system', { hasText: 'removed' }).waitFor();
  await openChat(bob.page, 'Book club');
  await bob.page.locator('.chat-subtitle', { hasText: '2 members' }).waitFor();
  assert.deepEqual(carol.page.errors.map(String), []);
  await carol.page.context().close();
});

test('a message sent while offline waits, the composer says so, and it goes out once on reconnect', { timeout: 90_000 }, async () => {
  await friends();
  const { alice, bob, direct } = people;
  await openChat(alice.page, 'Bob');
  await openChat(bob.page, 'Alice');
  await alice.page.context().setOffline(true);
  await alice.page.locator('.conn[data-state=offline]').waitFor();
  await alice.page.locator('.composer-notice', { hasText: 'You are offline' }).waitFor();
  const input = alice.page.locator('.composer-input');
  for (const text of ['queued one', 'queued two']) {
    await input.fill(text);
    await input.press('Enter');
  }
  await alice.page.locator('.row.pending.queued', { hasText: 'queued two' }).locator('.queued', { hasText: 'Waiting for the connection' }).waitFor();
  assert.equal(await alice.page.locator('.row.pending.failed').count(), 0);

  await alice.page.context().setOffline(false);
  await alice.page.locator('.conn[data-state=online]').waitFor({ timeout: 30_000 });
  await row(alice.page, 'queued two').waitFor();
  await row(bob.page, 'queued two').waitFor();
  await alice.page.locator('.composer-notice').waitFor({ state: 'hidden' });
  assert.equal(await alice.page.locator('.row.pending').count(), 0);
  const page = await api(env.server, 'GET', `/conversations/${direct}/messages?limit=10`, bob.token);
  const texts = page.messages.map((m) => m.text).reverse();
  assert.deepEqual(texts.filter((t) => t?.startsWith('queued')), ['queued one', 'queued two']);
});
