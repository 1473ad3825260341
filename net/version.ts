/**
 * The package's version, in one place: `distkit --version` prints it and a
 * node reports it in its status (a test holds it equal to deno.json's).
 *
 * @module
 */

/**
 * The package's version, as in deno.json.
 *
 * @example
 * ```ts
 * import { DISTKIT_VERSION } from "@distkit/distkit/net";
 *
 * console.log(`distkit ${DISTKIT_VERSION}`);
 * ```
 */
export const DISTKIT_VERSION = "0.1.0";
