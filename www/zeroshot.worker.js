// The model's worker: fetches a model folder, builds the wasm classifier and runs calls one at a
// time. Messages in: {id, op: 'load', model, backend} | {id, op: 'classify', text, labels,
// template, multiLabel}. Messages out: {id, progress} while loading, then {id, ok, ...} or
// {id, error, crashed} (crashed: the wasm instance trapped and this worker must be replaced).
import init, { loadClassifier } from './pkg/zeroshot.js';

const ready = init();
let classifier = null;
let loaded = null; // {model, backend} of the current classifier, to rebuild it on the CPU
let queue = Promise.resolve();

/** Fetches one file of the model folder with progress; null for an optional file that is absent. */
async function fetchFile(base, file, optional, progress) {
  const url = new URL(file, base);
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${e.message}`);
  }
  if (!response.ok) {
    if (optional && response.status === 404) return null;
    throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  }
  const total = Number(response.headers.get('Content-Length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    progress({ file, loaded, total });
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

async function fetchModel(base, progress) {
  const config = await fetchFile(base, 'config.json', false, progress);
  const tokenizerJson = await fetchFile(base, 'tokenizer.json', true, progress);
  const vocab = tokenizerJson ? null : await fetchFile(base, 'vocab.txt', false, progress);
  const tokenizerConfig = await fetchFile(base, 'tokenizer_config.json', true, progress);
  const weights = await fetchFile(base, 'model.safetensors', false, progress);
  return { config, weights, tokenizerJson, vocab, tokenizerConfig };
}

/** 'auto' means WebGPU on a real GPU; a fallback (software) adapter is slower than our CPU path. */
async function resolveBackend(backend) {
  if (backend !== 'auto') return backend;
  if (!self.navigator.gpu) return 'cpu';
  const adapter = await self.navigator.gpu.requestAdapter();
  const fallback = adapter && (adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter);
  return adapter && !fallback ? 'webgpu' : 'cpu';
}

async function build(files, backend) {
  return loadClassifier(files.config, files.weights, files.tokenizerJson, files.vocab, files.tokenizerConfig, backend);
}

async function load({ model, backend }, progress) {
  await ready;
  const files = await fetchModel(model, progress);
  const wanted = await resolveBackend(backend);
  try {
    classifier = await build(files, wanted);
  } catch (e) {
    if (backend !== 'auto' || wanted === 'cpu' || e instanceof WebAssembly.RuntimeError) throw e;
    classifier = await build(files, 'cpu'); // auto: any GPU failure falls back to the CPU
  }
  loaded = { model, backend };
  return { backend: classifier.backend };
}

async function classify({ text, labels, template, multiLabel }) {
  if (!classifier) throw new Error('no model is loaded');
  try {
    return JSON.parse(await classifier.classify(text, labels, template, multiLabel));
  } catch (e) {
    // auto on a GPU that failed (device lost, say): rebuild on the CPU from the fetched files and retry.
    if (loaded?.backend !== 'auto' || classifier.backend !== 'webgpu' || !String(e.message).startsWith('GPU:')) throw e;
    classifier.free();
    classifier = await build(await fetchModel(loaded.model, () => {}), 'cpu');
    return JSON.parse(await classifier.classify(text, labels, template, multiLabel));
  }
}

async function handle(msg) {
  const { id, op } = msg;
  try {
    if (op === 'load') {
      const info = await load(msg, (p) => self.postMessage({ id, progress: p }));
      self.postMessage({ id, ok: true, ...info });
    } else if (op === 'classify') {
      self.postMessage({ id, ok: true, result: await classify(msg) });
    } else {
      throw new Error(`unknown operation ${op}`);
    }
  } catch (e) {
    const crashed = e instanceof WebAssembly.RuntimeError;
    self.postMessage({ id, error: String(e?.message ?? e), crashed });
  }
}

self.onmessage = ({ data }) => {
  queue = queue.then(() => handle(data));
};
