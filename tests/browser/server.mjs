// A static file server for the browser tests: the repository root on a loopback port.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css',
};

/**
 * The [start, end] (inclusive) a single-range `Range: bytes=a-b` header asks of a `size`-byte file;
 * null without one (or for a form we do not serve, which gets the whole file, as RFC 9110 allows);
 * 'unsatisfiable' when it starts past the end.
 */
export function byteRange(header, size) {
  const m = /^bytes=(\d+)-(\d*)$/.exec(header ?? '');
  if (!m) return null;
  const start = Number(m[1]);
  if (start >= size) return 'unsatisfiable';
  return [start, Math.min(m[2] === '' ? size - 1 : Number(m[2]), size - 1)];
}

/** A 206 of `range` of `body` (or the 416 of an unsatisfiable one); the headers to send with it. */
export function partial(range, body, headers) {
  if (range === 'unsatisfiable') return { status: 416, headers: { ...headers, 'Content-Range': `bytes */${body.length}` }, body: Buffer.alloc(0) };
  const [start, end] = range;
  return { status: 206, headers: { ...headers, 'Content-Range': `bytes ${start}-${end}/${body.length}` }, body: body.subarray(start, end + 1) };
}

/** Stops `server` now: a connection the browser keeps open (a keep-alive socket, a response it stopped
 * reading) is cut, so a test's close never waits on Chromium. */
export function closeServer(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Serves `root` (with Range requests and HEAD, as static hosts do); resolves to {url, close, requests, statuses}
 * (requests: paths asked for, in order; statuses: [path, HTTP status, method] of each answer).
 * `isolate` adds the COOP/COEP headers that make pages cross-origin isolated (wasm threads);
 * `alias` maps URL paths to other files under `root` (the benchmark page served inside www/);
 * `validators` sends ETag and Last-Modified and answers a matching If-None-Match with 304, as static
 * hosts do (the benchmark's second loads); 'last-modified' sends only Last-Modified, and answers a
 * matching If-Modified-Since with 304, as hosts without ETags do. `cors` lets pages of any origin
 * read the files (Access-Control-Allow-Origin: *), as a CDN does. `delayMs(path)` holds each answer
 * back that many milliseconds (a slow link for some files: the page's tests delay the wasm).
 */
export function serve(root, { isolate = false, alias = {}, validators = false, cors = false, delayMs = () => 0 } = {}) {
  const open = cors ? { 'Access-Control-Allow-Origin': '*' } : {};
  const isolation = isolate ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
  const always = { ...isolation, ...open }; // on every file's answer
  const requests = [];
  const statuses = [];
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    requests.push(path);
    res.on('finish', () => statuses.push([path, res.statusCode, req.method]));
    const delay = delayMs(path);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const file = join(root, alias[path] ?? path);
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
      const etag = `"${info.size}-${Math.floor(info.mtimeMs)}"`;
      const modified = info.mtime.toUTCString();
      const onlyModified = validators === 'last-modified';
      const sent = onlyModified ? { 'Last-Modified': modified } : { ETag: etag, 'Last-Modified': modified };
      const unchanged = onlyModified ? req.headers['if-modified-since'] === modified : req.headers['if-none-match'] === etag;
      if (validators && unchanged) {
        res.writeHead(304, { ...sent, ...always });
        return res.end();
      }
      const whole = await readFile(file);
      const range = byteRange(req.headers.range, whole.length);
      const base = { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Accept-Ranges': 'bytes', ...always };
      if (validators) Object.assign(base, sent);
      const { status, headers, body } = range ? partial(range, whole, base) : { status: 200, headers: base, body: whole };
      res.writeHead(status, { ...headers, 'Content-Length': body.length });
      res.end(body); // nothing is sent for a HEAD
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain', ...open });
      res.end('not found');
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}`, requests, statuses, close: () => closeServer(server) });
    });
  });
}
