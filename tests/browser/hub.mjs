// A local stand-in for the Hugging Face Hub's /<id>/resolve/<revision>/<file> routes, serving the
// fixture checkpoints, with the Hub's quirks: typeform's id has no model.safetensors on main (it is
// at refs%2Fpr%2F3), one model answers with redirects, one without Content-Length. Like the Hub for
// LFS files, model.safetensors comes with its SHA-256 in X-Linked-Etag (quoted; W/-prefixed for the
// model without Content-Length) and its size in X-Linked-Size, and `faults` breaks a file on demand.
// As the Hub does, it answers HEAD, CORS preflights, and a Range request with a 206 and Content-Range
// (also through the redirect); one model is served by a server that ignores Range (a 200, whole file).
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { byteRange, closeServer, partial } from './server.mjs';

const ROUTES = {
  'typeform/distilbert-base-uncased-mnli': { fixture: 'typeform-layout', mode: 'pr3' },
  'acme/redirected-model': { fixture: 'tokenizer-json', mode: 'redirect' },
  'acme/no-length-model': { fixture: 'f16-relu', mode: 'chunked' },
  'acme/plain-model': { fixture: 'typeform-layout', mode: 'plain' },
  'acme/no-range-model': { fixture: 'typeform-layout', mode: 'no-range' },
};

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'X-Linked-Etag, X-Linked-Size, Content-Range, Accept-Ranges',
};

/**
 * Starts the mock Hub; resolves to {url, requests, log, faults, files, close}. `requests` lists raw
 * paths asked for (any method); `log` every request as {method, path, range} (range: its Range header
 * or null), to tell a download (a GET without Range) from a probe; `faults` maps '<id>/<file>' to
 * 'damaged' (only the first half of the file is sent, under the whole file's X-Linked-Etag, as a
 * transfer cut short) or 'wrong-etag' (the file whole, the hash of other bytes): delete the entry to
 * mend the file; `files` maps '<id>/<file>' to a Buffer served as that file at main, like
 * acme/plain-model's (a model made up by a test).
 */
export function serveHub(root) {
  const requests = [];
  const log = [];
  const faults = new Map();
  const files = new Map();
  const server = createServer((req, res) => {
    requests.push(req.url);
    log.push({ method: req.method, path: req.url, range: req.headers.range ?? null });
    if (req.method === 'OPTIONS') return preflight(res);
    const blob = req.url.match(/^\/blobs\/([\w-]+)\/([\w.]+)$/);
    if (blob) return send(req, res, read(`${root}/tests/fixtures/${blob[1]}/${blob[2]}`));
    const m = req.url.match(/^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/([\w.]+)$/);
    const made = m && files.get(`${m[1]}/${m[3]}`);
    if (made && m[2] === 'main') return send(req, res, made, { lfs: m[3] === 'model.safetensors' && 'strong' });
    const route = m && ROUTES[m[1]];
    if (!route) return notFound(res);
    const [, , revision, file] = m;
    if (route.mode === 'pr3' && file === 'model.safetensors' && revision !== 'refs%2Fpr%2F3') return notFound(res);
    if (route.mode === 'pr3' && revision !== 'main' && file !== 'model.safetensors') return notFound(res);
    if (route.mode !== 'pr3' && revision !== 'main') return notFound(res);
    if (route.mode === 'redirect') {
      res.writeHead(302, { ...CORS, Location: `/blobs/${route.fixture}/${file}` });
      return res.end();
    }
    const lfs = file === 'model.safetensors' && (route.mode === 'chunked' ? 'weak' : 'strong');
    const body = read(`${root}/tests/fixtures/${route.fixture}/${file}`);
    return send(req, res, body, { mode: route.mode, lfs, fault: faults.get(`${m[1]}/${file}`) });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}`, requests, log, faults, files, close: () => closeServer(server) });
    });
  });
}

function read(path) {
  try {
    return readFileSync(path);
  } catch {
    return null;
  }
}

function notFound(res) {
  res.writeHead(404, { ...CORS, 'Content-Type': 'text/plain' });
  res.end('Entry not found');
}

/** The Hub lets any origin send Range (a CORS preflight where the browser asks for one). */
function preflight(res) {
  res.writeHead(204, { ...CORS, 'Access-Control-Allow-Methods': 'GET, HEAD', 'Access-Control-Allow-Headers': 'Range', 'Access-Control-Max-Age': '600' });
  res.end();
}

/** X-Linked-Etag and X-Linked-Size for an LFS file: the SHA-256 of `body` (of other bytes for a 'wrong-etag'
 * fault) and its length. */
function linkedHeaders(body, lfs, fault) {
  if (!lfs) return {};
  const sha = createHash('sha256').update(fault === 'wrong-etag' ? Buffer.from('other bytes') : body).digest('hex');
  return { 'X-Linked-Etag': lfs === 'weak' ? `W/"${sha}"` : `"${sha}"`, 'X-Linked-Size': String(body.length) };
}

/** `body` as the route serves it: a Range honoured (206) unless the mode is 'no-range', no Content-Length
 * in 'chunked' mode; a HEAD gets the same headers and no body. */
function send(req, res, body, { mode = 'plain', lfs = false, fault } = {}) {
  if (!body) return notFound(res);
  const headers = { ...CORS, ...linkedHeaders(body, lfs, fault), 'Content-Type': 'application/octet-stream' };
  if (fault === 'damaged') body = body.subarray(0, body.length >> 1);
  const range = mode === 'no-range' ? null : byteRange(req.headers.range, body.length);
  if (mode !== 'no-range') headers['Accept-Ranges'] = 'bytes';
  const reply = range ? partial(range, body, headers) : { status: 200, headers, body };
  if (mode !== 'chunked') {
    res.writeHead(reply.status, { ...reply.headers, 'Content-Length': reply.body.length });
    return res.end(reply.body);
  }
  res.writeHead(reply.status, reply.headers); // Transfer-Encoding: chunked
  for (let at = 0; at < reply.body.length; at += 65536) res.write(reply.body.subarray(at, at + 65536));
  res.end();
}
