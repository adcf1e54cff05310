// zeroshot.js: zero-shot text classification in the browser. An ES module with no dependencies;
// the model runs in a Web Worker (WebGPU or the wasm CPU path), so the page never blocks.
//
//   import { ZeroShotClassifier } from './zeroshot.js';
//   const clf = await ZeroShotClassifier.load({ model: './models/x/', backend: 'auto', onProgress });
//   const r = await clf.classify('text', ['pricing', 'bug'], { hypothesisTemplate, multiLabel });
//
// The worker and the wasm are found relative to this file, so the folder works wherever it is hosted.

export const DEFAULT_TEMPLATE = 'This example is {}.';
export const DEFAULT_MODEL = 'typeform/distilbert-base-uncased-mnli';
export const DEFAULT_HUB = 'https://huggingface.co';
const CACHE_NAME = 'zeroshot-models-v2'; // also in zeroshot.worker.js
const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'vocab.txt', 'vocab.json', 'merges.txt', 'tokenizer_config.json'];

/** Labels given as one string: split on commas, trimmed, empties dropped (as transformers does). */
export function parseLabels(text) {
  return text.split(',').map((l) => l.trim()).filter(Boolean);
}

/** A Hub id or a folder URL, as the worker fetches it; `who` names the caller in the errors. */
function sourceOf(model, revision, hub, who = 'ZeroShotClassifier.load') {
  if (typeof model !== 'string' || !model.trim()) throw new Error(`${who}: \`model\` must be a Hub id or a folder URL`);
  if (/^(https?:\/\/|\/|\.\.?\/)/.test(model)) {
    return { kind: 'url', base: new URL(model.endsWith('/') ? model : `${model}/`, globalThis.location?.href).href };
  }
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(model)) throw new Error(`${who}: ${JSON.stringify(model)} is not a Hub model id`);
  return { kind: 'hub', hub: hub.replace(/\/+$/, ''), id: model, revision: String(revision || 'main') };
}

/** `convert` checked: 'f16' or 'int8', for Hub models only, whose revisions are kept as downloaded (a
 * folder URL's files are asked for on every load, and picked files are not kept: convert those ahead
 * with `zeroshot convert`). */
function convertOption(convert, source) {
  if (!['f16', 'int8'].includes(convert)) {
    throw new Error(`ZeroShotClassifier.load: convert must be 'f16' or 'int8', not ${JSON.stringify(convert)}`);
  }
  if (source.kind !== 'hub') {
    throw new Error('ZeroShotClassifier.load: convert applies to Hub models; convert a folder or files ahead with `zeroshot convert`');
  }
  return convert;
}

/** A picked file's name: a folder picker gives paths, and the last part counts. */
const baseName = (file) => file.name.split('/').pop();

/** Picked files by name, read into memory. */
async function readFiles(files) {
  const out = {};
  for (const f of files) {
    if (MODEL_FILES.includes(baseName(f))) out[baseName(f)] = await f.arrayBuffer();
  }
  return out;
}

/** The picked model.safetensors, as the probe reads it (a File is a handle: nothing is read here). */
function pickedWeights(files) {
  const file = Array.from(files).find((f) => baseName(f) === 'model.safetensors');
  if (!file) throw new Error('ZeroShotClassifier.probe: the chosen files have no model.safetensors');
  return { kind: 'file', file };
}

/**
 * Runs probe requests on a worker of their own, ended after: they need no wasm, and must not wait behind
 * a classifier's load. Resolves to the replies in order, each {ok, ...} or {error}.
 */
async function probeWorker(messages) {
  if (!messages.length) return [];
  const worker = new Worker(new URL('./zeroshot.worker.js', import.meta.url), { type: 'module' });
  try {
    return await new Promise((resolve, reject) => {
      const replies = [];
      let left = messages.length;
      worker.onerror = (e) => reject(new Error(`the probe's worker failed: ${e.message ?? 'unknown error'}`));
      worker.onmessage = ({ data }) => {
        replies[data.id] = data;
        if (--left === 0) resolve(replies);
      };
      messages.forEach((message, id) => worker.postMessage({ id, ...message }));
    });
  } finally {
    worker.terminate();
  }
}

/** The weights format of kept models whose entry does not note it (`weights`: model key to its
 * model.safetensors cache key), read from the start of the kept file; null where that cannot be read. */
async function addFormats(models, weights) {
  const entries = [...weights];
  const replies = await probeWorker(entries.map(([, key]) => ({ op: 'probe', source: { kind: 'cached', key } }))).catch(() => []);
  entries.forEach(([model], i) => { models.get(model).format = replies[i]?.format ?? null; });
}

const RELOADED = 'zeroshot-isolation-reload';

/**
 * Makes the page cross-origin isolated, so the CPU path can use every core, on hosts that cannot
 * send COOP/COEP headers: registers the service worker at `serviceWorkerUrl` (www/sw.js, which
 * adds them) and reloads the page once when it takes over. It resolves to true when the page is
 * about to reload (start nothing then), false when the page goes on, isolated or not (insecure
 * origin, service workers blocked, a browser that ignores the headers: one thread, and no second
 * reload in this tab's session). On a first visit the service worker caches the app shell before it
 * takes over, seconds on a slow link: `canReload()` is asked right before the reload, and a page
 * whose user has begun something answers false, so that nothing is cut off: this visit then runs
 * on one thread, and the next one, isolated from its start, on every core.
 */
export async function crossOriginIsolate(serviceWorkerUrl = new URL('./sw.js', import.meta.url), { canReload = () => true } = {}) {
  // A deploy's new service worker caches the new shell, then takes over this page: reload it, so the
  // page never runs old JavaScript against the new shell's files (its first takeover reloads below).
  if (navigator.serviceWorker?.controller) navigator.serviceWorker.addEventListener('controllerchange', () => location.reload());
  if (globalThis.crossOriginIsolated) {
    sessionStorage.removeItem(RELOADED);
    return false;
  }
  if (!globalThis.isSecureContext || !navigator.serviceWorker) return false;
  try {
    await navigator.serviceWorker.register(serviceWorkerUrl);
    await navigator.serviceWorker.ready;
  } catch {
    return false; // blocked (a policy, private browsing): the page works on one thread
  }
  if (sessionStorage.getItem(RELOADED)) return false; // reloaded once already and still not isolated
  if (!canReload()) return false;
  sessionStorage.setItem(RELOADED, '1');
  location.reload();
  return true;
}

/** Labels as an array or a comma-separated string, as an array; `who` names the caller in the error. */
function labelList(labels, who) {
  const list = typeof labels === 'string' ? parseLabels(labels) : labels;
  if (!Array.isArray(list) || list.some((l) => typeof l !== 'string')) {
    throw new TypeError(`${who}: labels must be an array of strings or a comma-separated string`);
  }
  return list;
}

/** An explanation's word places as UTF-16 indices into its sequence (the wasm gives them in chars,
 * Unicode scalar values: they differ after an emoji or any character outside the BMP). */
function withUtf16Offsets(explanation) {
  const chars = Array.from(explanation.sequence);
  const at = [0];
  for (const c of chars) at.push(at[at.length - 1] + c.length);
  explanation.words = explanation.words.map((w) => ({ ...w, start: at[w.start], end: at[w.end] }));
  return explanation;
}

/** Every [request, response] kept in the model cache. */
async function cacheEntries() {
  const cache = await caches.open(CACHE_NAME);
  return Promise.all((await cache.keys()).map(async (request) => [request, await cache.match(request)]));
}

/** The model a cached file belongs to, from its key (the worker's cacheKey): a Hub file's names its
 * host, id and revision; a folder URL's file is its URL, and the model is the folder. */
function cachedModelOf(url) {
  const hub = new URL(url).pathname.match(/^\/__zeroshot-cache__\/([^/]+)\/([^/]+)\/([^/]+)\/[^/]+$/);
  if (!hub) return { key: url.replace(/[^/]*$/, ''), kind: 'url', url: url.replace(/[^/]*$/, '') };
  const [host, id, revision] = hub.slice(1).map(decodeURIComponent);
  return { key: `hub:${host}/${id}@${revision}`, kind: 'hub', host, id, revision };
}

/** A loaded model. */
export class ZeroShotClassifier {
  #options;
  #worker = null;
  #pending = new Map();
  #nextId = 1;
  #backend = null;
  #wasm = null;
  #threads = 0;
  #starting = null;
  #disposed = false;
  #notes = [];
  #format = null;

  constructor(options) {
    this.#options = options;
  }

  /**
   * Gets the model and builds the classifier in a worker. `model` is a Hub id (default
   * typeform/distilbert-base-uncased-mnli, fetched at `revision` and kept in Cache Storage) or, when
   * it starts with http://, https://, /, ./ or ../, the URL of a folder in the Hub's layout; `files`
   * (File objects: config.json, model.safetensors, tokenizer files) runs with no network at all.
   * `wasm` picks the wasm build: 'auto' (relaxed SIMD where the browser validates it, else
   * simd128), or 'relaxed' / 'simd128' to force one (tests and benchmarks). `threads` caps the CPU
   * threads (default 0: every core); more than one needs the relaxed build on a cross-origin
   * isolated page (see the README), else it runs on one. Downloads are checked before they are cached
   * (JSON files parse to an object, vocab.txt is UTF-8, the safetensors header fits the file, and the
   * bytes hash to the Hub's X-Linked-Etag where it sends one): a damaged file rejects, naming it, and
   * is downloaded again by the next load. `_allowFallbackAdapter` is for tests only, not part of the API:
   * 'auto' then takes a software WebGPU adapter (SwiftShader), which it otherwise leaves for the CPU path.
   */
  static async load({ model = DEFAULT_MODEL, revision = 'main', hub = DEFAULT_HUB, files, backend = 'auto', wasm = 'auto', threads = 0, convert = null, onProgress, _allowFallbackAdapter = false } = {}) {
    if (!['auto', 'webgpu', 'cpu'].includes(backend)) {
      throw new Error(`ZeroShotClassifier.load: backend must be 'auto', 'webgpu' or 'cpu', not ${JSON.stringify(backend)}`);
    }
    if (!['auto', 'relaxed', 'simd128'].includes(wasm)) {
      throw new Error(`ZeroShotClassifier.load: wasm must be 'auto', 'relaxed' or 'simd128', not ${JSON.stringify(wasm)}`);
    }
    if (!Number.isInteger(threads) || threads < 0) {
      throw new Error(`ZeroShotClassifier.load: threads must be a whole number >= 0, not ${JSON.stringify(threads)}`);
    }
    const source = files ? { kind: 'files', files: Array.from(files) } : sourceOf(model, revision, hub);
    if (convert !== null) Object.assign(source, { convert: convertOption(convert, source) });
    const clf = new ZeroShotClassifier({ source, backend, wasm, threads, onProgress, allowFallbackAdapter: _allowFallbackAdapter === true });
    await clf.#start();
    return clf;
  }

  /**
   * What a model's weights are, learned without downloading them: {format, bytes, cached}. `format` is
   * 'fp32', 'f16', 'bf16' or 'int8' (null when the server ignores Range requests: the header cannot be
   * read alone); `bytes` is model.safetensors' size (null when the server does not say); `cached`: a
   * load would take the weights from Cache Storage (a Hub revision kept; a folder URL's copy when its
   * server is unreachable). It reads a few kilobytes: a HEAD and the header by Range requests, or the
   * start of the picked file (`files`) or of the kept copy. Rejects when the weights cannot be found
   * (HTTP 404, no network and no copy) or their header is damaged; a load is never blocked by it.
   */
  static async probe({ model = DEFAULT_MODEL, revision = 'main', hub = DEFAULT_HUB, files } = {}) {
    const source = files ? pickedWeights(files) : sourceOf(model, revision, hub, 'ZeroShotClassifier.probe');
    const [reply] = await probeWorker([{ op: 'probe', source }]);
    if (!reply.ok) throw new Error(reply.error);
    return { format: reply.format, bytes: reply.bytes, cached: reply.cached };
  }

  /** Deletes every model kept in Cache Storage. */
  static async clearCache() {
    if (globalThis.caches) await caches.delete(CACHE_NAME);
  }

  /** The models kept in Cache Storage: [{key, kind: 'hub', host, id, revision, format, bytes} or
   * {key, kind: 'url', url, format, bytes}] (format as probe() gives it), for a list the user can prune
   * with removeCachedModel(key). */
  static async cachedModels() {
    if (!globalThis.caches) return [];
    const models = new Map();
    const weights = new Map();
    for (const [request, response] of await cacheEntries()) {
      const m = cachedModelOf(request.url);
      const model = models.get(m.key) ?? models.set(m.key, { ...m, format: null, bytes: 0 }).get(m.key);
      model.bytes += Number(response.headers.get('x-zeroshot-size')) || 0;
      if (request.url.endsWith('/model.safetensors') && response.headers.has('x-zeroshot-size')) {
        model.format = response.headers.get('x-zeroshot-format');
        if (!model.format) weights.set(m.key, request.url); // kept before formats were noted: its header says
      }
    }
    await addFormats(models, weights);
    return [...models.values()];
  }

  /** Deletes one model's files from Cache Storage (a key from cachedModels()). */
  static async removeCachedModel(key) {
    if (!globalThis.caches) return;
    const cache = await caches.open(CACHE_NAME);
    for (const [request] of await cacheEntries()) {
      if (cachedModelOf(request.url).key === key) await cache.delete(request);
    }
  }

  /** Things worth telling the user about the load (a revision fallback, a cache that failed...). */
  get notes() {
    return this.#notes;
  }

  /** The weights' format: 'fp32', 'f16', 'bf16' or 'int8' (null if their header could not be read). */
  get format() {
    return this.#format;
  }

  /** 'webgpu' or 'cpu': what actually runs (after a GPU failure under 'auto', 'cpu'). */
  get backend() {
    return this.#backend;
  }

  /** 'relaxed' or 'simd128': the wasm build in use. */
  get wasm() {
    return this.#wasm;
  }

  /** CPU threads in use (0 on WebGPU). */
  get threads() {
    return this.#threads;
  }

  /** Classifies one text: {sequence, labels, scores, truncated}, labels sorted by score. */
  async classify(text, labels, { hypothesisTemplate = DEFAULT_TEMPLATE, multiLabel = false } = {}) {
    if (typeof text !== 'string') throw new TypeError('classify: text must be a string');
    const reply = await this.#classifyOp({ op: 'classify', text, labels: labelList(labels, 'classify'), template: hypothesisTemplate, multiLabel });
    return reply.result;
  }

  /** Runs a classify op; the worker may have moved to the CPU during it (the GPU device lost under 'auto'). */
  async #classifyOp(message) {
    await this.#start();
    const reply = await this.#call(message);
    this.#backend = reply.backend;
    this.#threads = reply.threads;
    return reply;
  }

  /** For tests; not part of the API. Runs the wasm test hook: 'trap' (a wasm trap, as a bug would cause)
   * or 'lose-device' (the GPU device is destroyed during the next classify call). */
  async _test(action) {
    await this.#start();
    await this.#call({ op: 'test', action });
  }

  /** For tests; not part of the API. {wasmMemoryBytes}: the size of the worker's wasm memory, which
   * only grows, so a leak across many calls shows as growth. */
  async _stats() {
    await this.#start();
    const { wasmMemoryBytes } = await this.#call({ op: 'stats' });
    return { wasmMemoryBytes };
  }

  /**
   * Classifies several texts in one call, their label pairs sharing forwards (faster than one by
   * one, most of all on WebGPU): one entry per text, in order, its result or, for a text that
   * failed on its own (empty, say), {sequence, error}. A problem they all share (no labels, a bad
   * template) rejects.
   */
  async classifyBatch(texts, labels, { hypothesisTemplate = DEFAULT_TEMPLATE, multiLabel = false } = {}) {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) throw new TypeError('classifyBatch: texts must be an array of strings');
    const reply = await this.#classifyOp({ op: 'classifyBatch', texts, labels: labelList(labels, 'classifyBatch'), template: hypothesisTemplate, multiLabel });
    return reply.results.map((r, i) => r.ok ?? { sequence: texts[i], error: r.error });
  }

  /**
   * Why the scores are what they are: the classification, and each word's effect on each label,
   * {sequence, labels, scores, words: [{text, start, end, effects: {label: number}}], truncated}.
   * A word is a run of non-space characters (each CJK ideograph alone), `start`/`end` its place in
   * `text` (UTF-16 indices: `text.slice(start, end)`); its effect on a label is the label's score minus
   * the score of that label's pair without the word (absent where the pair never held it: cut off).
   * It costs about one classification per word: `onProgress({done, total})` reports the pairs run,
   * and `signal` stops it (rejecting with an AbortError) between its steps.
   */
  async explain(text, labels, { hypothesisTemplate = DEFAULT_TEMPLATE, multiLabel = false, signal, onProgress } = {}) {
    if (typeof text !== 'string') throw new TypeError('explain: text must be a string');
    signal?.throwIfAborted();
    const message = { op: 'explain', text, labels: labelList(labels, 'explain'), template: hypothesisTemplate, multiLabel };
    await this.#start();
    signal?.throwIfAborted(); // aborted while the model loaded
    const id = this.#nextId; // the id #call gives the message below
    const abort = () => this.#worker?.postMessage({ op: 'cancel', target: id });
    signal?.addEventListener('abort', abort, { once: true });
    try {
      const reply = await this.#call(message, onProgress); // the call gets `id`
      this.#backend = reply.backend;
      this.#threads = reply.threads;
      signal?.throwIfAborted(); // aborted while its last step ran: rejected all the same
      return withUtf16Offsets(reply.result);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw e;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /** Classifies many texts in order, `batchSize` per call (see classifyBatch), yielding each entry;
   * stops when `signal` aborts, within one batch. With `explain: true` each text is explained
   * instead (see explain), one at a time, and `signal` stops within one text. */
  async *classifyMany(texts, labels, { onProgress, signal, batchSize = 16, explain = false, ...options } = {}) {
    const all = Array.from(texts);
    if (explain) {
      // A problem every text shares (no labels, a bad template) rejects here, as classifyBatch's would.
      await this.classifyBatch([], labels, options);
      for (const [i, text] of all.entries()) {
        signal?.throwIfAborted();
        yield await this.explain(text, labels, { ...options, signal }).catch((e) => {
          if (signal?.aborted) throw signal.reason;
          return { sequence: text, error: e.message };
        });
        onProgress?.({ done: i + 1, total: all.length });
      }
      return;
    }
    for (let start = 0; start < all.length; start += batchSize) {
      signal?.throwIfAborted();
      const results = await this.classifyBatch(all.slice(start, start + batchSize), labels, options);
      for (const [i, result] of results.entries()) {
        signal?.throwIfAborted();
        onProgress?.({ done: start + i + 1, total: all.length });
        yield result;
      }
    }
  }

  /** Ends the worker and frees the model; later calls reject. */
  dispose() {
    this.#disposed = true;
    this.#worker?.terminate();
    this.#worker = null;
    this.#starting = null;
    this.#rejectAll(new Error('the classifier was disposed'));
  }

  /** Starts the worker and loads the model, once, and again after a crash. */
  #start() {
    if (this.#disposed) return Promise.reject(new Error('the classifier was disposed'));
    if (!this.#starting) {
      this.#worker = new Worker(new URL('./zeroshot.worker.js', import.meta.url), { type: 'module' });
      this.#worker.onmessage = ({ data }) => this.#receive(data);
      this.#worker.onerror = (e) => this.#crash(new Error(`the model's worker failed: ${e.message ?? 'unknown error'}`));
      const { source, backend, wasm, threads, onProgress, allowFallbackAdapter } = this.#options;
      this.#starting = (async () => {
        // Picked files are read again on each start (after a crash too): File objects are only handles.
        const wire = source.kind === 'files' ? { kind: 'files', files: await readFiles(source.files) } : source;
        const transfer = wire.kind === 'files' ? Object.values(wire.files) : [];
        const reply = await this.#call({ op: 'load', source: wire, backend, wasm, threads, allowFallbackAdapter }, onProgress, transfer);
        this.#backend = reply.backend;
        this.#wasm = reply.wasm;
        this.#threads = reply.threads;
        this.#notes = reply.notes ?? [];
        this.#format = reply.format ?? null;
      })();
      this.#starting.catch(() => this.dispose());
    }
    return this.#starting;
  }

  #call(message, onProgress, transfer = []) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ id, ...message }, transfer);
    });
  }

  #receive({ id, progress, ok, error, crashed, ...rest }) {
    const call = this.#pending.get(id);
    if (!call) return;
    if (progress) return call.onProgress?.(progress);
    this.#pending.delete(id);
    if (ok) return call.resolve(rest);
    call.reject(new Error(crashed ? `zeroshot crashed: ${error}; it restarts on the next call` : error));
    if (crashed) this.#crash(new Error(`zeroshot crashed during an earlier call: ${error}; it restarts on the next call`));
  }

  /** A trap killed the wasm instance: fail what is pending; the next call starts afresh. */
  #crash(err) {
    this.#worker?.terminate();
    this.#worker = null;
    this.#starting = null;
    this.#rejectAll(err);
  }

  #rejectAll(err) {
    for (const call of this.#pending.values()) call.reject(err);
    this.#pending.clear();
  }
}
