/**
 * The part of `Deno.Kv` our storage uses, as an interface, so the same
 * storage code runs on a real database and on {@linkcode SimKv} in the
 * randomized simulation. `Deno.Kv` satisfies it as it is.
 *
 * @module
 */

/**
 * A list's iterator: the entries in key order, and a cursor that resumes a
 * later `list` after the last entry returned.
 *
 * @typeParam T The values' type.
 *
 * @example
 * ```ts
 * import type { KvListIteratorLike } from "@distkit/distkit/store";
 *
 * async function count(it: KvListIteratorLike<Uint8Array>): Promise<number> {
 *   let n = 0;
 *   for await (const _ of it) n++;
 *   return n;
 * }
 * ```
 */
export interface KvListIteratorLike<T> extends AsyncIterableIterator<Deno.KvEntry<T>> {
  /** Where a later `list` with `{ cursor }` resumes (after the last entry returned). */
  readonly cursor: string;
}

/**
 * An atomic commit being built: checks, writes and deletes, all applied or
 * none. A check that fails makes `commit` resolve `{ ok: false }`; a commit
 * over the database's limits rejects with a `TypeError`.
 *
 * @example
 * ```ts
 * import type { KvAtomicLike } from "@distkit/distkit/store";
 *
 * function putIfAbsent(op: KvAtomicLike, key: Deno.KvKey, value: Uint8Array): KvAtomicLike {
 *   return op.check({ key, versionstamp: null }).set(key, value);
 * }
 * ```
 */
export interface KvAtomicLike {
  /** Adds checks: the commit applies only when every key has the given versionstamp (null: absent). */
  check(...checks: Deno.AtomicCheck[]): this;
  /** Adds a write. */
  set(key: Deno.KvKey, value: unknown): this;
  /** Adds a delete. */
  delete(key: Deno.KvKey): this;
  /** Commits: all or nothing. */
  commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
}

/**
 * The subset of `Deno.Kv` that distkit's storage uses: point reads, ranged
 * lists with paging, atomic commits and close.
 *
 * @example
 * ```ts
 * import type { KvLike } from "@distkit/distkit/store";
 *
 * const kv: KvLike = await Deno.openKv(":memory:"); // Deno.Kv is a KvLike
 * await kv.atomic().set(["a"], new Uint8Array([1])).commit();
 * (await kv.get<Uint8Array>(["a"])).value; // Uint8Array [ 1 ]
 * kv.close();
 * ```
 */
export interface KvLike {
  /** The entry at `key` (value and versionstamp null when absent). */
  get<T = unknown>(key: Deno.KvKey): Promise<Deno.KvEntryMaybe<T>>;
  /** The entries at `keys` (at most 10), read at one point in time. */
  getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }>;
  /**
   * The entries a selector covers, in key order (or reversed), read a batch
   * at a time: each batch at one point in time, the whole list not.
   */
  list<T = unknown>(
    selector: Deno.KvListSelector,
    options?: Deno.KvListOptions,
  ): KvListIteratorLike<T>;
  /** A new atomic commit. */
  atomic(): KvAtomicLike;
  /** Closes the database. */
  close(): void;
}
