// A Node process for the FileStorage lock and interop tests: loads the
// package, prints {"ready":true,"pid":…}, then answers each command line on
// stdin with one JSON line:
//   open   opens a manager on FileStorage(dir): {"ok":true,"pid"} or {"ok":false,"code","message"}
//   write  writes the Node scenario: {"view","lastRevision"}
//   view   {"view"}
//   free   frees the manager: {"freed":true}
// It exits when stdin closes (the lock goes with the process).
//
// Usage: node file-agent.mjs <package dir> <storage dir>
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { CONFIG, view, writeScenario } from './file-storage.mjs';

const [pkgDir, dir] = process.argv.slice(2);
const { ContextManager, FileStorage } = await import(pathToFileURL(path.join(pkgDir, 'index.mjs')).href);
const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

let manager = null;
const commands = {
  async open() {
    try {
      const opened = await ContextManager.open(new FileStorage(dir), CONFIG);
      if (opened.problems.length > 0) throw new Error(opened.problems.map((p) => p.message).join('; '));
      manager = opened.manager;
      return { ok: true, pid: process.pid };
    } catch (e) {
      return { ok: false, code: e.code, message: e.message };
    }
  },
  async write() {
    const lastRevision = await writeScenario(manager);
    return { view: await view(manager), lastRevision };
  },
  async view() {
    return { view: await view(manager) };
  },
  async free() {
    manager.free();
    return { freed: true };
  },
};

say({ ready: true, pid: process.pid });
for await (const line of readline.createInterface({ input: process.stdin })) {
  const command = commands[line.trim()];
  say(command ? await command() : { error: `unknown command ${line}` });
}
process.exit(0);
