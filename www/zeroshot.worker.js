// The model's worker: gets a model's files (from the Hub or a folder URL, through Cache Storage,
// or picked by the user), builds the wasm classifier and runs calls one at a time.
// Messages in: {id, op: 'load', source, backend, wasm, threads, allowFallbackAdapter} | {id, op: 'classify', text,
// labels, template, multiLabel} | {id, op: 'classifyBatch', texts, labels, template, multiLabel}, where source is {kind: 'hub', hub, id, revision} | {kind: 'url', base} |
// {kind: 'files', files: {name: ArrayBuffer}}; for tests only, {id, op: 'test', action} (the wasm test hook:
// 'trap' or 'lose-device') and {id, op: 'stats'}. Messages out: {id, progress} while loading, then {id, ok, ...}
// (load and the classify ops say the backend and threads in use; classifyBatch gives {results}: per text {ok} or {error}) or {id, error, crashed} (crashed: the wasm instance
// trapped or the model is lost; replace this worker).
let loadClassifier = null; // from the wasm build chosen at the first load
let wasmBuild = null;
let wasmMemory = null; // the instance's memory, for the tests' stats
let trapped = null; // the trap's message once the instance has trapped: its state is unknown, so nothing runs on it
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

/** Where a file is kept. Hub files: by the Hub's host, the model id and revision, the file name (the
 * host is part of it, so a model fetched from one host is never served for the same id on another).
 * Files of a folder URL (the demo models, a site's own model): by their URL. */
function cacheKey(source, file) {
  if (source.kind === 'url') return fileUrl(source, file).href;
  const host = encodeURIComponent(new URL(source.hub).host);
  const id = encodeURIComponent(source.id);
  return new URL(`/__zeroshot-cache__/${host}/${id}/${encodeURIComponent(source.revision)}/${file}`, self.location.href).href;
}

/** A cached file: bytes, `absent` (a 404 remembered), or null (not cached, or damaged: dropped). */
async function cacheGet(source, file) {
  if (source.kind === 'files' || !cacheAvailable()) return null;
  const cache = await caches.open(CACHE_NAME);
  const hit = await cache.match(cacheKey(source, file));
  if (!hit) return null;
  if (hit.headers.get('x-zeroshot-absent') === '1') return 'absent';
  const bytes = new Uint8Array(await hit.arrayBuffer());
  if (String(bytes.length) === hit.headers.get('x-zeroshot-size')) return bytes;
  await cache.delete(cacheKey(source, file)); // truncated or corrupt: fetch it again
  return null;
}

/** Keeps a file (or, with null bytes, its absence); `validator` says which version it is (a folder
 * URL's ETag, Last-Modified and length), so an unchanged file is not written again. */
async function cachePut(source, file, bytes, notes, validator = '') {
  if (source.kind === 'files' || !cacheAvailable()) return;
  const headers = bytes ? { 'x-zeroshot-size': String(bytes.length), 'x-zeroshot-validator': validator } : { 'x-zeroshot-absent': '1' };
  try {
    const cache = await caches.open(CACHE_NAME);
    await cache.put(cacheKey(source, file), new Response(bytes ?? '', { headers }));
  } catch (e) {
    notes.push(`could not cache ${file} (${e.name === 'QuotaExceededError' ? 'storage quota exceeded' : e.message}); the model runs from memory`);
  }
}

/** A folder URL's file version, as its server states it (empty when it states nothing). */
function validatorOf(response) {
  const h = (name) => response.headers.get(name) ?? '';
  const v = `${h('ETag')}|${h('Last-Modified')}`;
  return v === '|' ? '' : `${v}|${h('Content-Length')}`;
}

/** Whether a folder URL's file differs from the copy kept (or none is kept). */
async function keptCopyDiffers(source, file, validator) {
  if (!validator || !cacheAvailable()) return true;
  const hit = await (await caches.open(CACHE_NAME)).match(cacheKey(source, file));
  return hit?.headers.get('x-zeroshot-validator') !== validator;
}

/** With no network, a folder URL's file comes from the copy kept on the last load. */
async function offlineCopy(source, file, optional, progress, notes, error) {
  const cached = source.kind === 'url' ? await cacheGet(source, file) : null;
  if (cached === 'absent' && optional) return null;
  if (!(cached instanceof Uint8Array)) throw error;
  if (!notes.includes(OFFLINE_NOTE)) notes.push(OFFLINE_NOTE);
  progress({ file, loaded: cached.length, total: cached.length, cached: true });
  return cached;
}

const OFFLINE_NOTE = 'no network: the model comes from the copy kept on this device';

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

const utf8 = (bytes) => new TextDecoder('utf-8', { fatal: true }).decode(bytes);

function parseObject(bytes) {
  const value = JSON.parse(utf8(bytes));
  if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  throw new Error(`it holds ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`);
}

const MAX_SAFETENSORS_HEADER = 100_000_000;

/** The safetensors layout: an 8-byte little-endian header length n, n bytes of JSON, then the data
 * that every tensor's data_offsets must fall within (a cut-off download fails here). */
function checkSafetensors(bytes) {
  if (bytes.length < 8) throw new Error(`it has ${bytes.length} bytes, fewer than its 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_SAFETENSORS_HEADER)) throw new Error(`its header length ${n} is over 100 MB`);
  if (8n + n > BigInt(bytes.length)) throw new Error(`its ${n}-byte header runs past the end of the ${bytes.length}-byte file`);
  const header = parseObject(bytes.subarray(8, 8 + Number(n)));
  const dataBytes = bytes.length - 8 - Number(n);
  for (const [name, tensor] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = Array.isArray(tensor?.data_offsets) ? tensor.data_offsets : [];
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new Error(`tensor ${name} has no valid data_offsets`);
    }
    if (end > dataBytes) throw new Error(`tensor ${name} ends at byte ${end} of a ${dataBytes}-byte data section`);
  }
}

/** A download must parse as what its name says, so a broken transfer or an error page is never
 * cached (the wasm side checks the model's contents; this checks the file arrived whole). */
function checkFile(file, bytes, url) {
  const kind = file.endsWith('.json') ? 'a JSON object' : file === 'vocab.txt' ? 'UTF-8 text' : 'a valid safetensors file';
  try {
    if (file.endsWith('.json')) parseObject(bytes);
    else if (file === 'vocab.txt') utf8(bytes);
    else if (file === 'model.safetensors') checkSafetensors(bytes);
  } catch (e) {
    throw new Error(`${file} is not ${kind}: ${e.message} (downloaded from ${url})`);
  }
}

/** The Hub sends an LFS file's SHA-256 as X-Linked-Etag (quoted, maybe W/-prefixed): the bytes must
 * hash to it. Skipped without WebCrypto (insecure origins, which have no cache either). */
async function checkDigest(file, bytes, etag, url) {
  if (!etag || !self.crypto?.subtle) return;
  const want = etag.replace(/^W\//, '').replaceAll('"', '').trim().toLowerCase();
  // The view itself, not a copy: the weights can be 268 MB.
  const hash = new Uint8Array(await self.crypto.subtle.digest('SHA-256', bytes));
  const got = Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('');
  if (got !== want) throw new Error(`${file} is damaged: its SHA-256 is ${got}, but the Hub's X-Linked-Etag says ${want} (downloaded from ${url})`);
}

/** One file of the model: from picked files, the cache, or the network; null if optional and absent. */
async function fetchFile(source, file, optional, progress, notes) {
  if (source.kind === 'files') {
    const buffer = source.files[file];
    if (buffer) return new Uint8Array(buffer);
    if (optional) return null;
    throw new Error(`the chosen files have no ${file}`);
  }
  // A Hub revision's files never change: the kept copy is used. A folder URL's may: it is asked
  // for each time (the HTTP cache may answer), and the kept copy serves when there is no network.
  const cached = source.kind === 'hub' ? await cacheGet(source, file) : null;
  if (cached === 'absent' && optional) return null;
  if (cached instanceof Uint8Array) {
    progress({ file, loaded: cached.length, total: cached.length, cached: true });
    return cached;
  }
  let response;
  try {
    response = await respond(source, file, notes);
  } catch (e) {
    return offlineCopy(source, file, optional, progress, notes, e);
  }
  if (response.status === 404 && optional) {
    await cachePut(source, file, null, notes);
    return null;
  }
  if (!response.ok) {
    const where = source.kind === 'hub' ? `${source.id} at revision ${source.revision}` : source.base;
    const hint = file === 'model.safetensors' ? ' (pytorch_model.bin alone is not supported yet: the model needs model.safetensors)' : '';
    throw new Error(`cannot fetch ${file} of ${where}: HTTP ${response.status}${hint}`);
  }
  return download(source, file, response, progress, notes);
}

/** A file's body, checked to be whole and what it claims before it is kept. */
async function download(source, file, response, progress, notes) {
  const bytes = await readBody(response, file, progress);
  await checkDigest(file, bytes, response.headers.get('X-Linked-Etag'), response.url);
  checkFile(file, bytes, response.url);
  const validator = source.kind === 'url' ? validatorOf(response) : '';
  if (source.kind === 'hub' || (await keptCopyDiffers(source, file, validator))) await cachePut(source, file, bytes, notes, validator);
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

/** 'auto' means WebGPU on a real GPU; a fallback (software) adapter is slower than our CPU path. Tests
 * set `allowFallbackAdapter` so that 'auto' takes SwiftShader, the only adapter headless Chromium has. */
async function resolveBackend(backend, allowFallbackAdapter) {
  if (backend !== 'auto') return backend;
  if (!self.navigator.gpu) return 'cpu';
  const adapter = await self.navigator.gpu.requestAdapter();
  const fallback = adapter && (adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter);
  return adapter && (!fallback || allowFallbackAdapter) ? 'webgpu' : 'cpu';
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
  wasmMemory = (await pkg.default()).memory;
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

/** Builds on `backend`; under 'auto', any GPU failure falls back to the CPU. */
async function buildOn(files, backend, allowFallbackAdapter) {
  const wanted = await resolveBackend(backend, allowFallbackAdapter);
  try {
    return await build(files, wanted);
  } catch (e) {
    if (backend !== 'auto' || wanted === 'cpu' || e instanceof WebAssembly.RuntimeError) throw e;
    return build(files, 'cpu');
  }
}

/** What runs now, for the page: a classify call can end on another backend than the load (the GPU lost). */
const running = () => ({ backend: classifier.backend, threads: classifier.backend === 'cpu' ? threads : 0 });

async function load({ source, backend, wasm, threads: maxThreads, allowFallbackAdapter }, progress) {
  // Whatever was loaded goes first, so a load that fails leaves "no model is loaded", never a mix.
  classifier?.free();
  classifier = null;
  loaded = null;
  await initWasm(wasm, maxThreads);
  const notes = [];
  if (!self.isSecureContext) notes.push('this page is not on a secure origin (https or localhost): no WebGPU and no model cache, so the model runs on the CPU and is downloaded on every visit');
  classifier = await buildOn(await fetchModel(source, progress, notes), backend, allowFallbackAdapter);
  loaded = { source, backend };
  return { ...running(), wasm: wasmBuild, notes };
}

/** Runs `call` on the classifier; under 'auto', a GPU failure (device lost, say) rebuilds the model
 * on the CPU from the fetched files and runs it again. */
async function onModel(call) {
  if (!classifier) throw new Error('no model is loaded');
  try {
    return await call(classifier);
  } catch (e) {
    if (loaded?.backend !== 'auto' || classifier.backend !== 'webgpu' || !String(e.message).startsWith('GPU:')) throw e;
    classifier.free();
    // Until the rebuild succeeds there is no model: a failed one must not leave the freed object here.
    classifier = null;
    const files = await fetchModel(loaded.source, () => {}, []);
    classifier = await build(files, 'cpu');
    return call(classifier);
  }
}

const classify = ({ text, labels, template, multiLabel }) =>
  onModel(async (c) => JSON.parse(await c.classify(text, labels, template, multiLabel)));

/** Several texts in one call: their pairs share forwards. One entry per text: {ok} or {error}. */
const classifyBatch = ({ texts, labels, template, multiLabel }) =>
  onModel(async (c) => JSON.parse(await c.classifyBatch(texts, labels, template, multiLabel)));

/** Test-only operations: the wasm test hook, and the instance's memory (it only grows, so a leak shows). */
function testOp({ op, action }) {
  if (op === 'stats') return { wasmMemoryBytes: wasmMemory?.buffer.byteLength ?? 0 };
  if (!classifier) throw new Error('no model is loaded');
  classifier.testHook(action);
  return {};
}

async function run(msg, id) {
  if (trapped) throw new WebAssembly.RuntimeError(trapped);
  if (msg.op === 'load') return load(msg, (p) => self.postMessage({ id, progress: p }));
  if (msg.op === 'classify') return { result: await classify(msg), ...running() };
  if (msg.op === 'classifyBatch') return { results: await classifyBatch(msg), ...running() };
  if (msg.op === 'test' || msg.op === 'stats') return testOp(msg);
  throw new Error(`unknown operation ${msg.op}`);
}

async function handle(msg) {
  const { id, op } = msg;
  try {
    self.postMessage({ id, ok: true, ...(await run(msg, id)) });
  } catch (e) {
    // A trap killed the instance, or the model is gone (its CPU rebuild failed): either way zeroshot.js
    // replaces this worker, which loads the model afresh on the next call.
    const trap = e instanceof WebAssembly.RuntimeError;
    if (trap) trapped ??= e.message;
    const error = trap ? `the wasm instance trapped (${trapped})` : String(e?.message ?? e);
    self.postMessage({ id, error, crashed: trap || (String(op).startsWith('classify') && !classifier) });
  }
}

self.onmessage = ({ data }) => {
  queue = queue.then(() => handle(data));
};
