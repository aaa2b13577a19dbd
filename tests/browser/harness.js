// Shared test harness: starts a real natter (the debug binary) on a free port with a throwaway
// data directory, launches Debian's headless Chromium through playwright-core, and offers a few
// helpers that act like a person (fill the forms, click the buttons) plus API calls for seeding.

import { spawn, spawnSync } from 'node:child_process';
import { before, after } from 'node:test';
import { mkdtempSync, mkdirSync, rmSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = join(ROOT, 'target/browser-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

const BINARY = process.env.NATTER_BIN || join(ROOT, 'target/debug/natter');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** A natter process of its own; `stop()` kills it and removes its data. */
export async function startNatter(extraEnv = {}) {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: cargo build -p natter first`);
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'natter-browser-'));
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' };
  // natter refuses unknown NATTER_* keys, NATTER_BIN (which binary to test) included.
  for (const key of Object.keys(env)) if (key.startsWith('NATTER_')) delete env[key];
  // Every test user registers from 127.0.0.1; the per-address limit has its own Rust tests.
  env.NATTER_AUTH__REGISTER_MAX_PER_ADDRESS = '0';
  // Some tests fill a conversation through the API faster than a person types; the send limit
  // has its own Rust tests (tests/api/abuse.rs).
  env.NATTER_LIMITS__MESSAGES_PER_USER = '0';
  Object.assign(env, extraEnv);
  const child = spawn(BINARY, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log = (log + chunk).slice(-20000); });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`natter exited (${child.exitCode}):\n${log}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`natter did not become ready:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium; `fakeAudio` (a WAV file) is what its fake microphone hears (else a beep). */
export function launchBrowser({ fakeAudio } = {}) {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'];
  if (fakeAudio) args.push(`--use-file-for-fake-audio-capture=${fakeAudio}`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/**
 * With NATTER_TEST_WHISPER_MODEL (scripts/test.sh sets it): natter's settings for the embedded
 * Whisper, and a WAV of `sentence` spoken by espeak-ng for the fake microphone. Else nothing.
 */
export function speechSetup(sentence) {
  const model = process.env.NATTER_TEST_WHISPER_MODEL;
  if (!model) return { env: {}, fakeAudio: undefined };
  const dir = mkdtempSync(join(tmpdir(), 'natter-browser-voice-'));
  const wav = join(dir, 'speech.wav');
  const made = spawnSync('espeak-ng', ['-v', 'en-us+m3', '-s', '140', '-g', '5', '-w', wav, sentence]);
  if (made.status !== 0) throw new Error(`espeak-ng failed: ${made.stderr}`);
  return { env: { NATTER_SPEECH__ENGINE: 'whisper', NATTER_SPEECH__MODEL_DIR: model, NATTER_SPEECH__THREADS: '1' }, fakeAudio: wav };
}

/**
 * A natter and a Chromium of this test file's own: started before its tests, stopped after them.
 * Read `server` and `browser` from the returned object inside the tests.
 */
export function natterAndBrowser() {
  const shared = { server: undefined, browser: undefined };
  before(async () => {
    shared.server = await startNatter();
    shared.browser = await launchBrowser();
  });
  after(async () => {
    await shared.browser?.close();
    await shared.server?.stop();
  });
  return shared;
}

export const PHONE = { viewport: { width: 390, height: 780 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const DESKTOP = { viewport: { width: 1280, height: 800 } };

let counter = 0;
/** A username unique within this run. */
export function username(base) {
  counter += 1;
  return `${base}${Date.now().toString(36).slice(-4)}${counter}`;
}

/** Calls the HTTP API directly (for seeding and for checks the UI cannot show). */
export async function api(server, method, path, token, body) {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { ...(body ? { 'Content-Type': 'application/json' } : {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Opens a page in a fresh context (its own storage: another person or device). */
export async function newPage(browser, server, { locale = 'en-US', ...options } = DESKTOP) {
  const context = await browser.newContext({ locale, ...DESKTOP, ...options });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error));
  page.on('console', (message) => message.type() === 'error' && page.errors.push(new Error(message.text())));
  await page.goto(server.url);
  return page;
}

/** Registers through the form, as a person would. */
export async function registerViaUi(page, name, nickname = name) {
  await page.getByRole('button', { name: /Create an account|注册账号/ }).click();
  await page.locator('#lg-user').fill(name);
  await page.locator('#lg-pass').fill('correct horse battery');
  await page.locator('#lg-nick').fill(nickname);
  await page.locator('form.login-form button[type=submit]').click();
  await page.locator('.sidebar').waitFor();
  return page.evaluate(() => window.natter.api.auth);
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** Texts of the messages in the open chat, in the order shown (rendered rows only). */
export function shownTexts(page) {
  return page.evaluate(() => [...document.querySelectorAll('.messages .row.msg:not(.pending)')]
    .map((row) => ({ seq: Number(row.dataset.seq), text: row.querySelector('.text')?.textContent ?? '', top: row.getBoundingClientRect().top }))
    .sort((a, b) => a.top - b.top)
    .map(({ seq, text }) => ({ seq, text })));
}

/** Adds a measurement to target/browser-artifacts/metrics.json. */
export function recordMetric(name, value) {
  const file = join(ARTIFACTS, 'metrics.json');
  const metrics = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  metrics[name] = value;
  writeFileSync(file, JSON.stringify(metrics, null, 2));
}

