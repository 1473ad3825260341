/**
 * The errors the KV clerk throws.
 *
 * @module
 */

/**
 * The request itself is wrong (a key or value over the limits, a value of the
 * wrong type, an append that would grow a value past the limit): it was not
 * applied, and retrying it will not help.
 *
 * @example
 * ```ts
 * import { KvRequestError } from "@distkit/distkit/kv";
 *
 * const err = new KvRequestError("key is 3000 bytes; the limit is 1024");
 * err.message; // "KV request refused: key is 3000 bytes; the limit is 1024"
 * ```
 */
export class KvRequestError extends Error {
  /**
   * Creates the error.
   *
   * @param problem What is wrong with the request.
   */
  constructor(problem: string, options?: ErrorOptions) {
    super(`KV request refused: ${problem}`, options);
    this.name = "KvRequestError";
  }
}

/**
 * The caller's `AbortSignal` fired before the clerk knew the outcome. A read
 * simply did not happen. A write may or may not have taken effect, and may
 * still take effect later (it may be in the log) until the clerk's next
 * write completes: that write reuses the abandoned write's session, and once
 * it is applied the abandoned one never will be. Read back after that.
 *
 * @example
 * ```ts
 * import { KvAbortedError } from "@distkit/distkit/kv";
 *
 * const err = new KvAbortedError("put", true);
 * err.mayHaveApplied; // true
 * ```
 */
export class KvAbortedError extends Error {
  /** Whether the operation was a write that a server may have applied. */
  readonly mayHaveApplied: boolean;

  /**
   * Creates the error.
   *
   * @param operation The operation abandoned (`get`, `put`, ...).
   * @param mayHaveApplied Whether it was a write that a server may have applied.
   */
  constructor(operation: string, mayHaveApplied: boolean, options?: ErrorOptions) {
    super(
      `KV ${operation} abandoned: the caller's signal fired` +
        (mayHaveApplied ? "; the write may or may not have taken effect, read to find out" : ""),
      options,
    );
    this.name = "KvAbortedError";
    this.mayHaveApplied = mayHaveApplied;
  }
}

/**
 * Runs a request parser, turning its complaint into a
 * {@linkcode KvRequestError}: how clerks refuse a bad request before
 * sending it.
 *
 * @example
 * ```ts
 * import { DEFAULT_KV_LIMITS, parseGet, refuseBadRequest } from "@distkit/distkit/kv";
 *
 * refuseBadRequest(() => parseGet({ key: "x" }, DEFAULT_KV_LIMITS)); // "x"
 * ```
 */
export function refuseBadRequest<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new KvRequestError((err as Error).message);
  }
}
