/**
 * {@linkcode SimKv}: the subset of `Deno.Kv` our storage uses
 * ({@linkcode KvLike}), in memory, for tests and the randomized simulation:
 * keys in Deno KV's order, its limits with its errors, versionstamps,
 * batches of a list read one at a time (a list is not a point-in-time
 * read), and crashes: a commit is all or nothing, and a crash loses the
 * commits not yet resolved (or keeps a prefix of them, as a real disk may).
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import { delay } from "../net/async.ts";
import { keyString } from "./kv_key.ts";
import {
  MAX_CHECKS,
  MAX_LIST_BATCH,
  MAX_MUTATIONS,
  MAX_READ_KEY_BYTES,
  MAX_READ_RANGES,
  MAX_TOTAL_KEY_BYTES,
  MAX_TOTAL_MUTATION_BYTES,
  MAX_VALUE_BYTES,
  MAX_WRITE_KEY_BYTES,
  mutationCost,
} from "./kv_limits.ts";
import type { KvAtomicLike, KvLike, KvListIteratorLike } from "./kv_like.ts";

/**
 * A {@linkcode SimKv} was used after its (simulated) process crashed, or a
 * commit was in flight when it did: the commit's outcome is unknown.
 *
 * @example
 * ```ts
 * import { SimKvCrashedError } from "@distkit/distkit/store";
 *
 * new SimKvCrashedError().name; // "SimKvCrashedError"
 * ```
 */
export class SimKvCrashedError extends Error {
  /** Creates the error. */
  constructor() {
    super("the simulated database crashed; reopen it (SimKv.reopen) to read what survived");
    this.name = "SimKvCrashedError";
  }
}

/**
 * Options of {@linkcode SimKv}.
 *
 * @example
 * ```ts
 * import type { SimKvOptions } from "@distkit/distkit/store";
 *
 * const options: SimKvOptions = { commitMs: 2 };
 * ```
 */
export interface SimKvOptions {
  /** The clock commits take time on. Default: none; a commit resolves a few microtasks later. */
  clock?: Clock;
  /** Virtual milliseconds a commit takes, with a clock. Default 1. */
  commitMs?: number;
}

/**
 * What a crash keeps and loses, for {@linkcode SimKv.crash}.
 *
 * @example
 * ```ts
 * import type { SimKvCrash } from "@distkit/distkit/store";
 *
 * const crash: SimKvCrash = { keep: 1 };
 * ```
 */
export interface SimKvCrash {
  /**
   * Commits in flight that reached the disk anyway (the oldest first), though
   * none was acknowledged. Default 0.
   */
  keep?: number;
  /**
   * Resolved commits rolled back (the newest first), as SQLite drops WAL
   * frames that fail their checksum: damage beyond the storage contract, for
   * tests of its detection. At most the last 16. Default 0.
   */
  lose?: number;
}

/** A stored entry. */
interface Rec {
  ks: string;
  key: Deno.KvKey;
  value: Uint8Array;
  versionstamp: string;
}

type Mut = { ks: string; key: Deno.KvKey; value?: Uint8Array };

interface Pending {
  checks: { ks: string; versionstamp: string | null }[];
  mutations: Mut[];
  resolve: (r: Deno.KvCommitResult | Deno.KvCommitError) => void;
  reject: (e: Error) => void;
}

/** Resolved commits a disk can roll back. */
const HISTORY = 16;

/** What survives the process: the entries in key order, and the last versionstamp. */
class Disk {
  recs: Rec[] = [];
  version = 0;
  /** Per recent commit: the entries it replaced (undefined: absent), newest last. */
  undo: Map<string, Rec | undefined>[] = [];

  find(ks: string): number {
    let lo = 0;
    let hi = this.recs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.recs[mid].ks < ks) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  get(ks: string): Rec | undefined {
    const at = this.find(ks);
    return this.recs[at]?.ks === ks ? this.recs[at] : undefined;
  }
  put(ks: string, rec: Rec | undefined): void {
    const at = this.find(ks);
    const found = this.recs[at]?.ks === ks;
    if (rec === undefined) {
      if (found) this.recs.splice(at, 1);
    } else if (found) this.recs[at] = rec;
    else this.recs.splice(at, 0, rec);
  }
  /** A copy sharing nothing mutable (records are replaced, never changed in place). */
  copy(): Disk {
    const disk = new Disk();
    disk.recs = this.recs.slice();
    disk.version = this.version;
    disk.undo = this.undo.map((m) => new Map(m));
    return disk;
  }
  apply(p: Pending): Deno.KvCommitResult | Deno.KvCommitError {
    for (const c of p.checks) {
      if ((this.get(c.ks)?.versionstamp ?? null) !== c.versionstamp) return { ok: false };
    }
    this.version++;
    const versionstamp = this.version.toString(16).padStart(16, "0") + "0000";
    const undo = new Map<string, Rec | undefined>();
    for (const m of p.mutations) {
      if (!undo.has(m.ks)) undo.set(m.ks, this.get(m.ks));
      this.put(
        m.ks,
        m.value === undefined ? undefined : { ks: m.ks, key: m.key, value: m.value, versionstamp },
      );
    }
    this.undo.push(undo);
    if (this.undo.length > HISTORY) this.undo.shift();
    return { ok: true, versionstamp };
  }
  rollback(commits: number): void {
    if (commits > this.undo.length) {
      throw new RangeError(`a SimKv can lose at most its last ${this.undo.length} commits`);
    }
    for (let i = 0; i < commits; i++) {
      for (const [ks, rec] of this.undo.pop()!) this.put(ks, rec);
    }
  }
}

/**
 * An in-memory {@linkcode KvLike} with Deno KV's key order, limits and
 * errors, and a crash rule: the commits a crash finds in flight are lost
 * (or a prefix of them kept, with {@linkcode SimKvCrash}); the resolved
 * ones survive. Values must be `Uint8Array`s (our storage encodes its own).
 *
 * @example
 * ```ts
 * import { SimKv } from "@distkit/distkit/store";
 * import assert from "node:assert/strict";
 *
 * const kv = new SimKv();
 * await kv.atomic().set(["a"], Uint8Array.of(1)).commit();
 * const pending = kv.atomic().set(["b"], Uint8Array.of(2)).commit();
 * kv.crash(); // "b" was in flight: lost
 * await assert.rejects(pending);
 * const after = kv.reopen();
 * assert.deepEqual((await after.get(["a"])).value, Uint8Array.of(1));
 * assert.equal((await after.get(["b"])).value, null);
 * ```
 */
export class SimKv implements KvLike {
  #disk = new Disk();
  readonly #options: SimKvOptions;
  #state: "open" | "closed" | "crashed" = "open";
  #pending: Pending[] = [];
  #writing = false;
  #crashCountdown: number | undefined;

  /**
   * Creates an empty database.
   *
   * @param options The clock commits take time on.
   */
  constructor(options: SimKvOptions = {}) {
    this.#options = options;
  }

  /** Commits resolved on this database (across reopens). */
  get commits(): number {
    return this.#disk.version;
  }

  /** Commits in flight. */
  get pendingCommits(): number {
    return this.#pending.length;
  }

  /**
   * Arranges a crash after `commits` more commits have resolved: the next
   * one is in flight when it happens (so lost). For tests that crash at
   * every commit point.
   */
  crashAfter(commits: number): void {
    this.#crashCountdown = commits;
  }

  /**
   * The process crashes: commits in flight are lost (but `keep` of them,
   * the oldest), and this handle is dead: everything rejects with
   * {@linkcode SimKvCrashedError}. {@linkcode SimKv.reopen} reads what
   * survived.
   */
  crash(options: SimKvCrash = {}): void {
    if (this.#state === "crashed") return;
    this.#state = "crashed";
    const pending = this.#pending;
    this.#pending = [];
    const keep = Math.min(options.keep ?? 0, pending.length);
    for (const p of pending.slice(0, keep)) this.#disk.apply(p);
    if (options.lose) this.#disk.rollback(options.lose);
    for (const p of pending) p.reject(new SimKvCrashedError());
  }

  /** A new handle on what this database holds; this one must be closed or crashed. */
  reopen(): SimKv {
    if (this.#state === "open") {
      throw new Error("SimKv.reopen: close or crash this handle first (one process per file)");
    }
    const kv = new SimKv(this.#options);
    kv.#disk = this.#disk;
    return kv;
  }

  /**
   * A new database holding what this one holds now (its commits in flight
   * aside), sharing nothing with it: to try something on the state as it
   * is (a start, say) without touching it. This handle goes on as it was.
   */
  copy(): SimKv {
    const kv = new SimKv(this.#options);
    kv.#disk = this.#disk.copy();
    return kv;
  }

  async get<T = unknown>(key: Deno.KvKey): Promise<Deno.KvEntryMaybe<T>> {
    const [entry] = await this.getMany<[T]>([key]);
    return entry;
  }

  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
    if (keys.length > MAX_READ_RANGES) {
      throw new TypeError(`Too many ranges (max ${MAX_READ_RANGES})`);
    }
    const strings = keys.map((k) => readKey(k as Deno.KvKey));
    await this.#turn();
    return strings.map((ks, i) => {
      const rec = this.#disk.get(ks);
      return rec === undefined
        ? { key: keys[i], value: null, versionstamp: null }
        : { key: rec.key, value: rec.value.slice(), versionstamp: rec.versionstamp };
    }) as { [K in keyof T]: Deno.KvEntryMaybe<T[K]> };
  }

  list<T = unknown>(
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions = {},
  ): KvListIteratorLike<T> {
    const read: ReadBatch = (lo, hi, n, reverse) => this.#readBatch(lo, hi, n, reverse);
    return new SimListIterator<T>(read, this.#range(selector, options.cursor), options);
  }

  atomic(): KvAtomicLike {
    return new SimAtomic((checks, mutations) => this.#enqueue(checks, mutations));
  }

  close(): void {
    if (this.#state === "open") this.#state = "closed";
  }

  /** Reads up to `n` entries of [lo, hi) (from the top when `reverse`), at one point in time. */
  async #readBatch(lo: string, hi: string, n: number, reverse: boolean): Promise<Rec[]> {
    await this.#turn();
    const recs = this.#disk.recs;
    const from = this.#disk.find(lo);
    const to = this.#disk.find(hi);
    const slice = reverse ? recs.slice(Math.max(from, to - n), to).reverse() : recs.slice(
      from,
      Math.min(to, from + n),
    );
    return slice.map((r) => ({ ...r, value: r.value.slice() }));
  }

  /** Queues a checked, valid commit; it resolves when written. */
  #enqueue(
    checks: Pending["checks"],
    mutations: Mut[],
  ): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    this.#alive();
    return new Promise((resolve, reject) => {
      this.#pending.push({ checks, mutations, resolve, reject });
      if (!this.#writing) this.#write();
    });
  }

  async #write(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#pending.length > 0 && !this.#crashed()) {
        const { clock, commitMs = 1 } = this.#options;
        if (clock) await delay(commitMs, { clock });
        else for (let i = 0; i < 3; i++) await Promise.resolve();
        if (this.#crashed() || this.#pending.length === 0) return;
        if (this.#crashCountdown === 0) {
          this.#crashCountdown = undefined;
          this.crash();
          return;
        }
        if (this.#crashCountdown !== undefined) this.#crashCountdown--;
        const p = this.#pending.shift()!;
        p.resolve(this.#disk.apply(p));
      }
    } finally {
      this.#writing = false;
    }
  }

  #crashed(): boolean {
    return this.#state === "crashed";
  }

  async #turn(): Promise<void> {
    this.#alive();
    await Promise.resolve();
    this.#alive();
  }

  #alive(): void {
    if (this.#state === "crashed") throw new SimKvCrashedError();
    if (this.#state === "closed") {
      throw new Deno.errors.BadResource("the SimKv is closed; reopen it to use it again");
    }
  }

  /** The bounds [lo, hi) of a selector, as key strings, after a cursor if given. */
  #range(selector: Deno.KvListSelector, cursor: string | undefined): Bounds {
    const s = selector as { prefix?: Deno.KvKey; start?: Deno.KvKey; end?: Deno.KvKey };
    let lo: string;
    let hi: string;
    if (s.prefix !== undefined) {
      if (s.start !== undefined && s.end !== undefined) {
        throw new TypeError(
          "Selector can not specify both 'start' and 'end' key when specifying 'prefix'",
        );
      }
      const p = readKey(s.prefix);
      lo = p + "\x00";
      hi = p + "\xff";
      if (s.start !== undefined) {
        const start = readKey(s.start);
        if (!start.startsWith(p) || start === p) {
          throw new TypeError("Start key is not in the keyspace defined by prefix");
        }
        lo = start;
      }
      if (s.end !== undefined) {
        const end = readKey(s.end);
        if (!end.startsWith(p) || end === p) {
          throw new TypeError("End key is not in the keyspace defined by prefix");
        }
        hi = end;
      }
    } else if (s.start !== undefined && s.end !== undefined) {
      lo = readKey(s.start);
      hi = readKey(s.end);
    } else {
      throw new TypeError("a list selector needs a prefix, or both start and end");
    }
    return { lo, hi, cursor: cursor === undefined ? undefined : fromCursor(cursor, lo, hi) };
  }
}

/** Reads up to `n` entries of [lo, hi) at one point in time. */
type ReadBatch = (lo: string, hi: string, n: number, reverse: boolean) => Promise<Rec[]>;
/** Queues a validated commit. */
type Enqueue = (
  checks: Pending["checks"],
  mutations: Mut[],
) => Promise<Deno.KvCommitResult | Deno.KvCommitError>;

interface Bounds {
  lo: string;
  hi: string;
  /** The key a cursor names (the list resumes after it, or before it in reverse). */
  cursor: string | undefined;
}

/** A list read a batch at a time, each batch at one point in time. */
class SimListIterator<T> implements KvListIteratorLike<T> {
  readonly #read: ReadBatch;
  #lo: string;
  #hi: string;
  readonly #reverse: boolean;
  readonly #limit: number;
  readonly #batch: number;
  #buffer: Rec[] = [];
  #returned = 0;
  #done = false;
  #last: string | undefined;

  constructor(read: ReadBatch, bounds: Bounds, options: Deno.KvListOptions) {
    this.#read = read;
    this.#lo = bounds.lo;
    this.#hi = bounds.hi;
    this.#reverse = options.reverse ?? false;
    this.#limit = options.limit ?? Infinity;
    this.#batch = options.batchSize ?? Math.min(this.#limit, 100);
    if (bounds.cursor !== undefined) this.#after(bounds.cursor);
  }

  get cursor(): string {
    if (this.#last === undefined) throw new Error("Cannot get cursor before first iteration");
    return toCursor(this.#last);
  }

  async next(): Promise<IteratorResult<Deno.KvEntry<T>, undefined>> {
    if (this.#batch > MAX_LIST_BATCH) {
      throw new TypeError(`Too many entries (max ${MAX_LIST_BATCH})`);
    }
    if (this.#buffer.length === 0 && !this.#done && this.#returned < this.#limit) {
      const n = Math.min(this.#batch, this.#limit - this.#returned);
      this.#buffer = await this.#read(this.#lo, this.#hi, n, this.#reverse);
      if (this.#buffer.length < n) this.#done = true;
      if (this.#buffer.length > 0) this.#after(this.#buffer[this.#buffer.length - 1].ks);
    }
    const rec = this.#buffer.shift();
    if (rec === undefined || this.#returned >= this.#limit) return { done: true, value: undefined };
    this.#returned++;
    this.#last = rec.ks;
    return {
      done: false,
      value: { key: rec.key, value: rec.value as T, versionstamp: rec.versionstamp },
    };
  }

  [Symbol.asyncIterator](): KvListIteratorLike<T> {
    return this;
  }

  /** Narrows the range to what comes after `ks` in the list's direction. */
  #after(ks: string): void {
    if (this.#reverse) this.#hi = ks;
    else this.#lo = ks + "\x00";
  }
}

/** An atomic commit of a {@linkcode SimKv}: validated as Deno KV does, at `commit`. */
class SimAtomic implements KvAtomicLike {
  readonly #enqueue: Enqueue;
  #checks: { key: Deno.KvKey; versionstamp: string | null }[] = [];
  #mutations: { key: Deno.KvKey; value?: unknown }[] = [];

  constructor(enqueue: Enqueue) {
    this.#enqueue = enqueue;
  }

  check(...checks: Deno.AtomicCheck[]): this {
    this.#checks.push(...checks);
    return this;
  }

  set(key: Deno.KvKey, value: unknown): this {
    this.#mutations.push({ key, value: value ?? null });
    return this;
  }

  delete(key: Deno.KvKey): this {
    this.#mutations.push({ key });
    return this;
  }

  commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    try {
      return this.#enqueue(...this.#validate());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #validate(): [Pending["checks"], Mut[]] {
    if (this.#checks.length > MAX_CHECKS) {
      throw new TypeError(`Too many checks (max ${MAX_CHECKS})`);
    }
    if (this.#mutations.length > MAX_MUTATIONS) {
      throw new TypeError(`Too many mutations (max ${MAX_MUTATIONS})`);
    }
    const checks = this.#checks.map((c) => ({ ks: readKey(c.key), versionstamp: c.versionstamp }));
    let bytes = 0;
    let keyBytes = 0;
    const mutations = this.#mutations.map((m): Mut => {
      const ks = writeKey(m.key);
      if (!("value" in m)) {
        bytes += mutationCost(ks.length).bytes;
        return { ks, key: m.key };
      }
      if (!(m.value instanceof Uint8Array)) {
        throw new TypeError("SimKv stores Uint8Array values only; encode other values first");
      }
      if (m.value.length > MAX_VALUE_BYTES) {
        throw new TypeError(`Value too large (max ${MAX_VALUE_BYTES} bytes)`);
      }
      const cost = mutationCost(ks.length, m.value.length);
      bytes += cost.bytes;
      keyBytes += cost.keyBytes;
      return { ks, key: [...m.key], value: m.value.slice() };
    });
    if (keyBytes > MAX_TOTAL_KEY_BYTES) {
      throw new TypeError(`Total key size too large (max ${MAX_TOTAL_KEY_BYTES} bytes)`);
    }
    if (bytes > MAX_TOTAL_MUTATION_BYTES) {
      throw new TypeError(`Total mutation size too large (max ${MAX_TOTAL_MUTATION_BYTES} bytes)`);
    }
    return [checks, mutations];
  }
}

function readKey(key: Deno.KvKey): string {
  const ks = keyString(key);
  if (ks.length > MAX_READ_KEY_BYTES) {
    throw new TypeError(`Key too large for read (max ${MAX_READ_KEY_BYTES} bytes)`);
  }
  return ks;
}

function writeKey(key: Deno.KvKey): string {
  if (key.length === 0) throw new TypeError("Key cannot be empty");
  const ks = keyString(key);
  if (ks.length > MAX_WRITE_KEY_BYTES) {
    throw new TypeError(`Key too large for write (max ${MAX_WRITE_KEY_BYTES} bytes)`);
  }
  return ks;
}

function toCursor(ks: string): string {
  return btoa(ks).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

function fromCursor(cursor: string, lo: string, hi: string): string {
  let ks: string;
  try {
    ks = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    throw new TypeError("invalid cursor");
  }
  if (ks + "\x00" < lo || ks >= hi) throw new TypeError("invalid cursor");
  return ks;
}
