// Browser CPU benchmark, one run, same headless Chromium, plain page (the server sends no
// COOP/COEP; zeroshot's service worker isolates the page, as on any static host):
// zeroshot.js (each wasm build; 1 thread and every core), the product page itself (www/index.html:
// its fields, Classify, and the time it shows) and transformers.js 4.x's zero-shot pipeline (wasm,
// fp32, one thread: what it gets on a plain page), one text x 5 labels on the full-size random
// model, timed interleaved; then load to first result and peak memory of the whole Chromium
// process tree over a blank page, per engine.
//
//   bash bench/compare.sh        (builds and exports what this needs, then runs it)
//   node bench/compare_web.mjs [--model tests/fixtures/full-size] [--rounds 5] [--runs 5] [--formats]
//   --model: any full-size folder under the repository (generate.py --full-size, or --full-size-family
//            xtremedistil, roberta-base, deberta-v3-xsmall, deberta-v3-base); transformers.js loads its
//            bench/export_onnx.py export, the folder's name with -onnx appended
//   --formats: the full-size model as fp32, f16 and int8 (made by bench/agreement.py) instead of the peers
//   --explain: one explanation (each word's effect on each label: a 25-word answer x 5 labels, 130 pairs) next to
//              one classification of the same answer, zeroshot.js relaxed at every core and at 1 thread
//   --pages: each engine in a page of its own (by default all share one page, so one renderer process)
//   --memory: only zeroshot's peak memory (the module and the page), on the first load (download and cache write) and over
//             the 200 calls after it (--calls N; the tree after 20 and after all: flat if nothing leaks),
//             and on a cached load (a later page of the same browser; its time to the first result is
//             taken on a page of its own, with no memory sampler running), no timing rounds
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../tests/browser/server.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const EXPLAIN = process.argv.includes('--explain');
// --explain: a 25-word survey answer (130 pairs with 5 labels, where a classification has 5).
const TEXT = EXPLAIN
  ? 'The parcel arrived two weeks late, the box was crushed, and support never answered my emails, so I want a refund for the broken blender.'
  : 'I loved the onboarding, but the pricing page is confusing.';
const LABELS = ['pricing', 'onboarding', 'support', 'bug report', 'praise'];
const arg = (name, def) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def);
const stringArg = (name, def) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : def);
// The model as a URL path on the server (which serves the repository root): /tests/fixtures/full-size/.
const MODEL_DIR = relative(ROOT, resolve(stringArg('--model', `${ROOT}tests/fixtures/full-size`)));
if (MODEL_DIR.startsWith('..')) throw new Error(`--model must be under ${ROOT}`);
const MODEL_NAME = basename(MODEL_DIR);
const ZS_MODEL = `/${MODEL_DIR}/`;
const TJS = [`/${dirname(MODEL_DIR)}/`, `${MODEL_NAME}-onnx`]; // transformers.js: localModelPath + model id
const ROUNDS = arg('--rounds', 5);
const RUNS = arg('--runs', 5);

const CORES = (await import('node:os')).cpus().length;
// --formats: the full-size model's fp32, f16 and int8 copies (bench/agreement.py writes them with
// `zeroshot convert` into target/agreement/) side by side, ratios to fp32.
const FORMATS = process.argv.includes('--formats');
const MEMORY_ONLY = process.argv.includes('--memory');
const MEMORY_CALLS = Math.max(20, arg('--calls', 200)); // --memory: calls after the first load, the tree measured after 20 and after all
const PAGES = process.argv.includes('--pages');
const copy = (format) => `/target/agreement/${MODEL_NAME}-${format}/`;
const FORMAT_ENGINES = [
  { name: 'zeroshot.js fp32, relaxed, 1 thread', make: ['zeroshot', ZS_MODEL, 'relaxed', 1] },
  { name: 'zeroshot.js f16, relaxed, 1 thread', make: ['zeroshot', copy('f16'), 'relaxed', 1] },
  { name: 'zeroshot.js int8, relaxed, 1 thread', make: ['zeroshot', copy('int8'), 'relaxed', 1] },
  { name: 'zeroshot.js int8, simd128, 1 thread', make: ['zeroshot', copy('int8'), 'simd128', 1] },
  { name: `zeroshot.js int8, relaxed, ${CORES} threads`, make: ['zeroshot', copy('int8'), 'relaxed', 0] },
];
// 'page': the product page itself (www/index.html: its fields, Classify, and the time it shows),
// in a page of its own, beside the module it is built on.
const EXPLAIN_ENGINES = [
  { name: `classify, relaxed, ${CORES} threads`, make: ['zeroshot', ZS_MODEL, 'relaxed', 0] },
  { name: `explain, relaxed, ${CORES} threads`, make: ['zeroshotExplain', ZS_MODEL, 'relaxed', 0] },
  { name: 'classify, relaxed, 1 thread', make: ['zeroshot', ZS_MODEL, 'relaxed', 1] },
  { name: 'explain, relaxed, 1 thread', make: ['zeroshotExplain', ZS_MODEL, 'relaxed', 1] },
];
const ENGINES = EXPLAIN ? EXPLAIN_ENGINES : FORMATS ? FORMAT_ENGINES : [
  { name: `zeroshot.js relaxed, ${CORES} threads`, make: ['zeroshot', ZS_MODEL, 'relaxed', 0] },
  { name: `the page, relaxed, ${CORES} threads`, make: ['page', ZS_MODEL, 0] },
  { name: 'zeroshot.js relaxed, 1 thread', make: ['zeroshot', ZS_MODEL, 'relaxed', 1] },
  { name: 'the page, relaxed, 1 thread', make: ['page', ZS_MODEL, 1] },
  { name: 'zeroshot.js simd128, 1 thread', make: ['zeroshot', ZS_MODEL, 'simd128', 1] },
  { name: 'transformers.js 4.3.2, 1 thread', make: ['transformers', ...TJS] },
];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function openPage(browser, url) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log('page error:', e.message));
  await page.goto(`${url}/www/bench.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 30000 });
  return page;
}

/** The product page for engine `make` (['page', model, threads]), settled (isolated, or not). */
async function openProductPage(browser, url, make) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log('page error:', e.message));
  const [, model, threads] = make;
  await page.goto(`${url}/www/index.html?${new URLSearchParams({ model, backend: 'cpu', threads })}`);
  await page.waitForFunction(() => document.documentElement.dataset.threads, null, { timeout: 30000 });
  await page.fill('#text', TEXT);
  await page.fill('#labels', LABELS.join(', '));
  return page;
}

/** Clicks the page's Classify and resolves to the ms the page shows ("CPU, 75 ms"), with the load's
 * ms where the click loaded the model (0 if it was loaded), and the top label. */
function clickClassify(page) {
  return page.evaluate(async () => {
    const $ = (id) => document.getElementById(id);
    $('run-info').textContent = '';
    const t0 = performance.now();
    let loaded = 0;
    const shown = new Promise((resolve) => {
      const seen = new MutationObserver(() => {
        if (!loaded && $('model-status').textContent.startsWith('Ready')) loaded = performance.now() - t0;
        if (!$('run-info').textContent && !$('error').textContent) return;
        seen.disconnect();
        resolve();
      });
      seen.observe(document.body, { childList: true, characterData: true, subtree: true });
    });
    $('go').click();
    await shown;
    if ($('error').textContent) throw new Error($('error').textContent);
    const ms = Number(/CPU, (\d+) ms/.exec($('run-info').textContent)?.[1]);
    return { ms, loaded, top: document.querySelector('#results .bar .name').textContent };
  });
}

/** Loads engine `i` into window.loaded[i]; returns ms to load and to the first result, and its info. */
async function load(page, i, make) {
  if (make[0] === 'page') {
    const first = await clickClassify(page);
    const info = `the page: ${await page.textContent('#model-status')}`;
    return { load: first.loaded, first: first.ms, info, top: first.top };
  }
  return page.evaluate(async ({ i, make, text, labels }) => {
    const [kind, ...args] = make;
    const t0 = performance.now();
    const engine = await window.engines[kind](...args);
    const t1 = performance.now();
    const first = await engine.run(text, labels);
    window.loaded = window.loaded ?? {};
    window.loaded[i] = engine;
    return { load: t1 - t0, first: performance.now() - t1, info: engine.info, top: first.labels[0] };
  }, { i, make, text: TEXT, labels: LABELS });
}

/** ms per call of engine `i`, `runs` calls (the page: the time it shows for each Classify). */
async function time(page, i, runs) {
  if (ENGINES[i].make[0] === 'page') {
    const times = [];
    for (let r = 0; r < runs; r++) times.push((await clickClassify(page)).ms);
    return times;
  }
  return page.evaluate(async ({ i, runs, text, labels }) => {
    const times = [];
    for (let r = 0; r < runs; r++) {
      const t = performance.now();
      await window.loaded[i].run(text, labels);
      times.push(performance.now() - t);
    }
    return times;
  }, { i, runs, text: TEXT, labels: LABELS });
}

/** Proportional set size (KB) of every descendant of `rootPid` (the browsers this script launched). */
function treePss(rootPid = process.pid) {
  const parent = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      parent.set(Number(pid), Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]));
    } catch { /* exited */ }
  }
  const under = (pid) => parent.get(pid) === rootPid || (parent.has(pid) && pid > 1 && under(parent.get(pid)));
  let kb = 0;
  for (const pid of parent.keys()) {
    if (!under(pid)) continue;
    try {
      kb += Number(/Pss:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]);
    } catch { /* exited */ }
  }
  return kb;
}

/** Fresh browser per engine, on a new profile folder as a visitor's browser has (Playwright's usual
 * context is off the record, where Chromium keeps Cache Storage in the browser process's memory, so
 * a model written to the cache would count twice): PSS of a blank page, then the peak while loading
 * + `calls` calls, and the tree after 20 calls and after all of them (flat if nothing leaks). */
async function memory(url, engine, i, calls = 20) {
  const profile = mkdtempSync(`${tmpdir()}/zeroshot-bench-profile-`);
  const browser = await chromium.launchPersistentContext(profile, { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
  // The baseline is the browser with one blank page; the engine's page, its service worker and
  // its isolation reload count in the peak.
  if (!browser.pages().length) await browser.newPage();
  await new Promise((r) => setTimeout(r, 1000));
  const blank = treePss();
  let peak = blank;
  const sampler = setInterval(() => (peak = Math.max(peak, treePss())), 50);
  const page = await open(browser, url, engine.make);
  const loaded = await load(page, i, engine.make);
  await time(page, i, 20);
  const after20 = treePss();
  if (calls > 20) await time(page, i, calls - 20);
  clearInterval(sampler);
  const after = treePss();
  const cached = MEMORY_ONLY ? await cachedLoad(browser, page, url, engine, i, blank) : null;
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  return { ...loaded, peakMb: (peak - blank) / 1024, after20Mb: (after20 - blank) / 1024, afterMb: (after - blank) / 1024, cached };
}

/** The same engine loaded again on new pages of the same browser (its model now in Cache Storage):
 * the time to load and to the first result on one page, with no sampler running (reading every
 * process's /proc/PID/smaps_rollup each 50 ms takes CPU that a 2-core machine's load would feel);
 * then the tree's peak over the first page's blank figure while another page loads it. */
async function cachedLoad(browser, first, url, engine, i, blank) {
  const settle = () => new Promise((r) => setTimeout(r, 2000));
  await first.close();
  await settle();
  const timedPage = await open(browser, url, engine.make);
  const timed = await load(timedPage, i, engine.make);
  await timedPage.close();
  await settle();
  const page = await open(browser, url, engine.make);
  let peak = treePss();
  const sampler = setInterval(() => (peak = Math.max(peak, treePss())), 50);
  const sampled = await load(page, i, engine.make);
  clearInterval(sampler);
  return { ...timed, sampled, peakMb: (peak - blank) / 1024 };
}

/** A page for engine `make`: the product page for 'page', else the benchmark page. */
const open = (browser, url, make) => (make[0] === 'page' ? openProductPage(browser, url, make) : openPage(browser, url));

// Validators (ETag, Last-Modified) as a static host sends them: a second load of a folder URL can
// then be answered by the HTTP cache, and the kept copy is not written again.
const server = await serve(ROOT, { alias: { '/www/bench.html': 'bench/web.html' }, validators: true });
const weightsMb = readFileSync(`${ROOT}${ZS_MODEL}model.safetensors`).length / 1e6;
if (MEMORY_ONLY) {
  console.log(`peak memory of the Chromium tree over a blank page, fresh browser per engine (${weightsMb.toFixed(0)} MB weights)`);
  for (const [i, e] of ENGINES.entries()) {
    if (e.make[0] === 'transformers') continue;
    const m = await memory(server.url, e, i, MEMORY_CALLS);
    const x = (mb) => `+${mb.toFixed(0)} MB (${(mb / weightsMb).toFixed(2)}x)`;
    const { cached } = m;
    const withSampler = `${(cached.sampled.load / 1000).toFixed(1)} s + ${cached.sampled.first.toFixed(0)} ms while sampled`;
    console.log(`${e.name.padEnd(34)} first load ${(m.load / 1000).toFixed(1)} s, peak ${x(m.peakMb)} over it and ${MEMORY_CALLS} calls; after 20 calls ${x(m.after20Mb)}, after ${MEMORY_CALLS} ${x(m.afterMb)}; cached load ${(cached.load / 1000).toFixed(1)} s + first result ${cached.first.toFixed(0)} ms (${withSampler}), peak ${x(cached.peakMb)}`);
  }
  await server.close();
  process.exit(0);
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
// --pages: each engine in a page of its own (one renderer's heap and threads per engine), else all in one page.
const pages = [];
// The product page is always a page of its own.
const benchPage = () => (pages.find((p, j) => ENGINES[j].make[0] !== 'page'));
for (const [i, e] of ENGINES.entries()) {
  const own = PAGES || e.make[0] === 'page' || !benchPage();
  pages.push(own ? await open(browser, server.url, e.make) : benchPage());
}
const info = [];
for (const [i, e] of ENGINES.entries()) info.push(await load(pages[i], i, e.make));
// One untimed round first: the first calls after every engine has loaded run slow (the 2-thread
// engine's first three measured 258, 194 and 164 ms, then 85-95). Each engine's first result
// after a load of its own is measured below, in a fresh browser.
for (const i of ENGINES.keys()) await time(pages[i], i, RUNS);
const times = ENGINES.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (const i of ENGINES.keys()) times[i].push(...(await time(pages[i], i, RUNS)));
}
await browser.close();

// The ratio's base: the peer (transformers.js), fp32 (--formats), or the classification just above (--explain).
const baseOf = (i) => median(times[EXPLAIN ? i - (i % 2) : FORMATS ? 0 : ENGINES.length - 1]);
const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1];
console.log(`one text x ${LABELS.length} labels, ${MODEL_NAME} model (${weightsMb.toFixed(0)} MB fp32${FORMATS ? '; f16 and int8 copies' : ''}), headless Chromium, plain page`);
console.log(`${cpu}, ${CORES} cores; ${info.map((x) => x.info).join('; ')}`);
const against = EXPLAIN ? 'the classification at the same threads' : FORMATS ? 'fp32' : 'transformers.js';
if (EXPLAIN) console.log(`a ${TEXT.split(' ').length}-word answer x ${LABELS.length} labels: ${TEXT.split(' ').length * LABELS.length + LABELS.length} pairs to explain it`);
console.log(`${ROUNDS} interleaved rounds x ${RUNS} calls after an untimed one${PAGES ? ', a page per engine' : ', one page'}; ratio = engine / ${against} (lower is faster)\n`);
console.log(`${'engine'.padEnd(34)}${'median ms'.padStart(10)}${'min'.padStart(8)}${'max'.padStart(8)}${'ratio'.padStart(8)}   top label`);
for (const [i, e] of ENGINES.entries()) {
  const t = times[i];
  const row = [median(t), Math.min(...t), Math.max(...t)].map((x) => x.toFixed(0));
  console.log(`${e.name.padEnd(34)}${row[0].padStart(10)}${row[1].padStart(8)}${row[2].padStart(8)}${(median(t) / baseOf(i)).toFixed(2).padStart(7)}x   ${info[i].top}`);
}
if (EXPLAIN) {
  await server.close();
  process.exit(0);
}
console.log(`\nfresh browser per engine: load, first result, peak memory of the Chromium tree over a blank page`);
for (const [i, e] of ENGINES.entries()) {
  const m = await memory(server.url, e, i);
  // Each zeroshot engine against its own weights file; transformers.js against the fp32 one.
  const fileMb = e.make[0] !== 'transformers' ? readFileSync(`${ROOT}${e.make[1]}model.safetensors`).length / 1e6 : weightsMb;
  console.log(`${e.name.padEnd(34)} load ${m.load.toFixed(0)} ms + first result ${m.first.toFixed(0)} ms; peak +${m.peakMb.toFixed(0)} MB (${(m.peakMb / fileMb).toFixed(2)}x its ${fileMb.toFixed(0)} MB weights), +${m.afterMb.toFixed(0)} MB after 20 calls`);
}
await server.close();
