/**
 * How a replica encodes its snapshot: the machine's bytes, wrapped with the
 * dedup table taken at the same point of the log.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";
import type { ExactlyOnce } from "./exactly_once.ts";
import type { ReplicaMachine } from "./replica_types.ts";

/** What {@linkcode encodeSnapshot} needs beside the machine. */
export interface EncodeSnapshotOptions<R> {
  /** The replica's dedup table; undefined with `exactlyOnce: false`. */
  once: ExactlyOnce<R> | undefined;
  /** The clock the slices yield on. */
  clock: Clock;
}

/**
 * Encodes the machine's state (and the dedup table) as one snapshot: a slice
 * per turn of the event loop when the machine can (encoded at once, a large
 * state held up the replica: issue 16). Both are taken at the point of the
 * log where it is called, before any later entry is applied.
 *
 * @example
 * ```ts
 * import { encodeSnapshot } from "./replica_snapshot.ts";
 * import { realClock } from "../net/clock.ts";
 *
 * const machine = { apply: () => 0, snapshot: () => Uint8Array.of(7), restore: () => {} };
 * const bytes = await encodeSnapshot(machine, { once: undefined, clock: realClock });
 * console.log(bytes); // Uint8Array [ 7 ]
 * ```
 */
export function encodeSnapshot<R>(
  machine: ReplicaMachine<R>,
  options: EncodeSnapshotOptions<R>,
): Promise<Uint8Array> {
  const { once, clock } = options;
  if (machine.snapshotInSlices) {
    const dedup = once?.capture();
    return machine.snapshotInSlices(() => delay(0, { clock }))
      .then((bytes) => once ? once.wrap(bytes, dedup) : bytes);
  }
  return Promise.resolve().then(() => {
    const bytes = machine.snapshot();
    return once ? once.wrap(bytes, once.capture()) : bytes;
  });
}
