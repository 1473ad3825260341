/**
 * The work of MapReduce tasks, shared by workers and the sequential
 * runner: splitting the inputs into map tasks, running a map task (its
 * pairs partitioned into one intermediate file per reduce task) and a
 * reduce task (one output file). Every file is written to a temporary name
 * and renamed into place, so a crashed task never leaves a partial file
 * that someone reads.
 *
 * @module
 */
import { compareKeys, type KeyValue, type MapReduceApp, partitionOf } from "./app.ts";

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
      path = await Deno.realPath(file);
      const info = await Deno.stat(path);
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

/**
 * Values grouped by key, folded with the app's `combine` as they come (so a
 * frequent key keeps a handful of values, not millions).
 */
export class Grouper {
  readonly #groups = new Map<string, string[]>();
  readonly #combine: ((key: string, values: string[]) => string) | undefined;

  /** Creates an empty grouping; `combine` folds a key's values when there are many. */
  constructor(combine?: (key: string, values: string[]) => string) {
    this.#combine = combine;
  }

  /** Adds one value of `key`. */
  add(key: string, value: string): void {
    const values = this.#groups.get(key);
    if (values === undefined) this.#groups.set(key, [value]);
    else {
      values.push(value);
      if (this.#combine && values.length >= 64) {
        const folded = this.#combine(key, values);
        values.length = 0;
        values.push(folded);
      }
    }
  }

  /** How many keys. */
  get size(): number {
    return this.#groups.size;
  }

  /** The keys in UTF-8 order, each with its values (folded once more when there is a combine). */
  *sorted(): Generator<[string, string[]]> {
    const keys = [...this.#groups.keys()].sort(compareKeys);
    for (const key of keys) yield [key, this.#groups.get(key)!];
  }

  /** Each key with its values, combined to one when the app can. */
  *entries(): Generator<[string, string[]]> {
    for (const [key, values] of this.#groups) {
      yield [key, this.#combine && values.length > 1 ? [this.#combine(key, values)] : values];
    }
  }
}

/** Writes `text` to `path` by way of a temporary file and a rename. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
  // Two file operations, not four (makeTempFile, write, chmod, rename): a job
  // writes nMap × nReduce intermediate files, and on small inputs their
  // count, not their size, is what costs. The file is created with its final
  // mode (readable by everyone who may read the folder), under a name no
  // other writer picks.
  const temp = `${dir}/.mr-tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(temp, text, { createNew: true, mode: 0o644 });
    await Deno.rename(temp, path);
  } catch (err) {
    // Not ours to remove if the name was taken.
    if (!(err instanceof Deno.errors.AlreadyExists)) await Deno.remove(temp).catch(() => {});
    throw err;
  }
}

/** The intermediate file of map task `m` for reduce task `r`. */
export function intermediateName(dir: string, m: number, r: number): string {
  return `${dir}/mr-${m}-${r}`;
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

function checkPair(pair: unknown, filename: string): asserts pair is KeyValue {
  if (!Array.isArray(pair) || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
    throw new TypeError(
      `map(${JSON.stringify(filename)}) emitted ${JSON.stringify(pair)}, not [key, value] strings`,
    );
  }
}

/**
 * Runs map task `task` and writes its pairs, partitioned by key, to one
 * intermediate file per reduce task in `dir` (every one, even if empty).
 */
export async function runMap(
  app: MapReduceApp,
  task: MapTask,
  options: { dir: string; nReduce: number },
): Promise<void> {
  const parts = Array.from({ length: options.nReduce }, () => new Grouper(app.combine));
  for (const pair of await mapPairs(app, task)) {
    checkPair(pair, task.file);
    parts[partitionOf(pair[0], options.nReduce)].add(pair[0], pair[1]);
  }
  await Promise.all(parts.map((part, r) => {
    const lines: string[] = [];
    for (const [key, values] of part.entries()) {
      for (const value of values) lines.push(JSON.stringify([key, value]));
    }
    return writeAtomically(
      intermediateName(options.dir, task.id, r),
      lines.join("\n") + (lines.length ? "\n" : ""),
    );
  }));
}

/**
 * Runs reduce task `r`: reads its intermediate file of every map task,
 * groups the values by key, and writes `mr-out-<r>` with a line
 * `<key> <value>` per key, in key order.
 */
export async function runReduce(
  app: MapReduceApp,
  options: { r: number; nMap: number; dir: string },
): Promise<void> {
  const groups = new Grouper(app.combine);
  for (let m = 0; m < options.nMap; m++) {
    const path = intermediateName(options.dir, m, options.r);
    const text = await Deno.readTextFile(path);
    let at = 0;
    while (at < text.length) {
      let nl = text.indexOf("\n", at);
      if (nl < 0) nl = text.length;
      const line = text.slice(at, nl);
      at = nl + 1;
      if (line === "") continue;
      let pair: unknown;
      try {
        pair = JSON.parse(line);
      } catch {
        throw new Error(`${path} is damaged: ${JSON.stringify(line.slice(0, 80))} is not a pair`);
      }
      checkPair(pair, path);
      groups.add(pair[0], pair[1]);
    }
  }
  await writeAtomically(outputName(options.dir, options.r), await reduceAll(app, groups));
}

/** Every key's reduced line, in key order. */
async function reduceAll(app: MapReduceApp, groups: Grouper): Promise<string> {
  const out: string[] = [];
  for (const [key, values] of groups.sorted()) {
    const value = await app.reduce(key, values);
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
    for (const pair of await mapPairs(app, task)) {
      checkPair(pair, task.file);
      groups.add(pair[0], pair[1]);
    }
  }
  await writeAtomically(outputName(options.dir, 0), await reduceAll(app, groups));
  return { tasks: tasks.length, keys: groups.size, bytes };
}
