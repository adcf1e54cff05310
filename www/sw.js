// zeroshot's service worker, two jobs:
// 1. Cross-origin isolation on any static host, so the relaxed wasm build can run threads (they
//    share one wasm memory, which needs isolation). Static hosts (GitHub Pages, CDNs) cannot send
//    COOP/COEP headers; this worker re-serves the site's own responses with them. Cross-origin
//    requests (the Hub's model files) are not touched: they are CORS fetches, which COEP
//    require-corp allows.
// 2. The app shell offline: every file the page runs on (pkg/shell.js lists them, with a version
//    that changes with any of their bytes) is cached under that version at install and served from
//    there, so a reload with no network opens the page. A deploy changes shell.js, so the browser
//    installs a new worker, which caches the new shell whole before it takes over and then drops
//    the old shells (never the model cache). Models are cached by the page's worker, not here.
// Registered by crossOriginIsolate() in zeroshot.js; its scope is this file's folder. A site of
// your own copies this file next to its pages (a service worker controls only its folder and
// below): with no zeroshot shell beside it, it isolates the pages and caches nothing.

try {
  importScripts('./pkg/shell.js'); // self.SHELL = { version, files }, written by scripts/build-web.sh
} catch {
  self.SHELL = { version: 'none', files: [] }; // not zeroshot's own site: isolation only
}

const SHELL_PREFIX = 'zeroshot-shell-';
const SHELL_CACHE = `${SHELL_PREFIX}${self.SHELL.version}`;

/** The shell's files as absolute URLs (they are listed relative to this file's folder). */
const SHELL_URLS = new Set(self.SHELL.files.map((file) => new URL(file, self.location.href).href));

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

self.addEventListener('install', (event) => event.waitUntil(installShell()));
self.addEventListener('activate', (event) => event.waitUntil(activate()));

/** Caches every shell file fresh from the network (not the HTTP cache), then takes over at once:
 * the page reloads when a new shell takes over (zeroshot.js), so old and new never mix. A shell
 * that cannot be cached (storage full, say) is dropped whole: the page then works online only,
 * still isolated. */
async function installShell() {
  try {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(self.SHELL.files.map((file) => new Request(file, { cache: 'reload' })));
  } catch {
    await caches.delete(SHELL_CACHE);
  }
  await self.skipWaiting();
}

async function activate() {
  for (const name of await caches.keys()) {
    if (name.startsWith(SHELL_PREFIX) && name !== SHELL_CACHE) await caches.delete(name);
  }
  await self.clients.claim();
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (new URL(request.url).origin !== self.location.origin) return;
  // Chrome rejects re-fetching these (a DevTools quirk); let the browser handle them.
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  // A plain fetch() (the page's worker downloading a model's files) needs no isolation headers:
  // COEP always allows same-origin responses. Left to the browser, a 268 MB download does not
  // also stream through this worker's process.
  if (request.destination === '' && request.mode !== 'navigate' && !SHELL_URLS.has(request.url)) return;
  event.respondWith(respond(request));
});

/** A shell file from this version's cache, anything else from the network; both isolated. */
async function respond(request) {
  const shell = request.method === 'GET' ? await fromShell(request) : null;
  return isolated(shell ?? (await fetch(request)));
}

/** The page itself (any query, or its folder) and every listed file come from the shell cache. */
async function fromShell(request) {
  const cache = await caches.open(SHELL_CACHE);
  if (request.mode === 'navigate') {
    const url = new URL(request.url);
    const page = url.pathname.endsWith('/') ? new URL('index.html', url) : url;
    return cache.match(page.href, { ignoreSearch: true });
  }
  return cache.match(request);
}

/** The response with the isolation headers added (opaque responses cannot be changed). */
function isolated(response) {
  if (response.status === 0) return response;
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
