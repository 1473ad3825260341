/**
 * The crash test's application without the crashes: four pairs per input
 * (its name, the name's length, the contents' length, "xyzzy").
 *
 * @module
 */
import type { KeyValue } from "../app.ts";
import { compareKeys } from "../app.ts";

/** Emits ("a", filename), ("b", its length), ("c", the contents' length), ("d", "xyzzy"). */
export function map(filename: string, contents: string): KeyValue[] {
  return [["a", filename], ["b", String(filename.length)], ["c", String(contents.length)], [
    "d",
    "xyzzy",
  ]];
}

/** The values, sorted, space-separated. */
export function reduce(_key: string, values: string[]): string {
  return [...values].sort(compareKeys).join(" ");
}
