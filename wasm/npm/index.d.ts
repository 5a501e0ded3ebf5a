// Types of the npm package `contextkit` for require() (index.cjs): CommonJS
// typings, as the package is not "type": "module". The declarations are in
// common.d.cts and node-only.d.cts.
export * from './common.cjs';
export * from './node-only.cjs';
