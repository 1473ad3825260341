/**
 * A point-in-time view of a state store, streamed in pages without
 * holding the state in memory: copy-on-write tied to the stream's cursor.
 * While a view is open, the first change to a row the stream has not
 * reached yet also writes the row as it was at the view's point (see
 * `state_store.ts`), so each read of the stream merges the live rows with
 * those copies and sees the state at that point.
 *
 * @module
 */
import type { StateValue } from "./state_value.ts";
import { compareKeyStrings, keyString } from "./kv_key.ts";
import { ABSENT, type AppliedPoint, type StateLayout, type Table, TABLES } from "./state_layout.ts";
import { StateInvariantError } from "./errors.ts";

/**
 * One row of a state stream: its table (`"d"` data, `"s"` sessions), key
 * and value (a session's value is its encoded bytes).
 *
 * @example
 * ```ts
 * import type { StateRow } from "@distkit/distkit/store";
 *
 * const row: StateRow = ["d", "x", "1"];
 * ```
 */
export type StateRow = [table: "d" | "s", key: string, value: StateValue];

/**
 * A page of a state stream. Pages are numbered from 0; the last carries
 * the number of rows and their digest, so a receiver can tell a complete
 * stream from a cut one.
 *
 * @example
 * ```ts
 * import type { StatePage } from "@distkit/distkit/store";
 *
 * const page: StatePage = {
 *   seq: 0,
 *   point: { index: 5, term: 1 },
 *   rows: [],
 *   last: { count: 0, digest: 0x811c9dc5 },
 * };
 * ```
 */
export interface StatePage {
  /** The page's number, from 0. */
  seq: number;
  /** The applied point the stream's state reflects (the same on every page). */
  point: AppliedPoint;
  /** Rows, in the store's order. */
  rows: StateRow[];
  /** On the last page only: how many rows the stream held, and their digest (see `digestRow`). */
  last?: { count: number; digest: number };
}

/**
 * Options of {@linkcode StateView.pages}.
 *
 * @example
 * ```ts
 * import type { StatePagesOptions } from "@distkit/distkit/store";
 *
 * const options: StatePagesOptions = { pageBytes: 64 * 1024 };
 * ```
 */
export interface StatePagesOptions {
  /** About how many bytes of keys and values a page holds (at least one row). Default 256 KiB. */
  pageBytes?: number;
  /** Rows read from the database at once (at most 1,000). Default 500. */
  rowsPerRead?: number;
}

/** What the store and a view share about the view. */
export interface ViewState {
  id: number;
  gen: number;
  point: AppliedPoint;
  /** Where the stream is: rows at or before this position are streamed (see `position`). */
  cursor: string;
  /** Rows (table + key) copied since the view opened. */
  shadowed: Set<string>;
  open: boolean;
}

/** A row's place in a stream, comparable with `<`. */
export function position(table: Table, key: string): string {
  return keyString([table, key]);
}

/** Past every row of `table`. */
function tableEnd(table: Table): string {
  return keyString([table]) + "\xff";
}

/** The digest of an empty stream (FNV-1a's offset basis). */
export const EMPTY_DIGEST = 0x811c9dc5;
const encoder = new TextEncoder();

/**
 * Adds a row to a stream's digest (32-bit FNV-1a over its table, key and
 * value, each tagged and length-prefixed).
 *
 * @example
 * ```ts
 * import { digestRow, EMPTY_DIGEST } from "./state_view.ts";
 *
 * digestRow(EMPTY_DIGEST, ["d", "x", "1"]) !== digestRow(EMPTY_DIGEST, ["d", "x", "2"]); // true
 * ```
 */
export function digestRow(digest: number, row: StateRow): number {
  const [table, key, value] = row;
  // Per row on both sides of a stream: no closures, no allocation for short strings.
  let h = fnvByte(digest, table.charCodeAt(0));
  let bytes = utf8(key);
  h = fnvBytes(fnvLength(h, bytes.length), bytes);
  h = fnvByte(h, typeof value === "string" ? 1 : 2);
  bytes = typeof value === "string" ? utf8(value) : value;
  return fnvBytes(fnvLength(h, bytes.length), bytes);
}

/** Reused by {@linkcode utf8} for strings up to a third of its size. */
const scratch = new Uint8Array(16 * 1024);

/** The UTF-8 bytes of `s`: a view of `scratch` (valid until the next call) when it fits. */
function utf8(s: string): Uint8Array {
  if (s.length * 3 > scratch.length) return encoder.encode(s);
  return scratch.subarray(0, encoder.encodeInto(s, scratch).written);
}

function fnvByte(h: number, b: number): number {
  return Math.imul(h ^ b, 0x01000193) >>> 0;
}

function fnvLength(h: number, n: number): number {
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ ((n >>> (8 * i)) & 0xff), 0x01000193) >>> 0;
  return h;
}

function fnvBytes(h: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h;
}

/**
 * A view of a state store at one applied point (from `StateStore.view`),
 * streamed once with {@linkcode StateView.pages}; writes go on meanwhile.
 * Close it when done: its copies are garbage then.
 *
 * @example
 * ```ts
 * import { SimKv, StateStore } from "@distkit/distkit/store";
 *
 * const store = await StateStore.open(new SimKv());
 * const batch = store.batch();
 * batch.put("x", "1");
 * batch.endEntry({ index: 1, term: 1 });
 * await batch.commit();
 * const view = await store.view();
 * let rows = 0;
 * for await (const page of view.pages()) rows += page.rows.length;
 * view.close();
 * rows; // 1
 * ```
 */
export interface StateView {
  /** The applied point of the view's state. */
  readonly point: AppliedPoint;
  /**
   * The view's state in pages, in the store's order: data rows, then
   * session rows. A view streams once.
   *
   * @throws {Error} when called a second time, or after `close`.
   */
  pages(options?: StatePagesOptions): AsyncGenerator<StatePage>;
  /** Closes the view: its copies become garbage. */
  close(): void;
}

/** The {@linkcode StateView} a store hands out. */
export class View implements StateView {
  readonly #layout: StateLayout;
  readonly #state: ViewState;
  readonly #onClose: (state: ViewState) => void;
  #started = false;

  /**
   * Creates a view (the store does).
   *
   * @param layout The store's layout.
   * @param options The view's shared state, and what closing it does.
   */
  constructor(
    layout: StateLayout,
    options: { state: ViewState; onClose: (state: ViewState) => void },
  ) {
    this.#layout = layout;
    this.#state = options.state;
    this.#onClose = options.onClose;
  }

  /** The applied point of the view's state. */
  get point(): AppliedPoint {
    return structuredClone(this.#state.point);
  }

  /** Closes the view: its copies become garbage. */
  close(): void {
    if (!this.#state.open) return;
    this.#state.open = false;
    this.#onClose(this.#state);
  }

  /**
   * The view's state in pages, in the store's order: data rows, then
   * session rows. A view streams once.
   *
   * @throws {Error} when called a second time, or after `close`.
   */
  async *pages(options: StatePagesOptions = {}): AsyncGenerator<StatePage> {
    if (this.#started) throw new Error("a state view streams once; open another view");
    if (!this.#state.open) throw new Error("the state view is closed; open another view");
    this.#started = true;
    const pageBytes = options.pageBytes ?? 256 * 1024;
    const perRead = Math.min(options.rowsPerRead ?? 500, 1000);
    const point = this.point;
    let seq = 0;
    let rows: StateRow[] = [];
    let bytes = 0;
    let count = 0;
    let digest = EMPTY_DIGEST;
    for (const table of TABLES) {
      let after: string | undefined;
      for (;;) {
        this.#checkOpen();
        const read = await this.#read(table, after, perRead);
        const values = await this.#layout.decodeValues(
          read.rows.map(([key, row]) => [
            row,
            `${table === "d" ? "data" : "session"} row ${JSON.stringify(key)}`,
          ]),
          this.#state.gen,
        );
        for (const [i, [key]] of read.rows.entries()) {
          const value = values[i];
          const out: StateRow = [table, key, value];
          rows.push(out);
          count++;
          digest = digestRow(digest, out);
          bytes += key.length + (typeof value === "string" ? value.length : value.byteLength);
          if (bytes >= pageBytes) {
            yield { seq: seq++, point, rows };
            rows = [];
            bytes = 0;
          }
        }
        // Only now are the rows up to here streamed: changes before this copied them.
        this.#state.cursor = read.boundary === undefined
          ? tableEnd(table)
          : position(table, read.boundary);
        if (read.boundary === undefined) break;
        after = read.boundary;
      }
    }
    yield { seq, point, rows, last: { count, digest } };
  }

  #checkOpen(): void {
    if (!this.#state.open) throw new Error("the state view was closed while it streamed");
  }

  /**
   * The rows of `table` after `after`, as of the view's point: a read of
   * live rows, then the copies up to the last of them (the end of the table
   * when the read reached it), the copies winning.
   */
  async #read(
    table: Table,
    after: string | undefined,
    limit: number,
  ): Promise<{ rows: [string, Uint8Array][]; boundary: string | undefined }> {
    const { gen, id } = this.#state;
    const layout = this.#layout;
    const live: [string, Uint8Array][] = [];
    const selector = (prefix: Deno.KvKey): Deno.KvListSelector =>
      after === undefined ? { prefix } : { prefix, start: [...prefix, after + "\0"] };
    const livePrefix = layout.key(gen, table);
    for await (
      const e of layout.kv.list<Uint8Array>(selector(livePrefix), { limit, batchSize: limit })
    ) {
      live.push([e.key[e.key.length - 1] as string, e.value]);
    }
    const boundary = live.length < limit ? undefined : live[live.length - 1][0];
    // Keys of one table compare as strings by code point (see `compareKeyStrings`).
    const copies = new Map<string, Uint8Array>();
    for await (
      const e of layout.kv.list<Uint8Array>(selector(layout.key(gen, "v", id, table)))
    ) {
      const key = e.key[e.key.length - 1] as string;
      if (boundary !== undefined && compareKeyStrings(key, boundary) > 0) break;
      copies.set(key, e.value);
    }
    // Merge in key order: live rows and copies each come sorted (none copied: the live rows).
    let rows: [string, Uint8Array][] = live;
    if (copies.size > 0) {
      rows = [];
      const copied = [...copies.keys()];
      let c = 0;
      const takeCopy = (key: string) => {
        const row = copies.get(key)!;
        if (layout.kind(row, `the copy of ${JSON.stringify(key)}`) !== ABSENT) {
          rows.push([key, row]);
        }
      };
      for (const [key, row] of live) {
        while (c < copied.length && compareKeyStrings(copied[c], key) < 0) takeCopy(copied[c++]);
        if (c < copied.length && copied[c] === key) takeCopy(copied[c++]);
        else rows.push([key, row]);
      }
      while (c < copied.length) takeCopy(copied[c++]);
    }
    for (let i = 1; i < rows.length; i++) {
      if (!(compareKeyStrings(rows[i - 1][0], rows[i][0]) < 0)) {
        throw new StateInvariantError(`a view's rows are out of order at ${rows[i][0]}`);
      }
    }
    return { rows, boundary };
  }
}
