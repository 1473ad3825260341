/**
 * The deduplication table of a replicated service: per client session, the
 * last write applied, a digest of it and its result, so a retried write
 * takes effect once and gets its first result back. It is part of the
 * replicated state (and of every snapshot, and of a migrating shard).
 *
 * @module
 */

/**
 * What the table says of a write.
 *
 * - `new`: not seen; apply it and {@linkcode DedupTable.record} it;
 * - `done`: applied already, with this result;
 * - `stale`: the session has since applied a later write. No result: the
 *   table keeps only each session's latest write, and nobody waits for this
 *   one (a session sends its next write only once it has this one's answer
 *   or has given up on it). Do not apply it;
 * - `conflict`: the session applied a different write under this number
 *   (two clients share an id). No result: the recorded one belongs to the
 *   other write, and handing it over would answer this write with a lie.
 *   Do not apply it; answer with an error.
 *
 * @typeParam R The recorded result of a write.
 *
 * @example
 * ```ts
 * import type { DedupVerdict } from "@distkit/distkit/rsm";
 *
 * const v: DedupVerdict<string> = { kind: "done", result: "ok" };
 * ```
 */
export type DedupVerdict<R> =
  | { kind: "new" }
  | { kind: "done"; result: R }
  | { kind: "stale" }
  | { kind: "conflict" };

/**
 * One session's entry in a {@linkcode DedupTable}.
 *
 * @example
 * ```ts
 * import type { DedupEntry } from "@distkit/distkit/rsm";
 *
 * const e: DedupEntry<boolean> = { seq: 3, digest: 0x1234, result: true };
 * ```
 *
 * @typeParam R The recorded result of the write.
 */
export interface DedupEntry<R> {
  /** The session's last applied write. */
  seq: number;
  /** Digest of that write, to tell a retry from another client reusing the number. */
  digest: number;
  /** Its result. */
  result: R;
}

/**
 * Per client session, the last write applied and its result. A
 * `Replica` keeps one for its machine by default; build on this
 * directly only when the machine keeps its own (`exactlyOnce: false`).
 *
 * @typeParam R The recorded result of a write.
 *
 * @example
 * ```ts
 * import { DedupTable } from "@distkit/distkit/rsm";
 * import assert from "node:assert/strict";
 *
 * const table = new DedupTable<string>();
 * assert.deepEqual(table.check("c1", 1, 42), { kind: "new" });
 * table.record("c1", 1, 42, "done");
 * assert.deepEqual(table.check("c1", 1, 42), { kind: "done", result: "done" });
 * ```
 */
export class DedupTable<R> {
  #sessions = new Map<string, DedupEntry<R>>();

  /** How many sessions the table knows. */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * What the table says of write `seq` of session `client`.
   *
   * @param digest A digest of the write's content (say {@linkcode digestBytes}
   * of its encoding), the same for every retry of it. A retry of the recorded
   * write carries the same digest and gets `done`; another write under the
   * same session and number (two clients sharing an id) carries another and
   * gets `conflict` instead of the first write's result. `NaN` never matches:
   * a caller that only wants to know whether the number is new passes it.
   */
  check(client: string, seq: number, digest: number): DedupVerdict<R> {
    const seen = this.#sessions.get(client);
    if (seen === undefined || seq > seen.seq) return { kind: "new" };
    if (seq < seen.seq) return { kind: "stale" };
    return digest === seen.digest ? { kind: "done", result: seen.result } : { kind: "conflict" };
  }

  /** Records that write `seq` of session `client` was applied with `result`. */
  record(client: string, seq: number, digest: number, result: R): void {
    this.#sessions.set(client, { seq, digest, result });
  }

  /** The entries, for a snapshot. */
  toJSON(): [string, DedupEntry<R>][] {
    return [...this.#sessions];
  }

  /**
   * A table restored from {@linkcode DedupTable.toJSON}.
   *
   * @param isResult Checks a stored result.
   * @throws {Error} when `entries` is not such a list.
   */
  static from<R>(entries: unknown, isResult: (r: unknown) => r is R): DedupTable<R> {
    if (!Array.isArray(entries)) throw new Error("a dedup table is a list of [client, entry]");
    for (const pair of entries) {
      const e = Array.isArray(pair) && pair.length === 2 && typeof pair[0] === "string"
        ? pair[1] as Partial<DedupEntry<unknown>>
        : undefined;
      if (
        !Number.isSafeInteger(e?.seq) || !Number.isSafeInteger(e?.digest) || !isResult(e?.result)
      ) {
        throw new Error("a dedup entry is not [client, { seq, digest, result }]");
      }
    }
    const table = new DedupTable<R>();
    table.#sessions = new Map(entries);
    return table;
  }
}

/**
 * A 32-bit FNV-1a digest of bytes: the same for a retry of a write, almost
 * surely not for another write.
 *
 * @example
 * ```ts
 * import { digestBytes } from "@distkit/distkit/rsm";
 *
 * digestBytes(new Uint8Array([1, 2, 3])) === digestBytes(new Uint8Array([1, 2, 3])); // true
 * ```
 */
export function digestBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h;
}
