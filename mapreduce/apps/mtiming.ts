/**
 * For the map-parallelism test: every map reports when it started and how
 * many maps ran at once.
 *
 * @module
 */
import type { KeyValue } from "../app.ts";
import { compareKeys } from "../app.ts";
import { now, nparallel } from "./parallel.ts";

/** Emits ("times-<pid>", start time) and ("parallel-<pid>", maps running at once). */
export async function map(_filename: string, _contents: string): Promise<KeyValue[]> {
  const started = now();
  const n = await nparallel("map");
  return [[`times-${Deno.pid}`, started], [`parallel-${Deno.pid}`, String(n)]];
}

/** The values, sorted, space-separated. */
export function reduce(_key: string, values: string[]): string {
  return [...values].sort(compareKeys).join(" ");
}
