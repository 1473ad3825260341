/**
 * Reads of a {@linkcode StateStore} as of the entries applied: a stored
 * machine applies entries into a batch that the replica commits later (a
 * run of them at once), and what it serves meanwhile must see them. The
 * writes of the entries since the store's last commit are kept here and
 * merged over the committed rows.
 *
 * @module
 */
import { compareKeyStrings } from "../store/kv_key.ts";
import type { StateBatch } from "../store/state_batch.ts";
import type { StateStore } from "../store/state_store.ts";
import type { StateValue } from "../store/state_value.ts";

/** A table of the store: data rows, or session rows. */
export type Table = "d" | "s";

/** Rows read from the store by the first read of a range, then 4× more each, up to the most. */
const FIRST_READ_ROWS = 16;
const MAX_READ_ROWS = 512;

/**
 * The writes of one entry: staged in its batch, and kept (table + key →
 * value, null: deleted) to merge into what reads see once it is applied.
 *
 * @example
 * ```ts ignore
 * const writes = new EntryWrites(batch);
 * writes.put("d", "3/x", "1");
 * rows.add(writes); // reads see x = "1" before the batch is committed
 * ```
 */
export class EntryWrites {
  /** What the entry wrote, table + key → value (null: deleted). */
  readonly done: Map<string, unknown> = new Map();
  readonly #batch: StateBatch;

  /** Writes into `batch`. */
  constructor(batch: StateBatch) {
    this.#batch = batch;
  }

  /** Stages a row (a data row's value is a string or bytes; null deletes the row). */
  put(table: Table, key: string, value: unknown): void {
    if (table === "s") this.#batch.setSession(key, value);
    else if (value === null) this.#batch.delete(key);
    else this.#batch.put(key, value as StateValue);
    this.done.set(table + key, value);
  }

  /** A data row with the batch's staged writes. */
  get(key: string): Promise<StateValue | null> {
    return this.#batch.get(key);
  }

  /** A session row with the batch's staged writes. */
  session(key: string): Promise<unknown> {
    return this.#batch.session(key);
  }
}

/**
 * The rows of a store as of the entries applied: the committed rows, with
 * the writes of the entries since the store's last commit over them.
 *
 * Those writes are kept until an entry is applied after a commit (the
 * store's applied index moved): all of them are stored then, and they move
 * aside, kept one more turn for a read of the store that began before that
 * commit. A read across two such turns is read again.
 *
 * @example
 * ```ts ignore
 * const rows = new AppliedRows(store);
 * rows.beforeEntry(); // at each entry, before it is applied
 * rows.add(writes); // once it is
 * await rows.row("d", "3/x");
 * ```
 */
export class AppliedRows {
  readonly #store: StateStore;
  /** The writes of the entries since the store's last commit. */
  #applied = new Map<string, unknown>();
  /** What `#applied` held before it last moved here. */
  #previous = new Map<string, unknown>();
  /** The store's applied index when the last entry was applied. */
  #seen: number;
  /** Bumped when `#applied` moves. */
  #epoch = 0;

  /** Reads `store`. */
  constructor(store: StateStore) {
    this.#store = store;
    this.#seen = store.applied.index;
  }

  /** An entry is about to be applied: after a commit, what was applied before is stored. */
  beforeEntry(): void {
    if (this.#store.applied.index === this.#seen) return;
    this.#previous = this.#applied;
    this.#applied = new Map();
    this.#seen = this.#store.applied.index;
    this.#epoch++;
  }

  /** An entry was applied with these writes. */
  add(writes: EntryWrites): void {
    for (const [tk, value] of writes.done) this.#applied.set(tk, value);
  }

  /** The store's state was replaced (a snapshot installed): nothing applied is kept. */
  reset(): void {
    this.#applied = new Map();
    this.#previous = new Map();
    this.#epoch += 2;
    this.#seen = this.#store.applied.index;
  }

  /** A row as of the entries applied (null when absent). */
  async row(table: Table, key: string): Promise<unknown> {
    const tk = table + key;
    for (;;) {
      const epoch = this.#epoch;
      const value = table === "d" ? await this.#store.get(key) : await this.#store.session(key);
      if (this.#epoch - epoch > 1) continue;
      // Written by an entry since the store's last commit but one: that value is the one.
      if (this.#applied.has(tk)) return this.#applied.get(tk);
      if (this.#previous.has(tk)) return this.#previous.get(tk);
      return value ?? null;
    }
  }

  /**
   * The rows of `table` whose keys start with `prefix` (given without it),
   * after `after`, in the store's order (UTF-8), as of the entries applied:
   * the committed range, read a slice at a time, each merged with what the
   * entries since the store's last commit but one wrote to that slice.
   */
  async *rows(
    table: Table,
    prefix: string,
    after: string | undefined,
  ): AsyncGenerator<[string, unknown]> {
    let cursor = after === undefined ? undefined : prefix + after;
    // Slices grow: a small page (or a check that a range is empty) reads few rows.
    let limit = FIRST_READ_ROWS;
    for (;;) {
      const epoch = this.#epoch;
      const rows = await this.#store.list(prefix, {
        after: cursor,
        limit,
        sessions: table === "s",
      });
      if (this.#epoch - epoch > 1) continue;
      const end = rows.length < limit ? undefined : rows[rows.length - 1][0];
      limit = Math.min(limit * 4, MAX_READ_ROWS);
      const slice = new Map(rows);
      for (const [key, value] of this.#pending(table, prefix)) {
        const inSlice = (cursor === undefined || compareKeyStrings(key, cursor) > 0) &&
          (end === undefined || compareKeyStrings(key, end) <= 0);
        if (inSlice) slice.set(key, value);
      }
      const merged = [...slice].filter(([, value]) => value !== null)
        .sort((a, b) => compareKeyStrings(a[0], b[0]));
      for (const [key, value] of merged) yield [key.slice(prefix.length), value];
      if (end === undefined) return;
      cursor = end;
    }
  }

  /** What the entries since the store's last commit but one wrote to `table` under `prefix`. */
  #pending(table: Table, prefix: string): Map<string, unknown> {
    const out = new Map<string, unknown>();
    for (const map of [this.#previous, this.#applied]) {
      for (const [tk, value] of map) {
        if (tk[0] === table && tk.startsWith(prefix, 1)) out.set(tk.slice(1), value);
      }
    }
    return out;
  }
}
