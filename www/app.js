// The page: UI only. Loading, caching and classifying are zeroshot.js's job.
import { DEFAULT_MODEL, DEFAULT_TEMPLATE, ZeroShotClassifier, crossOriginIsolate, parseLabels } from './zeroshot.js';
import { renderExplanation, renderWordsByLabel, wordRows, wordsByLabel } from './why.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STORE = 'zeroshot-page-v1';
const FIELDS = ['model', 'revision', 'backend', 'text', 'labels', 'template', 'multi', 'bulk-text', 'threshold'];
const DEFAULTS = {
  model: DEFAULT_MODEL,
  revision: 'main',
  backend: 'auto',
  text: 'I ordered the blue jacket two weeks ago and it still has not arrived.',
  labels: 'shipping delay, refund request, product quality, praise',
  template: DEFAULT_TEMPLATE,
  multi: false,
  'bulk-text': '',
  threshold: '0.5',
};
// Kept bulk results: in localStorage up to this many characters (it holds about 5 million per origin,
// shared with the inputs), in IndexedDB beyond.
const RESULTS = 'zeroshot-bulk-v1';
const RESULTS_LOCAL_MAX = 1_000_000;
// The build copies tiny random-weight models here: they work offline, and their scores mean nothing.
const DEMO_MODELS = new URL('./models/', location.href).href;
const OFFLINE_HINT = 'No network? The demo models in ./models/ work offline: enter ./models/typeform-layout/ as the model '
  + 'and press Load model. Their weights are random, so their scores mean nothing.';

// The page's model picker: what each model is, what it costs to download and keep, and the
// hypothesis template its card recommends (none: transformers' default).
const CATALOG = {
  'typeform/distilbert-base-uncased-mnli': {
    about: 'DistilBERT · English · MNLI · download 268 MB (fp32); kept as f16 134 MB, int8 69 MB · the default: fast, general topics',
  },
  'MoritzLaurer/xtremedistil-l6-h256-zeroshot-v1.1-all-33': {
    about: 'BERT (6 layers, 256 wide) · English · trained on 33 datasets · download 25.5 MB (f16); kept as int8 about 13 MB · the smallest: phones, survey pages',
  },
  'MoritzLaurer/roberta-base-zeroshot-v2.0-c': {
    about: 'RoBERTa base · English · commercially-friendly training data · download about 250 MB (f16); kept as int8 about 130 MB · more accurate on many labels',
    template: 'This text is about {}',
  },
  'MoritzLaurer/deberta-v3-xsmall-zeroshot-v1.1-all-33': {
    about: 'DeBERTa-v3 xsmall · English · trained on 33 datasets · download 142 MB (f16); kept as int8 about 72 MB · small and accurate: the model of transformers.js\'s zero-shot demo',
    template: 'This example is about {}',
  },
  'MoritzLaurer/deberta-v3-base-zeroshot-v2.0': {
    about: 'DeBERTa-v3 base · English · download 369 MB (f16); kept as int8 about 190 MB · the most accurate here on many labels',
    template: 'This text is about {}',
  },
  'MoritzLaurer/mDeBERTa-v3-base-mnli-xnli': {
    about: 'mDeBERTa-v3 base · 100 languages · MNLI + XNLI · download 558 MB (f16; a 250k-word vocabulary kept as f16); kept as int8 about 285 MB · survey answers in any language',
  },
  'MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7': {
    about: 'mDeBERTa-v3 base · 100 languages · 2.7 million NLI pairs in 27 languages · download 558 MB (f16); kept as int8 about 285 MB · survey answers in any language',
  },
  'MoritzLaurer/bge-m3-zeroshot-v2.0': {
    about: 'XLM-RoBERTa large · 100+ languages · download 1.14 GB (f16), 2.3 GB in memory · survey answers in any language; desktop browsers',
    template: 'This text is about {}',
  },
  './models/typeform-layout/': { about: 'demo DistilBERT, random weights, works offline' },
  './models/typeform-layout-int8/': { about: 'demo DistilBERT with int8 weights (zeroshot convert), random, works offline' },
  './models/bert-vocab/': { about: 'demo BERT: vocab.txt only, token types, two labels; random weights, works offline' },
  './models/roberta-bpe/': { about: 'demo RoBERTa: vocab.json + merges.txt; random weights, works offline' },
  './models/xlmr-unigram/': { about: 'demo XLM-RoBERTa: a SentencePiece Unigram tokenizer.json; random weights, works offline' },
  './models/deberta-v3/': { about: 'demo DeBERTa-v3: relative positions, texts of any length; random weights, works offline' },
};

// The bulk view's example: survey answers in six languages, for a multilingual model.
const EXAMPLE_ANSWERS = [
  'The parcel arrived two weeks late and nobody answered my emails.',
  'Das Paket kam beschädigt an, ich möchte mein Geld zurück.',
  'El precio es demasiado alto para lo que ofrece.',
  'Livraison rapide et produit de très bonne qualité, merci !',
  '注文した商品がまだ届きません。いつ届きますか？',
  'Atendimento excelente, resolveram o meu problema no mesmo dia.',
];

let clf = null;
let loadedKey = null;
let loading = null; // {key, promise} of the model load in progress: one at a time
let run = null; // the classify or bulk run in progress (a promise): one at a time
// The service worker's first takeover reloads the page to isolate it (every core), unless the user
// has begun something by then (`begin`): nothing they did is cut off, and that visit runs on one thread.
let begun = false;
let stayedOnOneThread = false; // the isolation reload was skipped because the user had begun
const isolation = crossOriginIsolate(new URL('./sw.js', import.meta.url), { canReload: reloadNow });
let beginNow = null;
// True when the page is about to reload (start nothing then); false once it goes on: isolation
// settled without a reload, or the user began, so that the reload cannot come any more.
const ready = Promise.race([isolation, new Promise((resolve) => { beginNow = () => resolve(false); })]);
// Marks the page as settled (no reload coming): 'many' threads where isolated, else 'one'.
isolation.then((reloading) => reloading || (document.documentElement.dataset.threads = crossOriginIsolated ? 'many' : 'one'));
let localFiles = null;
let loadedDemo = false; // the model in use is one of the random demo models
// The bulk results shown (and kept across reloads): multi is the mode they were classified in.
let bulk = { labels: [], multi: false, demo: false, rows: [] };
let filter = null; // the chart bucket whose answers the table shows (a label, NONE or FAILED), or null: all
let abort = null;
// The last text classified (what "Why?" explains), its explanation, and the label being shown.
let classified = null;
let explained = null;
let whyLabel = null;
// The bulk view's word filter: {label, key, rows} of the chip picked under "Which words", or null.
let wordFilter = null;
let weightsSeen = null; // {bytes, cached} of the weights, from the load's progress events
let infoToken = 0; // bumped by each probe and load: an older probe's answer is not shown over a newer one
let probeTimer = null;

/** What was kept last time, or {} when storage is disabled or the entry is damaged: the page must start anyway. */
function saved() {
  try {
    const value = JSON.parse(localStorage.getItem(STORE) ?? '{}');
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

/** Restores what the user typed last time (URL parameters win for model, revision, backend),
 * field by field: a kept value of the wrong type, or a choice the menu lacks, gives the default. */
function restore() {
  const kept = saved();
  for (const f of FIELDS) {
    const value = params.get(f) ?? (typeof kept[f] === typeof DEFAULTS[f] ? kept[f] : DEFAULTS[f]);
    if (f === 'multi') $(f).checked = value === true || value === 'true';
    else $(f).value = value;
    if ($(f).tagName === 'SELECT' && $(f).value !== value) $(f).value = DEFAULTS[f];
  }
}

/** Shows what the model in the field is, and selects it in the picker when it is listed. */
function describeModel() {
  const card = CATALOG[$('model').value.trim()];
  $('pick').value = card ? $('model').value.trim() : '';
  $('pick-about').textContent = card?.about ?? '';
}

/** A model picked from the list: the field takes it, and the template follows the model's card
 * unless the user has written their own (one that is neither the default nor a card's). */
function pickModel() {
  const id = $('pick').value;
  if (!id) return;
  const cardTemplates = Object.values(CATALOG).map((c) => c.template).filter(Boolean);
  const ownTemplate = ![DEFAULT_TEMPLATE, ...cardTemplates].includes($('template').value);
  $('model').value = id;
  $('revision').value = 'main';
  if (!ownTemplate) $('template').value = CATALOG[id]?.template ?? DEFAULT_TEMPLATE;
  describeModel();
  persist();
  scheduleProbe();
}

function persist() {
  const state = {};
  for (const f of FIELDS) state[f] = f === 'multi' ? $(f).checked : $(f).value;
  try {
    localStorage.setItem(STORE, JSON.stringify(state));
  } catch {
    // storage full or disabled: the page still works, inputs just are not remembered
  }
}

function showError(e) {
  $('error').textContent = e ? String(e.message ?? e) : '';
}

/** Called by crossOriginIsolate right before its reload: false once the user has begun. Else the
 * page is made inert, so no click or typing falls between now and the reload (pagehide saves the inputs). */
function reloadNow() {
  if (begun) {
    stayedOnOneThread = true;
    noteOneThread();
    return false;
  }
  document.body.inert = true;
  $('model-status').textContent = 'Getting ready to use every core: reloading…';
  return true;
}

/** The user starts something (a classify, a load, picked files): the isolation reload may not come any more. */
function begin() {
  begun = true;
  beginNow();
}

const ONE_THREAD_NOTE = 'This visit runs on one CPU thread: it began before the page was ready to use every core. '
  + 'The next visit uses every core.';

/** Says why this visit runs on one thread, once, under the model. */
function noteOneThread() {
  if ([...$('notes').children].some((li) => li.textContent === ONE_THREAD_NOTE)) return;
  $('notes').append(Object.assign(document.createElement('li'), { textContent: ONE_THREAD_NOTE }));
}

const mb = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;

function onProgress({ file, loaded, total, cached }) {
  if (file === 'model.safetensors') weightsSeen = { bytes: total || loaded, cached: Boolean(cached) };
  $('progress-wrap').hidden = false;
  $('progress').value = total ? loaded / total : 0;
  if (!total) $('progress').removeAttribute('value');
  const size = total ? `${mb(loaded)} of ${mb(total)}` : mb(loaded);
  $('progress-text').textContent = cached ? `${file}: from cache` : `${file}: ${size}`;
}

const fieldsKey = () => `${$('model').value.trim()}|${$('revision').value.trim()}|${$('backend').value}`;
const modelKey = () => localFiles ?? fieldsKey();
/** The model in use as a string that a result keeps (picked files by their names). */
const modelName = () => (localFiles ? `files: ${localFiles.map((f) => f.name).join(', ')}` : fieldsKey());

/** `?threads=N`: at most N CPU threads (the benchmark's 1-thread page); else 0, every core. */
const threadsParam = () => (/^\d+$/.test(params.get('threads') ?? '') ? Number(params.get('threads')) : 0);

/** The model of the fields, or `files`, as load() and probe() take it. */
function modelOptions(files = null) {
  const options = files ? { files } : { model: $('model').value.trim() || DEFAULT_MODEL, revision: $('revision').value.trim() || 'main' };
  if (params.get('hub')) options.hub = params.get('hub');
  return options;
}

/** Says what the weights are and where they come from: "int8 · 70 MB download", "fp32 · 268 MB, on this
 * device", "format unknown". */
function showModelInfo({ format, bytes }, where) {
  const size = bytes ? (where === 'download' ? `${mb(bytes)} download` : `${mb(bytes)}, ${where}`) : null;
  $('model-info').textContent = [format ?? 'format unknown', size].filter(Boolean).join(' · ');
  $('model-info').dataset.state = 'done';
}

/**
 * Shows the weights' format and size for the fields' model (or picked `files`) before anything is
 * downloaded: the model itself only comes on the first Classify. Only informs: a failure says
 * "format unknown" (its reason as the tooltip) and never stands in the way of a load.
 */
async function probeModel(files = null) {
  clearTimeout(probeTimer);
  const token = ++infoToken;
  if (await ready) return; // the page is reloading: start no request
  $('model-info').dataset.state = 'checking';
  $('model-info').textContent = 'checking the model…';
  const options = modelOptions(files);
  const info = await ZeroShotClassifier.probe(options).catch((e) => ({ format: null, bytes: null, error: e }));
  if (token !== infoToken) return;
  showModelInfo(info, files ? 'local files' : info.cached ? 'on this device' : 'download');
  $('model-info').title = info.error ? String(info.error.message ?? info.error) : '';
}

/** Probes once typing pauses, so that a model id typed letter by letter is not probed at each. */
function scheduleProbe() {
  clearTimeout(probeTimer);
  probeTimer = setTimeout(() => probeModel(), 500);
}

/** After a load, what runs: the format, and where the weights came from. */
function showLoadedInfo(c) {
  infoToken += 1;
  const picked = localFiles?.find((f) => f.name.split('/').pop() === 'model.safetensors');
  const where = picked ? 'local files' : weightsSeen?.cached ? 'on this device' : 'downloaded';
  showModelInfo({ format: c.format, bytes: picked?.size ?? weightsSeen?.bytes }, where);
  $('model-info').title = '';
}

/**
 * The classifier for the current model fields, loaded once per model and one load at a time: a
 * second request for the model being loaded shares that load, one for another model waits for it
 * and then loads its own, so the page never runs two workers.
 */
async function classifier() {
  for (;;) {
    if (clf && modelKey() === loadedKey) return clf;
    if (!loading) break;
    if (loading.key === modelKey()) return loading.promise;
    await loading.promise.catch(() => {});
  }
  loading = { key: modelKey(), promise: loadModel(modelKey()) };
  try {
    return await loading.promise;
  } finally {
    loading = null;
  }
}

async function loadModel(key) {
  if (await ready) return new Promise(() => {}); // the page is reloading: start no download
  clf?.dispose();
  clf = null;
  loadedKey = null;
  $('model-status').textContent = 'Loading the model…';
  $('notes').replaceChildren();
  weightsSeen = null;
  const options = { ...modelOptions(localFiles), backend: $('backend').value, threads: threadsParam(), onProgress };
  const what = localFiles ? `${localFiles.length} local files` : options.model;
  try {
    clf = await ZeroShotClassifier.load(options);
  } catch (e) {
    $('model-status').textContent = `Could not load ${what}.`;
    throw withOfflineHint(e, options.model);
  } finally {
    $('progress-wrap').hidden = true;
  }
  loadedKey = key;
  loadedDemo = isDemo(options.model);
  showLoadedInfo(clf);
  renderStored();
  const cpu = `the CPU (${clf.wasm === 'relaxed' ? 'relaxed SIMD' : 'SIMD'}, ${clf.threads} thread${clf.threads === 1 ? '' : 's'})`;
  $('model-status').textContent = `Ready: ${what}, running on ${clf.backend === 'webgpu' ? 'WebGPU' : cpu}.`;
  const notes = loadedDemo ? ['This is a demo model with random weights: its scores mean nothing.', ...clf.notes] : clf.notes;
  $('notes').replaceChildren(...notes.map((n) => Object.assign(document.createElement('li'), { textContent: n })));
  if (stayedOnOneThread) noteOneThread();
  return clf;
}

/** The models kept on this device (Cache Storage), each with its size and a Remove button; after a
 * model was stored, the browser is asked to keep them (else it may evict them: Safari after a week). */
async function renderStored() {
  const models = await ZeroShotClassifier.cachedModels().catch(() => []);
  const total = models.reduce((sum, m) => sum + m.bytes, 0);
  $('stored-count').textContent = models.length ? `(${models.length}, ${mb(total)})` : '(none)';
  $('stored-list').replaceChildren(...models.map(storedItem));
  if (!models.length || !navigator.storage?.persist) return;
  const kept = (await navigator.storage.persisted()) || (await navigator.storage.persist());
  $('stored-note').textContent = kept ? 'The browser keeps them until you remove them.' : 'The browser may remove them when space runs low.';
}

function storedItem(m) {
  const name = m.kind === 'hub' ? `${m.id} @ ${m.revision}${m.host === 'huggingface.co' ? '' : ` from ${m.host}`}` : m.url;
  const item = document.createElement('li');
  const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'link', textContent: 'Remove' });
  remove.setAttribute('aria-label', `Remove ${name}`);
  remove.addEventListener('click', () => ZeroShotClassifier.removeCachedModel(m.key).then(afterRemoval, showError));
  item.append(Object.assign(document.createElement('span'), { textContent: `${name} · ${m.format ?? 'format unknown'} · ${mb(m.bytes)}` }), remove);
  return item;
}

/** The list again, and the model's info: its weights may have been the ones removed. */
function afterRemoval() {
  renderStored();
  if (!localFiles) probeModel();
}

/** Offline: no network interface, or the last load failed to reach the network. */
function showOffline(offline = !navigator.onLine) {
  $('offline').hidden = !offline;
}

/** Whether the site answers: the page itself may come from the service worker's cache, so a reload
 * alone says nothing. A query makes this request miss the shell cache and go to the network. */
async function checkOnline() {
  if (!navigator.onLine) return showOffline(true);
  try {
    await fetch(new URL(`./pkg/shell.js?online=${Date.now()}`, location.href), { method: 'HEAD', cache: 'no-store' });
    showOffline(false);
  } catch {
    showOffline(true);
  }
}

/** Whether `model` (a Hub id or a folder URL, as zeroshot.js tells them apart) is one of the demo models. */
function isDemo(model) {
  return /^(https?:\/\/|\.{0,2}\/)/.test(model ?? '') && new URL(model, location.href).href.startsWith(DEMO_MODELS);
}

/** A load that failed for want of a network says that the demo models need none (unless it was one). */
function withOfflineHint(e, model) {
  const network = /Failed to fetch|NetworkError|Load failed/i.test(e.message) || !navigator.onLine;
  showOffline(network);
  return model && network && !isDemo(model) ? new Error(`${e.message}\n${OFFLINE_HINT}`) : e;
}

function bars(result) {
  return result.labels.map((label, i) => {
    const row = document.createElement('div');
    row.className = 'bar';
    const name = Object.assign(document.createElement('span'), { className: 'name', textContent: label });
    const track = Object.assign(document.createElement('span'), { className: 'track' });
    const fill = Object.assign(document.createElement('span'), { className: 'fill' });
    fill.style.width = `${(result.scores[i] * 100).toFixed(1)}%`;
    track.append(fill);
    const value = Object.assign(document.createElement('span'), { className: 'value', textContent: result.scores[i].toFixed(3) });
    row.append(name, track, value);
    return row;
  });
}

/**
 * Starts a classify, explain or bulk run unless one is running (a double click, Ctrl+Enter twice):
 * one at a time, so results never interleave; the buttons that start one are disabled meanwhile.
 */
const STARTS = ['go', 'bulk-go', 'why-go', 'words-go'];

function exclusive(action) {
  if (run) return run;
  begin();
  for (const id of STARTS) $(id).disabled = true;
  run = action().finally(() => {
    run = null;
    for (const id of STARTS) $(id).disabled = false;
  });
  return run;
}

async function classifyOne() {
  showError(null);
  persist();
  try {
    const c = await classifier();
    const started = performance.now();
    const options = { hypothesisTemplate: $('template').value, multiLabel: $('multi').checked };
    const asked = { text: $('text').value, labels: $('labels').value, options, model: modelName() };
    const r = await c.classify(asked.text, asked.labels, asked.options);
    const ms = performance.now() - started;
    $('run-info').textContent = `${c.backend === 'webgpu' ? 'WebGPU' : 'CPU'}, ${ms.toFixed(0)} ms${r.truncated ? ', text truncated to fit the model' : ''}`;
    $('results').replaceChildren(...bars(r));
    $('single-demo').hidden = !loadedDemo;
    classified = asked;
    explained = null;
    $('why').hidden = false;
    $('why-labels').hidden = true;
    $('why-view').replaceChildren();
    $('why-info').textContent = '';
  } catch (e) {
    showError(e);
  }
}

/** "Why?": each word's effect on each label of the text just classified (about one classification
 * per word), with progress and Cancel; then the text coloured for the top label. */
async function explainOne() {
  if (!classified) return;
  showError(null);
  abort = new AbortController();
  $('why-cancel').hidden = $('why-progress').hidden = false;
  $('why-progress').value = 0;
  const started = performance.now();
  try {
    const c = await classifier();
    sameModel(classified.model, 'This result was classified');
    const onProgress = ({ done, total }) => {
      $('why-progress').value = done / total;
      $('why-info').textContent = `${done} of ${total} pairs…`;
    };
    explained = await c.explain(classified.text, classified.labels, { ...classified.options, signal: abort.signal, onProgress });
    $('why-info').textContent = `${explained.words.length} words, ${((performance.now() - started) / 1000).toFixed(1)} s${explained.truncated ? '; the text was cut, and words past the cut have no effect' : ''}`;
    showWhy(explained.labels[0]);
  } catch (e) {
    if (e.name === 'AbortError') $('why-info').textContent = 'Cancelled.';
    else showError(e);
  } finally {
    $('why-cancel').hidden = $('why-progress').hidden = true;
  }
}

/** Explanations come from the model that gave the scores: `what` came from `model`, another than the
 * one in use, is an error (classify again first), never effects of one model against another's scores. */
function sameModel(model, what) {
  if (model !== undefined && model !== modelName()) {
    throw new Error(`${what} with another model (${model}): classify again to explain them with the one in use.`);
  }
}

/** The explanation coloured for `label`, and the label buttons (switching recomputes nothing). */
function showWhy(label) {
  whyLabel = label;
  const button = (l) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: l });
    b.dataset.label = l;
    b.setAttribute('aria-pressed', String(l === label));
    return b;
  };
  $('why-labels').replaceChildren(...explained.labels.map(button));
  $('why-labels').hidden = false;
  renderExplanation($('why-view'), explained, label);
}

/** "Which words put answers there?": every answer explained (those not explained yet), with progress
 * and Cancel; the words then show under the chart as they come. */
async function explainAll() {
  showError(null);
  const todo = bulk.rows.filter((r) => !r.error && !r.words);
  abort = new AbortController();
  $('words-cancel').disabled = false;
  $('words-progress').hidden = false;
  $('words-progress').value = 0;
  const started = performance.now();
  try {
    const c = await classifier();
    sameModel(bulk.model, 'These answers were classified');
    const options = { hypothesisTemplate: bulk.template ?? $('template').value, multiLabel: bulk.multi, signal: abort.signal };
    for (const [i, row] of todo.entries()) {
      row.words = (await c.explain(row.sequence, bulk.labels, options)).words;
      $('words-progress').value = (i + 1) / todo.length;
      $('words-info').textContent = `${i + 1} of ${todo.length} answers explained (${((performance.now() - started) / (i + 1) / 1000).toFixed(1)} s each)`;
      scheduleRender();
    }
  } catch (e) {
    if (e.name === 'AbortError') $('words-info').textContent = 'Cancelled; the answers explained so far are kept.';
    else showError(e);
  } finally {
    renderBulk();
    saveResults();
    $('words-cancel').disabled = true;
    $('words-progress').hidden = true;
  }
}

/** The words that put answers under each label, once any answer is explained. */
function renderWords() {
  const any = bulk.rows.some((r) => r.words);
  $('export-words').hidden = !any;
  if (!any) return $('words-view').replaceChildren();
  renderWordsByLabel($('words-view'), wordGroups(), wordFilter);
}

const wordGroups = () => wordsByLabel(bulk.rows, bulk.labels, (row) => bucketsOf(row, threshold()));

/** A word chip: shows the answers it pushed under its label (again: all answers). */
function pickWord(e) {
  const chip = e.target.closest('[data-word]');
  if (!chip) return;
  const { label, word } = chip.dataset;
  const same = wordFilter?.label === label && wordFilter?.key === word;
  const group = wordGroups().find((g) => g.label === label);
  wordFilter = same ? null : { label, key: word, rows: group.words.find((w) => w.key === word).rows };
  filter = null;
  renderBulk();
}

function exportWords() {
  download('zeroshot-words.csv', 'text/csv', csv([['label', 'word', 'answers', 'summed_effect'], ...wordRows(wordGroups())]));
}

/** Minimal RFC 4180 CSV: quoted fields, doubled quotes, commas and newlines inside quotes. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') field += text[++i];
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => r.some((f) => f.trim() !== ''));
}

/** A text cell starting as a formula would (=, +, -, @, tab, CR) gets a leading ' so that spreadsheets
 * show it rather than run it (OWASP's advice on CSV injection); our numbers are written as they are. */
const csvText = (v) => (typeof v === 'string' && /^[=+\-@\t\r]/.test(v) ? `'${v}` : String(v));

function csvField(v) {
  const text = csvText(v);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

let csvRows = null;

async function importCsv(file) {
  csvRows = parseCsv(await file.text());
  if (!csvRows.length) throw new Error(`${file.name} has no rows`);
  const header = csvRows[0];
  $('column').replaceChildren(...header.map((h, i) => Object.assign(document.createElement('option'), { value: i, textContent: h || `column ${i + 1}` })));
  const guess = header.findIndex((h) => /text|answer|comment|response|feedback/i.test(h));
  $('column').value = String(Math.max(guess, 0));
  $('column-wrap').hidden = false;
  useColumn();
}

function useColumn() {
  const col = Number($('column').value);
  $('bulk-text').value = csvRows.slice(1).map((r) => (r[col] ?? '').replace(/[\r\n]+/g, ' ')).join('\n');
  persist();
}

// Chart buckets besides the labels: answers no label claims (multi-label), answers that failed.
const NONE = Symbol('no label');
const FAILED = Symbol('failed');
const threshold = () => Number($('threshold').value);

/** The buckets an answer falls under: its top label (single-label), or every label scoring at least
 * the threshold (multi-label), else NONE; a failed answer under FAILED. */
function bucketsOf(row, min) {
  if (row.error) return [FAILED];
  if (!bulk.multi) return [row.labels[0]];
  const claimed = row.labels.filter((_, i) => row.scores[i] >= min);
  return claimed.length ? claimed : [NONE];
}

const bucketName = (key) => (key === NONE ? '(no label)' : key === FAILED ? '(failed)' : key);

/** Answers per bucket, in the labels' order, then NONE (multi-label) and FAILED (when any failed);
 * percentages are of all answers, so in multi-label mode they can add up to more than 100. */
function summary() {
  const min = threshold();
  const counts = new Map(bulk.labels.map((l) => [l, 0]));
  if (bulk.multi) counts.set(NONE, 0);
  for (const r of bulk.rows) for (const b of bucketsOf(r, min)) counts.set(b, (counts.get(b) ?? 0) + 1);
  const total = bulk.rows.length;
  const buckets = [...counts].map(([key, count]) => ({ key, name: bucketName(key), count, percent: total ? (100 * count) / total : 0 }));
  const rule = bulk.multi ? `labels scoring ≥ ${min.toFixed(2)}` : 'top label of each';
  return { buckets, heading: `${total} answer${total === 1 ? '' : 's'} · ${rule}` };
}

const SVG_NS = 'http://www.w3.org/2000/svg';
// Colours and font written into the SVG itself, so that an exported picture looks the same.
const INK = { font: 'system-ui, -apple-system, "Segoe UI", sans-serif', text: '#1d2430', muted: '#5b6472', track: '#e8ecf4', bar: '#2f62d0', other: '#8a93a3', picked: '#173a8a' };
const ROW = 46; // px per bucket: its name and numbers on one line, the bar under them
const TOP = 40;

function svgNode(name, attrs = {}, text = '') {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.textContent = text;
  return node;
}

/** `text` cut to about what fits in `px` of 14 px text: the SVG is also exported, so it is not measured
 * in the page's layout (the full name is in the bar's <title> and the table). */
function fit(text, px) {
  const n = Math.max(4, Math.floor(px / 7.8));
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** The bar chart of `sum` as a standalone SVG, `width` px wide plus a white margin of `pad` (for a
 * picture on its own); bars are as long as their share of all answers. */
function chartSvg(sum, width, { picked = null, pad = 0 } = {}) {
  const height = TOP + sum.buckets.length * ROW;
  const [w, h] = [width + 2 * pad, height + 2 * pad];
  const svg = svgNode('svg', { width: w, height: h, viewBox: `${-pad} ${-pad} ${w} ${h}`, role: 'img', 'font-family': INK.font, 'font-size': 14 });
  svg.setAttribute('aria-label', `Bar chart, ${sum.heading}: ${sum.buckets.map((b) => `${b.name} ${b.count} (${b.percent.toFixed(1)}%)`).join(', ')}.`);
  svg.append(svgNode('rect', { x: -pad, y: -pad, width: w, height: h, fill: '#fff' }), svgNode('text', { x: 0, y: 20, fill: INK.text, 'font-weight': 600 }, fit(sum.heading, width)));
  sum.buckets.forEach((b, i) => svg.append(bucketBar(b, i, width, TOP + i * ROW, b.key === picked)));
  return svg;
}

function bucketBar(b, i, width, y, picked) {
  const value = `${b.count} · ${b.percent.toFixed(1)}%`;
  const colour = picked ? INK.picked : typeof b.key === 'symbol' ? INK.other : INK.bar;
  const g = svgNode('g', { 'data-bucket': i, cursor: 'pointer' });
  g.append(
    svgNode('title', {}, `${b.name}: ${value}`),
    svgNode('text', { x: 0, y: y + 14, fill: INK.text, 'font-weight': picked ? 700 : 400 }, fit(b.name, width - 8 * value.length - 12)),
    svgNode('text', { x: width, y: y + 14, fill: INK.muted, 'text-anchor': 'end' }, value),
    svgNode('rect', { x: 0, y: y + 21, width, height: 14, rx: 4, fill: INK.track }),
    svgNode('rect', { x: 0, y: y + 21, width: ((width * b.percent) / 100).toFixed(1), height: 14, rx: 4, fill: colour }),
  );
  return g;
}

let shown = null; // the summary on screen: its buckets are what the bars' data-bucket indices refer to

function renderChart() {
  shown = summary();
  $('chart').replaceChildren(chartSvg(shown, $('chart').clientWidth || 640, { picked: filter }));
  $('chart-table').tBodies[0].replaceChildren(...shown.buckets.map((b) => {
    const tr = document.createElement('tr');
    tr.append(...[b.name, String(b.count), `${b.percent.toFixed(1)}%`].map((t) => Object.assign(document.createElement('td'), { textContent: t })));
    return tr;
  }));
  renderFilterButtons();
}

/** One toggle button per bucket, the keyboard's way to the filter (the SVG is a picture); rebuilt on
 * every render, so the focused one is focused again. */
function renderFilterButtons() {
  const focused = $('chart-filter').contains(document.activeElement) ? document.activeElement.dataset.bucket : null;
  const button = (text, index, key) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: text });
    b.dataset.bucket = index;
    b.setAttribute('aria-pressed', String(filter === key));
    return b;
  };
  $('chart-filter').replaceChildren(button('All answers', 'all', null), ...shown.buckets.map((b, i) => button(`${b.name} (${b.count})`, i, b.key)));
  if (focused !== null) $('chart-filter').querySelector(`[data-bucket="${focused}"]`)?.focus();
}

/** Shows only the answers of bucket `key` (again: all of them). */
function setFilter(key) {
  filter = filter === key ? null : key;
  wordFilter = null;
  renderBulk();
}

function pickBucket(e) {
  const index = e.target.closest('[data-bucket]')?.dataset.bucket;
  if (index !== undefined) setFilter(index === 'all' ? null : shown.buckets[index].key);
}

/** The rows the table shows with their numbers: all in order, or the filter's bucket, best score first
 * (its label's score; the top score for NONE; FAILED keeps the order). */
function shownRows() {
  const all = bulk.rows.map((r, i) => ({ r, n: i + 1 }));
  if (wordFilter) {
    const score = ({ r }) => r.scores[r.labels.indexOf(wordFilter.label)];
    return all.filter(({ n }) => wordFilter.rows.has(n - 1)).sort((a, b) => score(b) - score(a));
  }
  if (filter === null) return all;
  const min = threshold();
  const score = ({ r }) => (filter === FAILED ? 0 : filter === NONE ? r.scores[0] : r.scores[r.labels.indexOf(filter)]);
  return all.filter(({ r }) => bucketsOf(r, min).includes(filter)).sort((a, b) => score(b) - score(a));
}

function renderTable() {
  const head = document.createElement('tr');
  for (const h of ['#', 'text', 'top label', 'score', ...bulk.labels]) {
    // One line each, however long the label: the full one is the title (and on the filter buttons).
    const th = Object.assign(document.createElement('th'), { title: h });
    th.append(Object.assign(document.createElement('span'), { textContent: h }));
    head.append(th);
  }
  const sorted = filter === NONE ? 3 : 4 + bulk.labels.indexOf(filter);
  if (filter !== null && filter !== FAILED) head.cells[sorted].setAttribute('aria-sort', 'descending');
  $('bulk-table').tHead.replaceChildren(head);
  const rows = shownRows();
  $('bulk-table').tBodies[0].replaceChildren(...rows.map(({ r, n }) => {
    const tr = document.createElement('tr');
    const cell = (text, className) => tr.append(Object.assign(document.createElement('td'), { textContent: text, className }));
    cell(String(n), 'num');
    cell(r.sequence, 'text');
    cell(r.error ? `error: ${r.error}` : r.labels[0]);
    cell(r.error ? '' : r.scores[0].toFixed(3), 'num');
    for (const l of bulk.labels) cell(r.error ? '' : r.scores[r.labels.indexOf(l)].toFixed(3), 'num');
    return tr;
  }));
  $('bulk-table').hidden = bulk.rows.length === 0;
  const order = filter === FAILED ? 'in their order' : 'highest score first';
  $('filter-info').textContent = wordFilter
    ? `Showing the ${rows.length} answer${rows.length === 1 ? '' : 's'} that “${wordFilter.key}” pushed towards ${wordFilter.label}, highest score first.`
    : filter === null ? '' : `Showing the ${rows.length} answers under ${bucketName(filter)}, ${order}.`;
}

let renderTimer = null;

/** Chart, filter and table of the bulk results, now. */
function renderBulk() {
  clearTimeout(renderTimer);
  renderTimer = null;
  $('summary').hidden = bulk.rows.length === 0;
  $('threshold-wrap').hidden = !bulk.multi;
  $('threshold-out').value = threshold().toFixed(2);
  $('bulk-demo').hidden = !(bulk.demo && bulk.rows.length);
  renderChart();
  renderWords();
  renderTable();
}

/** renderBulk at most every 300 ms while rows arrive: a thousand answers, a few dozen renders. */
function scheduleRender() {
  renderTimer ??= setTimeout(renderBulk, 300);
}

async function classifyAll() {
  showError(null);
  persist();
  const texts = $('bulk-text').value.split('\n').filter((t) => t.trim() !== '');
  if (!texts.length) return showError(new Error('Paste some texts, one per line, or import a CSV file.'));
  abort = new AbortController();
  $('bulk-cancel').disabled = false;
  $('bulk-progress').hidden = false;
  $('bulk-progress').value = 0;
  let next = null;
  try {
    const c = await classifier();
    next = { labels: parseLabels($('labels').value), multi: $('multi').checked, template: $('template').value, model: modelName(), demo: loadedDemo, rows: [] };
    await classifyRows(c, texts, next);
  } catch (e) {
    if (e.name === 'AbortError') $('bulk-info').textContent = `Cancelled after ${next?.rows.length ?? 0} of ${texts.length}.`;
    else showError(e);
  } finally {
    renderBulk();
    if (bulk === next) saveResults();
    $('bulk-cancel').disabled = true;
    $('bulk-progress').hidden = true;
  }
}

/** Classifies `texts` into `next`, which replaces the results shown at its first row: a run that
 * fails before any (no model, bad labels) leaves the last results on screen and kept. */
async function classifyRows(c, texts, next) {
  const options = { hypothesisTemplate: $('template').value, multiLabel: next.multi, signal: abort.signal };
  const started = performance.now();
  // Batches of texts share forwards; a text's own failure is its row, a shared one (labels, template) stops the run.
  for await (const row of c.classifyMany(texts, next.labels, options)) {
    next.rows.push(row);
    if (bulk !== next) [bulk, filter, wordFilter] = [next, null, null];
    $('bulk-progress').value = next.rows.length / texts.length;
    $('bulk-info').textContent = `${next.rows.length} of ${texts.length} (${((performance.now() - started) / next.rows.length).toFixed(0)} ms each)`;
    scheduleRender();
  }
}

/** Keeps the bulk results for the next visit: localStorage when small, else IndexedDB (the other copy
 * is dropped, so a stale one never wins). Storage that is off or full just means they are not kept. */
async function saveResults() {
  const json = JSON.stringify(bulk);
  try {
    if (json.length > RESULTS_LOCAL_MAX) throw new RangeError('too big for localStorage');
    localStorage.setItem(RESULTS, json);
    await idb('delete').catch(() => {});
  } catch {
    try {
      localStorage.removeItem(RESULTS);
    } catch {
      // storage disabled: IndexedDB is likely off too, and the put below fails quietly
    }
    await idb('put', json).catch(() => {});
  }
}

/** One request on the page's IndexedDB store: 'get', 'put' (`value`) or 'delete' of the kept results. */
function idb(op, value) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('zeroshot-page', 1);
    open.onupgradeneeded = () => open.result.createObjectStore('results');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const store = db.transaction('results', op === 'get' ? 'readonly' : 'readwrite').objectStore('results');
      const request = op === 'put' ? store.put(value, RESULTS) : store[op](RESULTS);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
      db.close(); // closes once the transaction is done
    };
  });
}

const strings = (a) => Array.isArray(a) && a.every((s) => typeof s === 'string');

/** Kept results as the page can show them, or null; damaged rows are dropped, the others kept. */
function checkedResults(kept) {
  if (!kept || typeof kept !== 'object' || !strings(kept.labels) || !kept.labels.length || !Array.isArray(kept.rows)) return null;
  const { labels } = kept;
  const scored = (r) => strings(r.labels) && r.labels.length === labels.length && labels.every((l) => r.labels.includes(l))
    && Array.isArray(r.scores) && r.scores.length === labels.length && r.scores.every(Number.isFinite);
  const rows = kept.rows.filter((r) => r && typeof r.sequence === 'string' && (typeof r.error === 'string' || scored(r)));
  // An answer's words (its explanation) are kept only whole: text, place, and a number per label.
  const word = (w) => w && typeof w.text === 'string' && Number.isInteger(w.start) && Number.isInteger(w.end) && w.effects
    && typeof w.effects === 'object' && Object.entries(w.effects).every(([l, v]) => labels.includes(l) && Number.isFinite(v));
  for (const r of rows) if (r.words !== undefined && !(Array.isArray(r.words) && r.words.every(word))) delete r.words;
  const [template, model] = [kept.template, kept.model].map((v) => (typeof v === 'string' ? v : undefined));
  return rows.length ? { labels, multi: kept.multi === true, template, model, demo: kept.demo === true, rows } : null;
}

const parsed = (json) => {
  try {
    return JSON.parse(json);
  } catch {
    return null;
  }
};

/** Shows the results kept last time, unless a run has begun meanwhile. */
async function restoreResults() {
  let local = null;
  try {
    local = localStorage.getItem(RESULTS);
  } catch {
    // storage disabled: look in IndexedDB
  }
  const kept = checkedResults(parsed(local ?? (await idb('get').catch(() => null))));
  if (!kept || run || bulk.rows.length) return;
  bulk = kept;
  renderBulk();
  $('bulk-info').textContent = `${kept.rows.length} answer${kept.rows.length === 1 ? '' : 's'} from last time.`;
}

function downloadBlob(name, blob) {
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(blob), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

const download = (name, type, text) => downloadBlob(name, new Blob([text], { type }));
const csv = (rows) => `${rows.map((r) => r.map(csvField).join(',')).join('\r\n')}\r\n`;

function exportCsv() {
  const lines = [['text', 'top_label', 'top_score', ...bulk.labels]];
  for (const r of bulk.rows) {
    const scores = bulk.labels.map((l) => (r.error ? '' : r.scores[r.labels.indexOf(l)]));
    lines.push([r.sequence, r.error ? `error: ${r.error}` : r.labels[0], r.error ? '' : r.scores[0], ...scores]);
  }
  download('zeroshot-results.csv', 'text/csv', csv(lines));
}

/** Answers per label as CSV; `threshold` is the multi-label threshold (empty in single-label mode). */
function exportSummary() {
  const sum = summary();
  const min = bulk.multi ? threshold().toFixed(2) : '';
  const rows = sum.buckets.map((b) => [b.name, b.count, b.percent.toFixed(1), min]);
  download('zeroshot-summary.csv', 'text/csv', csv([['label', 'answers', 'percent', 'threshold'], ...rows]));
}

/** The chart as exported: a fixed width whatever the screen, a margin, and no bucket picked. */
const exportedSvg = () => new XMLSerializer().serializeToString(chartSvg(summary(), 720, { pad: 24 }));

/** The exported SVG drawn at twice its size onto a canvas, as PNG. */
async function exportPng() {
  const url = URL.createObjectURL(new Blob([exportedSvg()], { type: 'image/svg+xml' }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = Object.assign(document.createElement('canvas'), { width: image.width * 2, height: image.height * 2 });
    canvas.getContext('2d').drawImage(image, 0, 0, canvas.width, canvas.height);
    downloadBlob('zeroshot-chart.png', await new Promise((resolve) => canvas.toBlob(resolve, 'image/png')));
  } finally {
    URL.revokeObjectURL(url);
  }
}

function selectTab(many) {
  $('single').hidden = many;
  $('bulk').hidden = !many;
  $('tab-single').setAttribute('aria-selected', String(!many));
  $('tab-bulk').setAttribute('aria-selected', String(many));
}

/**
 * Loads the model of the fields, or picked or dropped `files`. If that is another model, a bulk run
 * is cancelled and a single one let finish first, so no run sees its classifier disposed and the
 * bulk table never mixes two models; Load on the model in use leaves a run alone.
 */
async function changeModel(files = null) {
  begin();
  if ((files ?? fieldsKey()) !== loadedKey) {
    abort?.abort();
    await run;
  }
  localFiles = files;
  persist();
  showError(null);
  if (files) $('model-status').textContent = `Using ${files.length} local files: ${files.map((f) => f.name).join(', ')}`;
  await classifier().catch(showError);
}

/** The example answers, after whatever the field holds (nothing typed is replaced). */
function addExampleAnswers() {
  const typed = $('bulk-text').value.trimEnd();
  $('bulk-text').value = (typed ? `${typed}\n` : '') + EXAMPLE_ANSWERS.join('\n');
  persist();
}

/** Picked or dropped files: their format and size first (a moment: only the header is read), then the load. */
async function useFiles(files) {
  const list = Array.from(files);
  if (!list.length) return;
  begin();
  await probeModel(list);
  changeModel(list);
}

function wire() {
  $('go').addEventListener('click', () => exclusive(classifyOne));
  $('load').addEventListener('click', () => changeModel());
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') exclusive($('bulk').hidden ? classifyOne : classifyAll);
  });
  for (const f of FIELDS) $(f).addEventListener('change', persist);
  for (const f of ['model', 'revision']) $(f).addEventListener('input', scheduleProbe);
  $('model').addEventListener('input', describeModel);
  $('pick').addEventListener('change', pickModel);
  $('tab-single').addEventListener('click', () => selectTab(false));
  $('tab-bulk').addEventListener('click', () => selectTab(true));
  $('bulk-go').addEventListener('click', () => exclusive(classifyAll));
  $('bulk-cancel').addEventListener('click', () => abort?.abort());
  $('csv').addEventListener('change', (e) => e.target.files[0] && importCsv(e.target.files[0]).catch(showError));
  $('bulk-example').addEventListener('click', addExampleAnswers);
  $('why-go').addEventListener('click', () => exclusive(explainOne));
  $('why-cancel').addEventListener('click', () => abort?.abort());
  $('why-labels').addEventListener('click', (e) => e.target.dataset.label && showWhy(e.target.dataset.label));
  $('words-go').addEventListener('click', () => exclusive(explainAll));
  $('words-cancel').addEventListener('click', () => abort?.abort());
  $('words-view').addEventListener('click', pickWord);
  $('export-words').addEventListener('click', exportWords);
  $('column').addEventListener('change', useColumn);
  $('export-csv').addEventListener('click', exportCsv);
  $('export-json').addEventListener('click', () => download('zeroshot-results.json', 'application/json', JSON.stringify(bulk.rows, null, 2)));
  $('export-summary').addEventListener('click', exportSummary);
  $('export-svg').addEventListener('click', () => download('zeroshot-chart.svg', 'image/svg+xml', exportedSvg()));
  $('export-png').addEventListener('click', () => exportPng().catch(showError));
  $('threshold').addEventListener('input', renderBulk);
  $('chart').addEventListener('click', pickBucket);
  $('chart-filter').addEventListener('click', pickBucket);
  // The chart is drawn at its box's width (text stays 14 px on a phone): again when that changes.
  new ResizeObserver(() => bulk.rows.length && renderChart()).observe($('chart'));
  // A reload during a run keeps the rows so far (at the end of a run they are kept anyway).
  addEventListener('pagehide', () => run && bulk.rows.length && saveResults());
  addEventListener('pagehide', persist); // what was typed since the last change event, too
  $('files').addEventListener('change', (e) => useFiles(e.target.files));
  $('clear-cache').addEventListener('click', async () => {
    await ZeroShotClassifier.clearCache();
    $('model-status').textContent = 'Cached models removed.';
    afterRemoval();
  });
  addEventListener('online', () => checkOnline());
  addEventListener('offline', () => showOffline());
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); useFiles(e.dataTransfer.files); });
}

restore();
describeModel();
wire();
restoreResults();
renderStored();
checkOnline();
probeModel();
if (!crossOriginIsolated && window.isSecureContext && navigator.serviceWorker) {
  // Until the service worker is ready (it caches the app shell first: seconds on a slow link).
  const gettingReady = 'Getting ready to use every core…';
  $('model-status').textContent = gettingReady;
  ready.then(() => $('model-status').textContent === gettingReady && ($('model-status').textContent = ''));
}
if (!window.isSecureContext) {
  $('model-status').textContent = 'This page is not on a secure origin (https or localhost): WebGPU and the model cache are off, so the model runs on the CPU and downloads on every visit.';
}
