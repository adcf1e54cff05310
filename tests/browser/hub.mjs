// A local stand-in for the Hugging Face Hub's /<id>/resolve/<revision>/<file> routes, serving the
// fixture checkpoints, with the Hub's quirks: typeform's id has no model.safetensors on main (it is
// at refs%2Fpr%2F3), one model answers with redirects, one without Content-Length. Like the Hub for
// LFS files, model.safetensors comes with its SHA-256 in X-Linked-Etag (quoted; W/-prefixed for the
// model without Content-Length), and `faults` breaks a file on demand.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const ROUTES = {
  'typeform/distilbert-base-uncased-mnli': { fixture: 'typeform-layout', mode: 'pr3' },
  'acme/redirected-model': { fixture: 'tokenizer-json', mode: 'redirect' },
  'acme/no-length-model': { fixture: 'f16-relu', mode: 'chunked' },
  'acme/plain-model': { fixture: 'typeform-layout', mode: 'plain' },
};

/**
 * Starts the mock Hub; resolves to {url, requests, faults, close}. `requests` lists raw paths asked
 * for; `faults` maps '<id>/<file>' to 'damaged' (only the first half of the file is sent, under the
 * whole file's X-Linked-Etag, as a transfer cut short) or 'wrong-etag' (the file whole, the hash of
 * other bytes): delete the entry to mend the file.
 */
export function serveHub(root) {
  const requests = [];
  const faults = new Map();
  const server = createServer((req, res) => {
    requests.push(req.url);
    const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'X-Linked-Etag' };
    const blob = req.url.match(/^\/blobs\/([\w-]+)\/([\w.]+)$/);
    if (blob) return send(res, cors, `${root}/tests/fixtures/${blob[1]}/${blob[2]}`, false);
    const m = req.url.match(/^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/([\w.]+)$/);
    const route = m && ROUTES[m[1]];
    if (!route) return notFound(res, cors);
    const [, , revision, file] = m;
    if (route.mode === 'pr3' && file === 'model.safetensors' && revision !== 'refs%2Fpr%2F3') return notFound(res, cors);
    if (route.mode === 'pr3' && revision !== 'main' && file !== 'model.safetensors') return notFound(res, cors);
    if (route.mode !== 'pr3' && revision !== 'main') return notFound(res, cors);
    if (route.mode === 'redirect') {
      res.writeHead(302, { ...cors, Location: `/blobs/${route.fixture}/${file}` });
      return res.end();
    }
    const chunked = route.mode === 'chunked';
    const lfs = file === 'model.safetensors' && (chunked ? 'weak' : 'strong');
    return send(res, cors, `${root}/tests/fixtures/${route.fixture}/${file}`, chunked, { lfs, fault: faults.get(`${m[1]}/${file}`) });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}`, requests, faults, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

function notFound(res, cors) {
  res.writeHead(404, { ...cors, 'Content-Type': 'text/plain' });
  res.end('Entry not found');
}

/** X-Linked-Etag for an LFS file: the SHA-256 of `body` (of other bytes for a 'wrong-etag' fault). */
function linkedEtag(body, lfs, fault) {
  if (!lfs) return {};
  const sha = createHash('sha256').update(fault === 'wrong-etag' ? Buffer.from('other bytes') : body).digest('hex');
  return { 'X-Linked-Etag': lfs === 'weak' ? `W/"${sha}"` : `"${sha}"` };
}

function send(res, cors, path, chunked, { lfs = false, fault } = {}) {
  let body;
  try {
    body = readFileSync(path);
  } catch {
    return notFound(res, cors);
  }
  const headers = { ...cors, ...linkedEtag(body, lfs, fault), 'Content-Type': 'application/octet-stream' };
  if (fault === 'damaged') body = body.subarray(0, body.length >> 1);
  if (!chunked) {
    res.writeHead(200, { ...headers, 'Content-Length': body.length });
    return res.end(body);
  }
  res.writeHead(200, headers); // Transfer-Encoding: chunked
  for (let at = 0; at < body.length; at += 65536) res.write(body.subarray(at, at + 65536));
  res.end();
}
