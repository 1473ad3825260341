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
 * the writes of the entries not yet stored over them.
 *
 * Each row's last write is kept with its entry's index until the store's
 * applied index has reached it and no read that began before then is still
 * running: a batch may be stored in several commits, each moving the
 * applied index part of the way, while later entries are applied (and
 * answered) into the next batch, so a write is known stored only by its
 * index, never by how often the store has committed since.
 *
 * @example
 * ```ts ignore
 * const rows = new AppliedRows(store);
 * rows.add(writes, 12); // once entry 12 is applied
 * await rows.row("d", "3/x");
 * ```
 */
export class AppliedRows {
  readonly #store: StateStore;
  /** Each row's last write not known stored: table + key → value (null: deleted) and entry index. */
  #pending = new Map<string, { value: unknown; index: number }>();
  /** The store's applied index when each read in flight began (a count for each). */
  readonly #reads = new Map<number, number>();
  /** Bumped when the store's state is replaced (a read across it is read again). */
  #resets = 0;
  /** The index the last prune dropped writes through. */
  #prunedThrough = -1;

  /** Reads `store`. */
  constructor(store: StateStore) {
    this.#store = store;
  }

  /** Entry `index` was applied with these writes. */
  add(writes: EntryWrites, index: number): void {
    this.#prune();
    for (const [tk, value] of writes.done) this.#pending.set(tk, { value, index });
  }

  /** The store's state was replaced (a snapshot installed): nothing applied is kept. */
  reset(): void {
    this.#pending = new Map();
    this.#resets++;
    this.#prunedThrough = -1;
  }

  /**
   * Drops the writes the store holds for every read in flight: at or below
   * the applied index of the oldest read's start (a read sees the store as of
   * then or later), or of now.
   */
  #prune(): void {
    let stored = this.#store.applied.index;
    for (const start of this.#reads.keys()) stored = Math.min(stored, start);
    // Once per commit of the store, not per entry applied (the apply path runs this each entry).
    if (stored <= this.#prunedThrough) return;
    this.#prunedThrough = stored;
    for (const [tk, { index }] of this.#pending) if (index <= stored) this.#pending.delete(tk);
  }

  /**
   * Runs `read` of the store, the writes it may miss kept meanwhile; again
   * across a reset. Also answers the store's applied index when it began:
   * the store it read holds every write at or below it.
   */
  async #reading<T>(read: () => Promise<T>): Promise<{ value: T; start: number }> {
    for (;;) {
      const resets = this.#resets;
      const start = this.#store.applied.index;
      this.#reads.set(start, (this.#reads.get(start) ?? 0) + 1);
      let value: T;
      try {
        value = await read();
      } finally {
        const n = this.#reads.get(start)! - 1;
        if (n === 0) this.#reads.delete(start);
        else this.#reads.set(start, n);
      }
      if (this.#resets === resets) return { value, start };
    }
  }

  /** A row as of the entries applied (null when absent). */
  async row(table: Table, key: string): Promise<unknown> {
    const tk = table + key;
    const { value, start } = await this.#reading(() =>
      table === "d" ? this.#store.get(key) : this.#store.session(key)
    );
    // Written by an entry past what the store held when the read began: that value is the one
    // (the row's last write). At or below it, the store has it, or a snapshot installed since
    // that replaced it.
    const pending = this.#pending.get(tk);
    return pending !== undefined && pending.index > start ? pending.value : value ?? null;
  }

  /**
   * The rows of `table` whose keys start with `prefix` (given without it),
   * after `after`, in the store's order (UTF-8), as of the entries applied:
   * the committed range, read a slice at a time, each merged with what the
   * entries not known stored wrote to that slice.
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
      const { value: rows, start } = await this.#reading(() =>
        this.#store.list(prefix, { after: cursor, limit, sessions: table === "s" })
      );
      const end = rows.length < limit ? undefined : rows[rows.length - 1][0];
      limit = Math.min(limit * 4, MAX_READ_ROWS);
      const slice = new Map(rows);
      for (const [key, value] of this.#pendingUnder(table, prefix, start)) {
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

  /** What the entries past `start` (not in the store read then) wrote to `table` under `prefix`. */
  #pendingUnder(table: Table, prefix: string, start: number): Map<string, unknown> {
    const out = new Map<string, unknown>();
    for (const [tk, { value, index }] of this.#pending) {
      if (index > start && tk[0] === table && tk.startsWith(prefix, 1)) out.set(tk.slice(1), value);
    }
    return out;
  }
}
