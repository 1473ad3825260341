/**
 * For the job-count test: every map leaves a file behind, and the reduce
 * counts them, so the output says how many map tasks ran.
 *
 * @module
 */
import type { KeyValue } from "../app.ts";

let count = 0;

/** Leaves `mr-worker-jobcount-<pid>-<n>`, takes 2 to 5 s, emits ("a", "x"). */
export async function map(_filename: string, _contents: string): Promise<KeyValue[]> {
  await Deno.writeTextFile(`mr-worker-jobcount-${Deno.pid}-${count++}`, "x");
  await new Promise((resolve) => setTimeout(resolve, 2000 + Math.random() * 3000));
  return [["a", "x"]];
}

/** How many map runs left their file. */
export async function reduce(_key: string, _values: string[]): Promise<string> {
  let runs = 0;
  for await (const entry of Deno.readDir(".")) {
    if (entry.name.startsWith("mr-worker-jobcount")) runs++;
  }
  return String(runs);
}
