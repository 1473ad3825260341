/**
 * The in-memory Raft log: the entries after the latest snapshot, which of
 * them are already on stable storage, and the membership history.
 *
 * @module
 */
import { invariant } from "./invariant.ts";
import type { Entry, Membership, SnapshotMeta } from "./types.ts";

/** A membership and the index of the entry (or snapshot) that set it. */
interface MembershipAt {
  index: number;
  membership: Membership;
}

/**
 * The log of one node. `entries[i]` has index `snapshotIndex + 1 + i`.
 * Entries up to `stableIndex` are on stable storage; the rest are waiting to
 * be written.
 */
export class RaftLog {
  snapshotIndex: number;
  snapshotTerm: number;
  entries: Entry[];
  stableIndex: number;
  /** Entries up to here are known to be on stable storage (written, not only handed out). */
  durableIndex: number;
  /** Every membership in the log, oldest first; the first is the snapshot's. */
  #memberships: MembershipAt[];
  /** Told of entries about to be removed (overwritten or discarded), for whole-run checks. */
  onRemove: ((entries: Entry[]) => void) | undefined;

  constructor(snapshot: SnapshotMeta, entries: Entry[]) {
    this.snapshotIndex = snapshot.index;
    this.snapshotTerm = snapshot.term;
    this.entries = [];
    this.stableIndex = snapshot.index;
    this.#memberships = [{ index: snapshot.index, membership: snapshot.membership }];
    // Entries from storage may start before the snapshot (written before a
    // compaction that was not yet applied to the log): skip those.
    const usable = entries.filter((e) => e.index > snapshot.index);
    this.#append(usable);
    this.stableIndex = this.lastIndex();
    this.durableIndex = this.lastIndex();
  }

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length === 0
      ? this.snapshotTerm
      : this.entries[this.entries.length - 1].term;
  }

  /** The term of the entry at `index`, or undefined when it is compacted or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshotIndex - 1].term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshotIndex - 1];
  }

  /** Entries with indexes in [lo, hi], clipped to the log. */
  slice(lo: number, hi: number): Entry[] {
    const from = Math.max(lo, this.firstIndex()) - this.snapshotIndex - 1;
    const to = Math.min(hi, this.lastIndex()) - this.snapshotIndex;
    return from < to ? this.entries.slice(from, to) : [];
  }

  matches(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Appends `entries`, which must follow on from the log or overlap it; an
   * overlapping entry with a different term truncates the log from there.
   * Entries at or below `commit` must never be truncated.
   */
  appendAfterMatch(entries: Entry[], commit: number): void {
    let i = 0;
    while (i < entries.length && this.matches(entries[i].index, entries[i].term)) i++;
    if (i === entries.length) return;
    const from = entries[i].index;
    invariant(from > commit, `would truncate committed entry ${from} (commit ${commit})`);
    invariant(
      from >= this.firstIndex() && from <= this.lastIndex() + 1,
      `gap before entry ${from}`,
    );
    this.truncateFrom(from);
    this.#append(entries.slice(i));
  }

  /** Appends entries that start right after the last one (the leader's own proposals). */
  append(entries: Entry[]): void {
    this.#append(entries);
  }

  #append(entries: Entry[]): void {
    let last = this.lastIndex();
    let lastTerm = this.lastTerm();
    for (const e of entries) {
      invariant(e.index === last + 1, `log entry ${e.index} does not follow ${last}`);
      invariant(e.term >= lastTerm, `log entry ${e.index} has term ${e.term} < ${lastTerm}`);
      this.entries.push(e);
      if (e.kind === "membership") {
        this.#memberships.push({ index: e.index, membership: e.membership! });
      }
      last = e.index;
      lastTerm = e.term;
    }
  }

  truncateFrom(index: number): void {
    if (index > this.lastIndex()) return;
    this.onRemove?.(this.slice(index, this.lastIndex()));
    this.entries.length = index - this.snapshotIndex - 1;
    this.stableIndex = Math.min(this.stableIndex, index - 1);
    this.durableIndex = Math.min(this.durableIndex, index - 1);
    while (this.#memberships.length > 1 && this.#memberships.at(-1)!.index >= index) {
      this.#memberships.pop();
    }
  }

  /** Drops entries up to `index` (a snapshot now covers them). */
  compact(index: number): void {
    if (index <= this.snapshotIndex) return;
    invariant(index <= this.lastIndex(), `compact(${index}) beyond last index ${this.lastIndex()}`);
    const term = this.term(index)!;
    const membership = this.membershipAt(index);
    this.entries = this.entries.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.stableIndex = Math.max(this.stableIndex, index);
    this.#memberships = [
      { index, membership },
      ...this.#memberships.filter((m) => m.index > index),
    ];
  }

  /**
   * Installs a snapshot: keeps the entries after it when the log has the
   * snapshot's last entry (same index and term), otherwise discards the log.
   * Returns whether entries were kept.
   */
  restore(meta: SnapshotMeta): boolean {
    if (this.matches(meta.index, meta.term) && meta.index <= this.lastIndex()) {
      this.compact(meta.index);
      return true;
    }
    // Entries through the snapshot's index are superseded by it (the
    // installer checks its last one); those after it are gone.
    this.onRemove?.(this.slice(meta.index + 1, this.lastIndex()));
    this.entries = [];
    this.snapshotIndex = meta.index;
    this.snapshotTerm = meta.term;
    this.stableIndex = meta.index;
    this.durableIndex = Math.min(this.durableIndex, meta.index);
    this.#memberships = [{ index: meta.index, membership: meta.membership }];
    return false;
  }

  /** Entries not yet on stable storage. */
  unstable(): Entry[] {
    return this.slice(this.stableIndex + 1, this.lastIndex());
  }

  /** Entries up to `index` are written (see `RaftCore.persisted`). */
  markDurable(index: number): void {
    this.durableIndex = Math.max(this.durableIndex, Math.min(index, this.lastIndex()));
  }

  markStable(index: number): void {
    this.stableIndex = Math.max(this.stableIndex, Math.min(index, this.lastIndex()));
  }

  /** The membership in force at `index`: the latest one set at or before it. */
  membershipAt(index: number): Membership {
    for (let i = this.#memberships.length - 1; i >= 0; i--) {
      if (this.#memberships[i].index <= index) return this.#memberships[i].membership;
    }
    return this.#memberships[0].membership;
  }

  /** The latest membership in the log, committed or not (Raft uses it at once). */
  membership(): Membership {
    return this.#memberships[this.#memberships.length - 1].membership;
  }

  /** Index of the latest membership entry (the snapshot's index when none follows it). */
  membershipIndex(): number {
    return this.#memberships[this.#memberships.length - 1].index;
  }

  /** The first index of the run of entries with the same term as `index` (terms never decrease, so: binary search). */
  firstIndexOfTerm(index: number): number {
    const term = this.term(index);
    let lo = this.firstIndex();
    let hi = index;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.term(mid)! < term!) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The last index holding an entry of `term`, or 0 when there is none. */
  lastIndexOfTerm(term: number): number {
    let lo = this.snapshotIndex;
    let hi = this.lastIndex();
    // Find the last index whose term is <= term.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.term(mid)! <= term) lo = mid;
      else hi = mid - 1;
    }
    return this.term(lo) === term ? lo : 0;
  }
}
