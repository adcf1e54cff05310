// Bulk speed in the browser: survey-length answers (bench/survey.py) x 5 labels through
// zeroshot.js's classifyMany, one text per call (batchSize 1) next to batches (batchSize 16, the
// default), interleaved, in headless Chromium: the wasm CPU path (every core, isolated page) on the
// full-size model and on a small fixture, and WebGPU (SwiftShader here: a small fixture only).
// Prints answers per second and the ratio.
//
//   node bench/bulk_web.mjs [--rounds 2]     (after bash scripts/build-web.sh; full-size model optional)
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../tests/browser/server.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const LABELS = ['pricing', 'onboarding', 'support', 'bug report', 'praise'];
const ROUNDS = process.argv.includes('--rounds') ? Number(process.argv[process.argv.indexOf('--rounds') + 1]) : 2;
const answers = (n) => execFileSync('python3', [`${ROOT}/bench/survey.py`, String(n)]).toString().trim().split('\n');

const SETUPS = [
  { name: 'cpu, full-size model', model: '/tests/fixtures/full-size/', backend: 'cpu', n: 200 },
  { name: 'cpu, typeform-layout fixture', model: '/tests/fixtures/typeform-layout/', backend: 'cpu', n: 1000 },
  { name: 'webgpu (SwiftShader), typeform-layout fixture', model: '/tests/fixtures/typeform-layout/', backend: 'webgpu', n: 100 },
].filter((s) => existsSync(`${ROOT}${s.model}model.safetensors`));

/** Answers per second of `texts` through classifyMany at `batchSize` on the loaded window.clf. */
function rate(page, texts, batchSize) {
  return page.evaluate(async ({ texts, labels, batchSize }) => {
    const t = performance.now();
    let n = 0;
    for await (const r of window.clf.classifyMany(texts, labels, { batchSize })) n += r.error ? 0 : 1;
    if (n !== texts.length) throw new Error(`${texts.length - n} answers failed`);
    return texts.length / ((performance.now() - t) / 1000);
  }, { texts, labels: LABELS, batchSize });
}

const server = await serve(ROOT, { isolate: true });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
const page = await browser.newPage();
await page.goto(`${server.url}/tests/browser/harness.html`);
await page.waitForFunction(() => window.harnessReady === true);
console.log(`${LABELS.length} labels per answer; answers per second, one per call vs 16 per call, ${ROUNDS} interleaved rounds`);
for (const s of SETUPS) {
  const info = await page.evaluate(async ({ model, backend }) => {
    window.clf?.dispose();
    window.clf = await window.zeroshot.ZeroShotClassifier.load({ model, backend, _allowFallbackAdapter: true });
    return `${window.clf.backend}, ${window.clf.wasm}, ${window.clf.threads} threads`;
  }, s);
  const texts = answers(s.n);
  for (let round = 1; round <= ROUNDS; round++) {
    const [one, batched] = [await rate(page, texts, 1), await rate(page, texts, 16)];
    console.log(`${s.name} (${info}), ${s.n} answers, round ${round}: ${one.toFixed(1)} vs ${batched.toFixed(1)} answers/s: ${(batched / one).toFixed(2)}x`);
  }
}
await browser.close();
await server.close();
