/**
 * The errors of the state store.
 *
 * @module
 */

/**
 * An invariant of the state store broke: a bug, or a store altered behind
 * its back. The store must not be used further.
 *
 * @example
 * ```ts
 * import { StateInvariantError } from "@distkit/distkit/store";
 *
 * new StateInvariantError("applied went back from 7 to 5").name; // "StateInvariantError"
 * ```
 */
export class StateInvariantError extends Error {
  /**
   * Creates the error.
   *
   * @param what The invariant that broke.
   */
  constructor(what: string) {
    super(
      `state store invariant violated: ${what} (a bug or a store altered outside distkit; ` +
        `stop this node and report it)`,
    );
    this.name = "StateInvariantError";
  }
}

/**
 * Something staged does not fit the store: a key too long for Deno KV, or
 * one entry writing more than one commit can hold. Nothing of it is applied.
 *
 * @example
 * ```ts
 * import { StateLimitError } from "@distkit/distkit/store";
 *
 * new StateLimitError("key x is 3000 bytes").message.includes("3000"); // true
 * ```
 */
export class StateLimitError extends Error {
  /**
   * Creates the error.
   *
   * @param problem What does not fit, and the limit.
   */
  constructor(problem: string) {
    super(`${problem}; refuse such writes before they are proposed (nothing was stored)`);
    this.name = "StateLimitError";
  }
}

/**
 * A state stream given to `install` is not a complete, valid state (a page
 * missing, out of order or malformed, a wrong count or digest, a point
 * behind the store's). Nothing was switched: the store is as it was.
 *
 * @example
 * ```ts
 * import { StateInstallError } from "@distkit/distkit/store";
 *
 * new StateInstallError("page 3 is missing").name; // "StateInstallError"
 * ```
 */
export class StateInstallError extends Error {
  /**
   * Creates the error.
   *
   * @param problem What is wrong with the stream.
   */
  constructor(problem: string) {
    super(`cannot install the state stream: ${problem}; the store is unchanged, ask for it again`);
    this.name = "StateInstallError";
  }
}

/**
 * A commit of the store failed part way (a full disk, a closed database):
 * what is stored is an applied prefix, but the store's memory may be ahead
 * of it. Open the store again to go on from what is stored.
 *
 * @example
 * ```ts
 * import { StateStoreFailedError } from "@distkit/distkit/store";
 *
 * new StateStoreFailedError(new Error("disk full")).name; // "StateStoreFailedError"
 * ```
 */
export class StateStoreFailedError extends Error {
  /**
   * Creates the error.
   *
   * @param cause The failure.
   */
  constructor(cause: unknown) {
    super(
      `the state store failed a write (${(cause as Error)?.message ?? cause}); ` +
        `open it again to continue from what it stored`,
      { cause },
    );
    this.name = "StateStoreFailedError";
  }
}
