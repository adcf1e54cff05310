// zeroshot.js: zero-shot text classification in the browser. An ES module with no dependencies;
// the model runs in a Web Worker (WebGPU or the wasm CPU path), so the page never blocks.
//
//   import { ZeroShotClassifier } from './zeroshot.js';
//   const clf = await ZeroShotClassifier.load({ model: './models/x/', backend: 'auto', onProgress });
//   const r = await clf.classify('text', ['pricing', 'bug'], { hypothesisTemplate, multiLabel });
//
// The worker and the wasm are found relative to this file, so the folder works wherever it is hosted.

export const DEFAULT_TEMPLATE = 'This example is {}.';

/** A loaded model. */
export class ZeroShotClassifier {
  #options;
  #worker = null;
  #pending = new Map();
  #nextId = 1;
  #backend = null;
  #starting = null;
  #disposed = false;

  constructor(options) {
    this.#options = options;
  }

  /** Fetches the model folder and builds the classifier in a worker. */
  static async load({ model, backend = 'auto', onProgress } = {}) {
    if (!model) throw new Error('ZeroShotClassifier.load: give `model`, the URL of a model folder');
    if (!['auto', 'webgpu', 'cpu'].includes(backend)) {
      throw new Error(`ZeroShotClassifier.load: backend must be 'auto', 'webgpu' or 'cpu', not ${JSON.stringify(backend)}`);
    }
    const base = new URL(model.endsWith('/') ? model : `${model}/`, globalThis.location?.href).href;
    const clf = new ZeroShotClassifier({ model: base, backend, onProgress });
    await clf.#start();
    return clf;
  }

  /** 'webgpu' or 'cpu': what actually runs. */
  get backend() {
    return this.#backend;
  }

  /** Classifies one text: {sequence, labels, scores, truncated}, labels sorted by score. */
  async classify(text, labels, { hypothesisTemplate = DEFAULT_TEMPLATE, multiLabel = false } = {}) {
    if (typeof text !== 'string') throw new TypeError('classify: text must be a string');
    const list = typeof labels === 'string' ? labels.split(',').map((l) => l.trim()).filter(Boolean) : labels;
    if (!Array.isArray(list) || list.some((l) => typeof l !== 'string')) {
      throw new TypeError('classify: labels must be an array of strings or a comma-separated string');
    }
    await this.#start();
    const reply = await this.#call({ op: 'classify', text, labels: list, template: hypothesisTemplate, multiLabel });
    return reply.result;
  }

  /** Classifies many texts in order, yielding each result; stops when `signal` aborts. */
  async *classifyMany(texts, labels, { onProgress, signal, ...options } = {}) {
    const all = Array.from(texts);
    for (let i = 0; i < all.length; i++) {
      signal?.throwIfAborted();
      const result = await this.classify(all[i], labels, options);
      signal?.throwIfAborted();
      onProgress?.({ done: i + 1, total: all.length });
      yield result;
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
      const { model, backend, onProgress } = this.#options;
      this.#starting = this.#call({ op: 'load', model, backend }, onProgress).then((reply) => {
        this.#backend = reply.backend;
      });
      this.#starting.catch(() => this.dispose());
    }
    return this.#starting;
  }

  #call(message, onProgress) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ id, ...message });
    });
  }

  #receive({ id, progress, ok, error, crashed, ...rest }) {
    const call = this.#pending.get(id);
    if (!call) return;
    if (progress) return call.onProgress?.(progress);
    this.#pending.delete(id);
    if (ok) return call.resolve(rest);
    const err = new Error(crashed ? `zeroshot crashed: ${error}; it restarts on the next call` : error);
    call.reject(err);
    if (crashed) this.#crash(err);
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
