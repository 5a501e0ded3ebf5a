// Types of the npm package `contextkit` for import (index.mjs in Node, and
// the "import" condition of bundlers that set neither "node" nor "browser"):
// ES module typings of the same declarations as index.d.ts.
export * from './common.cjs';
export * from './node-only.cjs';
