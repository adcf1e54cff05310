/** Default hypothesis template, as in Hugging Face's zero-shot pipeline. */
export const DEFAULT_TEMPLATE: string;

export type Backend = 'auto' | 'webgpu' | 'cpu';

export interface LoadProgress {
  /** File of the model folder being downloaded, e.g. "model.safetensors". */
  file: string;
  loaded: number;
  /** 0 when the server sent no Content-Length. */
  total: number;
}

export interface LoadOptions {
  /** URL or path of a model folder in the Hub's layout (config.json, model.safetensors, tokenizer files). */
  model: string;
  backend?: Backend;
  onProgress?: (p: LoadProgress) => void;
}

export interface ClassifyOptions {
  /** Must contain `{}` where the label goes. Default "This example is {}.". */
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

export class ZeroShotClassifier {
  static load(options: LoadOptions): Promise<ZeroShotClassifier>;
  /** What actually runs. */
  readonly backend: 'webgpu' | 'cpu';
  classify(text: string, labels: string[] | string, options?: ClassifyOptions): Promise<Classification>;
  classifyMany(
    texts: Iterable<string>,
    labels: string[] | string,
    options?: ClassifyOptions & { onProgress?: (p: { done: number; total: number }) => void; signal?: AbortSignal },
  ): AsyncGenerator<Classification>;
  dispose(): void;
}
