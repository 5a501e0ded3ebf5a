// Types of the npm package `contextkit` in browsers (browser.mjs): ES module
// typings of the declarations common to every entry point, without the
// Node-only ones (FileStorage, RedisBackend).
export * from './common.cjs';
