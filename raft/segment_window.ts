/**
 * The log's window in a {@linkcode SegmentLogStorage}: entries [first, last]
 * with something kept per entry, and how a save's head record (reset,
 * snapshot, truncation) moves it. One rule for the writer and for the replay
 * at load, so the two cannot disagree. Not published.
 *
 * @module
 */
import type { Floor } from "./high_water_mark.ts";
import type { HardState, NodeId } from "./types.ts";

/** The non-entry part of a save that moves the log's bounds. */
export interface WindowChange {
  /** Drop every entry first. */
  reset: boolean;
  /** A snapshot switched to at this index: entries it covers go. */
  snapshotIndex: number | null;
  /** Entries from this index on are void. */
  truncate: number | null;
}

/**
 * The bounds `change` leaves a log of entries [first, last] with.
 *
 * @throws {RangeError} when the truncation lies outside [first, last + 1].
 */
export function changedBounds(
  bounds: { first: number; last: number },
  change: WindowChange,
): { first: number; last: number } {
  let { first, last } = bounds;
  const snap = change.snapshotIndex;
  if (change.reset) {
    first = (snap ?? last) + 1;
    last = first - 1;
  }
  if (snap !== null && snap >= first) {
    first = snap + 1;
    last = Math.max(last, snap);
  }
  if (change.truncate !== null) {
    if (change.truncate < first || change.truncate > last + 1) {
      throw new RangeError(
        `a truncation from ${change.truncate} lies outside the log (${first}..${last})`,
      );
    }
    last = change.truncate - 1;
  }
  return { first, last };
}

/** Entries [first, last], each with a `T` (undefined: known to exist, not read). */
export class LogWindow<T> {
  /** Index of `items[0]`. */
  first = 1;
  /** One per entry from `first` on. */
  items: (T | undefined)[] = [];

  /** The last index (first - 1 when empty). */
  get last(): number {
    return this.first + this.items.length - 1;
  }

  /** Sets the bounds, with every item unknown. */
  setBounds(first: number, last: number): void {
    this.first = first;
    this.items = new Array(Math.max(0, last - first + 1)).fill(undefined);
  }

  /** Applies a head record's change; returns the items it dropped. */
  apply(change: WindowChange): (T | undefined)[] {
    const next = changedBounds({ first: this.first, last: this.last }, change);
    let dropped: (T | undefined)[];
    if (next.first > this.last) {
      dropped = this.items;
      this.items = [];
    } else {
      dropped = this.items.splice(0, next.first - this.first);
      dropped.push(...this.items.splice(next.last - next.first + 1));
    }
    this.first = next.first;
    if (this.last !== next.last) {
      throw new Error(`LogWindow invariant: the log ends at ${this.last}, not ${next.last}`);
    }
    return dropped;
  }

  /**
   * Appends the entry at `index`.
   *
   * @throws {RangeError} when it does not follow the last one.
   */
  append(index: number, item: T): void {
    if (index !== this.last + 1) {
      throw new RangeError(`entry ${index} does not follow the log's last entry ${this.last}`);
    }
    this.items.push(item);
  }

  /** The item at `index`, undefined when outside the window or unknown. */
  at(index: number): T | undefined {
    return index < this.first ? undefined : this.items[index - this.first];
  }
}

/**
 * The high-water mark's floor of a stored state (see `high_water_mark.ts`),
 * limited to entries before `keepBelow`.
 *
 * @example
 * ```ts ignore
 * const floor = windowFloor({ hardState, snapshotIndex: 0, window }, Infinity);
 * ```
 */
export function windowFloor(
  state: { hardState: HardState; snapshotIndex: number; window: LogWindow<{ term: number }> },
  keepBelow = Infinity,
): Floor {
  const { hardState, window } = state;
  const covered = state.snapshotIndex;
  let index = Math.min(window.last, keepBelow - 1);
  // An emptied log (a reset without a snapshot) holds nothing past the snapshot.
  if (index < window.first) index = Math.min(index, covered);
  const floor: Floor = {
    term: hardState.term,
    vote: hardState.vote as NodeId | null,
    index: 0,
    logTerm: -1,
  };
  if (index <= 0) return floor;
  floor.index = index;
  if (index <= covered) return floor;
  const info = window.at(index);
  if (info === undefined) {
    throw new Error(
      `SegmentLogStorage invariant: entry ${index} is stored but its term is unknown`,
    );
  }
  floor.logTerm = info.term;
  return floor;
}
