'use strict';
// Node, require(): the wasm-bindgen build for Node loads the module synchronously.
const wasm = require('./node/contextkit_wasm.js');
const { ContextError } = require('./error.cjs');

wasm.__setErrorClass(ContextError);

module.exports = {
  ContextManager: wasm.ContextManager,
  ContextTracker: wasm.ContextTracker,
  ContextAdapter: wasm.ContextAdapter,
  ContextError,
};
