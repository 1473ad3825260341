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

/** Where an app spec points: a built-in, a module URL, or a module file. */
type AppSource =
  | { kind: "builtin"; name: string }
  | { kind: "url"; url: string }
  | { kind: "path"; path: string };

/**
 * What `app` names, by the one rule {@linkcode loadApp} and
 * {@linkcode appIdentity} share: a built-in's name, else a URL (a scheme
 * of two or more letters, so `C:\` is a path), else a path if it looks
 * like one.
 */
function sourceOf(app: string): AppSource {
  if (Object.hasOwn(BUILT_IN, app)) return { kind: "builtin", name: app };
  if (/^[a-z][a-z0-9+.-]+:/i.test(app)) return { kind: "url", url: app };
  if (app.includes("/") || app.includes("\\") || /\.[mc]?[jt]sx?$/.test(app)) {
    return { kind: "path", path: app };
  }
  throw new AppLoadError(
    app,
    `no built-in app of that name (${BUILT_IN_APPS.join(", ")}); give a path to load a module`,
  );
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
  const source = sourceOf(app);
  let load: () => Promise<Record<string, unknown>>;
  if (source.kind === "builtin") load = BUILT_IN[source.name];
  else if (source.kind === "url") load = () => import(source.url);
  else {
    // Relative to the working directory; `#`, `?` and `%` in names escaped.
    // node:url is loaded only here: the built-in apps' processes start
    // without it.
    load = async () => import((await import("node:url")).pathToFileURL(source.path).href);
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
 * Which app a worker runs, as it tells its coordinator: a job's workers
 * must all run the same one, since each reads the others' intermediate
 * files (see {@linkcode appIdentity}).
 *
 * @example
 * ```ts
 * import type { AppIdentity } from "@distkit/distkit/mapreduce";
 *
 * const wc: AppIdentity = { id: "builtin:wc", name: "wc" };
 * ```
 */
export interface AppIdentity {
  /**
   * What identifies the app: `builtin:<name>` for a built-in,
   * `sha256:<hex>` of a module file's source text, `url:<url>` for a module
   * at a URL other than `file:`. Two specs are the same app exactly when
   * their ids are equal.
   */
  id: string;
  /** The app as it was given (a name, a path, a URL), for messages. */
  name: string;
}

/**
 * The identity of the app `app` names (the same specs as
 * {@linkcode loadApp}), computed without loading it, so a coordinator can
 * pin its job's app without running the app's code:
 *
 * - a built-in: `builtin:<name>`;
 * - a module by path or `file:` URL: `sha256:<hex>` of the file's bytes,
 *   so the same source is the same app wherever it lies (another folder,
 *   another machine), and an edited copy is another app. Only that file
 *   counts: a module it imports may differ unnoticed;
 * - a module at any other URL (`https:`, `data:`...): `url:<url>`, the URL
 *   itself; it is not fetched. Pin a versioned URL.
 *
 * @throws {AppLoadError} for no such built-in, or a file that cannot be read.
 *
 * @example
 * ```ts
 * import { appIdentity } from "@distkit/distkit/mapreduce";
 *
 * (await appIdentity("wc")).id; // "builtin:wc"
 * ```
 */
export async function appIdentity(app: string): Promise<AppIdentity> {
  const source = sourceOf(app);
  if (source.kind === "builtin") return { id: `builtin:${source.name}`, name: app };
  if (source.kind === "url" && !/^file:/i.test(source.url)) {
    return { id: `url:${source.url}`, name: app };
  }
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(source.kind === "path" ? source.path : new URL(source.url));
  } catch (err) {
    throw new AppLoadError(app, `cannot read it: ${(err as Error).message}`, { cause: err });
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return {
    id: `sha256:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`,
    name: app,
  };
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
