/**
 * Many timers on one: a {@linkcode Clock} whose timers wait in a queue
 * ordered by when they are due, with one timer of the clock underneath
 * for the soonest. For timers that are nearly all cancelled long before
 * they are due, one per request (issue 20: a `setTimeout` and a
 * `clearTimeout` per HTTP request were ~3% of a leader's CPU at 64
 * connections): setting one is an append, cancelling one a mark.
 *
 * @module
 */
import type { Clock, Timer } from "./clock.ts";

/** A timer in the queue; `callback` is cleared when it fires or is cancelled. */
interface Entry {
  due: number;
  callback: (() => void) | undefined;
}

/** A timer that never fires. */
const NEVER: Timer = { cancel: () => {} };

/** The count of waiting timers never goes below 0: each ends once, by firing or by a cancel. */
function checkLive(live: number): void {
  if (!(live >= 0)) {
    throw new Error(`timer queue invariant: ${live} timers waiting; a timer ended twice`);
  }
}

/** Cancelled entries at the front are dropped in one go past this many. */
const COMPACT_AFTER = 1024;

/**
 * A clock whose timers share one timer of `clock`: each fires when it is
 * due, as on `clock` (in the order they are due, those due together in the
 * order they were set); when none is left waiting, none of `clock` is.
 *
 * @example
 * ```ts
 * import { VirtualClock } from "./clock.ts";
 * import { TimerQueue } from "./timer_queue.ts";
 * import assert from "node:assert/strict";
 *
 * const clock = new VirtualClock();
 * const timers = new TimerQueue(clock);
 * const fired: number[] = [];
 * timers.setTimer(20, () => fired.push(20));
 * timers.setTimer(10, () => fired.push(10)).cancel();
 * assert.equal(clock.pendingTimers, 1);
 * await clock.advance(25);
 * assert.deepEqual(fired, [20]);
 * assert.equal(clock.pendingTimers, 0);
 * ```
 */
export class TimerQueue implements Clock {
  readonly #clock: Clock;
  /** Sorted by `due`; the live ones from `#head` on, cancelled ones among them. */
  #entries: Entry[] = [];
  #head = 0;
  /** Timers set and neither fired nor cancelled. */
  #live = 0;
  #timer: Timer | undefined;
  #timerAt = Infinity;

  /** Timers on `clock`, sharing one of its own. */
  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The underlying clock's time. */
  now(): number {
    return this.#clock.now();
  }

  /** Timers set and neither fired nor cancelled. */
  get pending(): number {
    return this.#live;
  }

  /** Runs `callback` once, `delayMs` from now (0 when negative or NaN; never when `Infinity`). */
  setTimer(delayMs: number, callback: () => void): Timer {
    if (delayMs === Infinity) return NEVER;
    const now = this.#clock.now();
    const entry: Entry = { due: now + (delayMs > 0 ? delayMs : 0), callback };
    // Nearly always due last: timers of one length set one after another.
    const entries = this.#entries;
    let at = entries.length;
    while (at > this.#head && entries[at - 1].due > entry.due) at--;
    if (at === entries.length) entries.push(entry);
    else entries.splice(at, 0, entry);
    this.#live++;
    if (entry.due < this.#timerAt) this.#arm(entry.due, now);
    return { cancel: () => this.#cancel(entry) };
  }

  #cancel(entry: Entry): void {
    if (entry.callback === undefined) return;
    entry.callback = undefined;
    this.#live--;
    checkLive(this.#live);
    if (this.#live === 0) {
      this.#reset();
      return;
    }
    // Timers of one length end about in the order they were set: drop the cancelled ones at the
    // front now, so they are not kept (and promoted by the GC) until the clock's timer fires.
    const entries = this.#entries;
    while (this.#head < entries.length && entries[this.#head].callback === undefined) this.#head++;
    this.#compact();
  }

  /** Lets go of the entries before `#head` once they are most of the array. */
  #compact(): void {
    if (this.#head > COMPACT_AFTER && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Nothing waits: no timer of the clock either, and the queue starts afresh. */
  #reset(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#entries = [];
    this.#head = 0;
  }

  #arm(due: number, now: number): void {
    this.#timer?.cancel();
    this.#timerAt = due;
    this.#timer = this.#clock.setTimer(due - now, () => this.#fire());
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    const entries = this.#entries;
    const due: Entry[] = [];
    while (this.#head < entries.length) {
      const entry = entries[this.#head];
      if (entry.callback !== undefined && entry.due > now) break;
      if (entry.callback !== undefined) due.push(entry);
      this.#head++;
    }
    this.#compact();
    if (this.#head < this.#entries.length) this.#arm(this.#entries[this.#head].due, now);
    // Each runs unless an earlier one cancelled it; one that throws does not stop the others.
    let failure: { error: unknown } | undefined;
    for (const entry of due) {
      const callback = entry.callback;
      if (callback === undefined) continue;
      entry.callback = undefined;
      this.#live--;
      try {
        callback();
      } catch (error) {
        failure ??= { error };
      }
    }
    checkLive(this.#live);
    if (this.#live === 0) this.#reset();
    if (failure !== undefined) throw failure.error;
  }
}
