/**
 * The in-memory Raft log: the entries after the latest snapshot, which of
 * them are already on stable storage, and the membership history.
 *
 * @module
 */
import { approximateBytes } from "../net/bytes.ts";
import { invariant } from "./invariant.ts";
import type { Entry, Membership, SnapshotMeta } from "./types.ts";

/** A membership and the index of the entry (or snapshot) that set it. */
interface MembershipAt {
  /** Where it takes effect in this log (a compaction moves it up to the snapshot's index). */
  index: number;
  membership: Membership;
  /** The index of the entry that set it. */
  since: number;
}

/**
 * The log of one node. `entries[i]` has index `snapshotIndex + 1 + i`.
 * Entries up to `stableIndex` are on stable storage; the rest are waiting to
 * be written.
 */
export class RaftLog {
  #snapshotIndex: number;
  #snapshotTerm: number;
  #entries: Entry[];
  /** Entries up to here have been handed out to be written (see {@linkcode RaftLog.unstable}). */
  #stable: number;
  /** Entries up to here are known to be on stable storage (written, not only handed out). */
  #durable: number;
  /** Every membership in the log, oldest first; the first is the snapshot's. */
  #memberships: MembershipAt[];
  /** Told of entries about to be removed (overwritten or discarded), for whole-run checks. */
  onRemove: ((entries: Entry[]) => void) | undefined;

  constructor(snapshot: SnapshotMeta, entries: Entry[]) {
    this.#snapshotIndex = snapshot.index;
    this.#snapshotTerm = snapshot.term;
    this.#entries = [];
    this.#stable = snapshot.index;
    this.#memberships = [{
      index: snapshot.index,
      membership: snapshot.membership,
      since: snapshot.membershipIndex ?? snapshot.index,
    }];
    // Entries from storage may start before the snapshot (written before a
    // compaction that was not yet applied to the log): skip those.
    const usable = entries.filter((e) => e.index > snapshot.index);
    this.#append(usable);
    this.#stable = this.lastIndex();
    this.#durable = this.lastIndex();
  }

  /** The index the log starts after (the latest snapshot's). */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }

  /** The term of the entry at `snapshotIndex`. */
  get snapshotTerm(): number {
    return this.#snapshotTerm;
  }

  /** The entries after the snapshot, in order. */
  get entries(): readonly Entry[] {
    return this.#entries;
  }

  /** Entries up to here have been handed out to be written. */
  get stableIndex(): number {
    return this.#stable;
  }

  /** Entries up to here are known to be on stable storage (written, not only handed out). */
  get durableIndex(): number {
    return this.#durable;
  }

  firstIndex(): number {
    return this.#snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.#snapshotIndex + this.#entries.length;
  }

  lastTerm(): number {
    return this.#entries.length === 0
      ? this.#snapshotTerm
      : this.#entries[this.#entries.length - 1].term;
  }

  /** The term of the entry at `index`, or undefined when it is compacted or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.#snapshotIndex) return this.#snapshotTerm;
    if (index < this.#snapshotIndex || index > this.lastIndex()) return undefined;
    return this.#entries[index - this.#snapshotIndex - 1].term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.#snapshotIndex || index > this.lastIndex()) return undefined;
    return this.#entries[index - this.#snapshotIndex - 1];
  }

  /** Entries with indexes in [lo, hi], clipped to the log. */
  slice(lo: number, hi: number): Entry[] {
    const from = Math.max(lo, this.firstIndex()) - this.#snapshotIndex - 1;
    const to = Math.min(hi, this.lastIndex()) - this.#snapshotIndex;
    return from < to ? this.#entries.slice(from, to) : [];
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
      this.#entries.push(e);
      if (e.kind === "membership") {
        checkBindings(this.membership(), e);
        this.#memberships.push({ index: e.index, membership: e.membership, since: e.index });
      }
      last = e.index;
      lastTerm = e.term;
    }
  }

  truncateFrom(index: number): void {
    if (index > this.lastIndex()) return;
    this.onRemove?.(this.slice(index, this.lastIndex()));
    this.#entries.length = index - this.#snapshotIndex - 1;
    this.#stable = Math.min(this.#stable, index - 1);
    this.#durable = Math.min(this.#durable, index - 1);
    while (this.#memberships.length > 1 && this.#memberships.at(-1)!.index >= index) {
      this.#memberships.pop();
    }
  }

  /** Drops entries up to `index` (a snapshot now covers them). */
  compact(index: number): void {
    if (index <= this.#snapshotIndex) return;
    invariant(index <= this.lastIndex(), `compact(${index}) beyond last index ${this.lastIndex()}`);
    const term = this.term(index)!;
    const membership = this.membershipAt(index);
    const since = this.membershipIndexAt(index);
    this.#entries = this.#entries.slice(index - this.#snapshotIndex);
    this.#snapshotIndex = index;
    this.#snapshotTerm = term;
    this.#stable = Math.max(this.#stable, index);
    this.#memberships = [
      { index, membership, since },
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
    this.#entries = [];
    this.#snapshotIndex = meta.index;
    this.#snapshotTerm = meta.term;
    this.#stable = meta.index;
    this.#durable = Math.min(this.#durable, meta.index);
    this.#memberships = [{
      index: meta.index,
      membership: meta.membership,
      since: meta.membershipIndex ?? meta.index,
    }];
    return false;
  }

  /** Entries not yet on stable storage. */
  unstable(): Entry[] {
    return this.slice(this.#stable + 1, this.lastIndex());
  }

  /** Entries up to `index` are written (see `RaftCore.persisted`). */
  markDurable(index: number): void {
    this.#durable = Math.max(this.#durable, Math.min(index, this.lastIndex()));
  }

  markStable(index: number): void {
    this.#stable = Math.max(this.#stable, Math.min(index, this.lastIndex()));
  }

  /** The membership in force at `index`: the latest one set at or before it. */
  membershipAt(index: number): Membership {
    for (let i = this.#memberships.length - 1; i >= 0; i--) {
      if (this.#memberships[i].index <= index) return this.#memberships[i].membership;
    }
    return this.#memberships[0].membership;
  }

  /**
   * The index of the entry that set the membership in force at `index`
   * (through compactions and snapshots; a snapshot made before this was
   * recorded gives its own index instead).
   */
  membershipIndexAt(index: number): number {
    for (let i = this.#memberships.length - 1; i >= 0; i--) {
      if (this.#memberships[i].index <= index) return this.#memberships[i].since;
    }
    return this.#memberships[0].since;
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
    let lo = this.#snapshotIndex;
    let hi = this.lastIndex();
    // Find the last index whose term is <= term.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.term(mid)! <= term) lo = mid;
      else hi = mid - 1;
    }
    return this.term(lo) === term ? lo : 0;
  }

  /**
   * Where a leader should back up to after this log refused an append at
   * `prevIndex`: the term of the entry there (0 when the log is shorter)
   * and the first index of that term (or the last index + 1).
   */
  conflictHint(prevIndex: number): { conflictTerm: number; conflictIndex: number } {
    if (prevIndex > this.lastIndex()) {
      return { conflictTerm: 0, conflictIndex: this.lastIndex() + 1 };
    }
    return { conflictTerm: this.term(prevIndex)!, conflictIndex: this.firstIndexOfTerm(prevIndex) };
  }

  /**
   * The entries from `from` on that fit one append: at most `maxEntries`,
   * and at most `maxBytes` (estimated) unless the first alone is larger.
   * Returns them with their estimated size.
   */
  batch(from: number, limits: { maxEntries: number; maxBytes: number }): {
    entries: Entry[];
    bytes: number;
  } {
    const entries: Entry[] = [];
    const last = this.lastIndex();
    let bytes = 0;
    let sent = 0;
    for (let i = from; i <= last && entries.length < limits.maxEntries; i++) {
      const e = this.entry(i)!;
      bytes += approximateSize(e);
      if (entries.length > 0 && bytes > limits.maxBytes) break;
      entries.push(e);
      sent = bytes;
    }
    return { entries, bytes: sent };
  }
}

/** Estimates already made: entries are immutable, and batched again for every follower. */
const SIZES = new WeakMap<Entry, number>();

/** A cheap estimate of an entry's encoded size, for batching. */
function approximateSize(e: Entry): number {
  const known = SIZES.get(e);
  if (known !== undefined) return known;
  const size = 16 + (e.kind === "command" ? approximateBytes(e.command) : 8);
  SIZES.set(e, size);
  return size;
}

/**
 * A membership entry never changes the folder of a voter that stays one, nor
 * unbinds it: it only binds unbound voters (`Membership.bindings`). A folder
 * swapped in one entry would let a quorum counted with the old folder and
 * one counted with the new miss each other.
 */
function checkBindings(before: Membership, entry: Entry & { kind: "membership" }): void {
  const after = entry.membership;
  for (const v of before.voters) {
    const was = before.bindings?.[v];
    if (was === undefined || !after.voters.includes(v)) continue;
    invariant(
      after.bindings?.[v] === was,
      `membership entry ${entry.index} changes voter ${v}'s folder from ${was} to ` +
        `${after.bindings?.[v] ?? "unbound"}`,
    );
  }
}
