/**
 * What a state store keeps under a key.
 *
 * @module
 */

/**
 * A stored value: text or bytes (the KV service's values are the same two kinds).
 *
 * @example
 * ```ts
 * import type { StateValue } from "@distkit/distkit/store";
 *
 * const values: StateValue[] = ["text", new Uint8Array([1, 2])];
 * ```
 */
export type StateValue = string | Uint8Array;
