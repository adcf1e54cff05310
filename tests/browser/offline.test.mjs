// The page with no network after a first visit: the service worker (www/sw.js) serves the app shell
// from its versioned cache, the model comes from Cache Storage, and the numbers are the same. The
// servers themselves are stopped (Playwright's setOffline would not stop a service worker's own
// fetches, so a test built on it could pass with the network up). A new deploy replaces the shell
// whole, and its clean-up never touches the model cache.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';
import { serveHub } from './hub.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const TEXT = 'The delivery was late again and the box was damaged.';
const LABELS = 'shipping, packaging, price';

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
});

after(async () => {
  await browser?.close();
});

/** Opens the page and waits until the service worker controls it (its first takeover reloads once). */
async function open(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.threads && navigator.serviceWorker.controller, null, { timeout: 30000 });
}

/** Types TEXT and LABELS, runs them, and reads the bars (or the error). */
async function classify(page) {
  await page.evaluate(() => { document.getElementById('results').replaceChildren(); document.getElementById('error').textContent = ''; });
  await page.fill('#text', TEXT);
  await page.fill('#labels', LABELS);
  await page.press('#text', 'Control+Enter');
  await page.waitForFunction(() => document.querySelector('#results .bar') || document.getElementById('error').textContent, null, { timeout: 60000 });
  const error = await page.textContent('#error');
  if (error) return { error };
  return page.$$eval('#results .bar', (bars) => bars.map((b) => [b.querySelector('.name').textContent, b.querySelector('.value').textContent]));
}

/** Classifies with `model` (a Hub id or a folder URL) typed into the page. */
async function classifyWith(page, model) {
  await page.fill('#model', model);
  return classify(page);
}

test('after one online visit, a reload with both servers stopped opens the page and classifies the same', async () => {
  const site = await serve(ROOT);
  const hub = await serveHub(ROOT);
  const page = await browser.newPage();
  await open(page, `${site.url}/www/index.html?${new URLSearchParams({ hub: hub.url, backend: 'cpu' })}`);
  const models = ['acme/plain-model', './models/f16-relu/']; // from the Hub, and a folder of the site
  const online = [];
  for (const model of models) online.push(await classifyWith(page, model));
  online.forEach((r) => assert.ok(Array.isArray(r), JSON.stringify(r)));
  assert.equal(await page.isVisible('#offline'), false, 'online, no badge');
  assert.notDeepEqual(online[0], online[1], 'two different models');
  await site.close();
  await hub.close();
  await page.reload();
  await page.waitForFunction(() => document.documentElement.dataset.threads, null, { timeout: 30000 });
  // Before any Classify, the page says what the kept copy of the model in the field is.
  await page.waitForFunction(() => document.getElementById('model-info').dataset.state === 'done', null, { timeout: 30000 });
  assert.equal(await page.textContent('#model-info'), 'f16 · 1.5 MB, on this device');
  for (const [i, model] of models.entries()) assert.deepEqual(await classifyWith(page, model), online[i], model);
  assert.match(await page.textContent('#notes'), /no network: the model comes from the copy kept on this device/);
  assert.equal(await page.isVisible('#offline'), true, 'the page says it is offline');
  // The page lists both as kept on this device.
  await page.click('#stored summary');
  const stored = await page.textContent('#stored-list');
  assert.match(stored, /acme\/plain-model @ main/);
  assert.match(stored, /\/www\/models\/f16-relu\//);
  // Removing one deletes its files and only its files.
  await page.click('#stored-list button[aria-label*="f16-relu"]');
  await page.waitForFunction(() => !document.getElementById('stored-list').textContent.includes('f16-relu'));
  const keys = await page.evaluate(async () => (await (await caches.open('zeroshot-models-v2')).keys()).map((r) => r.url));
  assert.ok(keys.length >= 4 && keys.every((k) => k.includes('/__zeroshot-cache__/')), keys.join('\n'));
  await page.close();
});

test('a new deploy replaces the whole shell on the next visit; the model cache stays', async () => {
  const site = await serve(ROOT);
  const hub = await serveHub(ROOT);
  const context = await browser.newContext();
  const page = await context.newPage();
  const url = `${site.url}/www/index.html?${new URLSearchParams({ model: 'acme/plain-model', hub: hub.url, backend: 'cpu' })}`;
  await open(page, url);
  assert.ok(Array.isArray(await classify(page)));
  const shells = () => page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('zeroshot-shell-')));
  const [before] = await shells();
  // A deploy: a new shell list (new version), and a page that says so.
  const shellFile = `${ROOT}/www/pkg/shell.js`;
  const original = readFileSync(shellFile, 'utf8');
  const html = readFileSync(`${ROOT}/www/index.html`, 'utf8');
  try {
    writeFileSync(shellFile, original.replace(/version: "(\w+)"/, 'version: "$1-next"'));
    writeFileSync(`${ROOT}/www/index.html`, html.replace('</body>', '<p id="deployed">next</p></body>'));
    await page.goto(url); // the visit that finds the new worker: it installs, takes over, the page reloads
    await page.waitForFunction(() => document.getElementById('deployed'), null, { timeout: 30000 });
  } finally {
    writeFileSync(shellFile, original);
    writeFileSync(`${ROOT}/www/index.html`, html);
  }
  assert.deepEqual(await shells(), [`${before}-next`], 'one shell, the new one');
  const models = await page.evaluate(async () => (await (await caches.open('zeroshot-models-v2')).keys()).length);
  assert.ok(models >= 4, `the model cache is kept (${models} entries)`);
  await context.close();
  await site.close();
  await hub.close();
});
