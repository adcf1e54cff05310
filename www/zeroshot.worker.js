// The model's worker: gets a model's files (from the Hub or a folder URL, through Cache Storage,
// or picked by the user), builds the wasm classifier and runs calls one at a time.
// Messages in: {id, op: 'load', source, backend, wasm, threads} | {id, op: 'classify', text, labels, template,
// multiLabel}, where source is {kind: 'hub', hub, id, revision} | {kind: 'url', base} |
// {kind: 'files', files: {name: ArrayBuffer}}. Messages out: {id, progress} while loading, then
// {id, ok, ...} or {id, error, crashed} (crashed: the wasm instance trapped; replace this worker).
let loadClassifier = null; // from the wasm build chosen at the first load
let wasmBuild = null;
let threads = 1; // the CPU's threads: the relaxed build's pool where the page is cross-origin isolated
let classifier = null;
let loaded = null; // {model, backend} of the current classifier, to rebuild it on the CPU
let queue = Promise.resolve();

const CACHE_NAME = 'zeroshot-models-v2'; // v2: keys name the Hub's host
const TYPEFORM = 'typeform/distilbert-base-uncased-mnli';
const TYPEFORM_SAFETENSORS_REVISION = 'refs/pr/3';

/** Cache Storage exists only on secure origins (https, localhost). */
const cacheAvailable = () => self.isSecureContext && 'caches' in self;
if (cacheAvailable()) caches.delete('zeroshot-models-v1'); // v1 keys did not name the host

/** The cache key of one file: the Hub's host, the model id and revision, the file name. The host
 * is part of it, so a model fetched from one host is never served for the same id on another. */
function cacheKey(source, file) {
  const host = encodeURIComponent(new URL(source.hub).host);
  const id = encodeURIComponent(source.id);
  return new URL(`/__zeroshot-cache__/${host}/${id}/${encodeURIComponent(source.revision)}/${file}`, self.location.href).href;
}

/** A cached file: bytes, `absent` (a 404 remembered), or null (not cached, or damaged: dropped). */
async function cacheGet(source, file) {
  if (source.kind !== 'hub' || !cacheAvailable()) return null;
  const cache = await caches.open(CACHE_NAME);
  const hit = await cache.match(cacheKey(source, file));
  if (!hit) return null;
  if (hit.headers.get('x-zeroshot-absent') === '1') return 'absent';
  const bytes = new Uint8Array(await hit.arrayBuffer());
  if (String(bytes.length) === hit.headers.get('x-zeroshot-size')) return bytes;
  await cache.delete(cacheKey(source, file)); // truncated or corrupt: fetch it again
  return null;
}

async function cachePut(source, file, bytes, notes) {
  if (source.kind !== 'hub' || !cacheAvailable()) return;
  const headers = bytes ? { 'x-zeroshot-size': String(bytes.length) } : { 'x-zeroshot-absent': '1' };
  try {
    const cache = await caches.open(CACHE_NAME);
    await cache.put(cacheKey(source, file), new Response(bytes ?? '', { headers }));
  } catch (e) {
    notes.push(`could not cache ${file} (${e.name === 'QuotaExceededError' ? 'storage quota exceeded' : e.message}); the model runs from memory`);
  }
}

function fileUrl(source, file, revision = source.revision) {
  if (source.kind === 'url') return new URL(file, source.base);
  return new URL(`${source.hub}/${source.id}/resolve/${encodeURIComponent(revision)}/${file}`);
}

async function request(url) {
  try {
    return await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${e.message}`);
  }
}

/** The response for one file, following typeform's converted weights to refs/pr/3 when main has none. */
async function respond(source, file, notes) {
  let response = await request(fileUrl(source, file));
  const typeformWeights = source.kind === 'hub' && source.id === TYPEFORM && file === 'model.safetensors';
  if (response.status === 404 && typeformWeights && source.revision === 'main') {
    notes.push(`model.safetensors is not on main for ${TYPEFORM}; using revision ${TYPEFORM_SAFETENSORS_REVISION}`);
    response = await request(fileUrl(source, file, TYPEFORM_SAFETENSORS_REVISION));
  }
  return response;
}

/** Reads a response body with progress events; the first says the size before any byte arrives. */
async function readBody(response, file, progress) {
  const total = Number(response.headers.get('Content-Length')) || 0;
  progress({ file, loaded: 0, total });
  const reader = response.body.getReader();
  // One buffer of the announced size, filled in place: the file is held once while it arrives,
  // not as chunks plus their concatenation. It grows (doubling) if the size was missing or wrong.
  let bytes = new Uint8Array(total || 1 << 20);
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > bytes.length) {
      const grown = new Uint8Array(Math.max(bytes.length * 2, loaded + value.length));
      grown.set(bytes.subarray(0, loaded));
      bytes = grown;
    }
    bytes.set(value, loaded);
    loaded += value.length;
    progress({ file, loaded, total });
  }
  return loaded === bytes.length ? bytes : bytes.slice(0, loaded);
}

/** One file of the model: from picked files, the cache, or the network; null if optional and absent. */
async function fetchFile(source, file, optional, progress, notes) {
  if (source.kind === 'files') {
    const buffer = source.files[file];
    if (buffer) return new Uint8Array(buffer);
    if (optional) return null;
    throw new Error(`the chosen files have no ${file}`);
  }
  const cached = await cacheGet(source, file);
  if (cached === 'absent' && optional) return null;
  if (cached instanceof Uint8Array) {
    progress({ file, loaded: cached.length, total: cached.length, cached: true });
    return cached;
  }
  const response = await respond(source, file, notes);
  if (response.status === 404 && optional) {
    await cachePut(source, file, null, notes);
    return null;
  }
  if (!response.ok) {
    const where = source.kind === 'hub' ? `${source.id} at revision ${source.revision}` : source.base;
    const hint = file === 'model.safetensors' ? ' (pytorch_model.bin alone is not supported yet: the model needs model.safetensors)' : '';
    throw new Error(`cannot fetch ${file} of ${where}: HTTP ${response.status}${hint}`);
  }
  const bytes = await readBody(response, file, progress);
  await cachePut(source, file, bytes, notes);
  return bytes;
}

async function fetchModel(source, progress, notes) {
  const config = await fetchFile(source, 'config.json', false, progress, notes);
  const tokenizerJson = await fetchFile(source, 'tokenizer.json', true, progress, notes);
  const vocab = tokenizerJson ? null : await fetchFile(source, 'vocab.txt', false, progress, notes);
  const tokenizerConfig = await fetchFile(source, 'tokenizer_config.json', true, progress, notes);
  const weights = await fetchFile(source, 'model.safetensors', false, progress, notes);
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

/** A tiny module using f32x4.relaxed_madd: it validates where the browser has relaxed SIMD. */
function hasRelaxedSimd() {
  const v128 = [0xfd, 0x0c, ...new Array(16).fill(0)]; // v128.const 0
  const body = [0x00, ...v128, ...v128, ...v128, 0xfd, 0x85, 0x02, 0x0b]; // relaxed_madd; end
  const header = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  const types = [1, 5, 1, 0x60, 0, 1, 0x7b]; // one type: () -> v128
  const funcs = [3, 2, 1, 0];
  const code = [0x0a, body.length + 2, 1, body.length, ...body];
  return WebAssembly.validate(new Uint8Array([...header, ...types, ...funcs, ...code]));
}

/**
 * Imports a wasm build once: `wanted` is 'relaxed', 'simd128' or 'auto' (the fastest that runs
 * here). The relaxed build starts a pool of `maxThreads` workers (default: every core) when the
 * page is cross-origin isolated, which wasm threads need to share memory; else it runs on one.
 */
async function initWasm(wanted = 'auto', maxThreads = 0) {
  const name = wanted === 'auto' ? (hasRelaxedSimd() ? 'relaxed' : 'simd128') : wanted;
  if (wasmBuild && wasmBuild !== name) throw new Error(`this worker already runs the ${wasmBuild} build`);
  if (wasmBuild) return;
  if (!['relaxed', 'simd128'].includes(name)) throw new Error(`unknown wasm build ${JSON.stringify(name)}`);
  if (name === 'relaxed' && !hasRelaxedSimd()) throw new Error('this browser has no WebAssembly relaxed SIMD: use the simd128 build');
  const pkg = await import(`./pkg/${name}/zeroshot.js`);
  await pkg.default();
  const cores = maxThreads > 0 ? maxThreads : (self.navigator.hardwareConcurrency || 1);
  if (name === 'relaxed' && self.crossOriginIsolated && cores > 1) {
    await pkg.initThreadPool(cores);
    threads = cores;
  }
  loadClassifier = pkg.loadClassifier;
  wasmBuild = name;
}

async function build(files, backend) {
  return loadClassifier(files.config, files.weights, files.tokenizerJson, files.vocab, files.tokenizerConfig, backend, threads);
}

async function load({ source, backend, wasm, threads: maxThreads }, progress) {
  await initWasm(wasm, maxThreads);
  const notes = [];
  if (!self.isSecureContext) notes.push('this page is not on a secure origin (https or localhost): no WebGPU and no model cache, so the model runs on the CPU and is downloaded on every visit');
  const files = await fetchModel(source, progress, notes);
  const wanted = await resolveBackend(backend);
  try {
    classifier = await build(files, wanted);
  } catch (e) {
    if (backend !== 'auto' || wanted === 'cpu' || e instanceof WebAssembly.RuntimeError) throw e;
    classifier = await build(files, 'cpu'); // auto: any GPU failure falls back to the CPU
  }
  loaded = { source, backend };
  return { backend: classifier.backend, wasm: wasmBuild, threads: classifier.backend === 'cpu' ? threads : 0, notes };
}

async function classify({ text, labels, template, multiLabel }) {
  if (!classifier) throw new Error('no model is loaded');
  try {
    return JSON.parse(await classifier.classify(text, labels, template, multiLabel));
  } catch (e) {
    // auto on a GPU that failed (device lost, say): rebuild on the CPU from the fetched files and retry.
    if (loaded?.backend !== 'auto' || classifier.backend !== 'webgpu' || !String(e.message).startsWith('GPU:')) throw e;
    classifier.free();
    classifier = await build(await fetchModel(loaded.source, () => {}, []), 'cpu');
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
