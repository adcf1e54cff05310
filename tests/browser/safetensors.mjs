// Made-up safetensors files for the probe's tests: the 8-byte header length, the JSON header, and
// zeroed data, enough for the header to be read and checked (the wasm is never given them).

const ITEM_BYTES = { F32: 4, F16: 2, BF16: 2, I8: 1 };

/** A safetensors file of `tensors` ({name: [dtype, shape]}, in order), with `metadata` if given. */
export function safetensors(tensors, metadata) {
  const header = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const [name, [dtype, shape]] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * ITEM_BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  return framed(JSON.stringify(header), Buffer.alloc(offset));
}

/** A safetensors file: the 8-byte little-endian header length, the JSON header, then the data. */
function framed(json, ...data) {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json), ...data]);
}

/** A DistilBERT-shaped int8 file as the converter writes it: the word embedding and the Linear weights
 * as I8, each with its F32 `<name>_scale`, the rest F32; `metadata: false` leaves __metadata__ out. */
export function int8Weights({ vocab = 1000, dim = 64, metadata = true } = {}) {
  const quantized = (name, shape) => ({ [name]: ['I8', shape], [`${name}_scale`]: ['F32', [shape[0]]] });
  const layer = 'distilbert.transformer.layer.0';
  const tensors = {
    ...quantized('distilbert.embeddings.word_embeddings.weight', [vocab, dim]),
    'distilbert.embeddings.position_embeddings.weight': ['F32', [64, dim]],
    'distilbert.embeddings.LayerNorm.weight': ['F32', [dim]],
    ...quantized(`${layer}.attention.q_lin.weight`, [dim, dim]),
    [`${layer}.attention.q_lin.bias`]: ['F32', [dim]],
    ...quantized(`${layer}.ffn.lin1.weight`, [4 * dim, dim]),
    [`${layer}.ffn.lin1.bias`]: ['F32', [4 * dim]],
  };
  return safetensors(tensors, metadata ? { format: 'pt', zeroshot_weights: 'int8' } : undefined);
}

/** `file` (a safetensors file) with one more F32 tensor of `count` values in a byte pattern, which the
 * model ignores: a file as large as wanted whose every byte is known. */
export function withExtraTensor(file, count, name = 'zeroshot_test.padding') {
  const headerBytes = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerBytes).toString());
  const data = file.subarray(8 + headerBytes);
  header[name] = { dtype: 'F32', shape: [count], data_offsets: [data.length, data.length + 4 * count] };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keeps the data 8-byte aligned, as safetensors does
  const extra = Buffer.alloc(4 * count, 0);
  for (let i = 0; i < extra.length; i++) extra[i] = (i * 131 + (i >> 10)) & 0x7f; // finite floats
  return framed(json, data, extra);
}
