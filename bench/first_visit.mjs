// A first visit on a slow link, timed both ways the page could take it: the wasm files (the bulk of
// the 5.5 MB app shell the service worker caches before it can isolate the page) answered --delay
// ms late, the full-size model from the same server, a fresh browser profile each time.
//   click: the visitor clicks Classify 1 s after opening the page; the page runs it at once and
//          skips the isolation reload (one thread this visit), as www/app.js does.
//   reload: the page first becomes isolated (its one reload, after the service worker is ready),
//          then the click runs on every core: what waiting for isolation would give at best.
// Prints the time from opening the page to the first result, per way, interleaved.
//   node bench/first_visit.mjs [--delay 8000] [--rounds 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../tests/browser/server.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, def) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def);
const DELAY = arg('--delay', 8000);
const ROUNDS = arg('--rounds', 3);
const MODEL = '/tests/fixtures/full-size/';
const TEXT = 'I loved the onboarding, but the pricing page is confusing.';
const LABELS = 'pricing, onboarding, support, bug report, praise';

/** ms from opening the page to its first result, and the status line that says what ran. */
async function firstResult(url, way) {
  const profile = mkdtempSync(`${tmpdir()}/zeroshot-first-visit-`);
  const browser = await chromium.launchPersistentContext(profile, { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const t0 = Date.now();
    await page.goto(`${url}/www/index.html?${new URLSearchParams({ model: MODEL, backend: 'cpu' })}`);
    await page.fill('#text', TEXT);
    await page.fill('#labels', LABELS);
    if (way === 'click') await page.waitForTimeout(Math.max(0, 1000 - (Date.now() - t0)));
    else await page.waitForFunction(() => document.documentElement.dataset.threads, null, { timeout: 120000 });
    await page.click('#go');
    await page.waitForSelector('#results .bar', { timeout: 120000 });
    return { ms: Date.now() - t0, status: await page.textContent('#model-status') };
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const server = await serve(ROOT, { validators: true, delayMs: (path) => (path.endsWith('.wasm') ? DELAY : 0) });
const results = { click: [], reload: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const way of Object.keys(results)) {
    const r = await firstResult(server.url, way);
    results[way].push(r.ms);
    console.log(`round ${round + 1}, ${way}: ${(r.ms / 1000).toFixed(1)} s (${r.status})`);
  }
}
await server.close();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nwasm ${DELAY} ms late, full-size model: page open to first result, median of ${ROUNDS}`);
for (const [way, ms] of Object.entries(results)) console.log(`${way.padEnd(7)} ${(median(ms) / 1000).toFixed(1)} s`);
