// zeroshot.js in headless Chromium (playwright-core), on the committed fixture checkpoints:
// the same numbers as transformers with backend 'cpu' (wasm) and 'webgpu' (SwiftShader here),
// classifyMany with progress and cancellation, and clear errors for bad models and bad input; the
// probe (weights format and size from a few kilobytes), clf.format and the kept models' formats.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serve } from './server.mjs';
import { serveHub } from './hub.mjs';
import { openHarness } from './harness.mjs';
import { int8Weights, safetensors } from './safetensors.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = [
  'typeform-layout', 'tokenizer-json', 'f16-relu', 'typeform-layout-int8', 'typeform-layout-f16',
  'bert-vocab', 'roberta-bpe', 'roberta-json', 'xlmr-unigram', 'deberta-v3', 'deberta-v2-abs', 'deberta-c2p',
];
const SCORE_TOL = 5e-5;
const ORDER_GAP = 1e-4;

let server;
let isolatedServer;
let browser;
let page;

before(async () => {
  makeBadFixtures();
  server = await serve(ROOT);
  isolatedServer = await serve(ROOT, { isolate: true });
  ({ browser, page } = await openHarness(server.url));
});

after(async () => {
  await browser?.close();
  await server?.close();
  await isolatedServer?.close();
});

/** Copies of a fixture with one thing broken, under target/ (ignored by git). */
function makeBadFixtures() {
  const bad = `${ROOT}/target/browser-fixtures`;
  rmSync(bad, { recursive: true, force: true });
  const copy = (name, files) => {
    mkdirSync(`${bad}/${name}`, { recursive: true });
    for (const f of files) copyFileSync(`${ROOT}/tests/fixtures/typeform-layout/${f}`, `${bad}/${name}/${f}`);
  };
  const all = ['config.json', 'model.safetensors', 'vocab.txt', 'tokenizer_config.json'];
  copy('truncated', all);
  const weights = readFileSync(`${bad}/truncated/model.safetensors`);
  writeFileSync(`${bad}/truncated/model.safetensors`, weights.subarray(0, weights.length / 2));
  copy('wrong-shape', all);
  const config = JSON.parse(readFileSync(`${bad}/wrong-shape/config.json`, 'utf8'));
  writeFileSync(`${bad}/wrong-shape/config.json`, JSON.stringify({ ...config, hidden_dim: 41 }));
  copy('no-vocab', ['config.json', 'model.safetensors', 'tokenizer_config.json']);
  // A RoBERTa with vocab.json but no merges.txt.
  mkdirSync(`${bad}/no-merges`, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer_config.json', 'vocab.json']) {
    copyFileSync(`${ROOT}/tests/fixtures/roberta-bpe/${f}`, `${bad}/no-merges/${f}`);
  }
  // Damaged downloads, refused before the wasm sees them.
  copy('config-cut', all);
  writeFileSync(`${bad}/config-cut/config.json`, JSON.stringify(config).slice(0, 40));
  copy('config-array', all);
  writeFileSync(`${bad}/config-array/config.json`, '[]');
  copy('vocab-latin1', all);
  writeFileSync(`${bad}/vocab-latin1/vocab.txt`, Buffer.concat([Buffer.from('caf\xe9\n', 'latin1'), readFileSync(`${bad}/vocab-latin1/vocab.txt`)]));
  copy('header-too-long', all);
  const huge = Buffer.from(weights);
  huge.writeBigUInt64LE(1n << 40n, 0);
  writeFileSync(`${bad}/header-too-long/model.safetensors`, huge);
}

/** Loads a model in `on` and runs `cases` through it; returns the backend, wasm build, threads and results. */
function runInPage(model, backend, wasm, cases, on = page, threads = 0) {
  return on.evaluate(async ({ model, backend, wasm, cases, threads }) => {
    const clf = await window.zeroshot.ZeroShotClassifier.load({ model, backend, wasm, threads });
    const results = [];
    for (const c of cases) {
      results.push(await clf.classify(c.text, c.labels, { hypothesisTemplate: c.template, multiLabel: c.multi_label }));
    }
    const used = { backend: clf.backend, wasm: clf.wasm, threads: clf.threads };
    clf.dispose();
    return { used, results };
  }, { model, backend, wasm, cases, threads });
}

/** The harness on a server that sends COOP/COEP: cross-origin isolated, so the relaxed build runs threads. */
async function isolatedPage() {
  const p = await browser.newPage();
  await p.goto(`${isolatedServer.url}/tests/browser/harness.html`);
  await p.waitForFunction(() => window.harnessReady === true);
  return p;
}

/** `on.evaluate(fn, arg)`, bounded: past `ms` it fails with the step the page last marked in
 * window.__step and `context()` (a request log, say), so a hang says where it is instead of stalling CI. */
async function evaluateWithin(on, ms, context, fn, arg) {
  let timer;
  const stalled = new Promise((_, reject) => {
    timer = setTimeout(async () => {
      const step = await on.evaluate(() => window.__step).catch((e) => `unreadable: ${e.message}`);
      reject(new Error(`the page did not answer within ${ms} ms, at step ${JSON.stringify(step)}; ${context()}`));
    }, ms);
  });
  try {
    return await Promise.race([on.evaluate(fn, arg), stalled]);
  } finally {
    clearTimeout(timer);
  }
}

function assertMatches(name, c, got) {
  const { labels, scores } = c.expected;
  assert.equal(got.sequence, c.expected.sequence);
  scores.forEach((s, i) => {
    assert.ok(Math.abs(got.scores[i] - s) <= SCORE_TOL, `${name} score ${i}: actual ${got.scores[i]}, expected ${s}`);
    // Exact ties keep transformers' order up to 16 labels (numpy's argsort sorts those by
    // insertion); above, numpy leaves their order unspecified.
    const clear = (a, b) => (a === b && scores.length <= 16) || Math.abs(a - b) > ORDER_GAP;
    const settled = (i === 0 || clear(scores[i - 1], s)) && (i === scores.length - 1 || clear(s, scores[i + 1]));
    if (settled) assert.equal(got.labels[i], labels[i], `${name} rank ${i}`);
  });
}

// Every wasm build on the CPU (its own matmul kernel: fused multiply-add in 'relaxed'), one thread
// on a plain page and every core (2 here) on an isolated one; and WebGPU.
const RUNS = [['cpu', 'relaxed', 1], ['cpu', 'relaxed', 2], ['cpu', 'simd128', 1], ['webgpu', 'relaxed', 0]];
for (const [backend, wasm, threads] of RUNS) {
  describe(`backend ${backend}, wasm ${wasm}, ${threads} thread(s)`, () => {
    for (const name of FIXTURES) {
      test(`${name}: transformers' labels and scores`, async () => {
        const reference = JSON.parse(readFileSync(`${ROOT}/tests/fixtures/${name}.reference.json`, 'utf8'));
        const on = threads > 1 ? await isolatedPage() : page;
        const { used, results } = await runInPage(`/tests/fixtures/${name}/`, backend, wasm, reference.pipeline, on, threads);
        if (on !== page) await on.close();
        assert.deepEqual(used, { backend, wasm, threads });
        reference.pipeline.forEach((c, i) => assertMatches(`${name} case ${i}`, c, results[i]));
        // Cut and reported so, unless transformers cuts nothing (no max_length: relative positions only).
        const long = reference.pipeline.findIndex((c) => c.text.length > 2000);
        assert.equal(results[long].truncated, reference.max_length !== null, 'the long premise is reported truncated where it is cut');
      });
    }
  });
}

// Explanations in every build and on WebGPU, against transformers' occlusions (generate.py), on a
// fixture per tokenizer kind: WordPiece, byte-level BPE, Unigram (XLM-R's, and DeBERTa's with its options).
// SwiftShader takes seconds per forward: WebGPU runs two of them, the single- and the multi-label case.
const EXPLAINED = ['typeform-layout', 'roberta-bpe', 'xlmr-unigram', 'deberta-v2-abs'];
const explained = (backend) => (backend === 'webgpu' ? EXPLAINED.slice(2) : EXPLAINED);
const EFFECT_TOL = 2 * SCORE_TOL;

/** A reference word's char offsets (Python's) as UTF-16 indices into `text`. */
function utf16(text, chars) {
  return Array.from(text).slice(0, chars).join('').length;
}

for (const [backend, wasm, threads] of RUNS) {
  test(`explain: transformers' effects, backend ${backend}, wasm ${wasm}, ${threads} thread(s)`, async () => {
    const on = threads > 1 ? await isolatedPage() : page;
    for (const name of explained(backend)) {
      const reference = JSON.parse(readFileSync(`${ROOT}/tests/fixtures/${name}.reference.json`, 'utf8'));
      if (backend === 'webgpu') reference.explain = reference.explain.slice(0, 2);
      const results = await on.evaluate(async ({ model, backend, wasm, threads, cases }) => {
        const clf = await window.zeroshot.ZeroShotClassifier.load({ model, backend, wasm, threads, _allowFallbackAdapter: true });
        const out = [];
        for (const c of cases) out.push(await clf.explain(c.text, c.labels, { hypothesisTemplate: c.template, multiLabel: c.multi_label }));
        clf.dispose();
        return out;
      }, { model: `/tests/fixtures/${name}/`, backend, wasm, threads, cases: reference.explain });
      reference.explain.forEach((c, n) => {
        const got = results[n];
        assert.equal(got.truncated, c.truncated, `${name} case ${n}`);
        assert.equal(got.words.length, c.words.length, `${name} case ${n}: words`);
        c.words.forEach((w, i) => {
          const g = got.words[i];
          assert.deepEqual([g.text, g.start, g.end], [w.text, utf16(c.text, w.start), utf16(c.text, w.end)], `${name} case ${n} word ${i}`);
          assert.equal(c.text.slice(g.start, g.end), g.text);
          assert.deepEqual(Object.keys(g.effects).sort(), Object.keys(w.effects).sort(), `${name} case ${n} word ${i}: labels`);
          for (const [label, effect] of Object.entries(w.effects)) {
            assert.ok(Math.abs(g.effects[label] - effect) <= EFFECT_TOL, `${name} case ${n} word ${i} ${label}: actual ${g.effects[label]}, expected ${effect}`);
          }
        });
      });
    }
    if (on !== page) await on.close();
  });
}

test('explain reports progress, stops on abort between its steps, and classifyMany explains each text', async () => {
  const out = await page.evaluate(async () => {
    const clf = await window.zeroshot.ZeroShotClassifier.load({ model: '/tests/fixtures/f16-relu/', backend: 'cpu' });
    const text = 'The parcel came late and the support team never answered any of my emails about it.';
    const labels = ['delivery', 'support', 'price', 'quality', 'praise'];
    const progress = [];
    const controller = new AbortController();
    let error = null;
    try {
      await clf.explain(text, labels, { signal: controller.signal, onProgress: (p) => { progress.push(p); controller.abort(); } });
    } catch (e) {
      error = e.name;
    }
    const whole = await clf.explain(text, labels);
    const many = [];
    for await (const r of clf.classifyMany([text, '', 'Fine.'], labels, { explain: true })) many.push(r.words ? r.words.length : r.error);
    clf.dispose();
    return { progress, error, words: whole.words.length, first: whole.words[0], many };
  });
  assert.equal(out.error, 'AbortError');
  assert.ok(out.progress[0].done > 0 && out.progress[0].done < out.progress[0].total, JSON.stringify(out.progress));
  assert.equal(out.words, 16);
  assert.equal(Object.keys(out.first.effects).length, 5);
  assert.deepEqual([out.many[0], out.many[2]], [16, 1]);
  assert.match(out.many[1], /empty/);
});

test("wasm 'auto' takes relaxed SIMD where the browser has it; a wrong build name is refused", async () => {
  const out = await page.evaluate(async () => {
    const clf = await window.zeroshot.ZeroShotClassifier.load({ model: '/tests/fixtures/f16-relu/', backend: 'cpu' });
    const wasm = clf.wasm;
    clf.dispose();
    let error = null;
    try {
      await window.zeroshot.ZeroShotClassifier.load({ model: '/tests/fixtures/f16-relu/', wasm: 'sse' });
    } catch (e) {
      error = e.message;
    }
    return { wasm, error };
  });
  assert.equal(out.wasm, 'relaxed', 'this Chromium has relaxed SIMD');
  assert.match(out.error, /wasm must be 'auto', 'relaxed' or 'simd128'/);
});

test('classifyMany reports progress and stops on abort', async () => {
  const out = await page.evaluate(async () => {
    const clf = await window.zeroshot.ZeroShotClassifier.load({ model: '/tests/fixtures/f16-relu/', backend: 'cpu' });
    const texts = ['one', 'two', 'three', 'four', 'five', 'six'];
    const progress = [];
    const seen = [];
    const controller = new AbortController();
    let error = null;
    try {
      for await (const r of clf.classifyMany(texts, ['a', 'b'], { signal: controller.signal, onProgress: (p) => progress.push(p) })) {
        seen.push(r.sequence);
        if (seen.length === 2) controller.abort();
      }
    } catch (e) {
      error = e.name;
    }
    const all = [];
    for await (const r of clf.classifyMany(texts.slice(0, 3), 'a, b')) all.push(r.sequence);
    clf.dispose();
    return { seen, progress, error, all };
  });
  assert.deepEqual(out.seen, ['one', 'two']);
  assert.deepEqual(out.progress, [{ done: 1, total: 6 }, { done: 2, total: 6 }]);
  assert.equal(out.error, 'AbortError');
  assert.deepEqual(out.all, ['one', 'two', 'three']);
});

test('bad model files reject with our message', async () => {
  const errors = await page.evaluate(async () => {
    const out = {};
    for (const name of ['truncated', 'wrong-shape', 'no-vocab', 'no-merges', 'does-not-exist', 'config-cut', 'config-array', 'vocab-latin1', 'header-too-long']) {
      try {
        await window.zeroshot.ZeroShotClassifier.load({ model: `/target/browser-fixtures/${name}/`, backend: 'cpu' });
        out[name] = 'loaded';
      } catch (e) {
        out[name] = e.message;
      }
    }
    const ok = await window.zeroshot.ZeroShotClassifier.load({ model: '/tests/fixtures/typeform-layout/', backend: 'cpu' });
    out.after = (await ok.classify('text', ['a'])).labels;
    ok.dispose();
    return out;
  });
  assert.match(errors.truncated, /^model\.safetensors is not a valid safetensors file: tensor \S+ ends at byte \d+ of a \d+-byte data section \(downloaded from http:\S+\/truncated\/model\.safetensors\)$/);
  assert.match(errors['config-cut'], /^config\.json is not a JSON object: .*JSON.* \(downloaded from http:\S+\/config-cut\/config\.json\)$/);
  assert.match(errors['config-array'], /^config\.json is not a JSON object: it holds an array \(downloaded from /);
  assert.match(errors['vocab-latin1'], /^vocab\.txt is not UTF-8 text: /);
  assert.match(errors['header-too-long'], /^model\.safetensors is not a valid safetensors file: its header length 1099511627776 is over 100 MB /);
  assert.match(errors['wrong-shape'], /tensor distilbert\.transformer\.layer\.0\.ffn\.lin1\.weight has shape \[40, 16\], expected \[41, 16\]/);
  assert.match(errors['no-vocab'], /\/no-vocab\/ has no tokenizer: it needs tokenizer\.json, vocab\.txt \(BERT\), or vocab\.json and merges\.txt \(RoBERTa\); XLM-R and DeBERTa need tokenizer\.json$/);
  assert.match(errors['no-merges'], /cannot fetch merges\.txt of .*\/no-merges\/: HTTP 404/);
  assert.match(errors['does-not-exist'], /cannot fetch config\.json of .*: HTTP 404/);
  assert.deepEqual(errors.after, ['a']);
});

test('bad input rejects with our message and the next call works', async () => {
  const out = await page.evaluate(async () => {
    const clf = await window.zeroshot.ZeroShotClassifier.load({ model: '/tests/fixtures/tokenizer-json/', backend: 'webgpu' });
    const attempt = async (f) => {
      try {
        await f();
        return 'no error';
      } catch (e) {
        return e.message;
      }
    };
    const r = {
      noLabels: await attempt(() => clf.classify('text', [])),
      noSlot: await attempt(() => clf.classify('text', ['a'], { hypothesisTemplate: 'no slot' })),
      empty: await attempt(() => clf.classify('', ['a'])),
      badBackend: await attempt(() => window.zeroshot.ZeroShotClassifier.load({ model: '/x/', backend: 'gpu' })),
    };
    r.next = (await clf.classify('still works', 'x, y', { multiLabel: true })).labels.length;
    clf.dispose();
    r.disposed = await attempt(() => clf.classify('text', ['a']));
    return r;
  });
  assert.match(out.noLabels, /no candidate labels/);
  assert.match(out.noSlot, /formatting it with the label changes nothing/);
  assert.match(out.empty, /the text is empty/);
  assert.match(out.badBackend, /backend must be 'auto', 'webgpu' or 'cpu'/);
  assert.equal(out.next, 2);
  assert.match(out.disposed, /disposed/);
});

const weightsBytes = (fixture) => statSync(`${ROOT}/tests/fixtures/${fixture}/model.safetensors`).size;

/** What `run` resolves to, and the requests for a model.safetensors made meanwhile, as [method, Range]. */
async function weightsRequests(run) {
  const seen = [];
  const record = (r) => r.url().endsWith('/model.safetensors') && seen.push([r.method(), r.headers().range ?? null]);
  page.context().on('request', record);
  try {
    return { result: await run(), seen };
  } finally {
    page.context().off('request', record);
  }
}

test("probe: a folder URL's weights format and size from a HEAD and the header's bytes, with no download", async () => {
  const { result, seen } = await weightsRequests(() => page.evaluate(async () => {
    const probe = (model) => window.zeroshot.ZeroShotClassifier.probe({ model });
    return [await probe('/tests/fixtures/typeform-layout/'), await probe('/tests/fixtures/f16-relu/')];
  }));
  assert.deepEqual(result, [
    { format: 'fp32', bytes: weightsBytes('typeform-layout'), cached: false },
    { format: 'f16', bytes: weightsBytes('f16-relu'), cached: false },
  ]);
  assert.ok(seen.some(([method]) => method === 'HEAD'), JSON.stringify(seen));
  assert.ok(seen.every(([method, range]) => method === 'HEAD' || /^bytes=\d+-\d+$/.test(range)), `no full GET: ${JSON.stringify(seen)}`);
});

test('probe: picked files; the format is int8 where a tensor is I8, f16/bf16 where every float is, as __metadata__ says first', async () => {
  const files = {
    fp32: readFileSync(`${ROOT}/tests/fixtures/typeform-layout/model.safetensors`),
    f16: readFileSync(`${ROOT}/tests/fixtures/f16-relu/model.safetensors`),
    int8: int8Weights(),
    'int8, no metadata': int8Weights({ metadata: false }),
    bf16: safetensors({ a: ['BF16', [4, 4]], b: ['BF16', [4]] }),
    'f16 and f32': safetensors({ a: ['F16', [4, 4]], b: ['F32', [4]] }),
    'stated f16': safetensors({ a: ['F32', [4]] }, { format: 'pt', zeroshot_weights: 'f16' }),
    'header past the end': Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]),
    'offsets past the end': safetensors({ a: ['F32', [4]] }).subarray(0, -4),
  };
  const got = await page.evaluate(async (encoded) => {
    const out = {};
    for (const [name, base64] of Object.entries(encoded)) {
      const weights = new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], 'model.safetensors');
      out[name] = await window.zeroshot.ZeroShotClassifier.probe({ files: [new File(['{}'], 'config.json'), weights] }).catch((e) => e.message);
    }
    out.none = await window.zeroshot.ZeroShotClassifier.probe({ files: [new File(['{}'], 'config.json')] }).catch((e) => e.message);
    return out;
  }, Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.toString('base64')])));
  const want = { fp32: 'fp32', f16: 'f16', int8: 'int8', 'int8, no metadata': 'int8', bf16: 'bf16', 'f16 and f32': 'fp32', 'stated f16': 'f16' };
  for (const [name, format] of Object.entries(want)) assert.deepEqual(got[name], { format, bytes: files[name].length, cached: false }, name);
  assert.match(got['header past the end'], /^model\.safetensors is not a valid safetensors file: its 65535-byte header runs past the end of the 10-byte file$/);
  assert.match(got['offsets past the end'], /^model\.safetensors is not a valid safetensors file: tensor a ends at byte 16 of a 12-byte data section$/);
  assert.match(got.none, /the chosen files have no model\.safetensors/);
});

test('probe: a damaged header or a missing file rejects with our message', async () => {
  const got = await page.evaluate(async () => {
    const out = {};
    for (const name of ['header-too-long', 'truncated', 'does-not-exist']) {
      out[name] = await window.zeroshot.ZeroShotClassifier.probe({ model: `/target/browser-fixtures/${name}/` }).catch((e) => e.message);
    }
    out.id = await window.zeroshot.ZeroShotClassifier.probe({ model: 'not a model id' }).catch((e) => e.message);
    return out;
  });
  assert.match(got['header-too-long'], /^model\.safetensors is not a valid safetensors file: its header length 1099511627776 is over 100 MB$/);
  assert.match(got.truncated, /^model\.safetensors is not a valid safetensors file: tensor \S+ ends at byte \d+ of a \d+-byte data section$/);
  assert.match(got['does-not-exist'], /^cannot fetch model\.safetensors of http:\S+\/does-not-exist\/: HTTP 404/);
  assert.match(got.id, /^ZeroShotClassifier\.probe: "not a model id" is not a Hub model id$/);
});

test("clf.format is the loaded weights' format, and the kept models list theirs", async () => {
  const out = await page.evaluate(async () => {
    const { ZeroShotClassifier } = window.zeroshot;
    const loaded = {};
    for (const name of ['typeform-layout', 'f16-relu']) {
      const clf = await ZeroShotClassifier.load({ model: `/tests/fixtures/${name}/`, backend: 'cpu' });
      loaded[name] = clf.format;
      clf.dispose();
    }
    const kept = async () => Object.fromEntries((await ZeroShotClassifier.cachedModels())
      .filter((m) => m.kind === 'url' && /\/tests\/fixtures\/(typeform-layout|f16-relu)\/$/.test(m.url))
      .map((m) => [m.url.split('/').at(-2), m.format]));
    const noted = await kept();
    // An entry with no format noted on it: the list reads the kept file's header instead.
    const cache = await caches.open('zeroshot-models-v2');
    const key = (await cache.keys()).find((r) => r.url.endsWith('/tests/fixtures/f16-relu/model.safetensors'));
    const old = await cache.match(key);
    await cache.put(key, new Response(await old.arrayBuffer(), { headers: { 'x-zeroshot-size': old.headers.get('x-zeroshot-size') } }));
    return { loaded, noted, read: await kept() };
  });
  assert.deepEqual(out.loaded, { 'typeform-layout': 'fp32', 'f16-relu': 'f16' });
  assert.deepEqual(out.noted, { 'typeform-layout': 'fp32', 'f16-relu': 'f16' });
  assert.deepEqual(out.read, { 'typeform-layout': 'fp32', 'f16-relu': 'f16' });
});

test("convert: 'int8' keeps only the converted weights of a Hub model, which score as `zeroshot convert`'s do", async () => {
  const hub = await serveHub(ROOT);
  try {
    // acme/plain-model serves the typeform-layout fixture; converted, it must be typeform-layout-int8.
    const reference = JSON.parse(readFileSync(`${ROOT}/tests/fixtures/typeform-layout-int8.reference.json`, 'utf8'));
    const cases = reference.pipeline.slice(0, 4);
    const requests = () => `hub requests: ${JSON.stringify(hub.log)}`;
    const out = await evaluateWithin(page, 60_000, requests, async ({ hub, cases }) => {
      const { ZeroShotClassifier } = window.zeroshot;
      const load = (extra) => ZeroShotClassifier.load({ model: 'acme/plain-model', hub, backend: 'cpu', ...extra });
      window.__step = 'first load, converting';
      const clf = await load({ convert: 'int8' });
      const results = [];
      window.__step = 'classify';
      for (const c of cases) results.push(await clf.classify(c.text, c.labels, { hypothesisTemplate: c.template, multiLabel: c.multi_label }));
      const first = { format: clf.format, notes: clf.notes };
      clf.dispose();
      window.__step = 'cachedModels';
      const kept = (await ZeroShotClassifier.cachedModels()).filter((m) => m.kind === 'hub' && m.id === 'acme/plain-model');
      window.__step = 'second load, from the kept copy';
      const again = await load({ convert: 'int8' });
      const second = { format: again.format, notes: again.notes };
      again.dispose();
      const refusals = [];
      window.__step = 'refusals';
      for (const extra of [{ convert: 'int4' }, { convert: 'int8', model: '/tests/fixtures/typeform-layout/' }]) {
        refusals.push(await load(extra).then(() => 'loaded', (e) => e.message));
      }
      window.__step = 'done';
      return { results, first, second, kept: kept.map((m) => ({ revision: m.revision, format: m.format, bytes: m.bytes })), refusals };
    }, { hub: hub.url, cases });
    cases.forEach((c, i) => assertMatches(`converted case ${i}`, c, out.results[i]));
    assert.equal(out.first.format, 'int8');
    assert.ok(out.first.notes.some((n) => /converted to int8 in the browser: 0\.7 MB kept on this device instead of 2\.0 MB/.test(n)), out.first.notes.join('; '));
    assert.deepEqual(out.kept.map((m) => [m.revision, m.format]), [['main~int8', 'int8']], 'only the converted copy is kept');
    assert.ok(out.kept[0].bytes < 1_000_000, `kept ${out.kept[0].bytes} bytes`);
    assert.equal(out.second.format, 'int8');
    const weightGets = hub.log.filter((r) => r.method === 'GET' && !r.range && r.path.endsWith('/model.safetensors'));
    assert.equal(weightGets.length, 1, 'the second load takes the kept converted copy');
    assert.match(out.refusals[0], /convert must be 'f16' or 'int8', not "int4"/);
    assert.match(out.refusals[1], /convert applies to Hub models/);
  } finally {
    await hub.close();
  }
});

// How a folder URL's second load learns that the files did not change, by server: same origin with
// ETags (If-None-Match, 304), same origin with only Last-Modified (If-Modified-Since, 304), and
// another origin (a CDN: a HEAD whose ETag or Last-Modified and length match the kept copy's).
const REVALIDATIONS = [
  { server: { validators: true }, page: 'model', weights: [[200, 'GET'], [304, 'GET']] },
  { server: { validators: 'last-modified' }, page: 'model', weights: [[200, 'GET'], [304, 'GET']] },
  { server: { validators: true, cors: true }, page: 'other', weights: [[200, 'GET'], [200, 'HEAD']] },
  { server: { validators: 'last-modified', cors: true }, page: 'other', weights: [[200, 'GET'], [200, 'HEAD']] },
];

for (const { server: options, page: where, weights: expected } of REVALIDATIONS) {
  const what = `${options.validators === true ? 'ETag' : 'Last-Modified'}, ${where === 'model' ? 'same origin' : 'another origin'}`;
  test(`a folder URL's second load asks whether the files changed and uses the kept copy (${what})`, async () => {
    const models = await serve(ROOT, options);
    const on = await browser.newPage();
    try {
      await on.goto(`${where === 'model' ? models.url : server.url}/tests/browser/harness.html`);
      await on.waitForFunction(() => window.harnessReady === true);
      const loads = await on.evaluate(async (model) => {
        const out = [];
        for (let i = 0; i < 2; i++) {
          const kept = [];
          const onProgress = (p) => p.cached && !kept.includes(p.file) && kept.push(p.file);
          const clf = await window.zeroshot.ZeroShotClassifier.load({ model, backend: 'cpu', onProgress });
          out.push({ kept, result: await clf.classify('the camera is sharp', ['camera', 'battery']) });
          clf.dispose();
        }
        return out;
      }, `${models.url}/tests/fixtures/typeform-layout/`);
      assert.deepEqual(loads[0].kept, [], 'the first load downloads');
      assert.deepEqual(loads[1].kept.sort(), ['config.json', 'model.safetensors', 'tokenizer_config.json', 'vocab.txt']);
      assert.deepEqual(loads[1].result, loads[0].result);
      const weights = models.statuses.filter(([path]) => path === '/tests/fixtures/typeform-layout/model.safetensors');
      assert.deepEqual(weights.map(([, status, method]) => [status, method]), expected);
    } finally {
      await on.close();
      await models.close();
    }
  });
}

