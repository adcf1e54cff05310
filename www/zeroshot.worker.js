// The model's worker: gets a model's files (from the Hub or a folder URL, through Cache Storage,
// or picked by the user), builds the wasm classifier and runs calls one at a time.
// Messages in: {id, op: 'load', source, backend, wasm, threads, allowFallbackAdapter} | {id, op: 'classify', text,
// labels, template, multiLabel} | {id, op: 'classifyBatch', texts, labels, template, multiLabel}, where source is {kind: 'hub', hub, id, revision} | {kind: 'url', base} |
// {kind: 'files', files: {name: ArrayBuffer}}; {id, op: 'probe', source}, where source may also be {kind: 'file', file}
// (a picked model.safetensors) or {kind: 'cached', key} (a kept one), needs no wasm and reads only the weights'
// header; for tests only, {id, op: 'test', action} (the wasm test hook: 'trap' or 'lose-device') and {id, op: 'stats'}.
// Messages out: {id, progress} while loading, then {id, ok, ...} (load and the classify ops say the backend and
// threads in use, load the weights' format; classifyBatch gives {results}: per text {ok} or {error}; probe gives
// {format, bytes, cached}) or {id, error, crashed} (crashed: the wasm instance trapped or the model is lost; replace
// this worker).
let loadClassifier = null; // from the wasm build chosen at the first load
let convertWeights = null; // likewise: zeroshot convert, for loads with `convert`
let WeightsBuffer = null; // likewise: model.safetensors in wasm memory, filled as it arrives
let wasmBuild = null;
let wasmMemory = null; // the instance's memory, for the tests' stats
let trapped = null; // the trap's message once the instance has trapped: its state is unknown, so nothing runs on it
let threads = 1; // the CPU's threads: the relaxed build's pool where the page is cross-origin isolated
let classifier = null;
let loaded = null; // {model, backend} of the current classifier, to rebuild it on the CPU
let queue = Promise.resolve();

const CACHE_NAME = 'zeroshot-models-v2'; // v2: keys name the Hub's host
const TYPEFORM = 'typeform/distilbert-base-uncased-mnli';
const WEIGHTS = 'model.safetensors';
const TYPEFORM_SAFETENSORS_REVISION = 'refs/pr/3';

/** Cache Storage exists only on secure origins (https, localhost). */
const cacheAvailable = () => self.isSecureContext && 'caches' in self;
if (cacheAvailable()) caches.delete('zeroshot-models-v1'); // a cache whose keys do not name the host

/** Where a file is kept. Hub files: by the Hub's host, the model id and revision, the file name (the
 * host is part of it, so a model fetched from one host is never served for the same id on another).
 * Files of a folder URL (the demo models, a site's own model): by their URL. A Hub model loaded with
 * `convert` is kept apart, as revision `<revision>~<format>`, since its weights are the converted ones. */
function cacheKey(source, file) {
  if (source.kind === 'url') return fileUrl(source, file).href;
  const host = encodeURIComponent(new URL(source.hub).host);
  const id = encodeURIComponent(source.id);
  const revision = source.convert ? `${source.revision}~${source.convert}` : source.revision;
  return new URL(`/__zeroshot-cache__/${host}/${id}/${encodeURIComponent(revision)}/${file}`, self.location.href).href;
}

/** A cached file: bytes, `absent` (a 404 remembered), or null (not cached, or damaged: dropped). */
async function cacheGet(source, file) {
  if (source.kind === 'files' || !cacheAvailable()) return null;
  const cache = await caches.open(CACHE_NAME);
  const hit = await cache.match(cacheKey(source, file));
  if (!hit) return null;
  if (hit.headers.get('x-zeroshot-absent') === '1') return 'absent';
  const bytes = await bodyOf(file, hit, () => {});
  if (String(sizeOf(bytes)) === hit.headers.get('x-zeroshot-size')) return bytes;
  release(bytes);
  await cache.delete(cacheKey(source, file)); // truncated or corrupt: fetch it again
  return null;
}

/** Keeps a file (or, with null bytes, its absence); `validator` says which version it is (a folder
 * URL's ETag, Last-Modified and length), so an unchanged file is not written again; `format`, the
 * weights', lets the list of kept models show it without reading the file. */
async function cachePut(source, file, bytes, notes, { validator = '', format = null } = {}) {
  if (source.kind === 'files' || !cacheAvailable()) return;
  const headers = bytes ? { 'x-zeroshot-size': String(sizeOf(bytes)), 'x-zeroshot-validator': validator } : { 'x-zeroshot-absent': '1' };
  if (format) headers['x-zeroshot-format'] = format;
  try {
    const cache = await caches.open(CACHE_NAME);
    // Resolves once the whole body is written: the weights are not handed to the wasm before.
    await cache.put(cacheKey(source, file), new Response(bytes ? cacheBody(bytes) : '', { headers }));
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

/** The validator the kept copy of a file was stored with (validatorOf), or null if none is kept. */
async function keptValidator(source, file) {
  if (!cacheAvailable()) return null;
  const hit = await (await caches.open(CACHE_NAME)).match(cacheKey(source, file));
  await hit?.body?.cancel(); // only its headers are read
  return hit?.headers.get('x-zeroshot-validator') ?? null;
}

/** Whether a folder URL's file differs from the copy kept (or none is kept). */
async function keptCopyDiffers(source, file, validator) {
  return !validator || (await keptValidator(source, file)) !== validator;
}

/** With no network, a folder URL's file comes from the copy kept on the last load. */
async function offlineCopy(source, file, optional, progress, notes, error) {
  const cached = source.kind === 'url' ? await cacheGet(source, file) : null;
  if (cached === 'absent' && optional) return null;
  if (!isBytes(cached)) throw error;
  if (!notes.includes(OFFLINE_NOTE)) notes.push(OFFLINE_NOTE);
  return keptCopy(file, cached, progress);
}

const OFFLINE_NOTE = 'no network: the model comes from the copy kept on this device';

function fileUrl(source, file, revision = source.revision) {
  if (source.kind === 'url') return new URL(file, source.base);
  return new URL(`${source.hub}/${source.id}/resolve/${encodeURIComponent(revision)}/${file}`);
}

async function request(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${e.message}`);
  }
}

/** The response for one file (`init`: a HEAD, say), following typeform's converted weights to refs/pr/3
 * when main has none. */
async function respond(source, file, notes, init) {
  let response = await request(fileUrl(source, file), init);
  const typeformWeights = source.kind === 'hub' && source.id === TYPEFORM && file === WEIGHTS;
  if (response.status === 404 && typeformWeights && source.revision === 'main') {
    notes.push(`model.safetensors is not on main for ${TYPEFORM}; using revision ${TYPEFORM_SAFETENSORS_REVISION}`);
    response = await request(fileUrl(source, file, TYPEFORM_SAFETENSORS_REVISION), init);
  }
  return response;
}

/** A file the server would not give: the model, the status and, for the weights, what they must be. */
/** Where a model comes from, for messages. */
function whereOf(source) {
  if (source.kind === 'files') return 'the chosen files';
  return source.kind === 'hub' ? `${source.id} at revision ${source.revision}` : source.base;
}

function httpError(source, file, status) {
  const where = whereOf(source);
  const hint = file === WEIGHTS ? ' (pytorch_model.bin alone is not supported yet: the model needs model.safetensors)' : '';
  return new Error(`cannot fetch ${file} of ${where}: HTTP ${status}${hint}`);
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

// The weights live in wasm memory from their first byte: a WeightsBuffer (src/wasm.rs) that the
// download or the kept copy is written into, checked and cached from there, and handed to the wasm.
// The other files are small Uint8Arrays. These helpers take either.

const MAX_WEIGHTS = 2 ** 31; // wasm32 memory is 4 GB at most, and the model needs room besides

/** A file's body: the weights into wasm memory, any other file as a Uint8Array. */
const bodyOf = (file, response, progress) => (file === WEIGHTS ? readWeights(response, progress) : readBody(response, file, progress));
const isBytes = (bytes) => bytes instanceof Uint8Array || (WeightsBuffer !== null && bytes instanceof WeightsBuffer);
const sizeOf = (bytes) => (bytes instanceof Uint8Array ? bytes.length : bytes.size());
/** The bytes as a Uint8Array: for the weights, a view of wasm memory, valid until the next wasm call. */
const viewOf = (bytes) => (bytes instanceof Uint8Array ? bytes : new Uint8Array(wasmMemory.buffer, bytes.ptr(), bytes.size()));
/** Gives the weights' wasm memory back (a WeightsBuffer not handed to loadClassifier). */
const release = (bytes) => bytes?.free?.();

/** Reads the weights' body into a WeightsBuffer of the announced size (grown if the size was missing
 * or wrong), with progress events, so the 268 MB file is never also a JS copy. */
async function readWeights(response, progress) {
  const total = Number(response.headers.get('Content-Length')) || Number(response.headers.get('x-zeroshot-size')) || 0;
  progress({ file: WEIGHTS, loaded: 0, total });
  if (total > MAX_WEIGHTS) throw new Error(`model.safetensors is ${total} bytes: more than the browser's wasm memory can hold`);
  const weights = new WeightsBuffer(total || 1 << 20);
  const hashing = response.headers.has('X-Linked-Etag'); // checkDigest will want the SHA-256
  try {
    const read = chunkReader(response.body);
    let loaded = 0;
    for (;;) {
      const { done, value } = await read();
      if (done) break;
      if (loaded + value.length > weights.size()) weights.resize(Math.max(weights.size() * 2, loaded + value.length));
      new Uint8Array(wasmMemory.buffer, weights.ptr() + loaded, value.length).set(value);
      loaded += value.length;
      if (hashing) weights.hashTo(loaded);
      progress({ file: WEIGHTS, loaded, total });
    }
    if (loaded !== weights.size()) weights.resize(loaded);
    return weights;
  } catch (e) {
    weights.free();
    throw e;
  }
}

const READ_CHUNK = 1 << 20;

/** `read()` for a body's chunks, each valid until the next call. Where the body is a byte stream
 * (the Fetch standard's bodies; checked in Chromium 156 for fetch and Cache Storage), into one
 * reused 1 MB buffer: a default reader hands out a new buffer per chunk, 268 MB of garbage per
 * load that the browser frees when it gets round to it. Other bodies get the default reader. */
function chunkReader(body) {
  let reader;
  try {
    reader = body.getReader({ mode: 'byob' });
  } catch {
    const plain = body.getReader(); // not a byte stream
    return () => plain.read();
  }
  let buffer = new ArrayBuffer(READ_CHUNK);
  return async () => {
    const result = await reader.read(new Uint8Array(buffer)); // takes the buffer over
    if (!result.done) buffer = result.value.buffer; // ...and gives it back, filled
    return result;
  };
}

/** A copy of picked weights in wasm memory. */
function weightsFrom(bytes) {
  const weights = new WeightsBuffer(bytes.length);
  viewOf(weights).set(bytes);
  return weights;
}

const CACHE_CHUNK = 4 << 20;

/** A body for Cache Storage: a small file as it is; the weights copied out of wasm memory 4 MB at a
 * time as the cache reads them, so the write never holds a second whole copy. Every chunk is the same
 * buffer (not shared memory, which a body cannot be): with no queue (highWaterMark 0) the cache asks
 * for the next chunk only once it has taken the last, and a fresh buffer per chunk would leave the
 * whole file as garbage for the collector (40 MB more at a load's peak). */
function cacheBody(bytes) {
  if (bytes instanceof Uint8Array) return bytes;
  const chunk = new Uint8Array(Math.min(CACHE_CHUNK, bytes.size()));
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      const end = Math.min(at + CACHE_CHUNK, bytes.size());
      chunk.set(viewOf(bytes).subarray(at, end));
      controller.enqueue(chunk.subarray(0, end - at));
      at = end;
      if (at === bytes.size()) controller.close();
    },
  }, { highWaterMark: 0 });
}

const utf8 = (bytes) => new TextDecoder('utf-8', { fatal: true }).decode(bytes);

function parseObject(bytes) {
  const value = JSON.parse(utf8(bytes));
  if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  throw new Error(`it holds ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`);
}

const MAX_SAFETENSORS_HEADER = 100_000_000;

/** The safetensors layout: an 8-byte little-endian header length n, n bytes of JSON, then the data
 * that every tensor's data_offsets must fall within (a cut-off download fails here). Returns the header. */
function checkSafetensors(bytes) {
  const n = headerLength(bytes, bytes.length);
  const header = parseObject(bytes.slice(8, 8 + n)); // a copy: TextDecoder refuses shared memory
  checkOffsets(header, bytes.length - 8 - n);
  return header;
}

/** The header length n from a file's first 8 bytes, refused over the cap and, when the file's size is
 * known, past its end (checked before n bytes are read or asked for). */
function headerLength(bytes, fileBytes) {
  if (bytes.length < 8) throw new Error(`it has ${bytes.length} bytes, fewer than its 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_SAFETENSORS_HEADER)) throw new Error(`its header length ${n} is over 100 MB`);
  if (fileBytes && 8 + Number(n) > fileBytes) throw new Error(`its ${n}-byte header runs past the end of the ${fileBytes}-byte file`);
  return Number(n);
}

function checkOffsets(header, dataBytes) {
  for (const [name, tensor] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = Array.isArray(tensor?.data_offsets) ? tensor.data_offsets : [];
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new Error(`tensor ${name} has no valid data_offsets`);
    }
    if (end > dataBytes) throw new Error(`tensor ${name} ends at byte ${end} of a ${dataBytes}-byte data section`);
  }
}

const FORMATS = ['fp32', 'f16', 'bf16', 'int8'];

/** The weights' format from a safetensors header: what our converter wrote in __metadata__ when it did;
 * else 'int8' if any tensor is I8 (quantized, with F32 `<name>_scale` companions), 'f16' or 'bf16' if
 * every floating tensor is, else 'fp32'. */
function weightsFormat(header) {
  const stated = header.__metadata__?.zeroshot_weights;
  if (FORMATS.includes(stated)) return stated;
  const dtypes = Object.entries(header).filter(([name]) => name !== '__metadata__').map(([, t]) => t?.dtype);
  if (dtypes.includes('I8')) return 'int8';
  const floats = dtypes.filter((d) => ['F64', 'F32', 'F16', 'BF16'].includes(d));
  const half = ['F16', 'BF16'].find((d) => floats.length && floats.every((f) => f === d));
  return half ? half.toLowerCase() : 'fp32';
}

/** The format of weights in memory, or null: a damaged file is the wasm's to report, with its own message. */
function formatOf(bytes) {
  try {
    return weightsFormat(checkSafetensors(viewOf(bytes)));
  } catch {
    return null;
  }
}

/** A download must parse as what its name says, so a broken transfer or an error page is never
 * cached (the wasm side checks the model's contents; this checks the file arrived whole). */
function checkFile(file, bytes, url) {
  const text = file.endsWith('.txt');
  const kind = file.endsWith('.json') ? 'a JSON object' : text ? 'UTF-8 text' : 'a valid safetensors file';
  try {
    if (file.endsWith('.json')) parseObject(bytes);
    else if (text) utf8(bytes);
    else if (file === WEIGHTS) checkSafetensors(viewOf(bytes));
  } catch (e) {
    throw new Error(`${file} is not ${kind}: ${e.message} (downloaded from ${url})`);
  }
}

/** The Hub sends an LFS file's SHA-256 as X-Linked-Etag (quoted, maybe W/-prefixed): the bytes must
 * hash to it: the weights in wasm (WeightsBuffer.sha256), other files with WebCrypto, skipped where it is
 * missing (insecure origins, which have no cache either). */
async function checkDigest(file, bytes, etag, url) {
  if (!etag || (bytes instanceof Uint8Array && !self.crypto?.subtle)) return;
  const want = etag.replace(/^W\//, '').replaceAll('"', '').trim().toLowerCase();
  // The weights are hashed in wasm, where they are: WebCrypto would need a 268 MB copy of them.
  const hex = (hash) => Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('');
  const got = bytes instanceof Uint8Array ? hex(await self.crypto.subtle.digest('SHA-256', bytes)) : bytes.sha256();
  if (got !== want) throw new Error(`${file} is damaged: its SHA-256 is ${got}, but the Hub's X-Linked-Etag says ${want} (downloaded from ${url})`);
}

/** One file of the model: from picked files, the cache, or the network; null if optional and absent. */
async function fetchFile(source, file, optional, progress, notes) {
  if (source.kind === 'files') {
    const buffer = source.files[file];
    if (buffer) return file === WEIGHTS ? weightsFrom(new Uint8Array(buffer)) : new Uint8Array(buffer);
    if (optional) return null;
    throw new Error(`the chosen files have no ${file}`);
  }
  // A Hub revision's files never change: the kept copy is used. A folder URL's may: it is asked
  // for each time (whether it changed, where the kept copy has an ETag or Last-Modified), and the
  // kept copy serves when it has not, or when there is no network.
  const cached = source.kind === 'hub' ? await cacheGet(source, file) : null;
  if (cached === 'absent' && optional) return null;
  if (isBytes(cached)) return keptCopy(file, cached, progress);
  let response;
  try {
    // Unchanged: another origin's HEAD matches the kept copy, or this origin answers 304.
    const elsewhere = await unchangedElsewhere(source, file);
    response = elsewhere ? null : await respond(source, file, notes, await revalidation(source, file));
    if (elsewhere || response.status === 304) {
      const kept = await cacheGet(source, file);
      if (isBytes(kept)) return keptCopy(file, kept, progress);
      response = await respond(source, file, notes); // the kept copy went bad meanwhile: fetch it whole
    }
  } catch (e) {
    return offlineCopy(source, file, optional, progress, notes, e);
  }
  if (response.status === 404 && optional) {
    await cachePut(source, file, null, notes);
    return null;
  }
  if (!response.ok) throw httpError(source, file, response.status);
  return download(source, file, response, progress, notes);
}

/** A kept copy served instead of a download: its progress event says so. */
function keptCopy(file, bytes, progress) {
  progress({ file, loaded: sizeOf(bytes), total: sizeOf(bytes), cached: true });
  return bytes;
}

/** For a folder URL's file kept with the validator its server sent, a request that asks whether it
 * changed (If-None-Match with its ETag, else If-Modified-Since with its Last-Modified: a 304 then
 * means the kept copy is used), so an unchanged model is not downloaded again. Same origin only:
 * elsewhere these headers would need a CORS preflight (see unchangedElsewhere). */
async function revalidation(source, file) {
  if (source.kind !== 'url' || fileUrl(source, file).origin !== self.location.origin) return undefined;
  const [etag, modified] = (await keptValidator(source, file))?.split('|') ?? [];
  if (etag) return { headers: { 'If-None-Match': etag } };
  return modified ? { headers: { 'If-Modified-Since': modified } } : undefined;
}

/** Whether another origin's file is still the version kept, asked without downloading it: a HEAD
 * (a simple CORS request, so no preflight the server may refuse) whose validator equals the kept
 * one. Both come from validatorOf on that origin's answers: the ETag where its CORS headers expose
 * it, else Last-Modified and Content-Length, which CORS always lets a page read. */
async function unchangedElsewhere(source, file) {
  if (source.kind !== 'url' || fileUrl(source, file).origin === self.location.origin) return false;
  const kept = await keptValidator(source, file);
  if (!kept) return false;
  // no-store: the server is asked, as a same-origin conditional GET always asks it.
  const head = await request(fileUrl(source, file), { method: 'HEAD', cache: 'no-store' });
  return head.ok && validatorOf(head) === kept;
}

/** A file's body, checked to be whole and what it claims before it is kept; with `convert`, the
 * weights are kept (and used) converted, so the cache never holds the original. */
async function download(source, file, response, progress, notes) {
  let bytes = await bodyOf(file, response, progress);
  try {
    await checkDigest(file, bytes, response.headers.get('X-Linked-Etag'), response.url);
    checkFile(file, bytes, response.url);
    if (source.convert && file === WEIGHTS) bytes = convertDownload(bytes, source.convert, notes);
    const validator = source.kind === 'url' ? validatorOf(response) : '';
    const format = file === WEIGHTS ? formatOf(bytes) : null;
    if (source.kind === 'hub' || (await keptCopyDiffers(source, file, validator))) await cachePut(source, file, bytes, notes, { validator, format });
    return bytes;
  } catch (e) {
    release(bytes);
    throw e;
  }
}

/** The weights converted by the wasm (`zeroshot convert`: 'f16' or 'int8'); its error names the tensor. */
function convertDownload(bytes, format, notes) {
  const converted = convertWeights(bytes, format);
  const mb = (b) => `${(b.size() / 1e6).toFixed(1)} MB`;
  notes.push(`model.safetensors converted to ${format} in the browser: ${mb(converted)} kept on this device instead of ${mb(bytes)}`);
  bytes.free();
  return converted;
}

async function fetchModel(source, progress, notes) {
  const config = await fetchFile(source, 'config.json', false, progress, notes);
  const tokenizer = await fetchTokenizer(source, progress, notes);
  const tokenizerConfig = await fetchFile(source, 'tokenizer_config.json', true, progress, notes);
  const weights = await fetchFile(source, WEIGHTS, false, progress, notes);
  return { config, weights, ...tokenizer, tokenizerConfig };
}

/** The tokenizer's files in the first layout the model has: tokenizer.json, vocab.txt (BERT), or
 * vocab.json + merges.txt (RoBERTa). Which one the model's family can use is the wasm's to say. */
async function fetchTokenizer(source, progress, notes) {
  const none = { tokenizerJson: null, vocab: null, vocabJson: null, merges: null };
  const tokenizerJson = await fetchFile(source, 'tokenizer.json', true, progress, notes);
  if (tokenizerJson) return { ...none, tokenizerJson };
  const vocab = await fetchFile(source, 'vocab.txt', true, progress, notes);
  if (vocab) return { ...none, vocab };
  const vocabJson = await fetchFile(source, 'vocab.json', true, progress, notes);
  if (!vocabJson) {
    throw new Error(`${whereOf(source)} has no tokenizer: it needs tokenizer.json, vocab.txt (BERT), or vocab.json and merges.txt (RoBERTa); XLM-R and DeBERTa need tokenizer.json`);
  }
  return { ...none, vocabJson, merges: await fetchFile(source, 'merges.txt', false, progress, notes) };
}

// The probe: a model's weights format and size before any download, from a few kilobytes.

const PROBE_TIMEOUT_MS = 15000; // a probe only informs: a server that stalls must not keep it waiting

/** {format, bytes, cached} of a model's weights: format 'fp32' | 'f16' | 'bf16' | 'int8', or null when the
 * server ignores Range requests (the header cannot be had without the whole file); bytes null when no one
 * says; cached when a load would take them from Cache Storage. */
async function probe(source) {
  if (source.kind === 'file') return { ...(await probeHeader(fileReader(source.file), source.file.size)), cached: false };
  if (source.kind === 'cached') {
    const kept = await probeCached(source.key);
    if (!kept) throw new Error(`no copy of ${source.key} is kept`);
    return { ...kept, cached: true };
  }
  // A damaged kept copy is fetched again by the next load: the network says what that will get.
  const kept = await probeCached(cacheKey(source, WEIGHTS)).catch(() => null);
  // A Hub revision's kept copy is what a load uses; a folder URL's, only when its server is unreachable.
  if (kept && source.kind === 'hub') return { ...kept, cached: true };
  return probeNetwork(source, kept);
}

/** A HEAD for the size (Content-Length, or the Hub's X-Linked-Size), then the header by Range requests. */
async function probeNetwork(source, kept) {
  const init = { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) };
  let head;
  try {
    head = await respond(source, WEIGHTS, [], { ...init, method: 'HEAD' });
  } catch (e) {
    if (kept) return { ...kept, cached: true }; // no network: a load would use the kept copy
    throw e;
  }
  if (!head.ok) throw httpError(source, WEIGHTS, head.status);
  const bytes = Number(head.headers.get('Content-Length')) || Number(head.headers.get('X-Linked-Size')) || null;
  // head.url: where the redirects and typeform's refs/pr/3 led, so they are not followed again.
  return { ...(await probeHeader(rangeReader(head.url, init), bytes)), cached: false };
}

/** {format, bytes} from the weights' header, read by `read(start, length)`, which gives null when the
 * file cannot be read in parts (the format is then unknown). Checked as a download is (checkSafetensors). */
async function probeHeader(read, bytes) {
  const first = await readExactly(read, 0, 8);
  if (!first) return { format: null, bytes };
  const n = checked(() => headerLength(first, bytes));
  const json = await readExactly(read, 8, n);
  if (!json) return { format: null, bytes };
  const format = checked(() => {
    const header = parseObject(json);
    if (bytes) checkOffsets(header, bytes - 8 - n);
    return weightsFormat(header);
  });
  return { format, bytes };
}

async function readExactly(read, start, length) {
  const got = await read(start, length);
  if (got && got.length < length) throw new Error(`model.safetensors ends before byte ${start + length}`);
  return got;
}

/** Runs a check of the weights' header; its error names the file, as a download's does (checkFile). */
function checked(check) {
  try {
    return check();
  } catch (e) {
    throw new Error(`model.safetensors is not a valid safetensors file: ${e.message}`);
  }
}

/** Reads `length` bytes at `start` of `url` by a Range request; null when the server ignores Range (a
 * 200: the whole file is coming), whose body is then cancelled, not downloaded. */
function rangeReader(url, init) {
  return async (start, length) => {
    const response = await request(url, { ...init, headers: { Range: `bytes=${start}-${start + length - 1}` } });
    if (response.status !== 206) {
      await response.body?.cancel();
      if (response.ok) return null;
      throw new Error(`cannot read bytes ${start}-${start + length - 1} of ${url}: HTTP ${response.status}`);
    }
    // Content-Range, where CORS lets us see it, must start where we asked (a proxy may differ).
    const range = response.headers.get('Content-Range');
    if (range && !range.startsWith(`bytes ${start}-`)) throw new Error(`asked for bytes ${start}-, ${url} sent ${range}`);
    return new Uint8Array(await response.arrayBuffer()).subarray(0, length);
  };
}

const fileReader = (file) => async (start, length) => new Uint8Array(await file.slice(start, start + length).arrayBuffer());

/** {format, bytes} of a kept model.safetensors, from the start of its body; null when none is kept. */
async function probeCached(key) {
  if (!cacheAvailable()) return null;
  const hit = await (await caches.open(CACHE_NAME)).match(key);
  if (!hit || hit.headers.get('x-zeroshot-absent') === '1') return null;
  await hit.body?.cancel();
  return probeHeader(cacheReader(key), Number(hit.headers.get('x-zeroshot-size')) || null);
}

/** Reads the start of a kept file: a probe's two reads are at its start, so each reads from byte 0. */
function cacheReader(key) {
  return async (start, length) => {
    const hit = await (await caches.open(CACHE_NAME)).match(key);
    return (await readPrefix(hit.body, start + length)).subarray(start);
  };
}

/** The first `count` bytes of a stream (fewer if it ends first); the rest is never read. */
async function readPrefix(stream, count) {
  const reader = stream.getReader();
  const out = new Uint8Array(count);
  let got = 0;
  while (got < count) {
    const { done, value } = await reader.read();
    if (done) break;
    const part = value.subarray(0, count - got);
    out.set(part, got);
    got += part.length;
  }
  await reader.cancel();
  return out.subarray(0, got);
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
  // The CPU kernel's optimised code compiles in the background while the model downloads, so the
  // first text does not run on baseline code (src/backend/dot.rs, `warm_up`).
  pkg.warmUpKernels();
  const cores = maxThreads > 0 ? maxThreads : (self.navigator.hardwareConcurrency || 1);
  if (name === 'relaxed' && self.crossOriginIsolated && cores > 1) {
    await pkg.initThreadPool(cores);
    threads = cores;
  }
  loadClassifier = pkg.loadClassifier;
  convertWeights = pkg.convertWeights;
  WeightsBuffer = pkg.WeightsBuffer;
  wasmBuild = name;
}

/** Builds the classifier; the wasm takes the weights over (files.weights is spent after). With
 * `cpuFallback`, a WebGPU build that fails is built on the CPU from the same bytes. */
async function build(files, backend, cpuFallback = false) {
  const { config, weights, tokenizerJson, vocab, vocabJson, merges, tokenizerConfig } = files;
  return loadClassifier(config, weights, tokenizerJson, vocab, vocabJson, merges, tokenizerConfig, backend, cpuFallback, threads);
}

/** Builds on `backend`; under 'auto', any GPU failure falls back to the CPU. */
async function buildOn(files, backend, allowFallbackAdapter) {
  const wanted = await resolveBackend(backend, allowFallbackAdapter);
  return build(files, wanted, backend === 'auto' && wanted !== 'cpu');
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
  const files = await fetchModel(source, progress, notes);
  const format = formatOf(files.weights); // before the build, which takes the weights over
  classifier = await buildOn(files, backend, allowFallbackAdapter);
  loaded = { source, backend };
  return { ...running(), wasm: wasmBuild, notes, format };
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

// Token rows per explanation step: a full-size model's 25-word answer x 5 labels (130 pairs of
// about 40 tokens) runs in 3 steps, with a progress report and a chance to stop after each.
const EXPLAIN_STEP_ROWS = 2048;
// Explanations to stop (their call ids), set by 'cancel' messages, which are read at once, not
// queued; only for calls still queued or running (`open`), so a late cancel leaves nothing behind.
const cancelled = new Set();
const open = new Set();

/** Each word's effect on each label (see src/explain.rs), in steps: progress is posted after each,
 * and a 'cancel' for this call ends it there. */
const explain = ({ text, labels, template, multiLabel }, id) =>
  onModel(async (c) => {
    const job = c.explainer(text, labels, template, multiLabel);
    try {
      while (!(await job.step(EXPLAIN_STEP_ROWS))) {
        self.postMessage({ id, progress: { done: job.done(), total: job.total() } });
        await new Promise((resolve) => setTimeout(resolve, 0)); // lets a waiting 'cancel' message in
        if (cancelled.has(id)) throw new Error('AbortError: the explanation was cancelled');
      }
      return JSON.parse(job.result());
    } finally {
      job.free();
    }
  });

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
  if (msg.op === 'explain') return { result: await explain(msg, id), ...running() };
  if (msg.op === 'test' || msg.op === 'stats') return testOp(msg);
  if (msg.op === 'probe') return probe(msg.source);
  throw new Error(`unknown operation ${msg.op}`);
}

async function handle(msg) {
  const { id, op } = msg;
  try {
    if (cancelled.has(id)) throw new Error('AbortError: the explanation was cancelled');
    self.postMessage({ id, ok: true, ...(await run(msg, id)) });
  } catch (e) {
    // A trap killed the instance, or the model is gone (its CPU rebuild failed): either way zeroshot.js
    // replaces this worker, which loads the model afresh on the next call.
    const trap = e instanceof WebAssembly.RuntimeError;
    if (trap) trapped ??= e.message;
    const error = trap ? `the wasm instance trapped (${trapped})` : String(e?.message ?? e);
    self.postMessage({ id, error, crashed: trap || (['classify', 'classifyBatch', 'explain'].includes(op) && !classifier) });
  } finally {
    cancelled.delete(id);
    open.delete(id);
  }
}

self.onmessage = ({ data }) => {
  if (data.op === 'cancel') return open.has(data.target) && cancelled.add(data.target);
  open.add(data.id);
  queue = queue.then(() => handle(data));
};
