// Headless Chromium for the browser tests and the IndexedDB benchmark:
// /usr/bin/chromium (or $CHROMIUM), driven by playwright-core, each run with a
// fresh profile of its own that is removed afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];

/** Runs `use(context)` in a Chromium with a fresh profile, then closes it and removes the profile. */
export async function withChromium(use) {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'contextkit-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true });
  try {
    return await use(context);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

/** Adds the page's uncaught errors and console errors to `problems`. */
export function watchPage(tab, problems) {
  tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  tab.on('console', (msg) => msg.type() === 'error' && problems.push(`console error: ${msg.text()}`));
}

/** A page that imports the package from `browserMjs` (an import map) into `window.ck`, then sets `window.ready`. */
export function packagePage(title, browserMjs) {
  return `<!doctype html>
<meta charset="utf-8">
<title>${title}</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "contextkit": "${browserMjs}" } }</script>
<script type="module">
  import * as ck from 'contextkit';
  window.ck = ck;
  window.ready = true;
</script>`;
}
