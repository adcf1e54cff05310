// Time from ZeroShotClassifier.load() to the first classify() result, per backend, in headless
// Chromium on a fixture model (after `bash scripts/build-web.sh`):  node bench/web_load.mjs [model]
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../tests/browser/server.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const model = process.argv[2] ?? '/tests/fixtures/typeform-layout/';
const server = await serve(ROOT);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage();
await page.goto(`${server.url}/tests/browser/harness.html`);
await page.waitForFunction(() => window.harnessReady === true);
for (const backend of ['cpu', 'webgpu']) {
  const ms = await page.evaluate(async ({ model, backend }) => {
    const t0 = performance.now();
    const clf = await window.zeroshot.ZeroShotClassifier.load({ model, backend });
    const t1 = performance.now();
    await clf.classify('The battery dies by noon but the camera is great.', ['battery', 'camera', 'price', 'shipping', 'design']);
    const t2 = performance.now();
    await clf.classify('The battery dies by noon but the camera is great.', ['battery', 'camera', 'price', 'shipping', 'design']);
    const t3 = performance.now();
    clf.dispose();
    return { load: t1 - t0, first: t2 - t1, second: t3 - t2 };
  }, { model, backend });
  console.log(`${backend.padEnd(7)} load ${ms.load.toFixed(0)} ms, first result +${ms.first.toFixed(0)} ms, next ${ms.second.toFixed(0)} ms`);
}
await browser.close();
await server.close();
