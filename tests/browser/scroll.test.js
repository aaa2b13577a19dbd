// A conversation of 10,000 messages: the list renders only what is near the viewport, loads
// history on the way up, and scrolls from end to end without blank screens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natterAndBrowser, newPage, username, api, shot, recordMetric } from './harness.js';

const COUNT = Number(process.env.NATTER_BROWSER_SCROLL_MESSAGES || 10_000);
const env = natterAndBrowser();

async function seed() {
  const register = (name) => api(env.server, 'POST', '/auth/register', null, { username: name, password: 'correct horse battery', nickname: name });
  const reader = await register(username('reader'));
  const writer = await register(username('writer'));
  const request = await api(env.server, 'POST', '/friend-requests', writer.access_token, { user_id: reader.user.id });
  const { conversation } = await api(env.server, 'POST', `/friend-requests/${request.id}/accept`, reader.access_token);
  const started = Date.now();
  let next = 1;
  const worker = async () => {
    while (next <= COUNT) {
      const n = next;
      next += 1;
      const author = n % 7 === 0 ? reader : writer;
      const text = n % 11 === 0 ? `message ${n}\n${'a longer line of text that wraps on narrow screens. '.repeat(3)}` : `message ${n}`;
      await api(env.server, 'POST', `/conversations/${conversation.id}/messages`, author.access_token, { client_msg_id: `seed-${n}`, kind: 'text', text });
    }
  };
  await Promise.all(Array.from({ length: 12 }, worker));
  console.log(`seeded ${COUNT} messages in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { reader, conversation };
}

test(`a ${COUNT}-message conversation renders a small window and scrolls end to end`, { timeout: 400_000 }, async () => {
  const { reader, conversation } = await seed();
  const page = await newPage(env.browser, env.server);
  await page.evaluate((auth) => localStorage.setItem('natter.auth', JSON.stringify(auth)), {
    access_token: reader.access_token, refresh_token: reader.refresh_token, expires_at: Date.now() + 600_000, user: reader.user,
  });
  await page.goto(`${env.server.url}/c/${conversation.id}`);
  await page.locator('.messages .row.msg', { hasText: `message ${COUNT}` }).waitFor();

  // Opening loads only the newest page; scrolling to the top loads older pages, keeping the place.
  const initial = await page.evaluate(() => window.natter.chat.timeline.shown.length);
  assert.ok(initial > 0 && initial <= 50, `${initial} messages loaded on open`);
  for (let round = 1; round <= 3; round += 1) {
    const before = await page.evaluate(() => {
      const scroller = document.querySelector('.messages');
      scroller.scrollTop = 0;
      return window.natter.chat.timeline.shown.length;
    });
    await page.waitForFunction((n) => window.natter.chat.timeline.shown.length > n, before);
  }
  const afterScrolling = await page.evaluate(() => window.natter.chat.timeline.shown.length);
  assert.ok(afterScrolling >= initial + 150, `${afterScrolling} after three pages`);

  // Load the whole history (jumping to the first message pages back through all of it).
  const loadStarted = Date.now();
  await page.evaluate(() => window.natter.chat.jump(1));
  await page.locator('.messages .row.msg[data-seq="1"]').waitFor();
  const loadMs = Date.now() - loadStarted;
  const loaded = await page.evaluate(() => window.natter.chat.timeline.shown.length);
  assert.equal(loaded, COUNT);

  // Scroll from the top to the bottom, one step per frame.
  const result = await page.evaluate(async () => {
    const scroller = document.querySelector('.messages');
    const frames = [];
    let maxRows = 0;
    let maxNodes = 0;
    const blank = [];
    scroller.scrollTop = 0;
    await new Promise((r) => requestAnimationFrame(r));
    // Two screens per frame, as a fast fling would, until the bottom is reached.
    const stride = scroller.clientHeight * 2;
    const atEnd = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2;
    let last = performance.now();
    for (let i = 1; i <= 2000 && !atEnd(); i += 1) {
      scroller.scrollTop += stride;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      frames.push(now - last);
      last = now;
      const rows = scroller.querySelectorAll('.vrow');
      maxRows = Math.max(maxRows, rows.length);
      maxNodes = Math.max(maxNodes, document.getElementsByTagName('*').length);
      const view = scroller.getBoundingClientRect();
      const visible = [...rows].some((row) => {
        const r = row.getBoundingClientRect();
        return r.bottom > view.top && r.top < view.bottom;
      });
      if (!visible) blank.push(i);
    }
    frames.sort((a, b) => a - b);
    return {
      maxRows, maxNodes, blank,
      p50: frames[Math.floor(frames.length * 0.5)], p95: frames[Math.floor(frames.length * 0.95)], max: frames[frames.length - 1],
      atBottom: atEnd(), steps: frames.length,
    };
  });
  console.log(`history of ${COUNT} loaded in ${loadMs} ms; scrolling ${result.steps} frames: at most ${result.maxRows} rows / ${result.maxNodes} elements in the DOM, frame p50 ${result.p50.toFixed(1)} ms, p95 ${result.p95.toFixed(1)} ms, max ${result.max.toFixed(1)} ms`);
  recordMetric('scroll_10k', { messages: COUNT, history_load_ms: loadMs, ...result });
  assert.deepEqual(result.blank, [], 'frames that showed no row');
  assert.ok(result.maxRows < 120, `${result.maxRows} rows in the DOM`);
  assert.ok(result.maxNodes < 2000, `${result.maxNodes} elements in the document`);
  assert.ok(result.atBottom);
  assert.ok(result.p95 < 150, `p95 frame ${result.p95} ms`);
  await page.locator('.messages .row.msg', { hasText: `message ${COUNT}` }).waitFor();
  await shot(page, 'desktop-en-10k');
  assert.deepEqual(page.errors.map(String), []);
});
