/**
 * `LockTable`: the state of the lock service, the same on the primary and
 * the backup: the held locks, and per client session the last operation and
 * its result, so a retried operation gets its first answer back.
 *
 * Sessions are forgotten once idle: a session that no request (a retry
 * included) and no forward has touched for
 * {@linkcode LockTableOptions.sessionIdleMs} is dropped, so the table does
 * not grow with every client id ever seen (each run of the CLI is a new
 * one). A live clerk keeps its session: it retries an unanswered request
 * every second or so, and each attempt that arrives touches the session.
 * What the rule gives up: a request of a forgotten session that arrives
 * later still (delayed in the network for longer than the idle time, or
 * retried after so long a pause) is taken for a new one and may be applied
 * a second time. The next request of a forgotten session is new anyway,
 * and is applied as such.
 *
 * @module
 */
import { digestBytes } from "../rsm/dedup.ts";
import type { Clock } from "../net/clock.ts";
import type { LockForwardedOp, LockOp, LockSessionRecord } from "./lock_protocol.ts";
import { defaultClock } from "../net/env.ts";

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

/**
 * Options of a {@linkcode LockTable}.
 *
 * @example
 * ```ts
 * import type { LockTableOptions } from "./lock_table.ts";
 *
 * const options: LockTableOptions = { sessionIdleMs: 60 * 60_000 }; // an hour
 * ```
 */
export interface LockTableOptions {
  /**
   * A session no request or forward has touched for this long is
   * forgotten (see the module docs for what that gives up). Keep it well
   * above the longest a clerk may keep one request in flight. Default
   * 600,000 ms (ten minutes).
   */
  sessionIdleMs?: number;
  /** The time source for idleness. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
}

/**
 * The whole content of a {@linkcode LockTable}, as a state transfer
 * carries it.
 *
 * @example
 * ```ts
 * import type { LockTableSnapshot } from "./lock_table.ts";
 *
 * const empty: LockTableSnapshot = { locks: [], sessions: [] };
 * ```
 */
export interface LockTableSnapshot {
  /** The held locks. */
  locks: string[];
  /** The sessions, the least recently used first. */
  sessions: LockSessionRecord[];
}

/** One session's last operation, and when the session was last touched. */
interface Session {
  seq: number;
  digest: number;
  result: boolean;
  touchedAt: number;
}

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
 * import { LockTable } from "./lock_table.ts";
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
  /**
   * The sessions in the order they were last touched, the least recently
   * first (a touch deletes and re-inserts): the idle ones are at the front,
   * so forgetting them costs only their number.
   */
  readonly #sessions = new Map<string, Session>();
  readonly #idleMs: number;
  readonly #clock: Clock;

  /**
   * Creates an empty table.
   *
   * @throws {RangeError} when `sessionIdleMs` is not a positive number.
   */
  constructor(options: LockTableOptions = {}) {
    const idle = options.sessionIdleMs ?? 600_000;
    if (!(idle > 0)) {
      throw new RangeError(`sessionIdleMs must be a positive number of milliseconds, got ${idle}`);
    }
    this.#idleMs = idle;
    this.#clock = options.clock ?? defaultClock("LockTable");
  }

  /** Runs `op` unless the table has seen it; says which, with the result. */
  apply(op: LockOp): LockOutcome {
    const now = this.#forgetIdle();
    const digest = digestOf(op);
    const seen = this.#sessions.get(op.client);
    if (seen !== undefined && op.seq <= seen.seq) {
      // The session's clerk is alive: whatever the verdict, it was heard from.
      this.#touch(op.client, seen, now);
      if (op.seq < seen.seq) return { kind: "stale" };
      return digest === seen.digest ? { kind: "done", result: seen.result } : { kind: "conflict" };
    }
    const result = op.op === "lock" ? this.#lock(op.name) : this.#unlock(op.name);
    this.#touch(op.client, { seq: op.seq, digest, result, touchedAt: now }, now);
    return { kind: "applied", result };
  }

  /**
   * Records an operation the primary applied, with the primary's result:
   * how the backup follows. The result decides, so the backup holds what
   * the primary holds even were their states ever to differ.
   */
  install(op: LockForwardedOp): void {
    const now = this.#forgetIdle();
    if (op.result) {
      if (op.op === "lock") this.#held.add(op.name);
      else this.#held.delete(op.name);
    }
    const session = { seq: op.seq, digest: digestOf(op), result: op.result, touchedAt: now };
    this.#touch(op.client, session, now);
  }

  /**
   * A copy of the whole table, for a state transfer: later changes to the
   * table do not change it.
   */
  snapshot(): LockTableSnapshot {
    this.#forgetIdle();
    const sessions = [...this.#sessions].map(([client, s]) => ({
      client,
      seq: s.seq,
      digest: s.digest,
      result: s.result,
    }));
    return { locks: [...this.#held], sessions };
  }

  /**
   * Adds a piece of another table's {@linkcode LockTable.snapshot} to this
   * one, as a backup builds its table from a transfer's pages. The sessions
   * count as touched now: their idle time starts again here.
   */
  load(piece: LockTableSnapshot): void {
    const now = this.#clock.now();
    for (const name of piece.locks) this.#held.add(name);
    for (const { client, seq, digest, result } of piece.sessions) {
      this.#touch(client, { seq, digest, result, touchedAt: now }, now);
    }
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

  /** How many client sessions the table remembers (the idle ones forgotten first). */
  get sessions(): number {
    this.#forgetIdle();
    return this.#sessions.size;
  }

  /** Drops the sessions idle for longer than the limit; returns the time now. */
  #forgetIdle(): number {
    const now = this.#clock.now();
    for (const [client, session] of this.#sessions) {
      if (now - session.touchedAt <= this.#idleMs) break;
      this.#sessions.delete(client);
    }
    return now;
  }

  #touch(client: string, session: Session, now: number): void {
    session.touchedAt = now;
    // Re-inserted, so the map stays in the order of last touch.
    this.#sessions.delete(client);
    this.#sessions.set(client, session);
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
