/**
 * The file-system calls of a {@linkcode SegmentLogStorage} and its
 * high-water mark, behind an interface: {@linkcode realSegmentFs} makes them
 * on the real disk (`Deno.*`, the same calls and errors as before the seam),
 * {@linkcode SimFs} in memory, in virtual time, with a crash's and a bad
 * disk's faults. Only what the segment log uses: positioned reads and writes,
 * `fdatasync`/`fsync`, a lock, folder listing, rename, remove, folder sync.
 *
 * Errors follow Deno's: a missing path is `Deno.errors.NotFound`, a path
 * that is a file where a folder was expected `Deno.errors.NotADirectory`.
 *
 * @module
 */

/**
 * How {@linkcode SegmentFs.open} opens a file (as `Deno.OpenOptions`).
 *
 * @example
 * ```ts
 * import type { SegmentOpenOptions } from "@distkit/distkit/raft";
 *
 * const options: SegmentOpenOptions = { read: true, write: true, create: true };
 * ```
 */
export interface SegmentOpenOptions {
  /** Open for reading. */
  read?: boolean;
  /** Open for writing. */
  write?: boolean;
  /** Create the file when missing. */
  create?: boolean;
  /** Empty the file first. */
  truncate?: boolean;
}

/**
 * An open file of a {@linkcode SegmentFs}. Reads and writes name their
 * offset. The real file has one position per descriptor (a seek, then the
 * read or write): its reads and writes run one at a time, in call order, and
 * a `writeSync` while one of them is under way is refused (it would move
 * the position under it), not raced.
 *
 * @example
 * ```ts
 * import { realSegmentFs } from "@distkit/distkit/raft";
 *
 * const dir = await Deno.makeTempDir();
 * const file = await realSegmentFs.open(`${dir}/f`, { read: true, write: true, create: true });
 * await file.write(new Uint8Array([1, 2, 3]), 0);
 * await file.syncData();
 * file.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface SegmentFile {
  /** Reads into `into` from `offset`; the bytes read (fewer at the end, 0 past it). */
  read(into: Uint8Array, offset: number): Promise<number>;
  /** Writes all of `bytes` at `offset` now (into the page cache: durable only after a sync). */
  writeSync(bytes: Uint8Array, offset: number): void;
  /** Writes all of `bytes` at `offset` (durable only after a sync). */
  write(bytes: Uint8Array, offset: number): Promise<void>;
  /** `fdatasync`: the data written so far (and the size) is durable. */
  syncData(): Promise<void>;
  /** `fsync`: the data and metadata written so far are durable. */
  sync(): Promise<void>;
  /** Takes an exclusive lock (`flock`) without waiting; false when another holds it. */
  tryLock(): Promise<boolean>;
  /** Closes the file (its lock goes with it). */
  close(): void;
}

/**
 * The file-system calls of a segment log. A name's creation, rename or
 * removal is durable only once its folder is synced ({@linkcode SegmentFs.syncFolder}).
 *
 * @example
 * ```ts
 * import { realSegmentFs, type SegmentFs } from "@distkit/distkit/raft";
 *
 * const fs: SegmentFs = realSegmentFs;
 * const dir = await Deno.makeTempDir();
 * (await fs.readDir(dir)).length; // 0
 * await Deno.remove(dir);
 * ```
 */
export interface SegmentFs {
  /** Opens `path`. */
  open(path: string, options: SegmentOpenOptions): Promise<SegmentFile>;
  /** The whole content of the file `path`. */
  readFile(path: string): Promise<Uint8Array>;
  /** The names in the folder `path`. */
  readDir(path: string): Promise<string[]>;
  /** Creates the folder `path` and any missing parents (nothing when it exists). */
  mkdir(path: string): Promise<void>;
  /** Renames `from` to `to`, replacing `to`. */
  rename(from: string, to: string): Promise<void>;
  /** Removes the file `path`. */
  remove(path: string): Promise<void>;
  /** Whether `path` exists. */
  exists(path: string): Promise<boolean>;
  /** Makes the folder's entries (creations, renames, removals) durable. */
  syncFolder(path: string): Promise<void>;
}

class RealSegmentFile implements SegmentFile {
  readonly #file: Deno.FsFile;
  /** The last positioned read or write queued (settled: it never rejects). */
  #queue: Promise<void> = Promise.resolve();
  /** Positioned reads and writes queued or under way (each seeks, then reads or writes). */
  #positioned = 0;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Runs `call` after every positioned call before it: one seek-and-transfer at a time. */
  #inTurn<T>(call: () => Promise<T>): Promise<T> {
    this.#positioned++;
    const run = this.#queue.then(call).finally(() => this.#positioned--);
    this.#queue = run.then(() => {}, () => {});
    return run;
  }

  read(into: Uint8Array, offset: number): Promise<number> {
    return this.#inTurn(async () => {
      await this.#file.seek(offset, Deno.SeekMode.Start);
      let at = 0;
      while (at < into.length) {
        const got = await this.#file.read(into.subarray(at));
        if (got === null) break;
        at += got;
      }
      return at;
    });
  }

  writeSync(bytes: Uint8Array, offset: number): void {
    if (this.#positioned > 0) {
      throw new Error(
        `SegmentFile invariant: a writeSync while ${this.#positioned} read(s) or write(s) of ` +
          `the same file are under way would move their position; await them first`,
      );
    }
    this.#file.seekSync(offset, Deno.SeekMode.Start);
    let at = 0;
    while (at < bytes.length) at += this.#file.writeSync(bytes.subarray(at));
  }

  write(bytes: Uint8Array, offset: number): Promise<void> {
    return this.#inTurn(async () => {
      await this.#file.seek(offset, Deno.SeekMode.Start);
      let at = 0;
      while (at < bytes.length) at += await this.#file.write(bytes.subarray(at));
    });
  }

  syncData(): Promise<void> {
    return this.#file.syncData();
  }

  sync(): Promise<void> {
    return this.#file.sync();
  }

  tryLock(): Promise<boolean> {
    return this.#file.tryLock(true);
  }

  close(): void {
    this.#file.close();
  }
}

class RealSegmentFs implements SegmentFs {
  async open(path: string, options: SegmentOpenOptions): Promise<SegmentFile> {
    return new RealSegmentFile(await Deno.open(path, options));
  }

  readFile(path: string): Promise<Uint8Array> {
    return Deno.readFile(path);
  }

  async readDir(path: string): Promise<string[]> {
    const names: string[] = [];
    for await (const e of Deno.readDir(path)) names.push(e.name);
    return names;
  }

  mkdir(path: string): Promise<void> {
    return Deno.mkdir(path, { recursive: true });
  }

  rename(from: string, to: string): Promise<void> {
    return Deno.rename(from, to);
  }

  remove(path: string): Promise<void> {
    return Deno.remove(path);
  }

  async exists(path: string): Promise<boolean> {
    try {
      await Deno.stat(path);
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  async syncFolder(path: string): Promise<void> {
    const folder = await Deno.open(path, { read: true });
    try {
      await folder.sync();
    } finally {
      folder.close();
    }
  }
}

/**
 * The real disk, through `Deno.*`.
 *
 * @example
 * ```ts
 * import { realSegmentFs } from "@distkit/distkit/raft";
 *
 * await realSegmentFs.exists("/definitely/not/here"); // false
 * ```
 */
export const realSegmentFs: SegmentFs = new RealSegmentFs();

/** The folder holding `path` ("." for a bare name). */
export function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : trimmed.slice(0, slash);
}

/** Zeros written per write while a segment is filled ahead of need. */
const FILL_BYTES = 1024 * 1024;

/**
 * Writes zeros over [from, to) of `file`, at most 1 MiB a write.
 *
 * @example
 * ```ts ignore
 * await writeZeros(file, 0, 64 * 1024 * 1024);
 * ```
 */
export async function writeZeros(file: SegmentFile, from: number, to: number): Promise<void> {
  const zeros = new Uint8Array(Math.min(FILL_BYTES, to - from));
  for (let at = from; at < to; at += zeros.length) {
    await file.write(zeros.subarray(0, Math.min(zeros.length, to - at)), at);
  }
}

/**
 * Makes `path` a zero-filled file of `bytes`: written under a temporary
 * name, synced, renamed in, and its folder `dir` synced.
 *
 * @example
 * ```ts ignore
 * await makeZeroedFile(fs, `${dir}/0000000000000002.seg`, { dir, bytes: 64 << 20 });
 * ```
 */
export async function makeZeroedFile(
  fs: SegmentFs,
  path: string,
  options: { dir: string; bytes: number },
): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await fs.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeZeros(file, 0, options.bytes);
    await file.sync();
  } finally {
    file.close();
  }
  await fs.rename(tmp, path);
  await fs.syncFolder(options.dir);
}
