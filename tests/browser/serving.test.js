// How natter serves the web client: caching, compression, the Content-Security-Policy, the
// client-route fallback that never shadows the API, and the size of the first load.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natterAndBrowser, registerViaUi, username, recordMetric } from './harness.js';

const env = natterAndBrowser();

test('index.html is revalidated, assets are immutable and versioned, both gzip-compressed', async () => {
  const index = await fetch(`${env.server.url}/`, { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  const etag = index.headers.get('etag');
  assert.ok(etag);
  const html = await index.text();
  const script = /src="(\/assets\/[0-9a-f]{12}\/js\/main\.js)"/.exec(html);
  assert.ok(script, html);
  assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)/, 'no inline scripts');

  const again = await fetch(`${env.server.url}/`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);

  // fetch() decodes gzip itself; ask without decoding through a raw request size comparison.
  const js = await fetch(`${env.server.url}${script[1]}`, { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /javascript/);
  assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal(js.headers.get('content-encoding'), 'gzip');
  const plain = await fetch(`${env.server.url}${script[1]}`, { headers: { 'Accept-Encoding': 'identity' } });
  assert.equal(plain.headers.get('content-encoding'), null);

  // An asset under an old version is served, but must be revalidated.
  const stale = await fetch(`${env.server.url}/assets/000000000000/js/main.js`);
  assert.equal(stale.status, 200);
  assert.equal(stale.headers.get('cache-control'), 'no-cache');
  assert.equal((await fetch(`${env.server.url}/assets/000000000000/js/nope.js`)).status, 404);
});

test('every page answer carries a strict Content-Security-Policy', async () => {
  for (const path of ['/', '/c/some-conversation', '/favicon.svg']) {
    const response = await fetch(`${env.server.url}${path}`);
    assert.equal(response.status, 200, path);
    const csp = response.headers.get('content-security-policy');
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' blob: data:", "media-src 'self' blob:", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(directive), `${path}: ${directive} in ${csp}`);
    }
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  }
});

test('client routes get the app; the API and operational endpoints are never shadowed', async () => {
  const route = await fetch(`${env.server.url}/c/abc`);
  assert.match(route.headers.get('content-type'), /^text\/html/);
  for (const path of ['/api/v1/nope', '/api', '/missing.png', '/assets/x']) {
    const response = await fetch(`${env.server.url}${path}`);
    assert.equal(response.status, 404, path);
    assert.deepEqual((await response.json()).error.code, 'not_found');
  }
  assert.equal((await (await fetch(`${env.server.url}/healthz`)).json()).status, 'ok');
  assert.ok((await fetch(`${env.server.url}/openapi.json`)).headers.get('content-type').includes('json'));
  assert.equal((await fetch(`${env.server.url}/api/v1/users/me`)).status, 401);
  assert.equal((await fetch(`${env.server.url}/`, { method: 'POST' })).status, 404);
});

test('first load is at most 300 KB compressed and breaks no CSP rule', { timeout: 60_000 }, async () => {
  // A fresh context has an empty cache: this is what a first visit costs.
  const context = await env.browser.newContext();
  await context.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error));
  await page.goto(env.server.url);
  await page.locator('.login-form').waitFor();
  const bytes = await page.evaluate(() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return {
      transferred: entries.reduce((sum, e) => sum + e.transferSize, 0),
      decoded: entries.reduce((sum, e) => sum + e.decodedBodySize, 0),
      files: entries.length,
    };
  });
  console.log(`first load: ${bytes.files} files, ${(bytes.transferred / 1024).toFixed(1)} KB transferred (${(bytes.decoded / 1024).toFixed(1)} KB uncompressed)`);
  recordMetric('first_load', bytes);
  assert.ok(bytes.transferred > 0);
  assert.ok(bytes.transferred <= 300 * 1024, `${bytes.transferred} bytes`);

  await registerViaUi(page, username('csp'), 'CSP');
  await page.locator('.conn[data-state=online]').waitFor();
  assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
  assert.deepEqual(page.errors.map(String), []);
  await page.context().close();
});
