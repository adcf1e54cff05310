// The npm package as a web developer gets it: `npm pack` of www/, installed from the tarball into a
// blank site, imported through the package.json `exports` with an import map (no bundler), and run
// in Chromium on a fixture model with transformers' numbers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

let site;
let server;
let browser;

before(() => {
  site = mkdtempSync(join(tmpdir(), 'zeroshot-site-'));
});

after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(site, { recursive: true, force: true });
});

/** Packs www/ and installs the tarball into the blank site, offline; returns the installed manifest. */
function packAndInstall() {
  const out = execFileSync('npm', ['pack', '--pack-destination', site, '--silent'], { cwd: join(ROOT, 'www') });
  const tarball = out.toString().trim().split('\n').pop();
  writeFileSync(join(site, 'package.json'), JSON.stringify({ name: 'blank-site', private: true }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', `./${tarball}`], { cwd: site, stdio: 'pipe' });
  return JSON.parse(readFileSync(join(site, 'node_modules/zeroshot/package.json'), 'utf8'));
}

/** A page that imports 'zeroshot' by name, mapped where the package's `exports` says; with
 * `isolate`, it first calls crossOriginIsolate('./sw.js') as the README says (every core). */
function blankPage(entry, { name = 'index.html', isolate = false } = {}) {
  const importMap = { imports: { zeroshot: `./node_modules/zeroshot/${entry.replace(/^\.\//, '')}` } };
  writeFileSync(join(site, name), `<!doctype html><meta charset="utf-8"><title>blank</title>
<script type="importmap">${JSON.stringify(importMap)}</script>
<script type="module">
  import { ZeroShotClassifier, crossOriginIsolate } from 'zeroshot';
  const reloading = ${isolate} && (await crossOriginIsolate('./sw.js'));
  window.run = async (text, labels, options) => {
    const clf = await ZeroShotClassifier.load({ model: './model/', backend: 'cpu' });
    const result = await clf.classify(text, labels, options);
    return { result, backend: clf.backend, wasm: clf.wasm, threads: clf.threads };
  };
  window.ready = !reloading;
</script>`);
}

test('the packed tarball installs offline and classifies in a blank page with no bundler', async () => {
  const manifest = packAndInstall();
  const installed = join(site, 'node_modules/zeroshot');
  const { types, default: entry } = manifest.exports['.'];
  assert.ok(existsSync(join(installed, types)), `types ${types} is in the package`);
  for (const build of ['relaxed', 'simd128']) {
    assert.ok(existsSync(join(installed, `pkg/${build}/zeroshot_bg.wasm`)), `the ${build} build is in the package`);
  }
  assert.ok(!existsSync(join(installed, 'app.js')), 'the demo page is not in the package');
  blankPage(entry);
  cpSync(join(ROOT, 'tests/fixtures/typeform-layout'), join(site, 'model'), { recursive: true });
  server = await serve(site);
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}/index.html`);
  await page.waitForFunction(() => window.ready === true);
  const reference = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/typeform-layout.reference.json'), 'utf8'));
  const c = reference.pipeline[0];
  const got = await page.evaluate(([text, labels, options]) => window.run(text, labels, options),
    [c.text, c.labels, { hypothesisTemplate: c.template, multiLabel: c.multi_label }]);
  assert.deepEqual(errors, []);
  assert.equal(got.backend, 'cpu');
  assert.deepEqual(got.result.labels, c.expected.labels);
  got.result.scores.forEach((s, i) => assert.ok(Math.abs(s - c.expected.scores[i]) < 5e-5, `score ${i}: actual ${s}, expected ${c.expected.scores[i]}`));
  // Every file the page fetched came from the installed package or the model folder.
  const fetched = server.requests.filter((p) => !['/index.html', '/favicon.ico'].includes(p) && !p.startsWith('/model/'));
  assert.ok(fetched.length > 0 && fetched.every((p) => p.startsWith('/node_modules/zeroshot/')), fetched.join(', '));
});

test("every core in a developer's own page: zeroshot's sw.js copied next to it isolates the page", async () => {
  // The tarball installed and the model copied by the test above.
  const installed = join(site, 'node_modules/zeroshot');
  cpSync(join(installed, 'sw.js'), join(site, 'sw.js'));
  blankPage(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).exports['.'].default, { name: 'cores.html', isolate: true });
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}/cores.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.crossOriginIsolated), true, 'isolated after its one reload');
  const got = await page.evaluate(() => window.run('The match ended in a draw.', ['sports', 'cooking']));
  assert.deepEqual(errors, []);
  assert.equal(got.wasm, 'relaxed');
  assert.equal(got.threads, await page.evaluate(() => navigator.hardwareConcurrency), 'every core');
  await context.close();
});
