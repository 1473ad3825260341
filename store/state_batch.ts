/**
 * {@linkcode StateBatch}: applied entries' writes, staged with their
 * applied points, then committed by the store together.
 *
 * @module
 */
import type { StateValue } from "./state_value.ts";
import { StateInvariantError } from "./errors.ts";
import { type AppliedPoint, copyPoint, type StateLayout, type Table } from "./state_layout.ts";
import type { LogLocation } from "./log_location.ts";

/** One applied entry's writes, staged: table + key → value (null: delete). */
export interface StagedEntry {
  point: AppliedPoint;
  writes: Map<string, StateValue | null>;
  /** The value the entry's log record carries, and where that record lies (see `endEntry`). */
  logged?: ValueInLog;
}

/**
 * A value an entry's record in the Raft log carries, and where the record
 * lies: a data row the entry writes with this very value keeps it there
 * (the row points at the record) instead of holding a copy.
 *
 * @example
 * ```ts
 * import type { ValueInLog } from "@distkit/distkit/store";
 *
 * const value = new Uint8Array(1 << 20);
 * const logged: ValueInLog = {
 *   value,
 *   at: { segment: 2, offset: 4096, length: (1 << 20) + 64, seed: 9, index: 12 },
 * };
 * ```
 */
export interface ValueInLog {
  /** The value, as the entry's command holds it (the same object `put` is given). */
  value: StateValue;
  /** Where the entry's record lies (`SegmentLogStorage.locate`): synced, so it survives a crash. */
  at: LogLocation;
}

/**
 * Options of {@linkcode StateBatch.endEntry}.
 *
 * @example
 * ```ts
 * import type { EndEntryOptions } from "@distkit/distkit/store";
 *
 * const options: EndEntryOptions = {};
 * ```
 */
export interface EndEntryOptions {
  /** The entry's record in the Raft log carries this value: a row written with it points there. */
  logged?: ValueInLog;
}

/**
 * What a {@linkcode StateBatch} needs of its store.
 */
export interface BatchHooks {
  layout: StateLayout;
  read: (table: Table, key: string) => Promise<StateValue | null>;
  decodeSession: (bytes: StateValue, client: string) => unknown;
  applied: () => number;
  /** The session row the store keeps the count of data rows in, if any: no batch writes it. */
  countRow: () => string | undefined;
  commit: (entries: StagedEntry[]) => Promise<void>;
}

/**
 * Applied entries' writes, staged, then committed together (from
 * `StateStore.batch`). Stage an entry's writes, close it with
 * `endEntry(point)`, repeat; then `commit`. Reads see the staged writes.
 *
 * @example
 * ```ts
 * import { SimKv, StateStore } from "@distkit/distkit/store";
 *
 * const store = await StateStore.open(new SimKv());
 * const batch = store.batch();
 * batch.put("a", "1");
 * batch.endEntry({ index: 1, term: 1 });
 * batch.delete("a");
 * batch.put("b", new Uint8Array([2]));
 * batch.endEntry({ index: 2, term: 1 });
 * await batch.get("a"); // null: staged
 * await batch.commit();
 * store.applied.index; // 2
 * ```
 */
export interface StateBatch {
  /** Stages a write of `key`. */
  put(key: string, value: StateValue): void;
  /** Stages a delete of `key`. */
  delete(key: string): void;
  /** Stages the session row of `client` (encoded with the store's codec; null: delete it). */
  setSession(client: string, row: unknown): void;
  /**
   * Closes the entry whose writes were staged since the last `endEntry`:
   * they are stored together with `applied` = `point`, or not at all. With
   * `options.logged`, a data row staged with that very value points at
   * the entry's log record instead of holding the value.
   *
   * @throws {StateInvariantError} when `point` is not after the last one.
   */
  endEntry(point: AppliedPoint, options?: EndEntryOptions): void;
  /** The value of `key` with the staged writes. */
  get(key: string): Promise<StateValue | null>;
  /** The session row of `client` with the staged writes. */
  session(client: string): Promise<unknown>;
  /**
   * Commits the entries (see `StateStore`): resolved, all are
   * stored; after a crash, a prefix of them.
   *
   * @throws {Error} when writes are staged after the last `endEntry`.
   */
  commit(): Promise<void>;
}

/** The {@linkcode StateBatch} a store hands out. */
export class Batch implements StateBatch {
  readonly #hooks: BatchHooks;
  #entries: StagedEntry[] = [];
  #open = new Map<string, StateValue | null>();
  /** Each row's last write in the closed entries: a read finds it at once, not entry by entry. */
  #latest = new Map<string, StateValue | null>();
  #committed = false;

  /**
   * Creates a batch (the store does).
   *
   * @param hooks What the batch needs of its store.
   */
  constructor(hooks: BatchHooks) {
    this.#hooks = hooks;
  }

  /** Stages a write of `key`. */
  put(key: string, value: StateValue): void {
    if (typeof value !== "string" && !(value instanceof Uint8Array)) {
      throw new TypeError(`the value of ${key} must be a string or a Uint8Array`);
    }
    this.#stage("d", key, value);
  }

  /** Stages a delete of `key`. */
  delete(key: string): void {
    this.#stage("d", key, null);
  }

  /** Stages the session row of `client` (encoded with the store's codec; null: delete it). */
  setSession(client: string, row: unknown): void {
    if (client === this.#hooks.countRow()) {
      throw new StateInvariantError(
        `session row ${client} holds the store's count of rows (keepCount): the store writes it`,
      );
    }
    this.#stage("s", client, row === null ? null : this.#hooks.layout.codec.encode(row));
  }

  /**
   * Closes the entry whose writes were staged since the last `endEntry`:
   * they are stored together with `applied` = `point`, or not at all.
   *
   * @throws {StateInvariantError} when `point` is not after the last one.
   */
  endEntry(point: AppliedPoint, options: EndEntryOptions = {}): void {
    this.#checkOpen();
    if (!Number.isSafeInteger(point?.index) || !Number.isSafeInteger(point.term)) {
      throw new TypeError("an applied point needs an integer index and term");
    }
    const last = this.#entries.at(-1)?.point.index ?? this.#hooks.applied();
    if (!(point.index > last)) {
      throw new StateInvariantError(
        `entry ${point.index} after ${last}: applied never decreases`,
      );
    }
    const entry: StagedEntry = { point: copyPoint(point), writes: this.#open };
    if (options.logged) {
      entry.logged = { value: options.logged.value, at: { ...options.logged.at } };
    }
    this.#entries.push(entry);
    for (const [tk, value] of this.#open) this.#latest.set(tk, value);
    this.#open = new Map();
  }

  /** The value of `key` with the staged writes. */
  get(key: string): Promise<StateValue | null> {
    const staged = this.#staged("d" + key);
    return staged === undefined ? this.#hooks.read("d", key) : Promise.resolve(staged);
  }

  /** The session row of `client` with the staged writes. */
  async session(client: string): Promise<unknown> {
    const staged = this.#staged("s" + client);
    const bytes = staged === undefined ? await this.#hooks.read("s", client) : staged;
    return bytes === null ? undefined : this.#hooks.decodeSession(bytes, client);
  }

  /**
   * Commits the entries (see `StateStore`): resolved, all are
   * stored; after a crash, a prefix of them.
   *
   * @throws {Error} when writes are staged after the last `endEntry`.
   */
  commit(): Promise<void> {
    this.#checkOpen();
    if (this.#open.size > 0) {
      return Promise.reject(
        new Error(
          "writes were staged after the last endEntry; close the entry with endEntry first",
        ),
      );
    }
    this.#committed = true;
    return this.#hooks.commit(this.#entries);
  }

  #stage(table: Table, key: string, value: StateValue | null): void {
    this.#checkOpen();
    this.#hooks.layout.checkKey(table, key);
    this.#open.set(table + key, value);
  }

  #staged(tk: string): StateValue | null | undefined {
    if (this.#open.has(tk)) return this.#open.get(tk);
    return this.#latest.get(tk);
  }

  #checkOpen(): void {
    if (this.#committed) throw new Error("this batch was committed; start another");
  }
}
