// Headless Chromium on tests/browser/harness.html (zeroshot.js as window.zeroshot), shared by the
// library's browser tests.
import { chromium } from 'playwright-core';

/** Chromium with WebGPU (SwiftShader here) and nothing that reaches the network on its own. */
export const ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A browser and a page on the harness at `serverUrl`, ready to use window.zeroshot. */
export async function openHarness(serverUrl) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log('page error:', e.message));
  await page.goto(`${serverUrl}/tests/browser/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true);
  return { browser, page };
}
