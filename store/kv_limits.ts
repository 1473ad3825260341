/**
 * Deno KV's limits (as its errors state them, measured on Deno 2.9), and how
 * it counts a commit's size against them: a write counts its key twice and
 * its value once, a delete its key once; only writes' keys count towards
 * the total of key bytes; checks count in neither.
 *
 * @module
 */

/** Largest value, in bytes. */
export const MAX_VALUE_BYTES = 65536;
/** Largest key a write may use, encoded. */
export const MAX_WRITE_KEY_BYTES = 2048;
/** Largest key a read may use, encoded. */
export const MAX_READ_KEY_BYTES = 2049;
/** Mutations (writes and deletes) in one commit. */
export const MAX_MUTATIONS = 1000;
/** Checks in one commit. */
export const MAX_CHECKS = 100;
/** Size of one commit's mutations, counted as the module doc says. */
export const MAX_TOTAL_MUTATION_BYTES = 800 * 1024;
/** Size of the keys one commit writes. */
export const MAX_TOTAL_KEY_BYTES = 80 * 1024;
/** Keys one `getMany` reads. */
export const MAX_READ_RANGES = 10;
/** Entries one batch of a `list` reads. */
export const MAX_LIST_BATCH = 1000;

/**
 * What one mutation adds to a commit's totals, from its encoded key size and
 * (for a write) its value size.
 *
 * @example
 * ```ts
 * import { mutationCost } from "./kv_limits.ts";
 *
 * mutationCost(12, 100); // { bytes: 124, keyBytes: 12 }
 * mutationCost(12); // a delete: { bytes: 12, keyBytes: 0 }
 * ```
 */
export function mutationCost(
  keyBytes: number,
  valueBytes?: number,
): { bytes: number; keyBytes: number } {
  if (valueBytes === undefined) return { bytes: keyBytes, keyBytes: 0 };
  return { bytes: 2 * keyBytes + valueBytes, keyBytes };
}

/** Largest value our storages write: under Deno KV's 64 KiB limit, leaving room for headers. */
export const PART_BYTES = 60 * 1024;
/** Per-commit budgets of our storages, under Deno KV's limits of 1,000 mutations and 800 KiB. */
export const COMMIT_MUTATIONS = 900;
export const COMMIT_BYTES = 700 * 1024;

/** One write or delete of an atomic commit. */
export type Mutation =
  | { type: "set"; key: Deno.KvKey; value: Uint8Array }
  | { type: "delete"; key: Deno.KvKey };
