/**
 * The stored KV state's rows apart from the data: one session row per
 * client, and the key count.
 *
 * @module
 */

/**
 * The session row of `client` (prefixed, so that no client id is the key count's row).
 *
 * @example
 * ```ts
 * import { sessionKey } from "./stored_rows.ts";
 *
 * sessionKey("web-1"); // "c/web-1"
 * ```
 */
export function sessionKey(client: string): string {
  return `c/${client}`;
}

/** The session row holding how many keys there are. */
export const COUNT_ROW = "n";
