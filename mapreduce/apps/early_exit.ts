/**
 * For the early-exit test: one pair per input file; the reduces of files
 * named like "sherlock" or "tom" take 3 s, so a worker or coordinator that
 * exits before every output is final is caught.
 *
 * @module
 */
import type { KeyValue } from "../app.ts";

/** Emits (filename, "1"). */
export function map(filename: string, _contents: string): KeyValue[] {
  return [[filename, "1"]];
}

/** How many times the file was seen; slow for some files. */
export async function reduce(key: string, values: string[]): Promise<string> {
  if (key.includes("sherlock") || key.includes("tom")) {
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  return String(values.length);
}
