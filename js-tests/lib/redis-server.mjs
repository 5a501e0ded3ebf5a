// A redis-server of a test's own, on a free port of 127.0.0.1, in a temporary
// directory of its own, killed by stop() or when this process exits. Nothing
// else is talked to.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Ports handed out by this process, never twice.
const given = new Set();

/**
 * A port of 127.0.0.1 nobody listens on, below the range the system hands
 * out to outgoing connections: a server killed and restarted on it cannot
 * find it taken meanwhile by a client socket (a port from listen(0) could be).
 */
async function freePort() {
  let ephemeral = 32768;
  try {
    ephemeral = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || ephemeral;
  } catch {}
  const low = 10000;
  for (let attempt = 0; attempt < 10000; attempt++) {
    const port = low + Math.floor(Math.random() * Math.max(1, ephemeral - low));
    if (given.has(port)) continue;
    const free = await new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) {
      given.add(port);
      return port;
    }
  }
  throw new Error(`no free port on 127.0.0.1 from ${low} to ${ephemeral}`);
}

function answers(port) {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.write('PING\r\n');
    });
    sock.once('data', (d) => {
      sock.destroy();
      resolve(String(d).startsWith('+PONG'));
    });
    sock.once('error', () => resolve(false));
  });
}

const running = new Set();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts a server. `durable`: an append-only file synced on every write.
 * Returns `{ port, url, stop(), kill(), restart() }`.
 */
export async function startRedis({ durable = false, args = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'contextkit-redis-'));
  const port = await freePort();
  let child;
  const launch = async () => {
    child = spawn(
      'redis-server',
      [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir,
        '--protected-mode', 'no',
        ...(durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
        ...args,
      ],
      { stdio: 'ignore' },
    );
    running.add(child);
    child.once('exit', () => running.delete(child));
    const deadline = Date.now() + 10_000;
    while (!(await answers(port))) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const halt = async (signal) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    /** Kills the server (SIGKILL: nothing flushed) and keeps its directory. */
    kill: () => halt('SIGKILL'),
    /** Starts it again on the same port and directory. */
    restart: async () => {
      await halt('SIGKILL');
      await launch();
    },
    /** Stops it and removes its directory. */
    stop: async () => {
      await halt('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
