/**
 * Exactly-once writes, done by the {@linkcode Replica} for its machine (the
 * default; `exactlyOnce: false` turns it off): every write carries its
 * client session (`client`, `seq`, stamped by `ReplicaClient.submit`), the
 * replica looks it up in a {@linkcode DedupTable} before it calls the
 * machine's `apply`, and answers a retry with the outcome it recorded. The
 * table travels inside every snapshot, beside the machine's own bytes.
 *
 * @module
 */
import { defaultCodec } from "../net/codec.ts";
import { ArgumentsError } from "../net/errors.ts";
import { checkSession } from "./checks.ts";
import { DedupTable, digestBytes } from "./dedup.ts";

/**
 * A write as `ReplicaClient.submit` sends it: the command, stamped with the
 * client's session and the write's number in it.
 *
 * @example
 * ```ts
 * import type { StampedWrite } from "@distkit/distkit/rsm";
 *
 * const write: StampedWrite = { client: "c1", seq: 1, command: { op: "take" } };
 * ```
 */
export interface StampedWrite {
  /** The client session's id. */
  client: string;
  /** The write's number in the session: 1, 2, 3... one write at a time. */
  seq: number;
  /** The service's command, as the machine's `apply` gets it. */
  command: unknown;
}

/**
 * What an exactly-once write came to, the same on every replica and for
 * every retry: the machine's result, or an error answer.
 *
 * - `{ result }`: `apply` returned it;
 * - `{ error: "apply", message }`: `apply` threw (the client throws `ApplyError`);
 * - `{ error: "conflict", message }`: the session had already applied
 *   another write under this number or a later one; not applied (the
 *   client throws `SessionConflictError`).
 *
 * @typeParam R What the machine's `apply` returns.
 *
 * @example
 * ```ts
 * import type { WriteOutcome } from "@distkit/distkit/rsm";
 *
 * const done: WriteOutcome<number> = { result: 7 };
 * const failed: WriteOutcome<number> = { error: "apply", message: "poison pill" };
 * ```
 */
export type WriteOutcome<R> =
  | { result: R }
  | { error: "apply" | "conflict"; message: string };

/** How an exactly-once write sits in the log: marked, so a raw command is never taken for one. */
interface LoggedWrite {
  "rsm.once": 1;
  client?: string;
  seq?: number;
  command: unknown;
}

/** How the snapshot of an exactly-once replica wraps the machine's own bytes. */
interface WrappedSnapshot {
  "rsm.once": 1;
  dedup: unknown;
  machine: Uint8Array;
}

/**
 * Checks a write received from a client: an object `{ client, seq, command }`.
 *
 * @throws {ArgumentsError} when it is not one.
 */
export function parseStampedWrite(request: unknown): StampedWrite {
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    throw new ArgumentsError(
      "an exactly-once write is { client, seq, command } (send it with ReplicaClient.submit)",
    );
  }
  const r = request as Partial<StampedWrite>;
  const { client, seq } = checkSession(r.client, r.seq);
  return { client, seq, command: r.command };
}

/**
 * The replica's side of exactly-once: the log format of stamped writes, the
 * dedup table, and the snapshot wrapping. One per exactly-once replica.
 */
export class ExactlyOnce<R> {
  #table = new DedupTable<WriteOutcome<R>>();

  /** The log entry for a write: stamped, or (`write` without a session) a raw command. */
  entry(write: { client?: string; seq?: number; command: unknown }): LoggedWrite {
    return write.client === undefined
      ? { "rsm.once": 1, command: write.command }
      : { "rsm.once": 1, client: write.client, seq: write.seq, command: write.command };
  }

  /** Whether a log entry is one of {@linkcode ExactlyOnce.entry}'s. */
  isEntry(entry: unknown): entry is LoggedWrite {
    return typeof entry === "object" && entry !== null && !Array.isArray(entry) &&
      (entry as Partial<LoggedWrite>)["rsm.once"] === 1;
  }

  /** Sessions the table knows. */
  get sessions(): number {
    return this.#table.size;
  }

  /**
   * Applies a logged write once: `run` (the machine's apply) for a write not
   * seen before, recorded; the recorded outcome for a retry; a conflict for
   * a write the session has gone past.
   */
  apply(entry: LoggedWrite, run: (command: unknown) => WriteOutcome<R>): WriteOutcome<R> {
    if (entry.client === undefined || entry.seq === undefined) return run(entry.command);
    const digest = digestOf(entry.command);
    const verdict = this.#table.check(entry.client, entry.seq, digest);
    switch (verdict.kind) {
      case "done":
        return verdict.result;
      case "new": {
        const outcome = run(entry.command);
        this.#table.record(entry.client, entry.seq, digest, outcome);
        return outcome;
      }
      // Stale: the session went on to a later write, which it does only once
      // it has this one's answer or has given up on it: nobody waits for it.
      // Conflict: the recorded outcome belongs to another write. Either way
      // the table has no outcome for this write, and it is not applied.
      case "stale":
      case "conflict":
        return {
          error: "conflict",
          message: `session "${entry.client}" applied another write numbered ${entry.seq} ` +
            `or later`,
        };
    }
  }

  /** The recorded outcome of a write, if the table knows it applied (retry or snapshot install). */
  recall(write: { client?: string; seq?: number; command: unknown }): WriteOutcome<R> | undefined {
    if (write.client === undefined || write.seq === undefined) return undefined;
    const verdict = this.#table.check(write.client, write.seq, digestOf(write.command));
    return verdict.kind === "done" ? verdict.result : undefined;
  }

  /** The table now, for a snapshot taken at this point of the log. */
  capture(): unknown {
    return this.#table.toJSON();
  }

  /** A snapshot of the machine's bytes and a captured table. */
  wrap(machine: Uint8Array, dedup: unknown): Uint8Array {
    const snapshot: WrappedSnapshot = { "rsm.once": 1, dedup, machine };
    return defaultCodec.encode(snapshot);
  }

  /**
   * Restores the table from a snapshot of {@linkcode ExactlyOnce.wrap} and
   * returns the machine's bytes.
   *
   * @throws {Error} when the bytes are not such a snapshot.
   */
  restore(bytes: Uint8Array): Uint8Array {
    let decoded: Partial<WrappedSnapshot> | undefined;
    try {
      decoded = defaultCodec.decode(bytes) as Partial<WrappedSnapshot>;
    } catch (err) {
      throw new Error(
        `not an exactly-once replica's snapshot (${(err as Error).message}); was it taken ` +
          `with exactlyOnce: false? Every replica of a service must use the same setting`,
      );
    }
    if (decoded?.["rsm.once"] !== 1 || !(decoded.machine instanceof Uint8Array)) {
      throw new Error(
        "not an exactly-once replica's snapshot (was it taken with exactlyOnce: false?)",
      );
    }
    this.#table = DedupTable.from(decoded.dedup, isOutcome<R>);
    return decoded.machine;
  }
}

/** The digest of a command: tells a retry (same command) from another write under the same number. */
function digestOf(command: unknown): number {
  return digestBytes(defaultCodec.encode(command ?? null));
}

function isOutcome<R>(value: unknown): value is WriteOutcome<R> {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  // A result of undefined is encoded as no field at all.
  if (!Object.hasOwn(v, "error")) return true;
  return (v.error === "apply" || v.error === "conflict") && typeof v.message === "string";
}

/**
 * The exactly-once table a replica keeps, by its `exactlyOnce` option:
 * undefined with `exactlyOnce: false`.
 *
 * @example
 * ```ts
 * import { onceOf } from "./exactly_once.ts";
 *
 * onceOf({ exactlyOnce: false }); // undefined
 * ```
 */
export function onceOf<R>(options: { exactlyOnce?: boolean }): ExactlyOnce<R> | undefined {
  return options.exactlyOnce === false ? undefined : new ExactlyOnce<R>();
}
