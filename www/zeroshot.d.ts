/** Default hypothesis template, as in Hugging Face's zero-shot pipeline. */
export const DEFAULT_TEMPLATE: string;

/** Labels given as one string: split on commas, trimmed, empties dropped. */
export function parseLabels(text: string): string[];

export type Backend = 'auto' | 'webgpu' | 'cpu';

export interface LoadProgress {
  /** File of the model folder being downloaded, e.g. "model.safetensors". */
  file: string;
  loaded: number;
  /** 0 when the server sent no Content-Length. The first event of a file comes before its first byte. */
  total: number;
  /** Served from Cache Storage. */
  cached?: boolean;
}

export const DEFAULT_MODEL: string;
export const DEFAULT_HUB: string;

export interface LoadOptions {
  /**
   * A Hub id (default "typeform/distilbert-base-uncased-mnli"), or, starting with http://, https://, /, ./ or
   * ../, the URL of a folder in the Hub's layout (config.json, model.safetensors, tokenizer files).
   */
  model?: string;
  /** Hub revision (branch, tag, commit or e.g. "refs/pr/3"). Default "main". */
  revision?: string;
  /** Hub endpoint. Default "https://huggingface.co". */
  hub?: string;
  /** Local files instead of a download: config.json, model.safetensors, tokenizer.json or vocab.txt, tokenizer_config.json. */
  files?: Iterable<File>;
  backend?: Backend;
  /** Wasm build: 'auto' (default) takes relaxed SIMD (fused multiply-add) where the browser validates it, else simd128. */
  wasm?: 'auto' | 'relaxed' | 'simd128';
  /** Most CPU threads (default 0: every core). Several need the relaxed build on a cross-origin isolated page; else one. */
  threads?: number;
  /**
   * Hub models only: convert the downloaded weights in the browser ('int8': about a quarter of fp32's
   * bytes; 'f16': half) and keep only the converted copy in Cache Storage (as revision `<revision>~<format>`).
   * Scores move as docs/benchmarks.md's agreement table says. The first load's wasm memory still grows with the
   * original download.
   */
  convert?: 'f16' | 'int8' | null;
  onProgress?: (p: LoadProgress) => void;
  /**
   * For tests; not part of the API. Lets 'auto' take a software (fallback) WebGPU adapter such as SwiftShader,
   * which it otherwise leaves for the faster CPU path.
   */
  _allowFallbackAdapter?: boolean;
}

/** A word of the text: a run of non-space characters, punctuation included; each CJK ideograph is a word alone. */
export interface WordEffects {
  text: string;
  /** Where the word is in the text, as UTF-16 indices: `sequence.slice(start, end) === text`. */
  start: number;
  end: number;
  /**
   * Per label, its score minus its score without this word (positive: the word pushed towards the label). A label
   * whose pair never held the word (the text was cut before it, or the word has no token of its own) is absent.
   */
  effects: Record<string, number>;
}

/** A classification with each word's effects. */
export interface Explanation extends Classification {
  words: WordEffects[];
}

export interface ExplainOptions extends ClassifyOptions {
  /** Pairs run so far, of all (the classification's, plus one per word and label). */
  onProgress?: (p: { done: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface ClassifyOptions {
  /** `{}` (or `{0}`) where the label goes, Python `str.format` rules. Default "This example is {}.". */
  hypothesisTemplate?: string;
  /** Score labels independently (softmax over contradiction/entailment per label). */
  multiLabel?: boolean;
}

export interface Classification {
  sequence: string;
  /** Labels, best first. */
  labels: string[];
  scores: number[];
  /** Whether the text was cut to fit the model. */
  truncated: boolean;
}

/** A text of a batch that could not be classified, and why. */
export interface TextError {
  sequence: string;
  error: string;
}

/**
 * How model.safetensors stores the weights: all F32 ('fp32'), every floating tensor F16 or BF16, or 'int8'
 * (Linear weights and the word embedding as I8 with F32 `<name>_scale` companions). `__metadata__.zeroshot_weights`
 * says it when present.
 */
export type WeightsFormat = 'fp32' | 'f16' | 'bf16' | 'int8';

/** A model kept in Cache Storage: a Hub model by host, id and revision, or a folder URL's. */
export type CachedModel =
  | { key: string; kind: 'hub'; host: string; id: string; revision: string; format: WeightsFormat | null; bytes: number }
  | { key: string; kind: 'url'; url: string; format: WeightsFormat | null; bytes: number };

/** The model to probe: as for load, a Hub id at a revision, a folder URL, or picked files. */
export interface ProbeOptions {
  model?: string;
  revision?: string;
  hub?: string;
  /** Picked files: only model.safetensors' start is read. */
  files?: Iterable<File>;
}

export interface ProbeResult {
  /** null when it cannot be known without the whole file (a server that ignores Range requests). */
  format: WeightsFormat | null;
  /** model.safetensors' size in bytes; null when the server does not say. */
  bytes: number | null;
  /** A load would take the weights from Cache Storage: a Hub revision kept, or a folder URL's copy while its server is unreachable. */
  cached: boolean;
}

export class ZeroShotClassifier {
  /**
   * Downloads are checked before they are cached (JSON objects, UTF-8 vocab.txt, a safetensors header that
   * fits the file, the Hub's X-Linked-Etag SHA-256): a damaged file rejects, naming it, and is fetched again next time.
   */
  static load(options?: LoadOptions): Promise<ZeroShotClassifier>;
  /**
   * The weights' format and size without downloading them: a HEAD and the safetensors header by Range
   * requests (a few kilobytes), the start of a picked file, or of the copy kept in Cache Storage. Rejects when
   * the weights cannot be found (HTTP 404, no network and no copy) or their header is damaged.
   */
  static probe(options?: ProbeOptions): Promise<ProbeResult>;
  /** Deletes every model kept in Cache Storage. */
  static clearCache(): Promise<void>;
  /** The models kept in Cache Storage, with their weights' format and their size in bytes. */
  static cachedModels(): Promise<CachedModel[]>;
  /** Deletes one model's files from Cache Storage. */
  static removeCachedModel(key: string): Promise<void>;
  /** Things worth telling the user about the load (revision fallback, cache failures, insecure origin). */
  readonly notes: string[];
  /** The loaded weights' format (null if their header could not be read). */
  readonly format: WeightsFormat | null;
  /** What actually runs; after the GPU failed under 'auto' (a lost device, say), 'cpu'. */
  readonly backend: 'webgpu' | 'cpu';
  /** The wasm build in use. */
  readonly wasm: 'relaxed' | 'simd128';
  /** CPU threads in use (0 on WebGPU). */
  readonly threads: number;
  classify(text: string, labels: string[] | string, options?: ClassifyOptions): Promise<Classification>;
  /**
   * Several texts in one call, their label pairs sharing forwards (faster than one by one): one entry per text,
   * in order; a text that fails on its own (empty, say) gets {sequence, error}. A shared problem rejects.
   */
  classifyBatch(texts: string[], labels: string[] | string, options?: ClassifyOptions): Promise<(Classification | TextError)[]>;
  /**
   * The classification and each word's effect on each label: the label's score minus its score on the same pair
   * without that word's tokens (nothing re-cut or re-tokenized; the same single- or multi-label softmax). About one
   * classification's cost per word: `onProgress` reports the pairs run, `signal` stops it between steps (rejecting
   * with its reason, an AbortError). Removing one word is not a causal claim; every label has effects, not only the top one.
   */
  explain(text: string, labels: string[] | string, options?: ExplainOptions): Promise<Explanation>;
  /**
   * classifyBatch over `batchSize` texts at a time (default 16), yielding each entry in order; `signal` stops it
   * within a batch. With `explain: true`, each text's explanation instead, one text at a time (`signal` stops within one).
   */
  classifyMany(
    texts: Iterable<string>,
    labels: string[] | string,
    options?: ClassifyOptions & { onProgress?: (p: { done: number; total: number }) => void; signal?: AbortSignal; batchSize?: number; explain?: false },
  ): AsyncGenerator<Classification | TextError>;
  classifyMany(
    texts: Iterable<string>,
    labels: string[] | string,
    options: ClassifyOptions & { onProgress?: (p: { done: number; total: number }) => void; signal?: AbortSignal; explain: true },
  ): AsyncGenerator<Explanation | TextError>;
  dispose(): void;
  /**
   * For tests; not part of the API. Runs the wasm test hook: 'trap' makes the wasm instance trap (the call and
   * every pending one reject; the next call restarts the worker), 'lose-device' destroys the GPU device during
   * the next classify call (it rejects on the CPU backend).
   */
  _test(action: 'trap' | 'lose-device'): Promise<void>;
  /** For tests; not part of the API. The size of the worker's wasm memory, which only grows. */
  _stats(): Promise<{ wasmMemoryBytes: number }>;
}

/**
 * Makes the page cross-origin isolated (wasm threads: every core on the CPU) through a service
 * worker that adds COOP/COEP to the site's own responses, reloading the page once. The same worker
 * keeps the app shell for offline use; when a deploy's new shell takes over, the page reloads. Call it
 * before loading a model; true means the page is about to reload. `canReload` is asked right before
 * that reload: answer false once the user has begun something (the visit then stays on one thread,
 * and the next visit gets every core).
 */
export function crossOriginIsolate(serviceWorkerUrl?: string | URL, options?: { canReload?: () => boolean }): Promise<boolean>;
