// The product page (www/index.html) used as a person would, against a local mock of the Hub:
// downloads with progress (typeform's refs/pr/3 fallback, a redirect, no Content-Length), the
// numbers of the `zeroshot` CLI, the cache on reload (and a corrupted entry refetched), no
// network while classifying, bulk CSV import and export, and bad input shown as messages; damaged
// downloads refused and not cached, one run and one load at a time, damaged stored inputs ignored;
// the bulk chart (counts, threshold, filter, exports, kept across reloads), a failed load's message
// and the demo models' note; the weights' format and size shown before any download (Hub, local
// files, a server that ignores Range, a made-up int8 model).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';
import { serveHub } from './hub.mjs';
import { int8Weights, withExtraTensor } from './safetensors.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = `${ROOT}/target/debug/zeroshot`; // built by `cargo test`, which runs first
const ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TEXT = 'The delivery was late again and the box was damaged.';
const LABELS = 'shipping, packaging, <img src=x onerror=alert(1)>, price';

let site;
let hub;
let browser;

before(async () => {
  // The page's demo model, where the build puts it (www/models/ is not committed).
  for (const m of ['typeform-layout', 'bert-vocab', 'roberta-bpe', 'xlmr-unigram', 'deberta-v3']) {
    if (!existsSync(`${ROOT}/www/models/${m}`)) cpSync(`${ROOT}/tests/fixtures/${m}`, `${ROOT}/www/models/${m}`, { recursive: true });
  }
  site = await serve(ROOT);
  hub = await serveHub(ROOT);
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
});

after(async () => {
  await browser?.close();
  await site?.close();
  await hub?.close();
});

/** What the CLI prints for TEXT and LABELS on a fixture folder. */
function cli(fixture, extra = []) {
  const out = execFileSync(CLI, ['--model', `${ROOT}/tests/fixtures/${fixture}`, '--labels', LABELS, '--backend', 'cpu', ...extra, TEXT]);
  return JSON.parse(out.toString());
}

/** A fresh browser profile on the page for `model`, with every request recorded (`downloads`: the
 * GETs without Range, which a probe never makes); `backend: null` leaves the backend to the page. */
async function open(model, { context, hubUrl = hub.url, backend = 'cpu' } = {}) {
  const ctx = context ?? (await browser.newContext({ acceptDownloads: true }));
  const page = await ctx.newPage();
  const requests = [];
  const downloads = [];
  ctx.on('request', (r) => {
    requests.push(r.url());
    if (r.method() === 'GET' && !r.headers().range) downloads.push(r.url());
  });
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  const query = new URLSearchParams({ model, hub: hubUrl, ...(backend && { backend }) });
  await goto(page, `${site.url}/www/index.html?${query}`);
  return { ctx, page, requests, downloads, dialogs };
}

/** Opens the page and waits until it is settled: on a secure origin the service worker's first
 * takeover reloads it once (cross-origin isolation, for threads), and the model's probe has answered. */
async function goto(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.threads, null, { timeout: 20000 });
  await modelInfo(page);
}

/** What the page says of the model's weights, once its probe (or load) has answered. */
async function modelInfo(page) {
  await page.waitForFunction(() => document.getElementById('model-info').dataset.state === 'done', null, { timeout: 20000 });
  return page.textContent('#model-info');
}

/** The downloads (GETs without Range) of a Hub model's weights the mock Hub saw since `since` in its log. */
const weightDownloads = (id, since) => hub.log.slice(since)
  .filter((r) => r.method === 'GET' && !r.range && r.path.startsWith(`/${id}/`) && r.path.endsWith('/model.safetensors'));

/** Types the text and labels, presses Ctrl+Enter, and reads the bars. */
async function classify(page, { text = TEXT, labels = LABELS } = {}) {
  await page.evaluate(() => {
    window.progressSeen = [];
    new MutationObserver(() => window.progressSeen.push(document.getElementById('progress-text').textContent))
      .observe(document.getElementById('progress-text'), { childList: true, characterData: true, subtree: true });
    document.getElementById('results').replaceChildren();
    document.getElementById('error').textContent = '';
  });
  await page.fill('#text', text);
  await page.fill('#labels', labels);
  await page.press('#text', 'Control+Enter');
  const shown = await resultShown(page);
  return shown.error ? shown : { ...shown, progress: await page.evaluate(() => window.progressSeen) };
}

/** Waits for the bars or an error message; {labels, scores} as the bars show them, or {error}. */
async function resultShown(page, timeout = 30000) {
  await page.waitForFunction(() => document.querySelector('#results .bar') || document.getElementById('error').textContent, null, { timeout });
  const error = await page.textContent('#error');
  if (error) return { error };
  const rows = await page.$$eval('#results .bar', (bars) => bars.map((b) => [b.querySelector('.name').textContent, Number(b.querySelector('.value').textContent)]));
  return { labels: rows.map((r) => r[0]), scores: rows.map((r) => r[1]) };
}

function assertLikeCli(got, want) {
  assert.deepEqual(got.labels, want.labels);
  got.scores.forEach((s, i) => assert.ok(Math.abs(s - want.scores[i]) <= 6e-4, `score ${i}: page ${s}, CLI ${want.scores[i]}`));
}

const modelRequests = (requests) => requests.filter((u) => u.startsWith(hub.url));

test('a BERT, a RoBERTa, an XLM-R and a DeBERTa-v3 picked from the list classify as the CLI does', async () => {
  const { ctx, page } = await open('./models/typeform-layout/');
  const demos = [['bert-vocab', /demo BERT/], ['roberta-bpe', /demo RoBERTa/], ['xlmr-unigram', /demo XLM-RoBERTa/], ['deberta-v3', /demo DeBERTa-v3/]];
  for (const [fixture, about] of demos) {
    await page.selectOption('#pick', `./models/${fixture}/`);
    assert.equal(await page.inputValue('#model'), `./models/${fixture}/`);
    assert.match(await page.textContent('#pick-about'), about);
    await page.click('#load');
    assertLikeCli(await classify(page), cli(fixture));
  }
  await ctx.close();
});

test('the template follows the picked model\'s card, unless the user wrote their own', async () => {
  const { ctx, page } = await open('./models/typeform-layout/');
  await page.selectOption('#pick', 'MoritzLaurer/bge-m3-zeroshot-v2.0');
  assert.equal(await page.inputValue('#template'), 'This text is about {}');
  assert.match(await page.textContent('#pick-about'), /100\+ languages/);
  await page.selectOption('#pick', 'typeform/distilbert-base-uncased-mnli');
  assert.equal(await page.inputValue('#template'), 'This example is {}.');
  await page.fill('#template', 'The answer mentions {}.');
  await page.selectOption('#pick', 'MoritzLaurer/roberta-base-zeroshot-v2.0-c');
  assert.equal(await page.inputValue('#template'), 'The answer mentions {}.', 'what the user typed is kept');
  // Typing a listed id shows its card too.
  await page.fill('#model', 'MoritzLaurer/xtremedistil-l6-h256-zeroshot-v1.1-all-33');
  assert.match(await page.textContent('#pick-about'), /smallest/);
  assert.equal(await page.inputValue('#pick'), 'MoritzLaurer/xtremedistil-l6-h256-zeroshot-v1.1-all-33');
  await page.fill('#template', 'This example is {}.');
  await page.selectOption('#pick', 'MoritzLaurer/deberta-v3-xsmall-zeroshot-v1.1-all-33');
  assert.equal(await page.inputValue('#template'), 'This example is about {}');
  assert.match(await page.textContent('#pick-about'), /DeBERTa-v3 xsmall .* int8 about 72 MB/);
  await page.selectOption('#pick', 'MoritzLaurer/mDeBERTa-v3-base-mnli-xnli');
  assert.match(await page.textContent('#pick-about'), /100 languages/);
  await ctx.close();
});

test('the bulk view\'s example answers come in six languages and keep what was typed', async () => {
  const { ctx, page } = await open('./models/deberta-v3/');
  await page.click('#tab-bulk');
  await page.fill('#bulk-text', 'my own answer');
  await page.click('#bulk-example');
  const lines = (await page.inputValue('#bulk-text')).split('\n');
  assert.equal(lines.length, 7);
  assert.equal(lines[0], 'my own answer', 'nothing typed is replaced');
  assert.ok(lines.some((l) => /[ぁ-ん]/.test(l)) && lines.some((l) => /ü|ß|ä/.test(l)), lines.join(' | '));
  await page.click('#bulk-go');
  await page.waitForSelector('#bulk-table tbody tr:nth-child(7)');
  assert.equal(await page.locator('#bulk-table tbody tr').count(), 7, 'every answer, in every language, classified');
  await ctx.close();
});

test('typeform: main has no model.safetensors, so refs/pr/3 is used and said', async () => {
  const { ctx, page, dialogs } = await open('typeform/distilbert-base-uncased-mnli');
  const got = await classify(page);
  assertLikeCli(got, cli('typeform-layout'));
  assert.ok(got.progress.some((p) => /model\.safetensors: [\d.]+ MB of [\d.]+ MB/.test(p)), got.progress.join(' | '));
  assert.match(await page.textContent('#notes'), /using revision refs\/pr\/3/);
  assert.ok(hub.requests.includes('/typeform/distilbert-base-uncased-mnli/resolve/refs%2Fpr%2F3/model.safetensors'));
  assert.deepEqual(dialogs, [], 'a label is text, never HTML');
  assert.equal(await page.$$eval('#results img', (imgs) => imgs.length), 0);
  await ctx.close();
});

test('a redirected model and one served without Content-Length load too', async () => {
  for (const [id, fixture] of [['acme/redirected-model', 'tokenizer-json'], ['acme/no-length-model', 'f16-relu']]) {
    const { ctx, page } = await open(id);
    const got = await classify(page);
    assertLikeCli(got, cli(fixture));
    assert.ok(got.progress.some((p) => p.startsWith('model.safetensors:')), `${id}: ${got.progress.join(' | ')}`);
    await ctx.close();
  }
});

test('a missing model is a clear message and the page keeps working', async () => {
  const { ctx, page } = await open('acme/does-not-exist');
  assert.equal(await modelInfo(page), 'format unknown');
  assert.match(await page.getAttribute('#model-info', 'title'), /cannot fetch model\.safetensors of acme\/does-not-exist at revision main: HTTP 404/);
  const got = await classify(page);
  assert.match(got.error, /cannot fetch config\.json of acme\/does-not-exist at revision main: HTTP 404/);
  await page.fill('#model', 'acme/plain-model');
  assertLikeCli(await classify(page), cli('typeform-layout'));
  await ctx.close();
});

test('reload: the model comes from the cache; a corrupted entry is fetched again', async () => {
  const first = await open('acme/plain-model');
  assertLikeCli(await classify(first.page), cli('typeform-layout'));
  const before = modelRequests(first.requests).length;
  await first.page.reload();
  assertLikeCli(await classify(first.page), cli('typeform-layout'));
  assert.equal(modelRequests(first.requests).length, before, 'no model request on reload');
  // Truncate the cached weights behind the page's back: the size check must catch it.
  await first.page.evaluate(async () => {
    const cache = await caches.open('zeroshot-models-v2');
    const key = (await cache.keys()).find((r) => r.url.endsWith('/model.safetensors'));
    const old = await cache.match(key);
    const half = (await old.arrayBuffer()).slice(0, 1000);
    await cache.put(key, new Response(half, { headers: { 'x-zeroshot-size': old.headers.get('x-zeroshot-size') } }));
  });
  const logged = hub.log.length;
  await first.page.reload();
  assertLikeCli(await classify(first.page), cli('typeform-layout'));
  // Its probe cannot read the cut-off copy's header, so it asks the Hub (HEAD, Range); one download.
  const again = hub.log.slice(logged).filter((r) => r.method === 'GET' && !r.range);
  assert.deepEqual(again.map((r) => r.path), ['/acme/plain-model/resolve/main/model.safetensors']);
  await first.ctx.close();
});

test('weights over several cache chunks (4 MB each) are kept byte for byte', async () => {
  const dir = `${ROOT}/target/test-models/large-typeform-layout`;
  mkdirSync(dir, { recursive: true });
  cpSync(`${ROOT}/tests/fixtures/typeform-layout`, dir, { recursive: true });
  const weights = withExtraTensor(readFileSync(`${ROOT}/tests/fixtures/typeform-layout/model.safetensors`), 2_500_000);
  writeFileSync(`${dir}/model.safetensors`, weights); // about 12 MB: three chunks and a part
  const { ctx, page } = await open('/target/test-models/large-typeform-layout/');
  assertLikeCli(await classify(page), cli('typeform-layout'));
  const kept = await page.evaluate(async () => {
    const cache = await caches.open('zeroshot-models-v2');
    const key = (await cache.keys()).find((r) => r.url.endsWith('/large-typeform-layout/model.safetensors'));
    const bytes = await (await cache.match(key)).arrayBuffer();
    return [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
  });
  assert.equal(kept, createHash('sha256').update(weights).digest('hex'));
  await ctx.close();
});

test('the cache is keyed by host: the same id from another hub is fetched from that hub', async () => {
  const other = await serveHub(ROOT);
  const first = await open('acme/plain-model');
  assertLikeCli(await classify(first.page), cli('typeform-layout'));
  const second = await open('acme/plain-model', { context: first.ctx, hubUrl: other.url });
  assert.equal(await modelInfo(second.page), 'fp32 · 2.0 MB download', 'not the first host\'s copy');
  assertLikeCli(await classify(second.page), cli('typeform-layout'));
  const fromOther = second.downloads.filter((u) => u.startsWith(other.url) && u.endsWith('/model.safetensors'));
  assert.ok(fromOther.length > 0, `the weights come from the second host, not the first host's cache entry: ${second.requests.join(' ')}`);
  await first.ctx.close();
  await other.close();
});

test('privacy: only the page origin and the model host during load, nothing while classifying', async () => {
  const { ctx, page, requests } = await open('acme/plain-model');
  await classify(page);
  const origins = new Set(requests.map((u) => new URL(u).origin));
  assert.deepEqual([...origins].sort(), [site.url, hub.url].sort());
  requests.length = 0;
  await classify(page, { text: 'Another private answer.' });
  await page.click('#tab-bulk');
  await page.fill('#bulk-text', 'first answer\nsecond answer');
  await page.click('#bulk-go');
  await page.waitForFunction(() => document.querySelectorAll('#bulk-table tbody tr').length === 2);
  assert.deepEqual(requests, [], 'classifying makes no request at all');
  await ctx.close();
});

test('bulk: import a CSV column, classify all, export CSV and JSON; inputs survive a reload', async () => {
  const { ctx, page } = await open('acme/plain-model');
  await page.click('#tab-bulk');
  const csv = 'id,answer,score\n1,"Parcel late, again",3\n2,"Box was ""crushed""",1\n3,Great price,5\n';
  await page.setInputFiles('#csv', { name: 'survey.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.waitForFunction(() => document.getElementById('bulk-text').value.includes('crushed'));
  assert.equal(await page.inputValue('#bulk-text'), 'Parcel late, again\nBox was "crushed"\nGreat price');
  await page.fill('#labels', 'shipping, packaging, price');
  await page.click('#bulk-go');
  await page.waitForFunction(() => document.querySelectorAll('#bulk-table tbody tr').length === 3);
  const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const exported = readFileSync(await csvDownload.path(), 'utf8').trim().split('\r\n');
  assert.equal(exported[0], 'text,top_label,top_score,shipping,packaging,price');
  assert.match(exported[2], /^"Box was ""crushed""",\w+,0\.\d+,/);
  const [jsonDownload] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  const rows = JSON.parse(readFileSync(await jsonDownload.path(), 'utf8'));
  assert.deepEqual(rows.map((r) => r.sequence), ['Parcel late, again', 'Box was "crushed"', 'Great price']);
  assert.deepEqual([...rows[0].labels].sort(), ['packaging', 'price', 'shipping']);
  await page.reload();
  assert.equal(await page.inputValue('#labels'), 'shipping, packaging, price');
  assert.equal(await page.inputValue('#bulk-text'), 'Parcel late, again\nBox was "crushed"\nGreat price');
  await ctx.close();
});

test('bad input shows a message and the next run works', async () => {
  const { ctx, page } = await open('acme/plain-model');
  assert.match((await classify(page, { labels: ' , ' })).error, /no candidate labels/);
  await page.fill('#template', 'no placeholder here');
  assert.match((await classify(page)).error, /formatting it with the label changes nothing/);
  await page.fill('#template', 'This example is {}.');
  assert.match((await classify(page, { text: '' })).error, /the text is empty/);
  assertLikeCli(await classify(page), cli('typeform-layout'));
  await ctx.close();
});

test('local files: picked model files run with no network at all', async () => {
  const { ctx, page, requests } = await open('acme/never-fetched');
  const dir = `${ROOT}/tests/fixtures/tokenizer-json`;
  const before = requests.length;
  await page.setInputFiles('#files', ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => `${dir}/${f}`));
  await page.waitForFunction(() => /Ready: 4 local files/.test(document.getElementById('model-status').textContent));
  assertLikeCli(await classify(page), cli('tokenizer-json'));
  const app = (u) => u.startsWith(`${site.url}/www/`) || u.startsWith(`blob:${site.url}/`); // the worker, its thread pool
  assert.deepEqual(requests.slice(before).filter((u) => !app(u)), [], 'only the app itself (the new worker), no model file');
  await ctx.close();
});

test('a full storage quota is reported and the model runs from memory', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: site.url, quotaSize: 10000 });
  await goto(page, `${site.url}/www/index.html?${new URLSearchParams({ model: 'acme/plain-model', hub: hub.url, backend: 'cpu' })}`);
  assertLikeCli(await classify(page), cli('typeform-layout'));
  assert.match(await page.textContent('#notes'), /could not cache model\.safetensors \(storage quota exceeded\); the model runs from memory/);
  await ctx.close();
});

test('an insecure origin says so and runs on the CPU without a cache', async () => {
  // A name for 127.0.0.1 that is not localhost: the page is then not a secure context.
  const port = new URL(site.url).port;
  const insecure = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [...ARGS, '--host-resolver-rules=MAP zeroshot.test 127.0.0.1'],
  });
  const page = await insecure.newPage();
  await goto(page, `http://zeroshot.test:${port}/www/index.html?${new URLSearchParams({ model: 'acme/plain-model', hub: hub.url })}`);
  assert.equal(await page.evaluate(() => document.documentElement.dataset.threads), 'one', 'no isolation off a secure origin');
  assert.match(await page.textContent('#model-status'), /not on a secure origin/);
  assertLikeCli(await classify(page), cli('typeform-layout'));
  assert.match(await page.textContent('#run-info'), /^CPU/);
  assert.match(await page.textContent('#notes'), /no WebGPU and no model cache/);
  assert.equal(await page.evaluate(() => typeof caches), 'undefined');
  await insecure.close();
});

test('a static host without COOP/COEP: the service worker isolates the page before any download, and the CPU uses every core', async () => {
  const { ctx, page, requests, downloads } = await open('/tests/fixtures/typeform-layout/');
  const navigations = [];
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()));
  assert.equal(await page.evaluate(() => window.crossOriginIsolated), true);
  assert.equal(await page.evaluate(() => document.documentElement.dataset.threads), 'many');
  const reloaded = requests.findLastIndex((u) => u.startsWith(`${site.url}/www/index.html`));
  assert.ok(reloaded > 0, 'the page was loaded twice');
  assert.equal(requests.slice(0, reloaded).findIndex((u) => u.includes('/tests/fixtures/')), -1, 'no model file is asked for before the page is isolated');
  assert.equal(await modelInfo(page), 'fp32 · 2.0 MB download', 'then the probe, by HEAD and Range');
  assert.deepEqual(downloads.filter((u) => u.includes('/tests/fixtures/')), [], 'and no model file downloaded before Classify');
  const got = await classify(page);
  assert.ok(got.labels, got.error);
  const status = await page.textContent('#model-status');
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  assert.match(status, new RegExp(`relaxed SIMD, ${cores} thread`), status);
  assert.deepEqual(navigations, [], 'no reload once isolated');
  const coep = (url) => page.evaluate(async (u) => (await fetch(u)).headers.get('cross-origin-embedder-policy'), url);
  assert.equal(await coep('/www/zeroshot.js'), 'require-corp', 'the shell is re-served with the isolation headers');
  assert.equal(await coep('/tests/fixtures/typeform-layout/config.json'), null,
    "a model's files are left to the browser, so a 268 MB download does not also stream through the service worker");
  await ctx.close();
});

/** The page on a fresh profile from a server that answers the wasm files `delay` ms late (a slow
 * link: the service worker caches them, ~5.5 MB of app shell, before it can isolate the page). */
async function openSlow(server, contextOptions = {}) {
  const ctx = await browser.newContext(contextOptions);
  const page = await ctx.newPage();
  const query = new URLSearchParams({ model: '/tests/fixtures/typeform-layout/', backend: 'cpu' });
  await page.goto(`${server.url}/www/index.html?${query}`);
  const navigations = [];
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()));
  return { ctx, page, navigations };
}

/** Types TEXT and LABELS and clicks Classify at once, as a quick visitor does; the bars when they come. */
async function clickEarly(page) {
  await page.fill('#text', TEXT);
  await page.fill('#labels', LABELS);
  await page.click('#go');
  const shown = await resultShown(page, 60000);
  assert.equal(shown.error, undefined);
  return shown;
}

test('a first visit on a slow link: a click before the page is ready to use every core completes; that visit runs on one thread, the next on every core', async () => {
  const slow = await serve(ROOT, { delayMs: (path) => (path.endsWith('.wasm') ? 4000 : 0) });
  try {
    const { ctx, page, navigations } = await openSlow(slow);
    assert.equal(await page.textContent('#model-status'), 'Getting ready to use every core…');
    await page.waitForTimeout(1000);
    assert.equal(await page.evaluate(() => document.documentElement.dataset.threads), undefined, 'the service worker is still caching the shell');
    assertLikeCli(await clickEarly(page), cli('typeform-layout'));
    assert.match(await page.textContent('#model-status'), /relaxed SIMD, 1 thread\)/);
    await page.waitForFunction(() => document.documentElement.dataset.threads, null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => document.documentElement.dataset.threads), 'one');
    assert.match(await page.textContent('#notes'), /began before the page was ready to use every core\. The next visit uses every core\./);
    assert.deepEqual(navigations, [], 'the page never reloaded under the click');
    await page.reload();
    await page.waitForFunction(() => document.documentElement.dataset.threads, null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => window.crossOriginIsolated), true, 'the next visit is isolated from its start');
    assert.equal(await page.inputValue('#text'), TEXT, 'what was typed is still there');
    await ctx.close();
  } finally {
    await slow.close();
  }
});

test('service workers blocked: a click right after load completes, on one thread', async () => {
  const slow = await serve(ROOT, { delayMs: (path) => (path.endsWith('.wasm') ? 2000 : 0) });
  try {
    const { ctx, page, navigations } = await openSlow(slow, { serviceWorkers: 'block' });
    assertLikeCli(await clickEarly(page), cli('typeform-layout'));
    assert.match(await page.textContent('#model-status'), /relaxed SIMD, 1 thread\)/);
    assert.equal(await page.evaluate(() => window.crossOriginIsolated), false);
    assert.deepEqual(navigations, []);
    await ctx.close();
  } finally {
    await slow.close();
  }
});

test('CSV export: a text that starts like a formula is exported as text; the scores stay numbers', async () => {
  const { ctx, page } = await open('acme/plain-model');
  await page.click('#tab-bulk');
  const texts = ['=HYPERLINK("http://x")', '+1', '-2', '@SUM(A1)', '\tTabbed', 'Plain answer'];
  await page.fill('#bulk-text', texts.join('\n'));
  await page.fill('#labels', 'shipping, -minus');
  await page.click('#bulk-go');
  await page.waitForFunction(() => document.querySelectorAll('#bulk-table tbody tr').length === 6);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const [header, ...rows] = readFileSync(await download.path(), 'utf8').trim().split('\r\n').map((l) => l.split(','));
  assert.deepEqual(header, ['text', 'top_label', 'top_score', 'shipping', "'-minus"]);
  assert.deepEqual(rows.map((r) => r[0]), ['"\'=HYPERLINK(""http://x"")"', "'+1", "'-2", "'@SUM(A1)", "'\tTabbed", 'Plain answer']);
  for (const r of rows) {
    assert.ok(['shipping', "'-minus"].includes(r[1]), r.join());
    r.slice(2).forEach((score) => assert.ok(Number.isFinite(Number(score)) && Number(score) >= 0, `a score as a number: ${r.join()}`));
  }
  await ctx.close();
});

/** The files kept in the model cache of `page`'s profile. */
const cachedFiles = (page) => page.evaluate(async () => (await (await caches.open('zeroshot-models-v2')).keys()).map((r) => r.url.split('/').pop()).sort());

test('a damaged download is an error naming the file, is not cached, and is fetched again next time', async () => {
  const id = 'acme/plain-model';
  const path = (file) => `/${id}/resolve/main/${file}`;
  const { ctx, page } = await open(id);
  try {
    const start = hub.requests.length;
    hub.faults.set(`${id}/config.json`, 'damaged');
    const cut = (await classify(page)).error;
    assert.match(cut, /^config\.json is not a JSON object: .*JSON.* \(downloaded from http:\/\/127\.0\.0\.1:\d+\/acme\/plain-model\/resolve\/main\/config\.json\)$/);
    assert.deepEqual(await cachedFiles(page), []);
    hub.faults.clear();
    hub.faults.set(`${id}/model.safetensors`, 'wrong-etag');
    const sha = /^model\.safetensors is damaged: its SHA-256 is [0-9a-f]{64}, but the Hub's X-Linked-Etag says [0-9a-f]{64} \(downloaded from /;
    assert.match((await classify(page)).error, sha);
    hub.faults.set(`${id}/model.safetensors`, 'damaged');
    assert.match((await classify(page)).error, sha);
    assert.deepEqual(await cachedFiles(page), ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt']);
    assert.equal(hub.requests.slice(start).filter((p) => p === path('config.json')).length, 2, 'the damaged config.json was fetched again');
    hub.faults.clear();
    const mended = hub.requests.length;
    assertLikeCli(await classify(page), cli('typeform-layout'));
    assert.deepEqual(hub.requests.slice(mended), [path('model.safetensors')], 'the weights are fetched again, the rest comes from the cache');
    assert.deepEqual(await cachedFiles(page), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt']);
  } finally {
    hub.faults.clear();
    await ctx.close();
  }
});

/** An init script: counts the page's model workers (those told to load a model, not the probe's
 * short-lived ones), started and ended (terminate()), in window.workers. */
function countWorkers() {
  const Native = window.Worker;
  window.workers = { started: 0, ended: 0 };
  window.Worker = class extends Native {
    postMessage(message, ...rest) {
      if (message?.op === 'load' && !this.loads) {
        this.loads = true;
        window.workers.started += 1;
      }
      super.postMessage(message, ...rest);
    }

    terminate() {
      if (this.loads) window.workers.ended += 1;
      super.terminate();
    }
  };
}

/** The page for `model` with its workers counted. */
async function openCounted(model) {
  const context = await browser.newContext();
  await context.addInitScript(countWorkers);
  return open(model, { context });
}

test('one at a time: a double click on Load or Classify, or Ctrl+Enter twice, loads once and shows one result', async () => {
  const { ctx, page } = await openCounted('acme/plain-model');
  const workers = () => page.evaluate(() => window.workers);
  await page.dblclick('#load');
  await page.waitForFunction(() => /^Ready:/.test(document.getElementById('model-status').textContent));
  assert.deepEqual(await workers(), { started: 1, ended: 0 }, 'one load');
  await page.evaluate(() => {
    window.renders = 0;
    new MutationObserver((records) => { window.renders += records.filter((r) => r.addedNodes.length).length; })
      .observe(document.getElementById('results'), { childList: true });
  });
  const done = (renders) => page.waitForFunction((n) => window.renders >= n && !document.getElementById('go').disabled, renders);
  await page.fill('#model', 'acme/no-length-model');
  await page.dblclick('#go'); // the second click comes while the new model loads
  await done(1);
  assert.deepEqual(await workers(), { started: 2, ended: 1 }, 'one more load; the old worker ended');
  // Twice in one task, while the first run is surely going; then one more run, which ends after any other.
  await page.evaluate(() => {
    for (let i = 0; i < 2; i++) document.getElementById('text').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', ctrlKey: true, bubbles: true }));
  });
  await done(2);
  await page.click('#go');
  await done(3);
  assert.equal(await page.evaluate(() => window.renders), 3, 'one result per run started');
  assert.equal(await page.textContent('#error'), '');
  assert.deepEqual(await workers(), { started: 2, ended: 1 });
  await ctx.close();
});

test('a model change during a bulk run cancels it cleanly: one model in the table, one worker', async () => {
  const { ctx, page } = await openCounted('acme/plain-model');
  await page.click('#tab-bulk');
  await page.fill('#bulk-text', Array(300).fill('The parcel came late and the box was crushed.').join('\n'));
  await page.fill('#labels', 'shipping, packaging, price');
  await page.click('#bulk-go');
  // Mid-run: Load on the same model at the first row, which leaves the run alone; at the 20th, another model and Load.
  const early = await page.evaluate(() => new Promise((resolve) => {
    const info = document.getElementById('bulk-info');
    let reloaded = false;
    new MutationObserver((_, observer) => {
      const done = Number(info.textContent.match(/^(\d+) of 300/)?.[1] ?? 0);
      if (done >= 1 && !reloaded) document.getElementById('load').click();
      reloaded ||= done >= 1;
      if (done < 20 && !info.textContent.startsWith('Cancelled')) return;
      observer.disconnect();
      if (done < 20) return resolve(info.textContent);
      document.getElementById('model').value = 'acme/no-length-model';
      document.getElementById('load').click();
      resolve('');
    }).observe(info, { childList: true, characterData: true, subtree: true });
  }));
  assert.equal(early, '', 'Load on the model in use does not stop the run');
  await page.waitForFunction(() => /^Ready: acme\/no-length-model/.test(document.getElementById('model-status').textContent));
  const info = await page.textContent('#bulk-info');
  const cancelled = Number(info.match(/^Cancelled after (\d+) of 300\.$/)?.[1]);
  assert.ok(cancelled >= 20 && cancelled < 300, info);
  const table = () => page.$$eval('#bulk-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].slice(2).map((td) => td.textContent).join()));
  const old = await table();
  assert.equal(old.length, cancelled);
  assert.deepEqual(new Set(old).size, 1, `one text, one model: the same result in every row: ${[...new Set(old)].join(' | ')}`);
  assert.equal(await page.textContent('#error'), '');
  assert.deepEqual(await page.evaluate(() => window.workers), { started: 2, ended: 1 }, 'the old model\'s worker ended');
  await page.fill('#bulk-text', 'The parcel came late and the box was crushed.\nThe parcel came late and the box was crushed.');
  await page.click('#bulk-go');
  await page.waitForFunction(() => /^2 of 2/.test(document.getElementById('bulk-info').textContent));
  const fresh = await table();
  assert.equal(new Set(fresh).size, 1);
  assert.notEqual(fresh[0], old[0], 'the new model\'s numbers');
  await ctx.close();
});

test('damaged or disabled localStorage: the page works, and the valid stored fields are kept', async () => {
  const DEFAULT_LABELS = 'shipping delay, refund request, product quality, praise';
  const damaged = {
    'not JSON': '{"text": "My own',
    'not an object': '[1, 2, 3]',
    'fields of wrong types': JSON.stringify({ text: 'My own text.', labels: 42, template: { a: 1 }, multi: 'yes', revision: null, 'bulk-text': ['x'], backend: 'gpu' }),
  };
  const seeds = Object.entries(damaged).map(([what, value]) => [what, [(v) => localStorage.setItem('zeroshot-page-v1', v), value]]);
  const disabled = () => Object.defineProperty(window, 'localStorage', { get: () => { throw new DOMException('storage is disabled', 'SecurityError'); } });
  for (const [what, [script, arg]] of [...seeds, ['disabled', [disabled, undefined]]]) {
    const context = await browser.newContext();
    await context.addInitScript(script, arg);
    const { ctx, page } = await open('acme/plain-model', { context, backend: null });
    const fields = await page.evaluate(() => ['text', 'labels', 'template', 'revision', 'backend', 'bulk-text'].map((f) => document.getElementById(f).value));
    const text = what === 'fields of wrong types' ? 'My own text.' : 'I ordered the blue jacket two weeks ago and it still has not arrived.';
    assert.deepEqual(fields, [text, DEFAULT_LABELS, 'This example is {}.', 'main', 'auto', ''], what);
    assert.equal(await page.isChecked('#multi'), false, what);
    const got = await classify(page);
    assert.ok(got.labels, `${what}: ${got.error}`);
    await ctx.close();
  }
});

const ANSWERS = ['The parcel came two weeks late.', 'The box was crushed and the cup broke.', 'Too expensive for what it is.',
  'Great value, arrived early.', 'Support never answered my emails.', 'Wrong size, and returning it costs money.'];

/** Classifies `texts` in the bulk view and returns the rows as exported to JSON (the exact scores). */
async function bulkRun(page, texts, labels, { multi = false } = {}) {
  await page.click('#tab-bulk');
  await page.fill('#labels', labels);
  await page.setChecked('#multi', multi);
  await page.fill('#bulk-text', texts.join('\n'));
  await page.click('#bulk-go');
  const end = `${texts.length} of ${texts.length}`;
  await page.waitForFunction((e) => document.getElementById('bulk-info').textContent.startsWith(e) && !document.getElementById('bulk-go').disabled, end);
  return JSON.parse(readFileSync(await (await downloaded(page, '#export-json')).path(), 'utf8'));
}

async function downloaded(page, button) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return download;
}

/** The chart as a screen reader reads it: the [label, answers, percent] rows of its table. */
const chartTable = (page) => page.$$eval('#chart-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));

/** What the chart must say for `rows`: answers per label (the top label, or with `threshold` every
 * label scoring at least that, then '(no label)' for answers none claims), percent of all answers. */
function expectedChart(rows, labels, threshold = null) {
  const claims = (r) => (threshold === null ? [r.labels[0]] : r.labels.filter((_, i) => r.scores[i] >= threshold));
  const counts = labels.map((l) => [l, rows.filter((r) => claims(r).includes(l)).length]);
  if (threshold !== null) counts.push(['(no label)', rows.filter((r) => claims(r).length === 0).length]);
  return counts.map(([l, n]) => [l, String(n), `${((100 * n) / rows.length).toFixed(1)}%`]);
}

/** The table's rows as [number, text, score of `label`]. */
const tableRows = (page, label) => page.$$eval('#bulk-table', ([table], l) => {
  const col = [...table.tHead.rows[0].cells].findIndex((th) => th.textContent === l);
  return [...table.tBodies[0].rows].map((tr) => [Number(tr.cells[0].textContent), tr.cells[1].textContent, Number(tr.cells[col].textContent)]);
}, label);

test('bulk chart, single label: answers per top label, with percentages, drawn and readable, updated during the run', async () => {
  const { ctx, page } = await open('acme/plain-model');
  const labels = ['shipping', 'packaging', 'price'];
  const rows = await bulkRun(page, ANSWERS, labels.join(', '));
  const want = expectedChart(rows, labels);
  assert.deepEqual(await chartTable(page), want);
  assert.equal(want.reduce((sum, [, n]) => sum + Number(n), 0), ANSWERS.length, 'each answer under one label');
  const svg = await page.$eval('#chart svg', (s) => ({ role: s.getAttribute('role'), label: s.getAttribute('aria-label'), bars: s.querySelectorAll('[data-bucket]').length }));
  assert.equal(svg.role, 'img');
  assert.equal(svg.bars, 3, 'one bar per label, no unclaimed bucket in single-label mode');
  for (const [l, n, pct] of want) assert.ok(svg.label.includes(`${l} ${n} (${pct})`), svg.label);
  // Each bar is as long as its label's share of the answers.
  const shares = await page.$$eval('#chart [data-bucket]', (gs) => gs.map((g) => { const [track, fill] = g.querySelectorAll('rect'); return fill.width.baseVal.value / track.width.baseVal.value; }));
  shares.forEach((share, i) => assert.ok(Math.abs(share - Number(want[i][1]) / ANSWERS.length) < 0.01, `bar ${i}: ${share}`));
  // During a run the chart shows the answers so far (enough answers that the run outlasts the
  // chart's 300 ms redraw throttle, batched as they are).
  await page.$eval('#bulk-text', (t, text) => { t.value = text; t.dispatchEvent(new Event('input')); }, Array(3000).fill(ANSWERS[0]).join('\n'));
  await page.click('#bulk-go');
  const partial = await page.waitForFunction(() => {
    const heading = document.querySelector('#chart svg')?.getAttribute('aria-label').match(/(\d+) answers/)?.[1];
    return heading && Number(heading) < 3000 && Number(heading) !== 6 && Number(heading);
  }, null, { polling: 50 });
  assert.ok(await partial.jsonValue() > 0);
  await page.waitForFunction(() => /^3000 of 3000/.test(document.getElementById('bulk-info').textContent), null, { timeout: 60000 });
  await page.waitForFunction(() => document.getElementById('chart-table').tBodies[0].textContent.includes('100.0%'));
  await ctx.close();
});

test('bulk chart, multi-label: the threshold decides which labels count, and the unclaimed bucket', async () => {
  const { ctx, page } = await open('acme/plain-model');
  const labels = ['shipping', 'packaging', 'price'];
  const rows = await bulkRun(page, ANSWERS, labels.join(', '), { multi: true });
  assert.equal(await page.isVisible('#threshold'), true);
  assert.equal(await page.inputValue('#threshold'), '0.5', 'default 0.5');
  assert.deepEqual(await chartTable(page), expectedChart(rows, labels, 0.5));
  const scores = rows.flatMap((r) => r.scores).sort((a, b) => a - b);
  const middle = (Math.round(scores[Math.floor(scores.length / 2)] * 20) / 20).toFixed(2);
  for (const t of ['0', '1', middle]) {
    await page.fill('#threshold', t);
    assert.deepEqual(await chartTable(page), expectedChart(rows, labels, Number(t)), `threshold ${t}`);
    assert.match(await page.getAttribute('#chart svg', 'aria-label'), new RegExp(`labels scoring ≥ ${Number(t).toFixed(2)}`));
  }
  await page.fill('#threshold', '0');
  assert.deepEqual((await chartTable(page)).map((r) => r[1]), ['6', '6', '6', '0'], 'every label claims every answer');
  await page.fill('#threshold', '1');
  assert.deepEqual((await chartTable(page)).map((r) => r[1]), ['0', '0', '0', '6'], 'none does');
  await ctx.close();
});

test('bulk chart: a bar (mouse) or its button (keyboard) filters the table to its answers, best score first', async () => {
  const { ctx, page } = await open('acme/plain-model');
  const labels = ['shipping', 'packaging', 'price'];
  const rows = await bulkRun(page, ANSWERS, labels.join(', '));
  const counts = expectedChart(rows, labels).map((r) => Number(r[1]));
  const biggest = counts.indexOf(Math.max(...counts));
  const label = labels[biggest];
  const score = (r) => r.scores[r.labels.indexOf(label)];
  const want = rows.map((r, i) => [i + 1, r.sequence, Number(score(r).toFixed(3)), r.labels[0]]).filter((r) => r[3] === label)
    .sort((a, b) => b[2] - a[2]).map((r) => r.slice(0, 3));
  await page.click(`#chart svg [data-bucket="${biggest}"] text`);
  assert.deepEqual(await tableRows(page, label), want);
  assert.equal(await page.$eval('#bulk-table th[aria-sort="descending"]', (th) => th.textContent), label);
  assert.equal(await page.textContent('#filter-info'), `Showing the ${want.length} answers under ${label}, highest score first.`);
  assert.equal(await page.getAttribute(`#chart-filter [data-bucket="${biggest}"]`, 'aria-pressed'), 'true');
  await page.click(`#chart svg [data-bucket="${biggest}"] text`); // again: all answers
  assert.equal((await tableRows(page, label)).length, ANSWERS.length);
  // The keyboard: Tab to a label's button and press Enter; the focus stays on it.
  const other = (biggest + 1) % 3;
  await page.focus(`#chart-filter [data-bucket="${biggest}"]`);
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  const shown = await tableRows(page, labels[other]);
  assert.equal(shown.length, counts[other]);
  assert.deepEqual(shown.map((r) => r[2]), shown.map((r) => r[2]).sort((a, b) => b - a));
  assert.equal(await page.evaluate(() => document.activeElement.dataset.bucket), String(other));
  await page.focus('#chart-filter [data-bucket="all"]');
  await page.keyboard.press('Enter');
  assert.equal((await tableRows(page, label)).length, ANSWERS.length);
  assert.equal(await page.textContent('#filter-info'), '');
  await ctx.close();
});

test('bulk chart exports: summary CSV (formula-like labels as text), SVG, and PNG', async () => {
  const { ctx, page } = await open('acme/plain-model');
  const labels = ['shipping', '-minus', '=cmd'];
  const rows = await bulkRun(page, ANSWERS, labels.join(', '), { multi: true });
  await page.fill('#threshold', '0.3');
  const summary = readFileSync(await (await downloaded(page, '#export-summary')).path(), 'utf8');
  assert.ok(summary.endsWith('\r\n'));
  const want = expectedChart(rows, labels, 0.3).map(([l, n, pct]) => [l.replace(/^[-=]/, "'$&"), n, pct.slice(0, -1), '0.30']);
  assert.deepEqual(summary.trim().split('\r\n').map((l) => l.split(',')), [['label', 'answers', 'percent', 'threshold'], ...want]);
  const svg = readFileSync(await (await downloaded(page, '#export-svg')).path(), 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="768" height="\d+"/);
  for (const l of ['shipping', '-minus', '=cmd', '(no label)']) assert.ok(svg.includes(`>${l}</text>`), `${l} in the SVG`);
  const png = readFileSync(await (await downloaded(page, '#export-png')).path());
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'the PNG signature');
  assert.equal(png.readUInt32BE(16), 1536, 'the 720-px chart and its margins at twice the size');
  assert.equal(await page.textContent('#error'), '');
  await ctx.close();
});

test('bulk results survive a reload: small ones in localStorage, big ones in IndexedDB', async () => {
  const { ctx, page } = await open('acme/plain-model');
  const labels = ['shipping', 'packaging', 'price'];
  await bulkRun(page, ANSWERS, labels.join(', '), { multi: true });
  await page.fill('#threshold', '0.35');
  const before = { chart: await chartTable(page), table: await tableRows(page, 'price') };
  await page.reload();
  await page.click('#tab-bulk');
  await page.waitForFunction(() => document.getElementById('bulk-info').textContent === '6 answers from last time.');
  assert.equal(await page.inputValue('#threshold'), '0.35');
  assert.deepEqual({ chart: await chartTable(page), table: await tableRows(page, 'price') }, before);
  // 12 answers of 90,000 characters: over the page's localStorage share for results.
  const long = Array.from({ length: 12 }, (_, i) => `${i} ${'late parcel '.repeat(7500)}`);
  await bulkRun(page, long, labels.join(', '));
  await page.waitForFunction(() => localStorage.getItem('zeroshot-bulk-v1') === null);
  await page.reload();
  await page.click('#tab-bulk');
  await page.waitForFunction(() => document.getElementById('bulk-info').textContent === '12 answers from last time.');
  assert.deepEqual((await tableRows(page, 'price')).map((r) => r[1]), long);
  await ctx.close();
});

test('damaged stored results: the page starts, shows the rows that are whole, and keeps the inputs', async () => {
  const good = { sequence: 'Late again.', labels: ['price', 'shipping'], scores: [0.6, 0.4], truncated: false };
  const results = (rows, extra = {}) => JSON.stringify({ labels: ['shipping', 'price'], multi: false, rows, ...extra });
  const damaged = {
    'not JSON': ['{"labels": ["a"', 0],
    'labels not strings': [JSON.stringify({ labels: [1, 2], rows: [good] }), 0],
    'rows not a list': [JSON.stringify({ labels: ['shipping', 'price'], rows: { 0: good } }), 0],
    'some rows damaged': [results([good, null, { sequence: 'x', labels: ['price'], scores: [1] }, { ...good, scores: [null, 0.4] }, { sequence: 'Broke.', error: 'boom' }]), 2],
  };
  for (const [what, [value, shown]] of Object.entries(damaged)) {
    const context = await browser.newContext();
    await context.addInitScript(([v, inputs]) => {
      localStorage.setItem('zeroshot-bulk-v1', v);
      localStorage.setItem('zeroshot-page-v1', inputs);
    }, [value, JSON.stringify({ labels: 'my labels', 'bulk-text': 'my answer' })]);
    const { ctx, page } = await open('acme/plain-model', { context });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.click('#tab-bulk');
    await page.waitForTimeout(300); // IndexedDB is asked when localStorage has nothing usable
    assert.equal(await page.locator('#bulk-table tbody tr').count(), shown, what);
    if (shown) assert.deepEqual(await chartTable(page), [['shipping', '0', '0.0%'], ['price', '1', '50.0%'], ['(failed)', '1', '50.0%']], what);
    assert.deepEqual([await page.inputValue('#labels'), await page.inputValue('#bulk-text')], ['my labels', 'my answer'], what);
    assert.deepEqual(errors, [], what);
    await ctx.close();
  }
  const { ctx, page } = await open('acme/plain-model');
  await page.evaluate(() => new Promise((resolve) => {
    const request = indexedDB.open('zeroshot-page', 1);
    request.onupgradeneeded = () => request.result.createObjectStore('results');
    request.onsuccess = () => { request.result.transaction('results', 'readwrite').objectStore('results').put('{"labels": [', 'zeroshot-bulk-v1').onsuccess = resolve; };
  }));
  await page.reload();
  await page.click('#tab-bulk');
  assert.equal(await page.locator('#bulk-table tbody tr').count(), 0);
  assert.equal((await bulkRun(page, ANSWERS.slice(0, 2), 'shipping, price')).length, 2, 'a damaged IndexedDB entry does not stop a run');
  await ctx.close();
});

/** A loopback port where nothing listens: fetches to it fail as they do with no network. */
async function deadPort() {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('a failed load says so; without network it points to the demo models, which say their scores mean nothing', async () => {
  const { ctx, page } = await open('acme/plain-model', { hubUrl: `http://127.0.0.1:${await deadPort()}` });
  const offline = (await classify(page)).error;
  assert.match(offline, /cannot fetch .*config\.json: Failed to fetch\nNo network\? The demo models in \.\/models\/ work offline: enter \.\/models\/typeform-layout\//);
  assert.match(offline, /Their weights are random, so their scores mean nothing\./);
  assert.equal(await page.textContent('#model-status'), 'Could not load acme/plain-model.');
  await page.goto(`${site.url}/www/index.html?${new URLSearchParams({ model: 'acme/does-not-exist', hub: hub.url, backend: 'cpu' })}`);
  await page.waitForFunction(() => document.documentElement.dataset.threads);
  const missing = (await classify(page)).error;
  assert.match(missing, /HTTP 404/);
  assert.doesNotMatch(missing, /No network/, 'an HTTP error is not a network problem');
  assert.equal(await page.textContent('#model-status'), 'Could not load acme/does-not-exist.');
  // The demo model: a note with the notes, under the result, and over the bulk results.
  await page.fill('#model', './models/typeform-layout/');
  assertLikeCli(await classify(page), cli('typeform-layout'));
  assert.match(await page.textContent('#notes'), /demo model with random weights: its scores mean nothing/);
  assert.equal(await page.isVisible('#single-demo'), true);
  await bulkRun(page, ANSWERS.slice(0, 2), 'shipping, price');
  assert.equal(await page.isVisible('#bulk-demo'), true);
  await page.click('#tab-single');
  await page.fill('#model', 'acme/plain-model');
  assertLikeCli(await classify(page), cli('typeform-layout'));
  assert.equal(await page.isVisible('#single-demo'), false, 'a real model has no note');
  await ctx.close();
});

test("before any download, the page shows the weights' format and size (Hub fp32 via refs/pr/3, f16 without Content-Length)", async () => {
  const start = hub.log.length;
  const { ctx, page } = await open('typeform/distilbert-base-uncased-mnli');
  assert.equal(await modelInfo(page), 'fp32 · 2.0 MB download');
  const asked = hub.log.slice(start).filter((r) => r.path.endsWith('/model.safetensors'));
  assert.ok(asked.some((r) => r.method === 'HEAD') && asked.some((r) => r.range === 'bytes=0-7'), JSON.stringify(asked));
  assert.ok(asked.some((r) => r.range === 'bytes=8-4503' && r.path.includes('/refs%2Fpr%2F3/')), 'the header, where main sent us');
  assert.deepEqual(weightDownloads('typeform/distilbert-base-uncased-mnli', start), [], 'no download before Classify');
  // Another model typed in: probed once typing pauses, again with no download; its size from X-Linked-Size.
  await page.fill('#model', 'acme/no-length-model');
  await page.waitForFunction(() => document.getElementById('model-info').textContent.startsWith('f16'));
  assert.equal(await modelInfo(page), 'f16 · 1.5 MB download');
  assert.deepEqual(weightDownloads('acme/no-length-model', start), []);
  assertLikeCli(await classify(page), cli('f16-relu'));
  assert.equal(weightDownloads('acme/no-length-model', start).length, 1, 'downloaded on Classify');
  assert.equal(await modelInfo(page), 'f16 · 1.5 MB, downloaded');
  // Next visit: the kept copy's header says it, and the Hub is asked nothing.
  const visit = hub.log.length;
  await goto(page, `${site.url}/www/index.html?${new URLSearchParams({ model: 'acme/no-length-model', hub: hub.url, backend: 'cpu' })}`);
  assert.equal(await modelInfo(page), 'f16 · 1.5 MB, on this device');
  assert.deepEqual(hub.log.slice(visit), []);
  await page.click('#stored summary');
  await page.waitForFunction(() => document.getElementById('stored-list').textContent.includes('acme/no-length-model'));
  assert.match(await page.textContent('#stored-list'), /acme\/no-length-model @ main from [\d.:]+ · f16 · [\d.]+ MB/);
  await ctx.close();
});

test("local files: the weights' format and size are shown before the load, with no request", async () => {
  const { ctx, page, requests } = await open('acme/plain-model');
  await page.evaluate(() => {
    window.seen = [];
    for (const id of ['model-info', 'model-status']) {
      new MutationObserver(() => window.seen.push(`${id}: ${document.getElementById(id).textContent}`))
        .observe(document.getElementById(id), { childList: true, characterData: true, subtree: true });
    }
  });
  const picks = { 'tokenizer-json': ['tokenizer.json', 'fp32 · 2.0 MB, local files'], 'f16-relu': ['vocab.txt', 'f16 · 1.5 MB, local files'] };
  for (const [fixture, [tokenizer, want]] of Object.entries(picks)) {
    const before = requests.length;
    await page.evaluate(() => { window.seen = []; });
    const files = ['config.json', 'model.safetensors', tokenizer, 'tokenizer_config.json'].map((f) => `${ROOT}/tests/fixtures/${fixture}/${f}`);
    await page.setInputFiles('#files', files);
    await page.waitForFunction(() => window.seen.some((s) => s.startsWith('model-status: Ready: 4 local files')));
    const seen = await page.evaluate(() => window.seen);
    const shown = seen.indexOf(`model-info: ${want}`);
    assert.ok(shown >= 0 && shown < seen.indexOf('model-status: Loading the model…'), `${fixture}: ${seen.join(' | ')}`);
    assert.equal(await modelInfo(page), want, fixture);
    assert.deepEqual(requests.slice(before).filter((u) => u.includes('model.safetensors') || u.startsWith(hub.url)), [], fixture);
  }
  assertLikeCli(await classify(page), cli('f16-relu'));
  await ctx.close();
});

test('a server that ignores Range: the format is unknown until the download, and the page works', async () => {
  const start = hub.log.length;
  const { ctx, page } = await open('acme/no-range-model');
  assert.equal(await modelInfo(page), 'format unknown · 2.0 MB download');
  const ranged = hub.log.slice(start).filter((r) => r.range);
  assert.deepEqual(ranged.map((r) => r.range), ['bytes=0-7'], 'one Range request, whose 200 ended the probe');
  assertLikeCli(await classify(page), cli('typeform-layout'));
  assert.equal(await modelInfo(page), 'fp32 · 2.0 MB, downloaded', 'the format, once the weights are here');
  await ctx.close();
});

test('a made-up int8 model on the Hub: the probe reads its format from the header alone', async () => {
  const weights = int8Weights({ vocab: 30522 });
  hub.files.set('acme/int8-model/model.safetensors', weights);
  const start = hub.log.length;
  try {
    const { ctx, page } = await open('acme/int8-model');
    assert.equal(await modelInfo(page), `int8 · ${(weights.length / 1e6).toFixed(1)} MB download`);
    assert.deepEqual(weightDownloads('acme/int8-model', start), []);
    await ctx.close();
  } finally {
    hub.files.clear();
  }
});

test('"Why?" colours the words by their effect on each label, as the CLI\'s --explain gives them, and switching labels recomputes nothing', async () => {
  const { ctx, page } = await open('./models/bert-vocab/');
  assertLikeCli(await classify(page), cli('bert-vocab'));
  const want = cli('bert-vocab', ['--explain']);
  await page.evaluate(() => {
    window.posted = [];
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (message, transfer) {
      window.posted.push(message?.op);
      return post.call(this, message, transfer);
    };
  });
  await page.click('#why-go');
  await page.waitForSelector('#why-view .why-text');
  assert.match(await page.textContent('#why-info'), new RegExp(`^${want.words.length} words`));
  const signed = (x) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`;
  for (const label of want.labels) {
    await page.locator('#why-labels').getByRole('button', { name: label, exact: true }).click();
    assert.equal(await page.getAttribute(`#why-labels button[aria-pressed=true]`, 'data-label'), label);
    const marked = await page.$$eval('#why-view .word', (ws) => ws.map((w) => [w.textContent, w.title]));
    const table = await page.$$eval('#why-view tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.deepEqual(marked.map(([t]) => t), want.words.map((w) => w.text));
    want.words.forEach((w, i) => {
      const effect = w.effects[label];
      const number = Number(table[i][1].replace('−', '-'));
      assert.ok(Math.abs(number - effect) <= 6e-4, `${label} ${w.text}: page ${table[i][1]}, CLI ${effect}`);
      assert.ok(marked[i][1].includes(signed(effect).slice(0, -1)), `the tooltip says the number: ${marked[i][1]}`);
      assert.match(marked[i][1], effect >= 0 ? /towards/ : /against/);
    });
    assert.match(await page.textContent('#why-view .why-legend'), new RegExp(`towards ${label.replace(/[<>()=]/g, '.')}`));
  }
  assert.equal(await page.$('#why-view img'), null, 'a label is text, never markup');
  assert.deepEqual(await page.evaluate(() => window.posted.filter((op) => op === 'explain').length), 1, 'switching labels recomputes nothing');
  await ctx.close();
});

test('bulk: "Which words" shows the words that put answers under each label, filters the table to their answers, exports them, and cancels', async () => {
  const { ctx, page } = await open('./models/bert-vocab/');
  const labels = 'shipping, packaging, price';
  await bulkRun(page, ANSWERS, labels);
  await page.click('#words-go');
  await page.waitForFunction(() => document.getElementById('words-cancel').disabled && document.querySelector('#words-view .words-group'));
  // What the chips say, against the CLI's explanation of each answer (its top label is its bucket).
  const explained = ANSWERS.map((a) => JSON.parse(execFileSync(CLI, ['--model', `${ROOT}/tests/fixtures/bert-vocab`, '--labels', labels, '--backend', 'cpu', '--explain', a]).toString()));
  const { wordsByLabel } = await import('../../www/why.js');
  const want = wordsByLabel(explained, parseLabelList(labels), (row) => [row.labels[0]]);
  const chips = await page.$$eval('#words-view button[data-word]', (bs) => bs.map((b) => [b.dataset.label, b.dataset.word, b.textContent]));
  const shownWant = want.flatMap(({ label, words }) => words.slice(0, 8).map((w) => [label, w]));
  assert.equal(chips.length, shownWant.length);
  chips.forEach(([label, word, text], i) => {
    const [wantLabel, w] = shownWant[i];
    assert.deepEqual([label, word], [wantLabel, w.key]);
    const [, answers, sum] = /· (\d+) answers? · \+(\d\.\d+)$/.exec(text);
    assert.equal(Number(answers), w.rows.size, text);
    assert.ok(Math.abs(Number(sum) - w.sum) <= 6e-4, `${text}: CLI ${w.sum}`);
  });
  const [label, word] = chips[0];
  await page.click(`#words-view button[data-word="${word}"][data-label="${label}"]`);
  const rows = await page.$$eval('#bulk-table tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent));
  assert.deepEqual(rows.sort(), [...shownWant[0][1].rows].map((i) => ANSWERS[i]).sort());
  assert.match(await page.textContent('#filter-info'), new RegExp(`that “${word}” pushed towards ${label}`));
  const csvLines = readFileSync(await (await downloaded(page, '#export-words')).path(), 'utf8').trim().split('\r\n');
  assert.equal(csvLines[0], 'label,word,answers,summed_effect');
  assert.equal(csvLines.length - 1, want.reduce((n, g) => n + g.words.length, 0), 'every word, not only the chips');
  // The explanations are kept with the answers, and "Which words" then has nothing left to do.
  await page.reload();
  await page.click('#tab-bulk');
  await page.waitForSelector('#words-view .words-group');
  // A long run stops on Cancel and keeps what it explained.
  await bulkRun(page, Array(40).fill(ANSWERS[1]), labels);
  await page.click('#words-go');
  await page.waitForFunction(() => /^\d+ of 40 answers/.test(document.getElementById('words-info').textContent));
  await page.click('#words-cancel');
  await page.waitForFunction(() => document.getElementById('words-info').textContent.startsWith('Cancelled'));
  await ctx.close();
});

/** Labels as the page splits them. */
const parseLabelList = (text) => text.split(',').map((l) => l.trim()).filter(Boolean);

test("the survey view's word groups: lower case, punctuation at the ends stripped, positive effects under each answer's labels only", async () => {
  const { wordKey, wordsByLabel } = await import('../../www/why.js');
  assert.deepEqual(['Refund,', '«refund»', "don't", 'U.S.A.', '😠!!', '...'].map(wordKey), ['refund', 'refund', "don't", 'u.s.a', '😠!!', '...']);
  const word = (text, effects) => ({ text, start: 0, end: 0, effects });
  const rows = [
    { labels: ['a', 'b'], words: [word('Refund,', { a: 0.2, b: 0.5 }), word('late', { a: -0.1, b: 0.3 })] },
    { labels: ['a', 'b'], words: [word('refund', { a: 0.1 }), word('refund!', { a: 0.05 })] },
    { labels: ['b', 'a'], words: [word('refund', { a: 0.4, b: 0.1 })] },
    { error: 'empty', sequence: '' },
  ];
  const groups = wordsByLabel(rows, ['a', 'b'], (r) => [r.labels[0]]);
  const a = groups[0].words.map((w) => [w.key, Number(w.sum.toFixed(6)), [...w.rows]]);
  const b = groups[1].words.map((w) => [w.key, Number(w.sum.toFixed(6)), [...w.rows]]);
  assert.deepEqual(a, [['refund', 0.35, [0, 1]]], 'late pushed against a; answer 2 is under b');
  assert.deepEqual(b, [['refund', 0.1, [2]]]);
});
