/**
 * How a replica applies one committed entry to an in-memory machine (kept
 * apart from replica.ts, which is at its length limit).
 *
 * @module
 */
import type { Logger } from "../net/logger.ts";
import { RaftInvariantError } from "../raft/invariant.ts";
import type { ExactlyOnce, WriteOutcome } from "./exactly_once.ts";
import type { ReplicaMachine } from "./replica_types.ts";

/** What {@linkcode applyEntry} needs beside the machine and the entry. */
export interface ApplyEntryOptions<R> {
  /** The replica's dedup table; undefined with `exactlyOnce: false`. */
  once: ExactlyOnce<R> | undefined;
  /** Where an `apply` that threw is reported. */
  logger: Logger;
  /** The node's id, for the report. */
  node: string;
  /** The entry's index, for the report. */
  index: number;
}

/**
 * Applies a committed entry: once per session and number when it is an
 * exactly-once write. A deterministic exception in the machine's `apply` is
 * the write's answer on every replica alike, never a halt: the entry stays
 * in the log, so halting here would halt every replica that reaches it. A
 * broken invariant still stops the replica.
 *
 * @example
 * ```ts
 * import { applyEntry } from "./replica_apply.ts";
 * import { silentLogger } from "../net/logger.ts";
 *
 * const machine = { apply: (n: unknown) => (n as number) * 2, snapshot: () => new Uint8Array(), restore: () => {} };
 * applyEntry(machine, 21, { once: undefined, logger: silentLogger, node: "a", index: 1 }); // { result: 42 }
 * ```
 */
export function applyEntry<R>(
  machine: ReplicaMachine<R>,
  entry: unknown,
  options: ApplyEntryOptions<R>,
): WriteOutcome<R> {
  const run = (command: unknown): WriteOutcome<R> => {
    try {
      return { result: machine.apply(command) };
    } catch (err) {
      if (err instanceof RaftInvariantError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      options.logger.log("warn", "apply threw; the write is answered with the error", {
        node: options.node,
        index: options.index,
        error: message,
      });
      return { error: "apply", message };
    }
  };
  return options.once?.isEntry(entry) ? options.once.apply(entry, run) : run(entry);
}
