// Browsers and bundlers: the wasm-bindgen web build, fetched and instantiated
// before this module finishes loading (top-level await).
import init, {
  ContextManager,
  ContextTracker,
  ContextAdapter,
  __setErrorClass,
} from './web/contextkit_wasm.js';
import { ContextError } from './error.mjs';

await init({ module_or_path: new URL('./web/contextkit_wasm_bg.wasm', import.meta.url) });
__setErrorClass(ContextError);

export { ContextManager, ContextTracker, ContextAdapter, ContextError };
