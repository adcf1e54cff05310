// The page: UI only. Loading, caching and classifying are zeroshot.js's job.
import { DEFAULT_MODEL, DEFAULT_TEMPLATE, ZeroShotClassifier, crossOriginIsolate, parseLabels } from './zeroshot.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const STORE = 'zeroshot-page-v1';
const FIELDS = ['model', 'revision', 'backend', 'text', 'labels', 'template', 'multi', 'bulk-text'];
const DEFAULTS = {
  model: DEFAULT_MODEL,
  revision: 'main',
  backend: 'auto',
  text: 'I ordered the blue jacket two weeks ago and it still has not arrived.',
  labels: 'shipping delay, refund request, product quality, praise',
  template: DEFAULT_TEMPLATE,
  multi: false,
  'bulk-text': '',
};

let clf = null;
let loadedKey = null;
let loading = null; // {key, promise} of the model load in progress: one at a time
let run = null; // the classify or bulk run in progress (a promise): one at a time
// Settled before any model download: the service worker's first takeover reloads the page.
const isolation = crossOriginIsolate(new URL('./sw.js', import.meta.url));
// Marks the page as settled (no reload coming): 'many' threads where isolated, else 'one'.
isolation.then((reloading) => reloading || (document.documentElement.dataset.threads = crossOriginIsolated ? 'many' : 'one'));
let localFiles = null;
let bulkRows = [];
let bulkLabels = [];
let abort = null;

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

const mb = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;

function onProgress({ file, loaded, total, cached }) {
  $('progress-wrap').hidden = false;
  $('progress').value = total ? loaded / total : 0;
  if (!total) $('progress').removeAttribute('value');
  const size = total ? `${mb(loaded)} of ${mb(total)}` : mb(loaded);
  $('progress-text').textContent = cached ? `${file}: from cache` : `${file}: ${size}`;
}

const fieldsKey = () => `${$('model').value.trim()}|${$('revision').value.trim()}|${$('backend').value}`;
const modelKey = () => localFiles ?? fieldsKey();

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
  if (await isolation) return new Promise(() => {}); // the page is reloading: start no download
  clf?.dispose();
  clf = null;
  loadedKey = null;
  $('model-status').textContent = 'Loading the model…';
  $('notes').replaceChildren();
  const options = { backend: $('backend').value, onProgress };
  if (localFiles) options.files = localFiles;
  else Object.assign(options, { model: $('model').value.trim() || DEFAULT_MODEL, revision: $('revision').value.trim() || 'main' });
  if (params.get('hub')) options.hub = params.get('hub');
  try {
    clf = await ZeroShotClassifier.load(options);
  } finally {
    $('progress-wrap').hidden = true;
  }
  loadedKey = key;
  const what = localFiles ? `${localFiles.length} local files` : options.model;
  const cpu = `the CPU (${clf.wasm === 'relaxed' ? 'relaxed SIMD' : 'SIMD'}, ${clf.threads} thread${clf.threads === 1 ? '' : 's'})`;
  $('model-status').textContent = `Ready: ${what}, running on ${clf.backend === 'webgpu' ? 'WebGPU' : cpu}.`;
  $('notes').replaceChildren(...clf.notes.map((n) => Object.assign(document.createElement('li'), { textContent: n })));
  return clf;
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
 * Starts a classify or bulk run unless one is running (a double click, Ctrl+Enter twice): one at a
 * time, so results never interleave; the buttons that start one are disabled meanwhile.
 */
function exclusive(action) {
  if (run) return run;
  $('go').disabled = $('bulk-go').disabled = true;
  run = action().finally(() => {
    run = null;
    $('go').disabled = $('bulk-go').disabled = false;
  });
  return run;
}

async function classifyOne() {
  showError(null);
  persist();
  try {
    const c = await classifier();
    const started = performance.now();
    const r = await c.classify($('text').value, $('labels').value, { hypothesisTemplate: $('template').value, multiLabel: $('multi').checked });
    const ms = performance.now() - started;
    $('run-info').textContent = `${c.backend === 'webgpu' ? 'WebGPU' : 'CPU'}, ${ms.toFixed(0)} ms${r.truncated ? ', text truncated to fit the model' : ''}`;
    $('results').replaceChildren(...bars(r));
  } catch (e) {
    showError(e);
  }
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

function renderTable() {
  const head = document.createElement('tr');
  for (const h of ['#', 'text', 'top label', 'score', ...bulkLabels]) head.append(Object.assign(document.createElement('th'), { textContent: h }));
  $('bulk-table').tHead.replaceChildren(head);
  const body = bulkRows.map((r, i) => {
    const tr = document.createElement('tr');
    const cell = (text, className) => tr.append(Object.assign(document.createElement('td'), { textContent: text, className }));
    cell(String(i + 1), 'num');
    cell(r.sequence, 'text');
    cell(r.error ? `error: ${r.error}` : r.labels[0]);
    cell(r.error ? '' : r.scores[0].toFixed(3), 'num');
    for (const l of bulkLabels) cell(r.error ? '' : r.scores[r.labels.indexOf(l)].toFixed(3), 'num');
    return tr;
  });
  $('bulk-table').tBodies[0].replaceChildren(...body);
  $('bulk-table').hidden = bulkRows.length === 0;
  $('export-csv').disabled = $('export-json').disabled = bulkRows.length === 0;
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
  bulkRows = [];
  try {
    const c = await classifier();
    bulkLabels = parseLabels($('labels').value);
    const options = { hypothesisTemplate: $('template').value, multiLabel: $('multi').checked };
    const started = performance.now();
    for (const text of texts) {
      abort.signal.throwIfAborted();
      try {
        bulkRows.push(await c.classify(text, bulkLabels, options));
      } catch (e) {
        if (/labels|template/.test(e.message)) throw e; // the same for every row: stop
        bulkRows.push({ sequence: text, error: e.message });
      }
      $('bulk-progress').value = bulkRows.length / texts.length;
      $('bulk-info').textContent = `${bulkRows.length} of ${texts.length} (${((performance.now() - started) / bulkRows.length).toFixed(0)} ms each)`;
      if (bulkRows.length % 10 === 0 || bulkRows.length === texts.length) renderTable();
    }
  } catch (e) {
    if (e.name === 'AbortError') $('bulk-info').textContent = `Cancelled after ${bulkRows.length} of ${texts.length}.`;
    else showError(e);
  } finally {
    renderTable();
    $('bulk-cancel').disabled = true;
    $('bulk-progress').hidden = true;
  }
}

function download(name, type, text) {
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function exportCsv() {
  const lines = [['text', 'top_label', 'top_score', ...bulkLabels].map(csvField).join(',')];
  for (const r of bulkRows) {
    const scores = bulkLabels.map((l) => (r.error ? '' : r.scores[r.labels.indexOf(l)]));
    lines.push([r.sequence, r.error ? `error: ${r.error}` : r.labels[0], r.error ? '' : r.scores[0], ...scores].map(csvField).join(','));
  }
  download('zeroshot-results.csv', 'text/csv', `${lines.join('\r\n')}\r\n`);
}

function selectTab(bulk) {
  $('single').hidden = bulk;
  $('bulk').hidden = !bulk;
  $('tab-single').setAttribute('aria-selected', String(!bulk));
  $('tab-bulk').setAttribute('aria-selected', String(bulk));
}

/**
 * Loads the model of the fields, or picked or dropped `files`. If that is another model, a bulk run
 * is cancelled and a single one let finish first, so no run sees its classifier disposed and the
 * bulk table never mixes two models; Load on the model in use leaves a run alone.
 */
async function changeModel(files = null) {
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

function useFiles(files) {
  const list = Array.from(files);
  if (list.length) changeModel(list);
}

function wire() {
  $('go').addEventListener('click', () => exclusive(classifyOne));
  $('load').addEventListener('click', () => changeModel());
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') exclusive($('bulk').hidden ? classifyOne : classifyAll);
  });
  for (const f of FIELDS) $(f).addEventListener('change', persist);
  $('tab-single').addEventListener('click', () => selectTab(false));
  $('tab-bulk').addEventListener('click', () => selectTab(true));
  $('bulk-go').addEventListener('click', () => exclusive(classifyAll));
  $('bulk-cancel').addEventListener('click', () => abort?.abort());
  $('csv').addEventListener('change', (e) => e.target.files[0] && importCsv(e.target.files[0]).catch(showError));
  $('column').addEventListener('change', useColumn);
  $('export-csv').addEventListener('click', exportCsv);
  $('export-json').addEventListener('click', () => download('zeroshot-results.json', 'application/json', JSON.stringify(bulkRows, null, 2)));
  $('files').addEventListener('change', (e) => useFiles(e.target.files));
  $('clear-cache').addEventListener('click', async () => {
    await ZeroShotClassifier.clearCache();
    $('model-status').textContent = 'Cached models cleared.';
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); useFiles(e.dataTransfer.files); });
}

restore();
wire();
if (!window.isSecureContext) {
  $('model-status').textContent = 'This page is not on a secure origin (https or localhost): WebGPU and the model cache are off, so the model runs on the CPU and downloads on every visit.';
}
