/**
 * The work of MapReduce tasks, shared by workers and the sequential
 * runner: splitting the inputs into map tasks, running a map task (its
 * pairs partitioned into one intermediate file, a section per reduce task:
 * intermediate.ts) and a reduce task (one output file). Every file is written to a temporary name
 * and renamed into place, so a crashed task never leaves a partial file
 * that someone reads.
 *
 * @module
 */
import { compareKeys, type KeyValue, type MapReduceApp, partitionOf } from "./app.ts";
import { keyHash } from "./key_hash.ts";
import { encodeIntermediate, intermediateName, readSection } from "./intermediate.ts";

/**
 * A map task: a whole input file, or the part `[start, end)` of a large
 * one (cut just after a line end).
 *
 * @example
 * ```ts
 * import type { MapTask } from "@distkit/distkit/mapreduce";
 *
 * const task: MapTask = {
 *   id: 0,
 *   file: "pg-grimm.txt",
 *   path: "/data/pg-grimm.txt",
 *   start: 0,
 *   end: 540174,
 * };
 * ```
 */
export interface MapTask {
  /** The task's number, from 0. */
  id: number;
  /** The input file as given (what `map` gets as its filename). */
  file: string;
  /** Its absolute path, which workers read (they may run in another folder). */
  path: string;
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
}

/** Default largest map task input: 64 MiB. A larger file is split at line ends. */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;

/**
 * The map tasks of a job: one per file, or per chunk of about `chunkBytes`
 * of a larger file, each cut just after a newline (a line is never split;
 * a file without newlines is one task). Deterministic.
 *
 * @throws {Error} naming a file that cannot be read.
 *
 * @example
 * ```ts ignore
 * import { splitInputs } from "./engine.ts";
 *
 * const tasks = await splitInputs(["a.txt", "b.txt"], { chunkBytes: 1 << 20 });
 * ```
 */
export async function splitInputs(
  files: readonly string[],
  options: { chunkBytes?: number } = {},
): Promise<MapTask[]> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const tasks: MapTask[] = [];
  for (const file of files) {
    let size: number;
    let path: string;
    let handle: Deno.FsFile | undefined;
    try {
      // Synchronous: two quick calls per file, where a job's start waits on
      // them (a round trip through the thread pool each cost more).
      path = Deno.realPathSync(file);
      const info = Deno.statSync(path);
      if (!info.isFile) throw new Error("not a regular file");
      size = info.size;
      if (size > chunkBytes) handle = await Deno.open(path);
    } catch (err) {
      throw new Error(`input ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      let start = 0;
      while (start < size || (start === 0 && size === 0)) {
        const end = handle ? await lineEndAfter(handle, start + chunkBytes, size) : size;
        tasks.push({ id: tasks.length, file, path, start, end });
        start = end;
        if (size === 0) break;
      }
    } finally {
      handle?.close();
    }
  }
  return tasks;
}

/** The offset just past the first newline at or after `from` (or `size`). */
async function lineEndAfter(file: Deno.FsFile, from: number, size: number): Promise<number> {
  if (from >= size) return size;
  const buffer = new Uint8Array(64 * 1024);
  for (let at = from; at < size;) {
    await file.seek(at, Deno.SeekMode.Start);
    const n = await file.read(buffer);
    if (n === null) break;
    const nl = buffer.subarray(0, n).indexOf(0x0a);
    if (nl >= 0) return at + nl + 1;
    at += n;
  }
  return size;
}

/** Reads a map task's input as text: {@linkcode readPieces} with one piece the size of it all. */
export async function readInput(task: MapTask): Promise<string> {
  const pieces = await Array.fromAsync(
    readPieces(task, { pieceBytes: Math.max(1, task.end - task.start) }),
  );
  return pieces.join("");
}

/** Default size of the pieces {@linkcode readPieces} gives: 1 MiB. */
export const PIECE_BYTES = 1 << 20;

/**
 * A map task's input as text, a piece at a time: about `pieceBytes` (1 MiB
 * by default) of whole lines each, in order; a longer line is a piece of
 * its own. The pieces joined are what {@linkcode readInput} returns, and
 * the file is read through one buffer of that size, so an input of any
 * size takes little memory. The file is opened at the first piece and
 * closed when the pieces end or the iteration stops.
 *
 * @throws {RangeError} when `pieceBytes` is not a positive integer.
 *
 * @example
 * ```ts ignore
 * import { readPieces, splitInputs } from "./engine.ts";
 *
 * const [task] = await splitInputs(["big.txt"]);
 * let lines = 0;
 * for await (const piece of readPieces(task)) lines += piece.split("\n").length - 1;
 * ```
 */
export async function* readPieces(
  task: MapTask,
  options: { pieceBytes?: number } = {},
): AsyncGenerator<string, void, undefined> {
  const pieceBytes = options.pieceBytes ?? PIECE_BYTES;
  if (!Number.isSafeInteger(pieceBytes) || pieceBytes < 1) {
    throw new RangeError(`pieceBytes must be a positive integer, got ${pieceBytes}`);
  }
  const size = task.end - task.start;
  if (size === 0) return;
  const file = await Deno.open(task.path);
  try {
    await file.seek(task.start, Deno.SeekMode.Start);
    // The byte-order mark is dropped by hand (at the file's start only):
    // a streaming TextDecoder would drop one at the start of any piece.
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    let first = true;
    let buffer = new Uint8Array(Math.min(pieceBytes, size));
    let held = 0; // bytes at the front of the buffer not given out yet
    let unread = size;
    while (held > 0 || unread > 0) {
      while (held < buffer.length && unread > 0) {
        const n = await file.read(
          buffer.subarray(held, held + Math.min(buffer.length - held, unread)),
        );
        if (n === null) throw endedEarly(task);
        held += n;
        unread -= n;
      }
      // Cut after the last line end (a task's end is one, or the file's end).
      const cut = unread === 0 ? held : buffer.lastIndexOf(0x0a, held - 1) + 1;
      if (cut === 0) {
        // A line longer than the buffer: make room for (at most) the rest of the input.
        const bigger = new Uint8Array(Math.min(buffer.length * 2, held + unread));
        bigger.set(buffer);
        buffer = bigger;
        continue;
      }
      // Cut at an ASCII byte, so no character is split.
      const piece = first ? withoutBom(buffer.subarray(0, cut), task) : buffer.subarray(0, cut);
      first = false;
      yield decoder.decode(piece, { stream: true });
      buffer.copyWithin(0, cut, held);
      held -= cut;
    }
    const rest = decoder.decode();
    if (rest !== "") yield rest;
  } finally {
    file.close();
  }
}

/** The bytes without a UTF-8 byte-order mark, if they start the file with one. */
function withoutBom(bytes: Uint8Array, task: MapTask): Uint8Array {
  const bom = task.start === 0 && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb &&
    bytes[2] === 0xbf;
  return bom ? bytes.subarray(3) : bytes;
}

function endedEarly(task: MapTask): Error {
  return new Error(`${task.file} ended early (was it changed during the job?)`);
}

/** A UTF-16 surrogate: where UTF-16 order and UTF-8 byte order can differ. */
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Whether a key holds a surrogate: one regular expression test per 1,024
 * keys joined (a call per key costs more; all joined at once could pass
 * the engine's longest string).
 */
function anySurrogate(keys: readonly string[]): boolean {
  for (let i = 0; i < keys.length; i += 1024) {
    if (SURROGATE.test(keys.slice(i, i + 1024).join(""))) return true;
  }
  return false;
}

/**
 * Values grouped by key, folded with the app's `combine` as they come (so a
 * frequent key keeps a handful of values, not millions). Keys are kept in
 * the order they came, each with one value until a second comes: most keys
 * of a job that counts in its mapper (wc) have one value per map task, and
 * a small job is short enough that V8 runs most of it unoptimized, where
 * every allocation and call per key shows.
 */
export class Grouper {
  /** Each key's position in #keys and #values. */
  readonly #index = new Map<string, number>();
  readonly #keys: string[] = [];
  /** A key's value, or its values once it has more than one. */
  readonly #values: (string | string[])[] = [];
  readonly #combine: ((key: string, values: string[]) => string) | undefined;

  /** Creates an empty grouping; `combine` folds a key's values when there are many. */
  constructor(combine?: (key: string, values: string[]) => string) {
    this.#combine = combine;
  }

  /** Adds one value of `key`. */
  add(key: string, value: string): void {
    const at = this.#index.get(key);
    if (at === undefined) {
      this.#index.set(key, this.#keys.length);
      this.#keys.push(key);
      this.#values.push(value);
      return;
    }
    const held = this.#values[at];
    if (typeof held === "string") {
      this.#values[at] = [held, value];
      return;
    }
    held.push(value);
    if (this.#combine && held.length >= 64) {
      const folded = this.#combine(key, held);
      held.length = 0;
      held.push(folded);
    }
  }

  /** How many keys. */
  get size(): number {
    return this.#keys.length;
  }

  /**
   * The keys in UTF-8 byte order (what {@linkcode compareKeys} gives): the
   * engine's own sort where it agrees, which is whenever no key has a
   * character beyond U+FFFF (or a lone surrogate). Their values:
   * {@linkcode Grouper.valuesOf}.
   */
  sortedKeys(): string[] {
    const keys = [...this.#keys];
    if (anySurrogate(keys)) keys.sort(compareKeys);
    else keys.sort(); // UTF-16 order: the same as UTF-8's without surrogates
    return keys;
  }

  /** The values of `key` (none for a key never added). */
  valuesOf(key: string): string[] {
    const at = this.#index.get(key);
    if (at === undefined) return [];
    const held = this.#values[at];
    return typeof held === "string" ? [held] : held;
  }

  /**
   * Calls `each` with every key, in the order they came, and one of its
   * values: every value, or one value folded from them all when there is
   * a combine.
   */
  forEachValue(each: (key: string, value: string) => void): void {
    const keys = this.#keys;
    const values = this.#values;
    for (let i = 0; i < keys.length; i++) {
      const held = values[i];
      if (typeof held === "string") each(keys[i], held);
      else if (this.#combine) {
        each(keys[i], held.length === 1 ? held[0] : this.#combine(keys[i], held));
      } else for (const value of held) each(keys[i], value);
    }
  }
}

/** Writes `data` to `path` by way of a temporary file and a rename. */
export function writeAtomically(path: string, data: FileData): Promise<void> {
  return writeFiles([[path, data]]);
}

/** What a file is written from: text, bytes, or pieces of bytes written in order. */
export type FileData = string | Uint8Array | readonly Uint8Array[];

function writeAtomicallySync(path: string, data: FileData): void {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
  // Two file operations, not four (makeTempFile, write, chmod, rename): on
  // small inputs the count of a job's files, not their size, is what costs.
  // The file is created with its final mode (readable by everyone who may
  // read the folder), under a name no other writer picks.
  const temp = `${dir}/.mr-tmp-${crypto.randomUUID()}`;
  const options = { createNew: true, mode: 0o644 };
  try {
    if (typeof data === "string") Deno.writeTextFileSync(temp, data, options);
    else if (data instanceof Uint8Array) Deno.writeFileSync(temp, data, options);
    else {
      // Pieces written one by one: never copied into one buffer.
      const file = Deno.openSync(temp, { ...options, write: true });
      try {
        for (const piece of data) {
          for (let at = 0; at < piece.length;) at += file.writeSync(piece.subarray(at));
        }
      } finally {
        file.close();
      }
    }
    Deno.renameSync(temp, path);
  } catch (err) {
    // Not ours to remove if the name was taken.
    if (!(err instanceof Deno.errors.AlreadyExists)) {
      try {
        Deno.removeSync(temp);
      } catch { /* never created, or gone */ }
    }
    throw err;
  }
}

/** The output file of reduce task `r`. */
export function outputName(dir: string, r: number): string {
  return `${dir}/mr-out-${r}`;
}

/**
 * The pairs of a map task: the app's `mapStream` over the input's pieces
 * when it has one, else its `map` over the whole input; a bad result is a
 * clear error.
 */
async function mapPairs(app: MapReduceApp, task: MapTask): Promise<Iterable<unknown>> {
  let pairs;
  if (app.mapStream) {
    const pieces = readPieces(task);
    try {
      pairs = await app.mapStream(task.file, pieces);
    } finally {
      await pieces.return(); // closes the file if the app stopped early
    }
  } else {
    pairs = await app.map(task.file, await readInput(task));
  }
  if (pairs === null || typeof (pairs as Iterable<KeyValue>)[Symbol.iterator] !== "function") {
    const call = app.mapStream ? "mapStream" : "map";
    throw new TypeError(
      `${call}(${JSON.stringify(task.file)}) returned ${typeof pairs}, not a list of [key, value]`,
    );
  }
  return pairs;
}

/**
 * Calls `each` with every pair a map gave, checked. An array is walked by
 * index: the iterator protocol costs a call or two per pair while V8 has
 * not optimized the loop yet, which is most of a small job.
 */
function forEachPair(
  pairs: Iterable<unknown>,
  filename: string,
  each: (key: string, value: string) => void,
): void {
  if (Array.isArray(pairs)) {
    for (let i = 0; i < pairs.length; i++) {
      const pair: unknown = pairs[i];
      checkPair(pair, filename);
      each(pair[0], pair[1]);
    }
    return;
  }
  for (const pair of pairs) {
    checkPair(pair, filename);
    each(pair[0], pair[1]);
  }
}

function checkPair(pair: unknown, filename: string): asserts pair is KeyValue {
  if (!Array.isArray(pair) || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
    throw new TypeError(
      `map(${JSON.stringify(filename)}) emitted ${JSON.stringify(pair)}, not [key, value] strings`,
    );
  }
}

/**
 * Runs map task `task` and writes its pairs, partitioned by key, to its
 * intermediate file in `dir`, a section per reduce task (every one, even
 * if empty). A section is one JSON array of its keys and values, one after
 * the other (`["k1","v1","k2","v2"]`): one native `JSON.stringify` to
 * write and one `JSON.parse` to read, where a line per pair cost a call of
 * each per pair.
 */
export async function runMap(
  app: MapReduceApp,
  task: MapTask,
  options: { dir: string; nReduce: number },
): Promise<void> {
  const nReduce = options.nReduce;
  const keys: string[] = [];
  const values: string[] = [];
  const hashes: number[] = [];
  forEachPair(await mapPairs(app, task), task.file, (key, value) => {
    keys.push(key);
    values.push(value);
    hashes.push(keyHash(key));
  });
  const parts: string[][] = Array.from({ length: nReduce }, () => []);
  if (app.combine && !distinctKeys(keys, hashes)) {
    // A key came more than once: fold its values on this side (less to
    // write, read and group). An app that counts in its mapper (wc) gives
    // each key once, and skips this.
    const groups = new Grouper(app.combine);
    for (let i = 0; i < keys.length; i++) groups.add(keys[i], values[i]);
    groups.forEachValue((key, value) => parts[partitionOf(key, nReduce)].push(key, value));
  } else {
    for (let i = 0; i < keys.length; i++) parts[hashes[i] % nReduce].push(keys[i], values[i]);
  }
  await writeFiles([[intermediateName(options.dir, task.id), encodeIntermediate(parts)]]);
}

/**
 * Whether no key comes twice, by an open-addressing table of the keys'
 * positions (keys compared only when their hashes are equal): far cheaper
 * than a `Map` of the keys, on a path that runs mostly unoptimized.
 */
function distinctKeys(keys: string[], hashes: number[]): boolean {
  let size = 16;
  while (size < keys.length * 2) size *= 2;
  const mask = size - 1;
  const table = new Int32Array(size); // a key's position + 1; 0 for a free slot
  for (let i = 0; i < keys.length; i++) {
    const h = hashes[i];
    let slot = h & mask;
    for (let at = table[slot]; at !== 0; at = table[slot]) {
      if (hashes[at - 1] === h && keys[at - 1] === keys[i]) return false;
      slot = (slot + 1) & mask;
    }
    table[slot] = i + 1;
  }
  return true;
}

/**
 * Writes each `[path, text]` atomically (see {@linkcode writeAtomically}).
 * One after the other, with the file system's synchronous calls: a map
 * task's files are small and many, and a call each on the thread pool, all
 * at once, cost more CPU than the writes themselves (measured: 80 files of
 * 20 kB, 15 ms against 22–32 ms).
 */
export function writeFiles(files: [path: string, data: FileData][]): Promise<void> {
  try {
    for (const [path, data] of files) writeAtomicallySync(path, data);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Runs reduce task `r`: reads its section of every map task's file,
 * groups the values by key, and writes `mr-out-<r>` with a line
 * `<key> <value>` per key, in key order.
 */
export async function runReduce(
  app: MapReduceApp,
  options: { r: number; nMap: number; dir: string },
): Promise<void> {
  const groups = new Grouper(app.combine);
  for (let m = 0; m < options.nMap; m++) {
    const flat = readSection(intermediateName(options.dir, m), options.r);
    for (let i = 0; i < flat.length; i += 2) groups.add(flat[i], flat[i + 1]);
  }
  await writeFiles([[outputName(options.dir, options.r), await reduceAll(app, groups)]]);
}

/** Every key's reduced line, in key order. */
async function reduceAll(app: MapReduceApp, groups: Grouper): Promise<string> {
  const out: string[] = [];
  for (const key of groups.sortedKeys()) {
    let value = app.reduce(key, groups.valuesOf(key));
    // Awaited only when it is a promise: an await per key costs a turn of
    // the microtask queue each, tens of thousands per task.
    if (typeof value !== "string") value = await value;
    if (typeof value !== "string") {
      throw new TypeError(`reduce(${JSON.stringify(key)}) returned ${typeof value}, not a string`);
    }
    out.push(`${key} ${value}\n`);
  }
  return out.join("");
}

/**
 * The sequential reference runner: runs every map task and one reduce over
 * all keys in this process and writes `<dir>/mr-out-0`. Its output, sorted,
 * is what a distributed job's `mr-out-*` files give together.
 *
 * @example
 * ```ts ignore
 * import { loadApp, runSequential } from "@distkit/distkit/mapreduce";
 *
 * await runSequential(await loadApp("wc"), ["a.txt", "b.txt"], { dir: "out" });
 * ```
 */
export async function runSequential(
  app: MapReduceApp,
  files: readonly string[],
  options: { dir: string; chunkBytes?: number },
): Promise<{ tasks: number; keys: number; bytes: number }> {
  const tasks = await splitInputs(files, options);
  const groups = new Grouper(app.combine);
  let bytes = 0;
  for (const task of tasks) {
    bytes += task.end - task.start;
    forEachPair(await mapPairs(app, task), task.file, (key, value) => groups.add(key, value));
  }
  await writeFiles([[outputName(options.dir, 0), await reduceAll(app, groups)]]);
  return { tasks: tasks.length, keys: groups.size, bytes };
}
