/**
 * The crash test's application: {@linkcode nocrash}'s, but every map and
 * reduce first exits the process (p = 1/3) or stalls up to 10 s (p = 1/3).
 *
 * @module
 */
import type { KeyValue } from "../app.ts";
import * as nocrash from "./nocrash.ts";

async function maybeCrash(): Promise<void> {
  const r = crypto.getRandomValues(new Uint32Array(1))[0] % 1000;
  if (r < 330) Deno.exit(1);
  if (r < 660) {
    const ms = crypto.getRandomValues(new Uint32Array(1))[0] % 10_000;
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}

/** As nocrash's map, after maybe crashing or stalling. */
export async function map(filename: string, contents: string): Promise<KeyValue[]> {
  await maybeCrash();
  return nocrash.map(filename, contents);
}

/** As nocrash's reduce, after maybe crashing or stalling. */
export async function reduce(key: string, values: string[]): Promise<string> {
  await maybeCrash();
  return nocrash.reduce(key, values);
}
