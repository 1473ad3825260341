/**
 * `LockTable`: the state of the lock service, the same on the primary and
 * the backup: the held locks, and per client session the last operation and
 * its result, so a retried operation gets its first answer back.
 *
 * @module
 */
import { DedupTable, digestBytes } from "../kv/dedup.ts";
import type { LockForwardedOp, LockOp } from "./lock_protocol.ts";

/**
 * What {@linkcode LockTable.apply} did with an operation:
 *
 * - `applied`: it was new, and ran with this result;
 * - `done`: it is a retry of an operation that ran with this result;
 * - `stale`: the session has since run a later operation, so nobody waits for this one;
 * - `conflict`: the session ran a different operation under this number
 *   (two clerks share an id).
 *
 * @example
 * ```ts
 * import type { LockOutcome } from "@distkit/distkit/pb";
 *
 * const outcome: LockOutcome = { kind: "done", result: true };
 * ```
 */
export type LockOutcome =
  | { kind: "applied"; result: boolean }
  | { kind: "done"; result: boolean }
  | { kind: "stale" }
  | { kind: "conflict" };

const encoder = new TextEncoder();

/** The same for a retry of an operation, almost surely not for another operation. */
function digestOf(op: LockOp): number {
  return digestBytes(encoder.encode(`${op.op}:${op.name}`));
}

/**
 * The held locks and the sessions' last operations.
 *
 * @example
 * ```ts
 * import { LockTable } from "@distkit/distkit/pb";
 * import assert from "node:assert/strict";
 *
 * const table = new LockTable();
 * const lock = { op: "lock", client: "c1", seq: 1, name: "printer" } as const;
 * assert.deepEqual(table.apply(lock), { kind: "applied", result: true });
 * assert.deepEqual(table.apply(lock), { kind: "done", result: true }); // a retry
 * assert.deepEqual(table.apply({ ...lock, client: "c2" }), { kind: "applied", result: false });
 * ```
 */
export class LockTable {
  readonly #held = new Set<string>();
  readonly #dedup = new DedupTable<boolean>();

  /** Runs `op` unless the table has seen it; says which, with the result. */
  apply(op: LockOp): LockOutcome {
    const digest = digestOf(op);
    const verdict = this.#dedup.check(op.client, op.seq, digest);
    if (verdict.kind !== "new") return verdict;
    const result = op.op === "lock" ? this.#lock(op.name) : this.#unlock(op.name);
    this.#dedup.record(op.client, op.seq, digest, result);
    return { kind: "applied", result };
  }

  /**
   * Records an operation the primary applied, with the primary's result:
   * how the backup follows. The result decides, so the backup holds what
   * the primary holds even were their states ever to differ.
   */
  install(op: LockForwardedOp): void {
    if (op.result) {
      if (op.op === "lock") this.#held.add(op.name);
      else this.#held.delete(op.name);
    }
    this.#dedup.record(op.client, op.seq, digestOf(op), op.result);
  }

  /** Whether the lock `name` is held. */
  isHeld(name: string): boolean {
    return this.#held.has(name);
  }

  /** The held locks, sorted. */
  held(): string[] {
    return [...this.#held].sort();
  }

  /** How many locks are held. */
  get size(): number {
    return this.#held.size;
  }

  /** How many client sessions the table remembers. */
  get sessions(): number {
    return this.#dedup.size;
  }

  #lock(name: string): boolean {
    if (this.#held.has(name)) return false;
    this.#held.add(name);
    return true;
  }

  #unlock(name: string): boolean {
    return this.#held.delete(name);
  }
}
