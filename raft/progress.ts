/**
 * What a leader knows of one follower's log (etcd's `tracker/progress.go`):
 * how far it matches, what to send next, and how: probing one append at a
 * time, replicating with a window of appends in flight, or sending a
 * snapshot.
 *
 * @module
 */
import { Inflights } from "./inflights.ts";
import { invariant } from "./invariant.ts";
import type { AppendResponse } from "./types.ts";

/**
 * How a leader sends to a follower: `probe` (one append at a time until it
 * finds where their logs match), `replicate` (appends pipelined up to the
 * in-flight window) or `snapshot` (the follower needs entries that are
 * compacted: a snapshot is on its way).
 *
 * @example
 * ```ts
 * import type { ProgressState } from "./progress.ts";
 *
 * const state: ProgressState = "replicate";
 * ```
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * A leader's view of one member's log.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 *
 * const pr = new Progress({ match: 0, next: 11, maxInflight: 4, maxInflightBytes: 1 << 20 });
 * pr.state; // "probe"
 * pr.acknowledged(10); // true: the follower has the log through 10
 * pr.state; // "replicate"
 * ```
 */
export class Progress {
  /** The highest index known to match the leader's log. */
  match: number;
  /** The next index to send. */
  next: number;
  /** How entries are sent (see {@linkcode ProgressState}). */
  state: ProgressState = "probe";
  /** Appends in flight (replicate state). */
  readonly inflights: Inflights;
  /** An append was sent in probe state and is unanswered. */
  probeSent = false;
  /** Sequence number of the latest append to this peer; a probe's answer must echo it. */
  seq = 0;
  /** Heard from since the last quorum check. */
  active = true;
  /** The index of the snapshot being sent. */
  snapshotIndex = 0;
  /** The offset of the next chunk to send. */
  snapshotOffset = 0;
  /** Whether a chunk is in flight. */
  snapshotInflight = false;
  /** Heartbeat answers since the chunk in flight was sent. */
  snapshotWaits = 0;

  /**
   * Creates the progress of a member the leader has just started tracking.
   *
   * @param options Where the member's log is believed to be, and the in-flight window's limits.
   */
  constructor(
    options: { match: number; next: number; maxInflight: number; maxInflightBytes: number },
  ) {
    this.match = options.match;
    this.next = options.next;
    this.inflights = new Inflights({
      capacity: options.maxInflight,
      maxBytes: options.maxInflightBytes,
    });
  }

  /** Back to probing from just after the match (a lost or refused append, a finished snapshot). */
  becomeProbe(): void {
    this.state = "probe";
    this.next = this.match + 1;
    this.inflights.reset();
    this.probeSent = false;
    this.snapshotInflight = false;
  }

  /** Starts sending the snapshot through `index`, from its first byte. */
  becomeSnapshot(index: number): void {
    this.state = "snapshot";
    this.snapshotIndex = index;
    this.snapshotOffset = 0;
    this.snapshotInflight = false;
  }

  /** Whether nothing more may be sent now. */
  paused(): boolean {
    if (this.state === "probe") return this.probeSent;
    if (this.state === "replicate") return this.inflights.full();
    return true;
  }

  /** Records an append ending at `last` of `bytes` bytes just sent. */
  sentEntries(last: number, bytes: number): void {
    if (this.state === "probe") {
      this.probeSent = true;
    } else if (last >= this.next) {
      this.next = last + 1;
      this.inflights.add(last, bytes);
    }
  }

  /**
   * The follower acknowledged its log through `index`. Returns whether the
   * match moved (the leader may commit more).
   */
  acknowledged(index: number): boolean {
    let moved = false;
    if (index > this.match) {
      moved = true;
      this.match = index;
      if (this.state === "probe") {
        this.state = "replicate";
        this.inflights.reset();
      }
      if (this.state === "snapshot") this.becomeProbe();
      this.next = Math.max(this.next, index + 1);
    }
    this.inflights.freeLE(index);
    this.probeSent = false;
    return moved;
  }

  /**
   * The follower refused an append. `lastIndexOfTerm` finds the leader's
   * last entry of a term (0: none), to skip a whole conflicting term at
   * once. Answers to stale requests are ignored.
   */
  refused(m: AppendResponse, lastIndexOfTerm: (term: number) => number): void {
    if (m.index === 0 && m.conflictIndex === 0) return; // a term bump answer, already handled
    if (this.state === "replicate") {
      if (m.index <= this.match) return;
      this.becomeProbe();
    } else if (this.state !== "probe" || m.seq !== this.seq) {
      return; // not the answer to the latest probe
    }
    if (m.index <= this.match) {
      // The answer to the latest probe rejects an index the follower had
      // acknowledged: it lost durable state. Forget the match, or the same
      // probe would be sent, and rejected, for ever.
      this.match = Math.max(0, Math.min(m.index, m.conflictIndex) - 1);
    }
    let next = m.conflictIndex;
    if (m.conflictTerm > 0) {
      const last = lastIndexOfTerm(m.conflictTerm);
      if (last > 0) next = last + 1;
    }
    this.next = Math.max(this.match + 1, Math.min(next, m.index));
    this.probeSent = false;
    invariant(this.next > this.match, `next ${this.next} is not past match ${this.match}`);
  }

  /**
   * The follower answered a heartbeat; `lastIndex` is its log's end when it
   * reported one. `snapshotPatience` heartbeat answers without a chunk
   * answer mean the chunk was lost.
   */
  heartbeatAnswered(lastIndex: number | undefined, snapshotPatience: number): void {
    this.probeSent = false;
    if (lastIndex !== undefined && lastIndex < this.match) {
      // The follower's log ends below its match: it lost entries (a folder
      // restored or emptied). Probe from where its log really ends, or an
      // idle leader would send it nothing for ever.
      this.match = lastIndex;
      this.becomeProbe();
    }
    if (this.state === "snapshot" && this.snapshotInflight) {
      // A chunk whose answer was lost without the driver reporting it would
      // stall the snapshot for ever: after an election timeout of heartbeat
      // answers without a chunk answer, send the chunk again (a duplicate
      // is answered with the offset the follower expects).
      if (++this.snapshotWaits >= snapshotPatience) {
        this.snapshotInflight = false;
        this.snapshotWaits = 0;
      }
    }
    if (this.state === "replicate" && this.paused()) {
      // A lost append may have filled the window: free one slot so replication resumes.
      this.inflights.freeFirstOne();
    }
  }

  /**
   * The follower answered a snapshot chunk. Returns whether it now has the
   * whole snapshot (the match moved: the leader may commit more).
   */
  snapshotAnswered(m: { index: number; offset: number; done: boolean }): boolean {
    if (this.state !== "snapshot") return false;
    this.snapshotInflight = false;
    if (m.done) {
      this.match = Math.max(this.match, m.index);
      this.next = this.match + 1;
      this.becomeProbe();
      return true;
    }
    // A follower answering for another snapshot lost track: start over.
    this.snapshotOffset = m.index !== this.snapshotIndex ? 0 : m.offset;
    return false;
  }

  /** A message to this peer was not delivered. */
  unreachable(type: string): void {
    if (type === "snapshot" && this.state === "snapshot") {
      // Sent again as a lost chunk is, after an election timeout of heartbeat
      // answers (as etcd pauses a probe until the peer answers): sent again
      // at once, a chunk to a peer that fails every call at once (its node
      // stopped, its server up) would go as fast as the calls fail, a hot
      // loop that also starves the leader's timers, and a stream would be
      // opened again from its first byte each time.
      this.snapshotInflight = true;
      this.snapshotWaits = 0;
    } else if (type === "append" && this.state === "replicate") {
      // One probe now; if that is lost too, the next waits for the peer to
      // answer a heartbeat (as in etcd): a dead peer must not cost an
      // encoded batch of entries per turn.
      this.becomeProbe();
    }
  }
}
