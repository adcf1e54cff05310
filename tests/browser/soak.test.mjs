// Long runs of zeroshot.js in headless Chromium, on the typeform-layout fixture: 1,000 classifications across
// a CPU and a WebGPU (SwiftShader) classifier with the wasm memory and the workers' JS heaps flat after warm-up,
// a GPU device lost during a call under 'auto' (the call ends on the CPU with the right result), and a wasm trap
// (the pending calls reject with a message, the next call works). The failures come from the wasm test hooks.
// A call that never settles (a worker that is not replaced, say) fails by the tests' timeouts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { serve } from './server.mjs';
import { openHarness } from './harness.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MODEL = '/tests/fixtures/typeform-layout/';
// 1,000 calls in all. SwiftShader takes 0.3-3 s a call here (its overhead per dispatch, on 2 busy cores) where
// the CPU path takes 2-80 ms, so WebGPU gets fewer calls, shorter texts and fewer labels. Each backend's inputs
// repeat with a short period, so every kind of call is in its warm-up and runs again many times after it.
const SHORT = [['shipping', 'billing'], ['weather']];
const SOAK = {
  cpu: { calls: 850, warmUp: 100, words: [3, 12, 40, 120, 250], labelSets: [...SHORT, ['praise', 'complaint', 'question', 'bug', 'feature request']] },
  webgpu: { calls: 150, warmUp: 50, words: [3, 12, 40], labelSets: SHORT },
};
// Bounds after warm-up. Wasm memory never shrinks, so a leak shows as growth; one 64 KiB page is allowed
// for the allocator placing a buffer differently (none was seen). The heap is measured after a full GC and grew
// 12-47 KiB in runs here, the same for 500 or 750 calls after warm-up (a one-off, not per call); 128 KiB is under
// what the CPU's 750 calls would add if each kept 200 bytes (its input alone averages ~450), or the GPU's 100 if
// each kept a few of the dozens of WebGPU objects a forward makes.
const WASM_GROWTH_MAX = 64 * 1024;
const HEAP_GROWTH_MAX = 128 * 1024;
const WORDS = ('the parcel arrived late and the box was damaged so i asked for a refund but nobody answered my emails '
  + 'about the invoice while the new phone has great battery life and the camera is sharp in low light').split(' ');

let server;
let browser;
let page;

before(async () => {
  server = await serve(ROOT);
  ({ browser, page } = await openHarness(server.url));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Call i of a backend's soak: a text of one of its lengths, a label set, single- or multi-label. */
function soakInput(backend, i) {
  const j = i % period(backend);
  const { words, labelSets } = SOAK[backend];
  const text = Array.from({ length: words[j % words.length] }, (_, k) => WORDS[(k * 7 + j) % WORDS.length]).join(' ');
  return { text, labels: labelSets[j % labelSets.length], multiLabel: j % 2 === 1 };
}

/** The period of a backend's inputs: a multiple of the lengths, the label sets and 2 (single/multi-label). */
function period(backend) {
  const { words, labelSets } = SOAK[backend];
  const gcd = (a, b) => (b ? gcd(b, a % b) : a);
  return [words.length, labelSets.length, 2].reduce((a, b) => (a * b) / gcd(a, b));
}

/** Runs calls [from, to) of each backend's soak at once (one worker each), in the page. */
function soak(from, to) {
  const inputs = {};
  for (const backend of Object.keys(SOAK)) {
    inputs[backend] = [];
    for (let i = from[backend]; i < to[backend]; i++) inputs[backend].push(soakInput(backend, i));
  }
  return page.evaluate(async (inputs) => {
    const run = async (clf, list) => {
      const out = [];
      for (const c of list) out.push({ ...(await clf.classify(c.text, c.labels, { multiLabel: c.multiLabel })), backend: clf.backend });
      return out;
    };
    const [cpu, webgpu] = await Promise.all([run(window.soak.cpu, inputs.cpu), run(window.soak.webgpu, inputs.webgpu)]);
    return { cpu, webgpu };
  }, inputs);
}

/** The ids of the zeroshot workers' DevTools targets. */
async function workerTargets(cdp) {
  const { targetInfos } = await cdp.send('Target.getTargets');
  return targetInfos.filter((t) => t.type === 'worker' && t.url.endsWith('/www/zeroshot.worker.js')).map((t) => t.targetId);
}

/** A worker's JS heap in bytes, after a full GC. Workers have no performance.memory, so this asks V8 through the
 * DevTools protocol, attached to the worker's target unflattened (playwright's sessions cannot name a child). */
async function workerHeap(cdp, targetId) {
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: false });
  const replies = new Map();
  const onMessage = (e) => {
    const reply = JSON.parse(e.message);
    if (e.sessionId === sessionId) replies.get(reply.id)?.(reply);
  };
  cdp.on('Target.receivedMessageFromTarget', onMessage);
  const send = (id, method) => new Promise((resolve, reject) => {
    replies.set(id, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)));
    cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method }) }).catch(reject);
  });
  try {
    await send(1, 'HeapProfiler.collectGarbage');
    return (await send(2, 'Runtime.getHeapUsage')).usedSize;
  } finally {
    cdp.off('Target.receivedMessageFromTarget', onMessage);
    await cdp.send('Target.detachFromTarget', { sessionId });
  }
}

/** Loads window.soak.cpu and window.soak.webgpu; returns each one's worker target. */
async function loadSoakClassifiers(cdp) {
  const targets = {};
  for (const backend of Object.keys(SOAK)) {
    const before = new Set(await workerTargets(cdp));
    const used = await page.evaluate(async ({ model, backend }) => {
      window.soak ??= {};
      window.soak[backend] = await window.zeroshot.ZeroShotClassifier.load({ model, backend });
      return window.soak[backend].backend;
    }, { model: MODEL, backend });
    assert.equal(used, backend);
    const fresh = (await workerTargets(cdp)).filter((t) => !before.has(t));
    assert.equal(fresh.length, 1, `one new worker for the ${backend} classifier`);
    targets[backend] = fresh[0];
  }
  return targets;
}

/** Wasm memory and JS heap of each backend's worker. */
async function measure(cdp, targets) {
  const out = {};
  for (const backend of Object.keys(SOAK)) {
    const { wasmMemoryBytes } = await page.evaluate((b) => window.soak[b]._stats(), backend);
    out[backend] = { wasmMemoryBytes, jsHeapBytes: await workerHeap(cdp, targets[backend]) };
  }
  return out;
}

/** Every call ran on its backend, and a repeated input gives the scores its first run gave. */
function assertSteady(backend, results) {
  results.forEach((r, i) => {
    assert.equal(r.backend, backend, `${backend} call ${i} ran on ${r.backend}`);
    const first = results[i % period(backend)];
    assert.deepEqual(r.labels, first.labels, `${backend} call ${i}: labels as in call ${i % period(backend)}`);
    r.scores.forEach((s, k) => assert.ok(Math.abs(s - first.scores[k]) <= 1e-6, `${backend} call ${i} score ${k}: ${s} vs ${first.scores[k]}`));
  });
}

test('soak: 1,000 calls on the CPU and WebGPU, wasm memory and worker JS heaps flat after warm-up', { timeout: 300_000 }, async () => {
  const cdp = await browser.newBrowserCDPSession();
  const targets = await loadSoakClassifiers(cdp);
  const start = Date.now();
  const warmUp = { cpu: SOAK.cpu.warmUp, webgpu: SOAK.webgpu.warmUp };
  const warm = await soak({ cpu: 0, webgpu: 0 }, warmUp);
  const atWarmUp = await measure(cdp, targets);
  const rest = await soak(warmUp, { cpu: SOAK.cpu.calls, webgpu: SOAK.webgpu.calls });
  const atEnd = await measure(cdp, targets);
  await page.evaluate(() => Object.values(window.soak).forEach((c) => c.dispose()));
  await cdp.detach();
  console.log(`soak: ${SOAK.cpu.calls} CPU + ${SOAK.webgpu.calls} WebGPU calls in ${((Date.now() - start) / 1000).toFixed(1)} s`);
  for (const backend of Object.keys(SOAK)) {
    const [w, e] = [atWarmUp[backend], atEnd[backend]];
    console.log(`soak ${backend}: wasm memory ${w.wasmMemoryBytes} B after ${SOAK[backend].warmUp} calls, ${e.wasmMemoryBytes} B after ${SOAK[backend].calls}; `
      + `worker JS heap (after GC) ${w.jsHeapBytes} B, then ${e.jsHeapBytes} B`);
    assertSteady(backend, [...warm[backend], ...rest[backend]]);
    assert.ok(e.wasmMemoryBytes - w.wasmMemoryBytes <= WASM_GROWTH_MAX, `${backend}: wasm memory grew from ${w.wasmMemoryBytes} to ${e.wasmMemoryBytes}`);
    assert.ok(e.jsHeapBytes - w.jsHeapBytes <= HEAP_GROWTH_MAX, `${backend}: worker JS heap grew from ${w.jsHeapBytes} to ${e.jsHeapBytes}`);
  }
});

// A text long enough that the forward is in flight on the GPU when the device goes.
const TEXT = WORDS.slice(0, 30).join(' ');
const LABELS = ['shipping', 'billing', 'praise'];

/** Every score of `got` within `tol` of `want`'s, the labels in the same order. */
function assertSameScores(got, want, what, tol = 1e-5) {
  assert.deepEqual(got.labels, want.labels, `${what}: labels`);
  got.scores.forEach((s, i) => assert.ok(Math.abs(s - want.scores[i]) <= tol, `${what} score ${i}: ${s}, expected ${want.scores[i]}`));
}

test("GPU device lost during a call: 'auto' ends that call on the CPU with the right result", { timeout: 60_000 }, async () => {
  const out = await page.evaluate(async ({ model, text, labels }) => {
    const { ZeroShotClassifier } = window.zeroshot;
    const plain = await ZeroShotClassifier.load({ model, backend: 'auto' });
    const plainBackend = plain.backend;
    plain.dispose();
    const cpu = await ZeroShotClassifier.load({ model, backend: 'cpu' });
    const auto = await ZeroShotClassifier.load({ model, backend: 'auto', _allowFallbackAdapter: true });
    const loadedOn = auto.backend;
    const first = { ...(await auto.classify(text, labels)), on: auto.backend };
    await auto._test('lose-device');
    const lost = { ...(await auto.classify(text, labels)), on: auto.backend };
    const further = { ...(await auto.classify('the camera is sharp', labels)), on: auto.backend };
    const onCpu = { text: await cpu.classify(text, labels), other: await cpu.classify('the camera is sharp', labels) };
    const cpuHook = await cpu._test('lose-device').then(() => 'no error', (e) => e.message);
    auto.dispose();
    cpu.dispose();
    return { plainBackend, loadedOn, first, lost, further, onCpu, cpuHook };
  }, { model: MODEL, text: TEXT, labels: LABELS });
  assert.equal(out.plainBackend, 'cpu', "without the test switch 'auto' leaves SwiftShader for the CPU");
  assert.equal(out.loadedOn, 'webgpu', "with it, 'auto' loads on WebGPU");
  assert.equal(out.first.on, 'webgpu', 'the first call runs on WebGPU');
  assertSameScores(out.first, out.onCpu.text, 'the WebGPU call', 5e-5);
  assert.equal(out.lost.on, 'cpu', 'the call that lost the device ends on the CPU');
  assertSameScores(out.lost, out.onCpu.text, 'the call that lost the device');
  assert.equal(out.further.on, 'cpu');
  assertSameScores(out.further, out.onCpu.other, 'the call after');
  assert.match(out.cpuHook, /lose-device: this classifier runs on the CPU/);
});

test('a wasm trap rejects the pending calls with a message, and the next call works', { timeout: 60_000 }, async () => {
  const out = await page.evaluate(async ({ model, text, labels }) => {
    const clf = await window.zeroshot.ZeroShotClassifier.load({ model, backend: 'cpu' });
    const before = await clf.classify(text, labels);
    const settle = (p) => p.then(() => ({ resolved: true }), (e) => ({ isError: e instanceof Error, message: e?.message }));
    // Not awaited: both classify calls are queued in the worker behind the trap.
    const calls = [clf._test('trap'), clf.classify(text, labels), clf.classify('the camera is sharp', labels)];
    const [trap, ...pending] = await Promise.all(calls.map(settle));
    const next = await clf.classify(text, labels);
    const after = { backend: clf.backend, again: (await clf.classify('the camera is sharp', labels)).labels.length };
    clf.dispose();
    return { before, trap, pending, next, after };
  }, { model: MODEL, text: TEXT, labels: LABELS });
  assert.deepEqual(out.trap, { isError: true, message: 'zeroshot crashed: the wasm instance trapped (unreachable); it restarts on the next call' });
  for (const p of out.pending) {
    assert.deepEqual(p, { isError: true, message: 'zeroshot crashed during an earlier call: the wasm instance trapped (unreachable); it restarts on the next call' });
  }
  assertSameScores(out.next, out.before, 'the first call after the trap', 0);
  assert.deepEqual(out.after, { backend: 'cpu', again: LABELS.length });
});
