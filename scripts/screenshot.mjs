// Takes the README's picture of the page (docs/page.png): the built page (bash scripts/build-web.sh)
// in headless Chromium with the demo model, a survey answer and four labels, classified.
//   node scripts/screenshot.mjs [out.png]
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../tests/browser/server.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = process.argv[2] ?? `${ROOT}docs/page.png`;
const TEXT = 'I ordered the blue jacket two weeks ago and it still has not arrived.';
const LABELS = 'shipping delay, refund request, product quality, praise';

const server = await serve(ROOT);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  await page.goto(`${server.url}/www/index.html?model=./models/typeform-layout/&backend=cpu`);
  await page.waitForFunction(() => document.documentElement.dataset.threads, null, { timeout: 30000 });
  await page.fill('#text', TEXT);
  await page.fill('#labels', LABELS);
  await page.click('#go');
  await page.waitForSelector('#results .bar', { timeout: 60000 });
  await page.screenshot({ path: OUT, fullPage: true });
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close();
  await server.close();
}
