/**
 * For the reduce-parallelism test: ten keys, and every reduce says how many
 * reduces ran at once.
 *
 * @module
 */
import type { KeyValue } from "../app.ts";
import { nparallel } from "./parallel.ts";

/** Emits ("a", "1") ... ("j", "1"). */
export function map(_filename: string, _contents: string): KeyValue[] {
  return [..."abcdefghij"].map((k) => [k, "1"]);
}

/** The number of reduces running at the same time as this one. */
export async function reduce(_key: string, _values: string[]): Promise<string> {
  return String(await nparallel("reduce"));
}
