// A static file server for the browser tests and benchmarks, on a free port
// of 127.0.0.1: `pages` ({ '/path': html }) first, then the files under
// `root` (URL paths under `prefix`, default '/'; a directory's page is its
// index.html), nothing outside it.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

const TYPES = { '.html': 'text/html', '.mjs': 'text/javascript', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

/** Starts serving; resolves to `{ base, close() }`, `base` ending in '/'. */
export async function serveStatic({ root, prefix = '/', pages = {} }) {
  const top = path.resolve(root);
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    if (Object.hasOwn(pages, pathname)) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(pages[pathname]);
      return;
    }
    // A directory's page is its index.html.
    const wanted = pathname.endsWith('/') ? `${pathname}index.html` : pathname;
    const file = wanted.startsWith(prefix) ? path.join(top, path.normalize(decodeURIComponent(`/${wanted.slice(prefix.length)}`))) : null;
    if (file === null || !file.startsWith(top) || !(await stat(file).then((s) => s.isFile(), () => false))) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
