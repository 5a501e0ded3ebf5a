/**
 * The error every contextkit operation fails with. `code` says which failure
 * it is; a version conflict also carries `expected` and `actual`.
 */
export class ContextError extends Error {
  /**
   * @param {string} code one of ContextError.CODES
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

Object.defineProperty(ContextError.prototype, 'name', {
  value: 'ContextError',
  writable: true,
  configurable: true,
});

/** Every code a ContextError can carry. */
ContextError.CODES = Object.freeze([
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'CAPACITY_EXCEEDED',
  'VERSION_CONFLICT',
  'INVALID_ARGUMENT',
  'NOT_ACTIVE',
  'UNSYNCED_CHANGES',
  'STORAGE',
]);
