/**
 * Checks of a KV page's parts as decoded (a snapshot, a migrating shard):
 * shared by the in-memory state and the stored shard group, not exported.
 *
 * @module
 */
import type { KvResult } from "./kv_types.ts";
import type { KvValue } from "./value.ts";

/** Whether `x` is a `[key, something]` pair. */
export function isPair(x: unknown): x is [string, unknown] {
  return Array.isArray(x) && x.length === 2 && typeof x[0] === "string";
}

/** Whether `x` is a value the KV service stores. */
export function isValue(x: unknown): x is KvValue {
  return typeof x === "string" || x instanceof Uint8Array;
}

/** Whether `r` looks like a write's result (what a dedup table keeps). */
export function isResult(r: unknown): r is KvResult {
  return typeof (r as KvResult | undefined)?.ok === "boolean";
}
