/**
 * MapReduce applications: the `map` and `reduce` functions a job runs, how
 * they are loaded (a built-in by name, or any module by path or URL), and
 * the key partitioning every worker agrees on.
 *
 * @module
 */
import { keyHash } from "./key_hash.ts";

/**
 * A key/value pair a map function emits.
 *
 * @example
 * ```ts
 * import type { KeyValue } from "@distkit/distkit/mapreduce";
 *
 * const kv: KeyValue = ["word", "1"];
 * ```
 */
export type KeyValue = [key: string, value: string];

/**
 * A MapReduce application: a module exporting `map` and `reduce` (and,
 * optionally, `combine` and `mapStream`).
 *
 * - `map(filename, contents)`: the pairs for one input (a whole file, or a
 *   chunk of a large one, cut at a line end);
 * - `mapStream(filename, pieces)`: optional; the same pairs as `map`, given
 *   the input as a stream of pieces of about 1 MiB, each a run of whole
 *   lines, in order. When an app has it, workers and the sequential runner
 *   call it instead of `map`: the input is never held whole (it is read
 *   into one small buffer), which is faster and bounds memory;
 * - `reduce(key, values)`: the output value for a key, given every value
 *   emitted for it (in no particular order);
 * - `combine(key, values)`: optional; folds some of a key's values into one
 *   on the map side, so less goes between the phases. It must not change
 *   the result: `reduce(k, [combine(k, a), ...rest])` equals
 *   `reduce(k, [...a, ...rest])`.
 *
 * Either may be async (return a promise).
 *
 * @example
 * ```ts
 * import type { MapReduceApp } from "@distkit/distkit/mapreduce";
 *
 * const lines: MapReduceApp = {
 *   map: (filename, contents) => [[filename, String(contents.split("\n").length)]],
 *   reduce: (_key, values) => String(values.reduce((n, v) => n + Number(v), 0)),
 * };
 * ```
 */
export interface MapReduceApp {
  /** The pairs for one input. */
  map(filename: string, contents: string): Iterable<KeyValue> | Promise<Iterable<KeyValue>>;
  /** The output value for a key. */
  reduce(key: string, values: string[]): string | Promise<string>;
  /** Optional map-side folding of a key's values (see the interface's notes). */
  combine?(key: string, values: string[]): string;
  /** Optional: `map` over the input given a piece at a time (see the interface's notes). */
  mapStream?(
    filename: string,
    pieces: AsyncIterable<string>,
  ): Iterable<KeyValue> | Promise<Iterable<KeyValue>>;
}

/**
 * The applications that ship with distkit, by name. Literal imports, so
 * `deno compile` puts them in a compiled worker.
 */
const BUILT_IN: Record<string, () => Promise<Record<string, unknown>>> = {
  wc: () => import("./apps/wc.ts"),
  indexer: () => import("./apps/indexer.ts"),
  mtiming: () => import("./apps/mtiming.ts"),
  rtiming: () => import("./apps/rtiming.ts"),
  jobcount: () => import("./apps/jobcount.ts"),
  early_exit: () => import("./apps/early_exit.ts"),
  crash: () => import("./apps/crash.ts"),
  nocrash: () => import("./apps/nocrash.ts"),
};

/**
 * The names of the built-in applications.
 *
 * @example
 * ```ts
 * import { BUILT_IN_APPS } from "@distkit/distkit/mapreduce";
 *
 * BUILT_IN_APPS.includes("wc"); // true
 * ```
 */
export const BUILT_IN_APPS: readonly string[] = Object.freeze(Object.keys(BUILT_IN));

/**
 * An application could not be loaded: no such built-in, the module failed
 * to load, or it does not export `map` and `reduce` functions.
 *
 * @example
 * ```ts
 * import { AppLoadError } from "@distkit/distkit/mapreduce";
 *
 * new AppLoadError("./mine.ts", "it does not export a map function").message;
 * ```
 */
export class AppLoadError extends Error {
  /**
   * Creates the error.
   *
   * @param app The name, path or URL given.
   * @param problem What went wrong.
   */
  constructor(app: string, problem: string, options?: ErrorOptions) {
    super(`cannot load MapReduce app ${JSON.stringify(app)}: ${problem}`, options);
    this.name = "AppLoadError";
  }
}

/**
 * Loads an application: a built-in by name (see {@linkcode BUILT_IN_APPS}),
 * or a module by path (relative to the working directory) or URL.
 *
 * @throws {AppLoadError} saying what is wrong.
 *
 * @example
 * ```ts
 * import { loadApp } from "@distkit/distkit/mapreduce";
 *
 * const wc = await loadApp("wc");
 * [...await wc.map("x.txt", "a b a")].length; // 3
 * ```
 */
export async function loadApp(app: string): Promise<MapReduceApp> {
  let load: () => Promise<Record<string, unknown>>;
  if (Object.hasOwn(BUILT_IN, app)) load = BUILT_IN[app];
  else if (/^[a-z][a-z0-9+.-]+:/i.test(app)) load = () => import(app);
  else if (app.includes("/") || app.includes("\\") || /\.[mc]?[jt]sx?$/.test(app)) {
    // Relative to the working directory; `#`, `?` and `%` in names escaped.
    // node:url is loaded only here: the built-in apps' processes start
    // without it.
    load = async () => import((await import("node:url")).pathToFileURL(app).href);
  } else {
    throw new AppLoadError(
      app,
      `no built-in app of that name (${BUILT_IN_APPS.join(", ")}); give a path to load a module`,
    );
  }
  let module: Record<string, unknown>;
  try {
    module = await load();
  } catch (err) {
    throw new AppLoadError(app, (err as Error).message, { cause: err });
  }
  for (const name of ["map", "reduce"]) {
    if (typeof module[name] !== "function") {
      throw new AppLoadError(app, `it does not export a ${name} function`);
    }
  }
  for (const name of ["combine", "mapStream"]) {
    if (module[name] !== undefined && typeof module[name] !== "function") {
      throw new AppLoadError(app, `its ${name} export is not a function`);
    }
  }
  return module as unknown as MapReduceApp;
}

/**
 * The reduce task of a key: a 32-bit FNV-1a hash of its UTF-8 bytes, as a
 * non-negative 31-bit number, modulo `nReduce` (the course's `ihash`).
 *
 * @example
 * ```ts
 * import { partitionOf } from "@distkit/distkit/mapreduce";
 *
 * partitionOf("hello", 10) === partitionOf("hello", 10); // true
 * ```
 */
export function partitionOf(key: string, nReduce: number): number {
  return keyHash(key) % nReduce;
}

/**
 * Compares strings by their UTF-8 bytes (code point order), as Go's sort
 * does: the order of the output files' lines.
 *
 * @example
 * ```ts
 * import { compareKeys } from "@distkit/distkit/mapreduce";
 *
 * ["b", "a", "B"].sort(compareKeys); // ["B", "a", "b"]
 * ```
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 puts surrogates (code points above U+FFFF) below U+E000..U+FFFF; UTF-8 does not.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy && (x >= 0xe000 || y >= 0xe000)) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
