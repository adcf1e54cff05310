// A local stand-in for the Hugging Face Hub's /<id>/resolve/<revision>/<file> routes, serving the
// fixture checkpoints, with the Hub's quirks: typeform's id has no model.safetensors on main (it is
// at refs%2Fpr%2F3), one model answers with redirects, one without Content-Length.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const ROUTES = {
  'typeform/distilbert-base-uncased-mnli': { fixture: 'typeform-layout', mode: 'pr3' },
  'acme/redirected-model': { fixture: 'tokenizer-json', mode: 'redirect' },
  'acme/no-length-model': { fixture: 'f16-relu', mode: 'chunked' },
  'acme/plain-model': { fixture: 'typeform-layout', mode: 'plain' },
};

/** Starts the mock Hub; resolves to {url, requests, close}. `requests` lists raw paths asked for. */
export function serveHub(root) {
  const requests = [];
  const server = createServer((req, res) => {
    requests.push(req.url);
    const cors = { 'Access-Control-Allow-Origin': '*' };
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
    return send(res, cors, `${root}/tests/fixtures/${route.fixture}/${file}`, route.mode === 'chunked');
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

function notFound(res, cors) {
  res.writeHead(404, { ...cors, 'Content-Type': 'text/plain' });
  res.end('Entry not found');
}

function send(res, cors, path, chunked) {
  let body;
  try {
    body = readFileSync(path);
  } catch {
    return notFound(res, cors);
  }
  if (!chunked) {
    res.writeHead(200, { ...cors, 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' });
    return res.end(body);
  }
  res.writeHead(200, { ...cors, 'Content-Type': 'application/octet-stream' }); // Transfer-Encoding: chunked
  for (let at = 0; at < body.length; at += 65536) res.write(body.subarray(at, at + 65536));
  res.end();
}
