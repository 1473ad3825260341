/**
 * How a {@linkcode StateStore} lays its state out in Deno KV, under a
 * prefix P (default `["state"]`):
 *
 * - `P + ["current"]`: `{ format, gen, applied, nextPart }`, checksummed: the
 *   generation in use, the applied point it holds, the next id for parts;
 * - `P + [gen, "d", key]`: a data row (a value, or a pointer to its parts);
 * - `P + [gen, "s", client]`: a session (dedup) row, the same way;
 * - `P + [gen, "p", id, n]`: part n of a value over one Deno KV value,
 *   written ahead of the commit that points a row at it; or of a value of
 *   up to 4 KiB whose row would spill out of its SQLite cell, cut into
 *   cell-sized parts written in that commit (`CELL_BYTES`);
 * - `P + [gen, "g", id]`: parts no row points to any more, to delete;
 * - `P + [gen, "v", view, table, key]`: a row as it was when a view was
 *   opened, copied on the first change to it while the view streams;
 * - `P + [gen, "r", id, n]`: the mutations of one entry too large for one
 *   commit, written ahead; `current.redo` points at them until all are in;
 * - `P + [gen, "l", segment, key]`: the data rows that keep their value in
 *   segment `segment` of the Raft log (`state_logged.ts`), set and deleted
 *   in the commits that point the row there and away.
 *
 * A row is a CRC-32 of the rest, one byte of kind, then the value's bytes
 * (inline) or a pointer: part id, part count, size and CRC-32 of the value;
 * or where a log entry's record carrying the value lies, its size and CRC-32.
 * `current` and session rows are encoded with the store's codec.
 *
 * @module
 */
import type { StateValue } from "./state_value.ts";
import type { Codec } from "../net/codec.ts";
import { crc32, decodeUtf8, utf8Length } from "../net/bytes.ts";
import { StorageCorruptionError } from "./storage_errors.ts";
import type { KvLike } from "./kv_like.ts";
import { encodedKeyLength, encodeKey } from "./kv_key.ts";
import {
  COMMIT_BYTES,
  COMMIT_MUTATIONS,
  MAX_LIST_BATCH,
  MAX_MUTATIONS,
  MAX_READ_RANGES,
  MAX_WRITE_KEY_BYTES,
  type Mutation,
  mutationCost,
  PART_BYTES,
} from "./kv_limits.ts";
import { StateInvariantError, StateLimitError } from "./errors.ts";
import type { LogLocation } from "./log_location.ts";
import {
  decodeLogged,
  encodeLogged,
  LOGGED_BODY,
  type LoggedPointer,
  type LoggedValues,
  readLogged,
} from "./state_logged.ts";

/**
 * The layout's version, in `current`, as this distkit writes it. 2: rows
 * may point into the Raft log (values in the log); a distkit that knows
 * only 1 refuses such a state instead of opening it and compacting away
 * the log segments its rows point into. A state in format 1 is read as
 * ever, and written as 2 from its next commit.
 */
export const STATE_FORMAT = 2;
/** Every format this distkit reads. */
const KNOWN_FORMATS: readonly number[] = [1, 2];
/** Key bytes one commit writes, under Deno KV's 80 KiB. */
export const COMMIT_KEY_BYTES = 64 * 1024;
/** The two tables of rows, in the order a view streams them. */
export type Table = "d" | "s";
export const TABLES: readonly Table[] = ["d", "s"];

/**
 * The point of the log a state reflects: the last entry applied, its term,
 * and what the service keeps with it (Raft's membership).
 *
 * @example
 * ```ts
 * import type { AppliedPoint } from "@distkit/distkit/store";
 *
 * const point: AppliedPoint = { index: 12, term: 3 };
 * ```
 */
export interface AppliedPoint {
  /** The index of the last entry applied (0: none). */
  index: number;
  /** Its term. */
  term: number;
  /** The membership as of that entry (opaque to the store). */
  membership?: unknown;
  /** The index of the entry that set the membership. */
  membershipIndex?: number;
}

/**
 * A copy of `point` the caller cannot change: a plain copy unless it holds
 * a membership (a `structuredClone` per entry was a measured cost).
 *
 * @example
 * ```ts
 * import { copyPoint } from "./state_layout.ts";
 *
 * copyPoint({ index: 3, term: 1 }); // { index: 3, term: 1 }
 * ```
 */
export function copyPoint(point: AppliedPoint): AppliedPoint {
  if (point.membership !== undefined) return structuredClone(point);
  const copy: AppliedPoint = { index: point.index, term: point.term };
  if (point.membershipIndex !== undefined) copy.membershipIndex = point.membershipIndex;
  return copy;
}

/** The `current` record. */
export interface Current {
  format: number;
  gen: number;
  applied: AppliedPoint;
  /** Parts of the current generation have ids below this; those at or above were never switched to. */
  nextPart: number;
  /**
   * An entry too large for one commit, applied as of this record but whose
   * rows may not all be written yet: `open` writes them again from the
   * record `[gen, "r", id, 0..chunks)` (`size` bytes, CRC-32 `crc`).
   */
  redo?: { id: number; chunks: number; size: number; crc: number };
}

const INLINE_STRING = 0;
const INLINE_BYTES = 1;
const PARTED_STRING = 2;
const PARTED_BYTES = 3;
/** In a view's copy: the key was absent when the view was opened. */
export const ABSENT = 4;
/** The value is carried by a Raft log entry: the row points at its record (`state_logged.ts`). */
const LOGGED_STRING = 5;
const LOGGED_BYTES = 6;
/** Bytes of a row before its body: CRC-32 and kind. */
const ROW_HEADER = 5;
/** Bytes of a parted row's body: part id, part count, size and CRC-32 of the value. */
const POINTER_BYTES = 20;
/** Largest value stored inline in its row. */
export const INLINE_MAX = PART_BYTES;
/**
 * Bytes of a row's key and value that SQLite keeps in its b-tree page: Deno
 * KV's table is keyed by the key (an index b-tree), whose cells hold at most
 * 1,002 bytes of payload at its 4 KiB pages, less the record's header and
 * Deno KV's other columns (32 here, with room to spare). A row over it spills
 * the rest into an overflow page of its own: a 1 KiB value cost 4.7 KiB of
 * file (measured), where cut into two rows it costs 1.4 KiB.
 */
export const CELL_BYTES = 1002 - 32;
/**
 * Largest value cut into cell-sized parts when its row would spill. Above
 * it, SQLite fills most of each overflow page (a value of 5 KiB spills into
 * one full page), so the value stays inline, one row to write and read.
 */
export const CELL_CUT_MAX = 4 * 1024;

/** What a parted row points to. */
export interface PartPointer {
  id: number;
  count: number;
  size: number;
  crc: number;
  text: boolean;
}

const encoder = new TextEncoder();

/**
 * Mutations gathered for one commit, with their totals, so no commit goes
 * over Deno KV's limits (checked again before it is committed).
 */
export class CommitPlan {
  readonly mutations: Mutation[] = [];
  bytes = 0;
  keyBytes = 0;
  /** The most mutations it holds. */
  readonly #most: number;

  /**
   * An empty plan.
   *
   * @param options `mutations`: the most it holds, at most Deno KV's
   * {@linkcode MAX_MUTATIONS} (default {@linkcode COMMIT_MUTATIONS}, which
   * leaves room for a commit's own records).
   */
  constructor(options: { mutations?: number } = {}) {
    this.#most = options.mutations ?? COMMIT_MUTATIONS;
    if (!(this.#most >= 1 && this.#most <= MAX_MUTATIONS)) {
      throw new StateInvariantError(`a commit plan of ${this.#most} mutations is over the limit`);
    }
  }

  /** The totals with `more` added, and whether they fit. */
  fits(more: { mutations: number; bytes: number; keyBytes: number }): boolean {
    return this.mutations.length + more.mutations <= this.#most &&
      this.bytes + more.bytes <= COMMIT_BYTES && this.keyBytes + more.keyBytes <= COMMIT_KEY_BYTES;
  }

  /** Adds `m` (its cost given when known); returns its position. */
  add(m: Mutation, cost: MutationCost = costOf(m)): number {
    this.mutations.push(m);
    this.#costs.push(cost);
    this.bytes += cost.bytes;
    this.keyBytes += cost.keyBytes;
    return this.mutations.length - 1;
  }

  /** What the mutation at `at` costs. */
  costAt(at: number): MutationCost {
    return this.#costs[at];
  }

  /**
   * Replaces the mutation at `at` with `m`, of the same key: a later write
   * of a row in the same commit, which is all the commit needs to store.
   */
  replace(at: number, m: Mutation, cost: MutationCost = costOf(m)): void {
    const old = this.#costs[at];
    invariantSameKey(this.mutations[at], m);
    this.mutations[at] = m;
    this.#costs[at] = cost;
    this.bytes += cost.bytes - old.bytes;
    this.keyBytes += cost.keyBytes - old.keyBytes;
  }

  readonly #costs: MutationCost[] = [];
}

/** What one mutation costs a commit (see {@linkcode costOf}). */
export interface MutationCost {
  mutations: number;
  bytes: number;
  keyBytes: number;
}

function invariantSameKey(a: Mutation, b: Mutation): void {
  if (a.key.length !== b.key.length || a.key.some((part, i) => part !== b.key[i])) {
    throw new StateInvariantError("a commit's mutation was replaced by one of another key");
  }
}

/** What a mutation costs a commit. */
export function costOf(m: Mutation): MutationCost {
  const key = encodedKeyLength(m.key);
  const cost = mutationCost(key, m.type === "set" ? m.value.length : undefined);
  return { mutations: 1, ...cost };
}

/** Keys, rows and reads of one store. */
export class StateLayout {
  readonly kv: KvLike;
  readonly where: string;
  readonly prefix: Deno.KvKeyPart[];
  readonly codec: Codec;
  /** Where rows that keep their value in the Raft log read it (`StateStore.useLog`). */
  logValues: LoggedValues | undefined;
  /** Encoded bytes of the longest key form, less the user key. */
  readonly #overhead: number;
  /** Encoded bytes of a part's key. */
  readonly #partBytes: number;

  constructor(kv: KvLike, options: { where: string; prefix: Deno.KvKeyPart[]; codec: Codec }) {
    this.kv = kv;
    this.codec = options.codec;
    this.where = options.where;
    this.prefix = options.prefix;
    this.#overhead = encodeKey([...this.prefix, 2 ** 40, "v", 2 ** 40, "d", ""]).length;
    this.#partBytes = encodeKey([...this.prefix, 2 ** 40, "p", 2 ** 40, 2 ** 40]).length;
  }

  key(...parts: Deno.KvKeyPart[]): Deno.KvKey {
    return [...this.prefix, ...parts];
  }

  /** Refuses a key its longest stored form (a view's copy) cannot hold. */
  checkKey(table: Table, key: string): void {
    if (typeof key !== "string") throw new TypeError(`a ${tableName(table)} key must be a string`);
    const size = this.#overhead + encodedKeyLength([key]) - 2;
    if (size > MAX_WRITE_KEY_BYTES) {
      throw new StateLimitError(
        `the ${tableName(table)} key ${JSON.stringify(key.slice(0, 40))}… takes ${size} bytes ` +
          `stored, over Deno KV's ${MAX_WRITE_KEY_BYTES}`,
      );
    }
  }

  encodeCurrent(current: Current): Uint8Array {
    return withCrc(INLINE_BYTES, this.codec.encode(current));
  }

  decodeCurrent(bytes: unknown): Current {
    const body = this.#checked(bytes, "the current record");
    let c: Current;
    try {
      c = this.codec.decode(body) as Current;
    } catch {
      throw new StorageCorruptionError(this.where, "the current record cannot be decoded");
    }
    if (!KNOWN_FORMATS.includes(c?.format)) {
      throw new StorageCorruptionError(
        this.where,
        `its state is in format ${c?.format}, which this distkit does not know (it knows ` +
          `${KNOWN_FORMATS.join(" and ")}); run the distkit that wrote it, or a newer one`,
      );
    }
    if (
      !Number.isSafeInteger(c?.gen) || !Number.isSafeInteger(c.applied?.index) ||
      !Number.isSafeInteger(c.nextPart)
    ) {
      throw new StorageCorruptionError(this.where, "the current record is malformed");
    }
    return c;
  }

  /**
   * The row for `value` stored under `key`, and the mutations of its parts
   * (under part id `id`) when it is not inline: a value over one Deno KV
   * value, written before the row (`ahead`), or a value whose row would
   * spill out of its SQLite cell, cut into cell-sized parts that may share
   * the row's commit ({@linkcode CELL_BYTES}).
   */
  encodeValue(
    value: StateValue,
    gen: number,
    id: number,
    key: Deno.KvKey,
  ): { row: Uint8Array; parts: Mutation[]; ahead: boolean } {
    const text = typeof value === "string";
    const size = text ? utf8Length(value) : value.length;
    // Cut only where it helps: the row would spill, and a pointer beside its key would not.
    const keyBytes = size <= CELL_CUT_MAX ? encodedKeyLength(key) : 0;
    const cut = size <= CELL_CUT_MAX && keyBytes + ROW_HEADER + size > CELL_BYTES &&
      keyBytes + ROW_HEADER + POINTER_BYTES <= CELL_BYTES && this.#partBytes * 2 <= CELL_BYTES;
    if (size <= INLINE_MAX && !cut) {
      // Encoded straight into the row (every row of an install goes through here).
      const row = new Uint8Array(ROW_HEADER + size);
      if (text) encoder.encodeInto(value, row.subarray(ROW_HEADER));
      else row.set(value, ROW_HEADER);
      row[4] = text ? INLINE_STRING : INLINE_BYTES;
      return { row: sealed(row), parts: [], ahead: false };
    }
    const bytes = text ? encoder.encode(value) : value;
    // Cut evenly: parts of a cut value each fit a cell beside their key.
    const most = cut ? CELL_BYTES - this.#partBytes : PART_BYTES;
    const count = Math.ceil(bytes.length / most);
    const each = cut ? Math.ceil(bytes.length / count) : PART_BYTES;
    const pointer = new Uint8Array(POINTER_BYTES);
    const view = new DataView(pointer.buffer);
    view.setFloat64(0, id);
    view.setUint32(8, count);
    view.setUint32(12, bytes.length);
    view.setUint32(16, crc32(bytes));
    const parts: Mutation[] = Array.from({ length: count }, (_, n) => ({
      type: "set",
      key: this.key(gen, "p", id, n),
      value: bytes.subarray(n * each, (n + 1) * each),
    }));
    return { row: withCrc(text ? PARTED_STRING : PARTED_BYTES, pointer), parts, ahead: !cut };
  }

  /** Whether the parts `p` points to are a cut value's (cell-sized, few). */
  isCut(p: PartPointer): boolean {
    return p.size <= CELL_CUT_MAX;
  }

  /** The row of `value`, kept in the log entry whose record lies at `at`. */
  encodeLoggedRow(value: StateValue, at: LogLocation): Uint8Array {
    return withCrc(
      typeof value === "string" ? LOGGED_STRING : LOGGED_BYTES,
      encodeLogged(value, at),
    );
  }

  /** The row an `l` (logged) listing holds: nothing but its checksum. */
  listingRow(): Uint8Array {
    return withCrc(INLINE_BYTES, new Uint8Array());
  }

  /** Where a row keeps its value in the log, or undefined when it does not. */
  logged(row: Uint8Array, what: string): LoggedPointer | undefined {
    return this.#logged(row, this.#checked(row, what), what);
  }

  /**
   * Where a row being replaced keeps its value outside itself (in the log,
   * or in parts), its checksum checked once for both (a commit asks it of
   * every row it replaces).
   */
  references(row: Uint8Array, what: string): { logged?: LoggedPointer; parts?: PartPointer } {
    const body = this.#checked(row, what);
    const logged = this.#logged(row, body, what);
    if (logged) return { logged };
    const parts = this.#pointer(row, body, what);
    return parts ? { parts } : {};
  }

  #logged(row: Uint8Array, body: Uint8Array, what: string): LoggedPointer | undefined {
    if (row[4] !== LOGGED_STRING && row[4] !== LOGGED_BYTES) return undefined;
    if (body.length !== LOGGED_BODY) {
      throw new StorageCorruptionError(this.where, `${what} is malformed`);
    }
    return decodeLogged(body, row[4] === LOGGED_STRING);
  }

  /** The row that says a key was absent (in a view's copy). */
  absentRow(): Uint8Array {
    return withCrc(ABSENT, new Uint8Array());
  }

  /** The kind of a stored row (checked). */
  kind(row: Uint8Array, what: string): number {
    this.#checked(row, what);
    return row[4];
  }

  /** The parts a row points to, or undefined when inline. */
  pointer(row: Uint8Array, what: string): PartPointer | undefined {
    return this.#pointer(row, this.#checked(row, what), what);
  }

  #pointer(row: Uint8Array, body: Uint8Array, what: string): PartPointer | undefined {
    if (row[4] !== PARTED_STRING && row[4] !== PARTED_BYTES) return undefined;
    if (body.length !== POINTER_BYTES) {
      throw new StorageCorruptionError(this.where, `${what} is malformed`);
    }
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    return {
      id: view.getFloat64(0),
      count: view.getUint32(8),
      size: view.getUint32(12),
      crc: view.getUint32(16),
      text: row[4] === PARTED_STRING,
    };
  }

  /**
   * The values of `rows` (each with what it is, for errors), as
   * {@linkcode StateLayout.decodeValue} reads them one by one, but reading
   * the parts of cut values ten keys to a read: a stream of 200k rows of
   * 1 KiB values listed each value's parts apart, and a new member's
   * catch-up took 52 s instead of 7.
   */
  async decodeValues(rows: [row: Uint8Array, what: string][], gen: number): Promise<StateValue[]> {
    const out: StateValue[] = new Array(rows.length);
    const wanted: { at: number; p: PartPointer; what: string }[] = [];
    for (const [at, [row, what]] of rows.entries()) {
      const parted = row[4] === PARTED_STRING || row[4] === PARTED_BYTES;
      const p = parted ? this.pointer(row, what) : undefined;
      if (p !== undefined && this.isCut(p) && p.count <= MAX_READ_RANGES) {
        wanted.push({ at, p, what });
      } else out[at] = await this.decodeValue(row, gen, what);
    }
    const parts = await this.#readParts(wanted.map(({ p }) => p), gen);
    for (const { at, p, what } of wanted) {
      out[at] = this.#assemble(p, parts.get(p.id) ?? [], what);
    }
    return out;
  }

  /**
   * The parts of the values `pointers` point to, by id: ids close together
   * (values written in the order they are read, as a load in key order
   * writes them) in one list each, a few keys read apiece; the rest by
   * `getMany`, ten keys to a read (a list reads a key in ~4 µs, a `getMany`
   * in 15–90, measured).
   */
  async #readParts(pointers: PartPointer[], gen: number): Promise<Map<number, unknown[]>> {
    const out = new Map<number, unknown[]>();
    const sorted = [...pointers].sort((a, b) => a.id - b.id);
    const single: Deno.KvKey[] = [];
    for (let i = 0; i < sorted.length;) {
      // A run: ids whose span is at most four times their number.
      let j = i + 1;
      while (j < sorted.length && sorted[j].id - sorted[i].id < 4 * (j - i + 1)) j++;
      const run = sorted.slice(i, j);
      i = j;
      if (run.length < 4) {
        for (const p of run) {
          out.set(p.id, []);
          for (let n = 0; n < p.count; n++) single.push(this.key(gen, "p", p.id, n));
        }
        continue;
      }
      const ids = new Set(run.map((p) => p.id));
      for (const p of run) out.set(p.id, []);
      const selector = {
        start: this.key(gen, "p", run[0].id),
        end: this.key(gen, "p", run[run.length - 1].id + 1),
      };
      for await (const e of this.kv.list(selector, { batchSize: MAX_LIST_BATCH })) {
        const id = e.key[e.key.length - 2] as number;
        if (ids.has(id)) out.get(id)!.push(e.value);
      }
    }
    for (let at = 0; at < single.length; at += MAX_READ_RANGES) {
      const keys = single.slice(at, at + MAX_READ_RANGES);
      const read = await this.kv.getMany(keys);
      read.forEach((e, k) => out.get(keys[k][keys[k].length - 2] as number)!.push(e.value));
    }
    return out;
  }

  /** A parted value from its parts, in order, checked against its pointer. */
  #assemble(p: PartPointer, parts: unknown[], what: string): StateValue {
    const bytes = new Uint8Array(p.size);
    let at = 0;
    for (const [n, value] of parts.entries()) {
      if (!(value instanceof Uint8Array)) {
        throw new StorageCorruptionError(this.where, `${what} is missing part ${n}`);
      }
      if (at + value.length > p.size) {
        throw new StorageCorruptionError(this.where, `${what} has parts beyond its size`);
      }
      bytes.set(value, at);
      at += value.length;
    }
    if (parts.length !== p.count || at !== p.size || crc32(bytes) !== p.crc) {
      throw new StorageCorruptionError(
        this.where,
        `${what} has ${parts.length} of ${p.count} parts, ${at} of ${p.size} bytes, or fails its checksum`,
      );
    }
    return p.text ? this.#text(bytes, what) : bytes;
  }

  /**
   * The value a row holds, reading its parts from generation `gen` if it has
   * some, through `kv` (default the store's; a reader passes its own
   * connection, so as not to wait behind commits: review31 F3).
   */
  async decodeValue(
    row: Uint8Array,
    gen: number,
    what: string,
    kv: KvLike = this.kv,
  ): Promise<StateValue> {
    const body = this.#checked(row, what);
    const kind = row[4];
    if (kind === INLINE_STRING || kind === INLINE_BYTES) {
      return kind === INLINE_STRING ? this.#text(body, what) : body.slice();
    }
    const inLog = this.logged(row, what);
    if (inLog) return await readLogged(inLog, this.logValues, { where: this.where, what });
    const p = this.pointer(row, what);
    if (p === undefined) throw new StorageCorruptionError(this.where, `${what} has kind ${kind}`);
    const parts: unknown[] = [];
    const listed = kv.list<Uint8Array>(
      { prefix: this.key(gen, "p", p.id) },
      { batchSize: Math.min(p.count, 10) },
    );
    for await (const { key, value } of listed) {
      if (key[key.length - 1] !== parts.length) {
        throw new StorageCorruptionError(this.where, `${what} is missing part ${parts.length}`);
      }
      parts.push(value);
    }
    return this.#assemble(p, parts, what);
  }

  /** Commits a plan, checking it is within the limits first. */
  async commit(plan: CommitPlan): Promise<void> {
    if (plan.mutations.length === 0) return;
    if (!plan.fits({ mutations: 0, bytes: 0, keyBytes: 0 })) {
      throw new StateInvariantError(
        `a commit of ${plan.mutations.length} mutations, ${plan.bytes} bytes is over the budget`,
      );
    }
    const op = this.kv.atomic();
    for (const m of plan.mutations) {
      if (m.type === "set") op.set(m.key, m.value);
      else op.delete(m.key);
    }
    const result = await op.commit();
    if (!result.ok) throw new Error(`state store ${this.where}: a commit without checks failed`);
  }

  /** Commits `mutations` in as few commits as fit. */
  async commitAll(mutations: Mutation[]): Promise<void> {
    for (const plan of plans(mutations)) await this.commit(plan);
  }

  #text(bytes: Uint8Array, what: string): string {
    const text = decodeUtf8(bytes);
    if (text === undefined) {
      throw new StorageCorruptionError(this.where, `${what} is not valid UTF-8`);
    }
    return text;
  }

  #checked(row: unknown, what: string): Uint8Array {
    if (!(row instanceof Uint8Array) || row.length < ROW_HEADER) {
      throw new StorageCorruptionError(this.where, `${what} is not a state row`);
    }
    if (new DataView(row.buffer, row.byteOffset).getUint32(0) !== crc32(row.subarray(4))) {
      throw new StorageCorruptionError(this.where, `${what} fails its checksum`);
    }
    return row.subarray(ROW_HEADER);
  }
}

/** Packs mutations into plans within the budgets, in order. */
export function plans(mutations: Mutation[]): CommitPlan[] {
  const out: CommitPlan[] = [];
  let plan = new CommitPlan();
  for (const m of mutations) {
    if (plan.mutations.length > 0 && !plan.fits(costOf(m))) {
      out.push(plan);
      plan = new CommitPlan();
    }
    plan.add(m);
  }
  if (plan.mutations.length > 0) out.push(plan);
  return out;
}

function tableName(table: Table): string {
  return table === "d" ? "data" : "session";
}

function withCrc(kind: number, body: Uint8Array): Uint8Array {
  const row = new Uint8Array(ROW_HEADER + body.length);
  row[4] = kind;
  row.set(body, ROW_HEADER);
  return sealed(row);
}

/** `row` with the CRC-32 of its kind and body in its first four bytes (big-endian). */
function sealed(row: Uint8Array): Uint8Array {
  const crc = crc32(row.subarray(4));
  row[0] = crc >>> 24;
  row[1] = (crc >>> 16) & 0xff;
  row[2] = (crc >>> 8) & 0xff;
  row[3] = crc & 0xff;
  return row;
}
