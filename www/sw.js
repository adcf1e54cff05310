// zeroshot's service worker: makes the page cross-origin isolated on any static host, so the
// relaxed wasm build can run threads (they share one wasm memory, which needs isolation).
// Static hosts (GitHub Pages, CDNs) cannot send COOP/COEP headers; this worker re-serves the
// site's own responses with them. Cross-origin requests (the Hub's model files) are not touched:
// they are CORS fetches, which COEP require-corp allows.
// Registered by crossOriginIsolate() in zeroshot.js; its scope is this file's folder.

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (new URL(request.url).origin !== self.location.origin) return;
  // Chrome rejects re-fetching these (a DevTools quirk); let the browser handle them.
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith(fetch(request).then(isolated));
});

/** The response with the isolation headers added (opaque responses cannot be changed). */
function isolated(response) {
  if (response.status === 0) return response;
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
