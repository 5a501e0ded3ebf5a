// A chat-session server on contextkit with node:http and nothing else: one
// context per session, kept in a directory by FileStorage.
//
//   POST   /sessions                      create (body: the first data, optional)  201 + ETag
//   GET    /sessions/:id                  read; counts as activity (idle TTL)      200 + ETag
//   PATCH  /sessions/:id                  JSON merge patch (RFC 7396) of the data  200 + ETag
//                                         with If-Match: 412 unless it is current
//   POST   /sessions/:id/checkpoints      a recovery point                         201
//   POST   /sessions/:id/restore/:point   back to a recovery point's data          200 + ETag
//   DELETE /sessions/:id                  the session and its recovery points      204
//
// The ETag is the state's revision: store-wide and never reused, so an ETag
// never matches a session deleted and created again. Errors are JSON
// { "error": { "code", "message" } } with the status of their code (STATUS
// below). Every committed change is logged as one line on stdout:
// `event {"type":"updated","id":"…","version":3,"revision":7}`.
//
// Run it (from this directory, after ./scripts/build-npm.sh at the root):
//   npm install --no-package-lock && node session-server.mjs ./sessions
// The directory may also come from SESSIONS_DIR; SESSION_TTL_MS sets the idle
// TTL (default 30 minutes), PORT the port (default 0: any free one). It
// listens on 127.0.0.1 and prints `listening on http://127.0.0.1:<port>`.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { ContextError, ContextManager, FileStorage } from 'contextkit';

const dir = process.argv[2] ?? process.env.SESSIONS_DIR ?? './sessions';
const ttlMs = Number(process.env.SESSION_TTL_MS ?? 30 * 60 * 1000);
const port = Number(process.env.PORT ?? 0);
const MAX_BODY_BYTES = 1024 * 1024;

/** HTTP status of each ContextError code the manager can give. */
const STATUS = {
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  VERSION_CONFLICT: 412,
  INVALID_ARGUMENT: 400,
  CAPACITY_EXCEEDED: 507,
  STORAGE: 503,
};

/** An error of the HTTP layer itself (bad JSON, unknown route...). */
class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Every write is durable when its call resolves; `problems` names stored
// sessions that could not be read (a damaged file), the rest are served.
const { manager, problems } = await ContextManager.open(new FileStorage(dir), { defaultTtlMs: ttlMs });
for (const p of problems) console.error('not loaded:', p.message);

// The event logger: one line per committed change, in commit order.
manager.subscribe((event) => {
  process.stdout.write(`event ${JSON.stringify(event)}\n`);
});

/** RFC 7396: objects merge key by key, null removes a key, anything else replaces. */
function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
    } else {
      // defineProperty, not `out[key] =`: a key "__proto__" is data here.
      Object.defineProperty(out, key, {
        value: mergePatch(out[key], value),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return out;
}

/** The revisions an If-Match header names, or null for none or `*`. */
function ifMatchRevisions(header) {
  if (header === undefined || header.trim() === '*') return null;
  return header.split(',').map((tag) => tag.trim().replace(/^"|"$/g, ''));
}

async function readJson(req, { optional = false } = {}) {
  let size = 0;
  const chunks = [];
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'TOO_LARGE', `the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '' && optional) return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, 'INVALID_JSON', `the body is not JSON: ${e.message}`);
  }
}

function send(res, status, body, state) {
  const headers = { 'content-type': 'application/json' };
  if (state !== undefined) headers.etag = `"${state.revision}"`;
  res.writeHead(status, headers);
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

const view = (s) => ({ id: s.id, version: s.version, revision: s.revision, expiresAtMs: s.expiresAtMs, data: s.data });

async function patchSession(id, req) {
  const patch = await readJson(req);
  const revisions = ifMatchRevisions(req.headers['if-match']);
  if (revisions === null) {
    // No condition: merge into whatever is current, in one step. The function
    // runs inside the session's critical section, so 16 PATCHes at once all
    // land (no lost update, no retry loop, no 412).
    return manager.modifyContext(id, (data) => mergePatch(data, patch));
  }
  // With If-Match, the check and the write must see the same state. The
  // function given to modifyContext gets the data but not the revision, so
  // it cannot do the check; instead: read, check the revision, and write
  // with a compare-and-set on the revision of what was read. A write that
  // came in between, or a delete and a create of the id (which a version
  // would not show: versions restart at 1), moves the revision on, and
  // updateContext fails with VERSION_CONFLICT (412).
  const current = await manager.getContext(id);
  if (!revisions.includes(String(current.revision))) {
    throw new HttpError(412, 'VERSION_CONFLICT', `If-Match ${req.headers['if-match']} is not the current revision "${current.revision}"`);
  }
  return manager.updateContext(id, mergePatch(current.data, patch), { expectedRevision: current.revision });
}

async function route(req, res) {
  const { pathname } = new URL(req.url, 'http://localhost');
  const parts = pathname.split('/').slice(1).map(decodeURIComponent);
  if (parts[0] !== 'sessions') throw new HttpError(404, 'NO_ROUTE', `no route ${req.method} ${pathname}`);
  const [, id, action, point] = parts;
  const allow = (...methods) => {
    if (!methods.includes(req.method)) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} ${pathname}: use ${methods.join(', ')}`);
  };

  if (parts.length === 1) {
    allow('POST');
    const s = await manager.createContext(randomUUID(), await readJson(req, { optional: true }));
    res.setHeader('location', `/sessions/${s.id}`);
    return send(res, 201, view(s), s);
  }
  if (parts.length === 2) {
    allow('GET', 'PATCH', 'DELETE');
    if (req.method === 'GET') {
      // A read is activity: touchContext restarts the idle TTL (no new
      // version, revision or event) and returns the state.
      const s = await manager.touchContext(id);
      return send(res, 200, view(s), s);
    }
    if (req.method === 'PATCH') {
      const s = await patchSession(id, req);
      return send(res, 200, view(s), s);
    }
    await manager.deleteContext(id);
    return send(res, 204);
  }
  if (parts.length === 3 && action === 'checkpoints') {
    allow('POST');
    const p = await manager.createRecoveryPoint(id);
    return send(res, 201, { id: p.id, version: p.version, createdAtMs: p.createdAtMs });
  }
  if (parts.length === 4 && action === 'restore') {
    allow('POST');
    if (!/^\d{1,15}$/.test(point)) throw new HttpError(400, 'INVALID_ARGUMENT', `recovery point '${point}' is not a number`);
    const s = await manager.restoreRecoveryPoint(id, Number(point));
    return send(res, 200, view(s), s);
  }
  throw new HttpError(404, 'NO_ROUTE', `no route ${req.method} ${pathname}`);
}

const server = http.createServer((req, res) => {
  route(req, res).catch((e) => {
    const status = e instanceof ContextError ? (STATUS[e.code] ?? 500) : e instanceof HttpError ? e.status : 500;
    if (status === 500) console.error(`${req.method} ${req.url}:`, e);
    if (res.headersSent) return res.destroy();
    // Drain what is left of a body we did not read (a refused PATCH).
    req.resume();
    send(res, status, { error: { code: e.code ?? 'INTERNAL', message: status === 500 ? 'internal error' : e.message } });
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

// Stop accepting, finish the requests in flight, then exit.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
}
