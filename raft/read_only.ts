/**
 * ReadIndex state of a leader (etcd's `read_only.go`): linearizable reads
 * waiting for a quorum of heartbeat answers to confirm that this node is
 * still the leader, and those waiting for the leader's first commit in its
 * term.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/**
 * A linearizable read confirmed by a quorum: once the service has applied
 * `index`, it may answer the read tagged `context`.
 *
 * @example
 * ```ts
 * import type { ReadState } from "@distkit/distkit/raft";
 *
 * const rs: ReadState = { context: 7, index: 120 };
 * ```
 */
export interface ReadState {
  /** The caller's tag from {@linkcode RaftCore.readIndex}. */
  context: number;
  /** The commit index at the time of the read. */
  index: number;
}

interface PendingRead {
  context: number;
  index: number;
  /** The heartbeat round that confirms it: answers to this round or a later one count. */
  round: number;
  acks: Set<NodeId>;
}

/**
 * The reads a leader has started and not yet released, in order.
 *
 * @example
 * ```ts
 * import { ReadOnly } from "./read_only.ts";
 *
 * const reads = new ReadOnly();
 * const round = reads.start({ context: 1, index: 5, acks: ["a"], quorum: 2 });
 * reads.acknowledge("b", round!, 2);
 * reads.takeReady(); // [{ context: 1, index: 5 }]
 * ```
 */
export class ReadOnly {
  #pending: PendingRead[] = [];
  #awaitingCommit: number[] = [];
  #round = 0;
  #ready: ReadState[] = [];

  /** The latest heartbeat round, when reads are waiting for it (else 0). */
  get round(): number {
    return this.#pending.length > 0 ? this.#round : 0;
  }

  /** Whether reads are confirmed and not yet taken. */
  hasReady(): boolean {
    return this.#ready.length > 0;
  }

  /** Holds a read until the leader has committed an entry of its term (§6.4). */
  defer(context: number): void {
    this.#awaitingCommit.push(context);
  }

  /** Takes the reads held by {@linkcode ReadOnly.defer}. */
  takeDeferred(): number[] {
    return this.#awaitingCommit.splice(0);
  }

  /**
   * Starts a read at commit `index` with the given acknowledgements (the
   * leader's own, when it votes). Returns the heartbeat round that must
   * confirm it, or undefined when `acks` already make a quorum (the read is
   * ready).
   */
  start(
    read: { context: number; index: number; acks: NodeId[]; quorum: number },
  ): number | undefined {
    const pending: PendingRead = {
      context: read.context,
      index: read.index,
      round: ++this.#round,
      acks: new Set(read.acks),
    };
    if (pending.acks.size >= read.quorum) {
      this.#ready.push({ context: read.context, index: read.index });
      return undefined;
    }
    this.#pending.push(pending);
    return pending.round;
  }

  /**
   * A voter answered the heartbeat of `round`: it confirms every read of
   * that round or an earlier one. Releases, in order, every read a quorum
   * has confirmed.
   */
  acknowledge(from: NodeId, round: number, quorum: number): void {
    for (const read of this.#pending) if (read.round <= round) read.acks.add(from);
    let n = 0;
    while (n < this.#pending.length && this.#pending[n].acks.size >= quorum) n++;
    for (const read of this.#pending.splice(0, n)) {
      this.#ready.push({ context: read.context, index: read.index });
    }
  }

  /** Takes the confirmed reads. */
  takeReady(): ReadState[] {
    const ready = this.#ready;
    this.#ready = [];
    return ready;
  }

  /** Drops the unconfirmed reads (the leader stepped down: they cannot be confirmed). */
  reset(): void {
    this.#pending = [];
    this.#awaitingCommit = [];
  }
}
