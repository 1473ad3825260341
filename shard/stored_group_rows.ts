/**
 * The row names of a stored shard group's state (see
 * `stored_group_state.ts`), shared with the conversions between its two
 * snapshot forms (`stored_group_convert.ts`).
 *
 * @module
 */

/** The session row holding the configuration and the shards' statuses. */
export const META_ROW = "meta";

/**
 * The first part of every key of `shard`'s rows (data and sessions).
 *
 * @example
 * ```ts
 * import { shardPrefix } from "./stored_group_rows.ts";
 *
 * shardPrefix(3) + "key"; // "3/key"
 * ```
 */
export function shardPrefix(shard: number): string {
  return `${shard}/`;
}
