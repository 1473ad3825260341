/**
 * Time, behind an interface: every timer in distkit goes through a
 * {@linkcode Clock}, so a whole cluster can run in virtual time.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/**
 * A cancellable timer returned by {@linkcode Clock.setTimer}.
 *
 * @example
 * ```ts
 * import { realClock } from "@distkit/distkit/net";
 *
 * const timer = realClock.setTimer(1000, () => console.log("never"));
 * timer.cancel();
 * ```
 */
export interface Timer {
  /** Stops the timer; calling it after the timer fired does nothing. */
  cancel(): void;
}

/**
 * A source of time and timers.
 *
 * @example Sleep on any clock
 * ```ts
 * import { type Clock, delay, realClock } from "@distkit/distkit/net";
 *
 * async function pause(clock: Clock) {
 *   const start = clock.now();
 *   await delay(5, { clock });
 *   return clock.now() - start;
 * }
 * await pause(realClock);
 * ```
 */
export interface Clock {
  /** Milliseconds since an arbitrary, fixed origin; never decreases. */
  now(): number;
  /**
   * Runs `callback` once, `delayMs` milliseconds from now (0 when negative or
   * NaN; never when `Infinity`).
   */
  setTimer(delayMs: number, callback: () => void): Timer;
}

/** The longest delay `setTimeout` takes; a longer one would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A timer that never fires. */
const NEVER: Timer = { cancel: () => {} };

class RealClock implements Clock {
  now(): number {
    return performance.now();
  }
  setTimer(delayMs: number, callback: () => void): Timer {
    if (delayMs === Infinity) return NEVER;
    let id: ReturnType<typeof setTimeout>;
    // setTimeout takes at most 2^31-1 ms; wait longer in steps.
    const arm = (remaining: number) => {
      id = remaining > MAX_TIMEOUT_MS
        ? setTimeout(() => arm(remaining - MAX_TIMEOUT_MS), MAX_TIMEOUT_MS)
        : setTimeout(callback, Math.max(0, remaining));
    };
    arm(delayMs);
    return { cancel: () => clearTimeout(id) };
  }
}

/**
 * The wall clock: `performance.now()` and `setTimeout`.
 *
 * @example
 * ```ts
 * import { realClock } from "@distkit/distkit/net";
 *
 * const t0 = realClock.now();
 * realClock.now() >= t0; // true
 * ```
 */
export const realClock: Clock = new RealClock();

/**
 * Thrown by {@linkcode VirtualClock.run} when the simulation can make no more
 * progress: nothing is scheduled, yet the task it drives has not finished.
 *
 * @example
 * ```ts
 * import { SimulationStalledError, VirtualClock } from "@distkit/distkit/net";
 *
 * const clock = new VirtualClock();
 * try {
 *   await clock.run(() => new Promise(() => {}));
 * } catch (err) {
 *   err instanceof SimulationStalledError; // true
 * }
 * ```
 */
export class SimulationStalledError extends Error {
  /**
   * Creates the error.
   *
   * @param atMs Virtual time at which the simulation stalled.
   */
  constructor(atMs: number) {
    super(
      `simulation stalled at virtual time ${atMs} ms: no timer is pending and the task has not ` +
        `finished; the task is waiting on something outside the virtual clock (real I/O, a real ` +
        `setTimeout) or on a promise nothing will resolve`,
    );
    this.name = "SimulationStalledError";
  }
}

/**
 * Thrown by {@linkcode VirtualClock.run} when virtual time passes the run's
 * `limitMs` before the task finishes.
 *
 * @example
 * ```ts
 * import { SimulationLimitError } from "@distkit/distkit/net";
 *
 * new SimulationLimitError(60_000).message.includes("60000"); // true
 * ```
 */
export class SimulationLimitError extends Error {
  /**
   * Creates the error.
   *
   * @param limitMs The virtual-time limit that was reached.
   */
  constructor(limitMs: number) {
    super(
      `simulation passed its limit of ${limitMs} ms of virtual time before the task finished; ` +
        `the system is not making progress, or the limit is too small`,
    );
    this.name = "SimulationLimitError";
  }
}

/**
 * Options for {@linkcode VirtualClock.run}.
 *
 * @example
 * ```ts
 * import type { RunOptions } from "@distkit/distkit/net";
 *
 * const options: RunOptions = { limitMs: 120_000 };
 * ```
 */
export interface RunOptions {
  /** Fail with {@linkcode SimulationLimitError} once this much virtual time has passed. */
  limitMs?: number;
}

interface VirtualTimer {
  at: number;
  seq: number;
  /** Dropped on cancel, so a cancelled timer holds on to nothing. */
  callback: (() => void) | undefined;
}

/** Below this many queued timers, cancelled ones are not worth sweeping out. */
const COMPACT_MIN = 1024;

/**
 * A clock whose time moves only when {@linkcode VirtualClock.run} (or
 * {@linkcode VirtualClock.advance}) moves it. Between two timers it lets every
 * pending promise settle, so async code behaves as under real time, in the
 * same order on every run: timers fire in time order, ties in the order they
 * were set.
 *
 * @example Minutes of timers in microseconds
 * ```ts
 * import { delay, VirtualClock } from "@distkit/distkit/net";
 * import assert from "node:assert/strict";
 *
 * const clock = new VirtualClock();
 * const elapsed = await clock.run(async () => {
 *   await delay(60_000, { clock });
 *   return clock.now();
 * });
 * assert.equal(elapsed, 60_000);
 * ```
 */
export class VirtualClock implements Clock {
  #now = 0;
  #seq = 0;
  #heap: VirtualTimer[] = [];
  /** Timers in the heap that were cancelled and not yet discarded. */
  #cancelled = 0;
  #running = false;
  /** A running hash of the times timers fired at, in firing order. */
  #traceHash = 0x811c9dc5;
  #fired = 0;

  /** The current virtual time in milliseconds (starts at 0). */
  now(): number {
    return this.#now;
  }

  /**
   * Schedules `callback` at virtual time `now() + delayMs` (now when
   * `delayMs` is negative or NaN; never when it is `Infinity`).
   */
  setTimer(delayMs: number, callback: () => void): Timer {
    if (delayMs === Infinity) return NEVER;
    const timer: VirtualTimer = {
      at: this.#now + (delayMs > 0 ? delayMs : 0),
      seq: this.#seq++,
      callback,
    };
    heapPush(this.#heap, timer);
    return {
      cancel: () => {
        if (timer.callback === undefined) return; // fired or cancelled already
        timer.callback = undefined;
        this.#cancelled++;
        this.#compact();
      },
    };
  }

  /**
   * A running hash of every timer fired so far (its virtual time, in firing
   * order): the same run, the same hash.
   */
  get traceHash(): number {
    return this.#traceHash >>> 0;
  }

  /** The number of timers fired so far. */
  get firedTimers(): number {
    return this.#fired;
  }

  /** The number of timers that have not fired or been cancelled. */
  get pendingTimers(): number {
    return this.#heap.length - this.#cancelled;
  }

  /**
   * The number of timers the clock holds, including cancelled ones it has not
   * discarded yet. Cancelled timers are discarded lazily, but never make up
   * more than half of a queue of 1,024 or more, so a busy simulation that
   * sets and cancels deadlines holds memory for the live timers only.
   */
  get queuedTimers(): number {
    return this.#heap.length;
  }

  /**
   * Runs `task` to completion, moving virtual time forward whenever nothing
   * else can happen, and returns its result.
   *
   * @throws {SimulationStalledError} when nothing is scheduled but the task is unfinished.
   * @throws {SimulationLimitError} when `limitMs` of virtual time pass first.
   */
  async run<T>(task: () => Promise<T>, options: RunOptions = {}): Promise<T> {
    if (this.#running) {
      throw new Error(
        "VirtualClock.run is already driving this clock; await the running run() (or " +
          "advance()) before starting another, and do not call either from inside the task",
      );
    }
    this.#running = true;
    const limit = options.limitMs === undefined ? Infinity : this.#now + options.limitMs;
    let settled = false;
    let value: T | undefined;
    let failure: { error: unknown } | undefined;
    try {
      // A task that throws before returning its promise fails the run like one that rejects.
      new Promise<T>((resolve) => resolve(task())).then(
        (v) => {
          settled = true;
          value = v;
        },
        (error) => {
          settled = true;
          failure = { error };
        },
      );
      while (true) {
        await idle();
        if (settled) break;
        const timer = this.#popLive();
        if (timer === undefined) throw new SimulationStalledError(this.#now);
        if (timer.at > limit) {
          heapPush(this.#heap, timer);
          throw new SimulationLimitError(options.limitMs!);
        }
        this.#now = timer.at;
        this.#fired++;
        this.#traceHash = Math.imul(this.#traceHash ^ ((timer.at * 1000) | 0), 0x01000193);
        const callback = timer.callback!;
        timer.callback = undefined; // fired: a later cancel() does nothing
        callback();
      }
    } finally {
      this.#running = false;
    }
    if (failure) throw failure.error;
    return value as T;
  }

  /**
   * Moves virtual time forward by `ms`, firing every timer due on the way and
   * letting pending promises settle after each one.
   */
  async advance(ms: number): Promise<void> {
    await this.run(() => new Promise<void>((resolve) => this.setTimer(ms, resolve)));
  }

  #popLive(): VirtualTimer | undefined {
    while (this.#heap.length > 0) {
      const timer = heapPop(this.#heap)!;
      if (timer.callback !== undefined) return timer;
      this.#cancelled--;
    }
    return undefined;
  }

  /**
   * Drops the cancelled timers once they are most of a large heap. The firing
   * order is fixed by (at, seq) alone, and a sorted array is a valid heap.
   */
  #compact(): void {
    if (this.#heap.length < COMPACT_MIN || this.#cancelled * 2 <= this.#heap.length) return;
    this.#heap = this.#heap.filter((t) => t.callback !== undefined)
      .sort((a, b) => a.at - b.at || a.seq - b.seq);
    this.#cancelled = 0;
  }
}

/**
 * Resolves once every queued microtask has run. `setImmediate` is a true
 * macrotask that costs about a microsecond; `setTimeout(0)` is clamped to
 * milliseconds, and a `MessageChannel` stops being a macrotask boundary once
 * its receive loop runs.
 */
function idle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function before(a: VirtualTimer, b: VirtualTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function heapPush(heap: VirtualTimer[], item: VirtualTimer): void {
  heap.push(item);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i], heap[parent])) break;
    [heap[i], heap[parent]] = [heap[parent], heap[i]];
    i = parent;
  }
}

function heapPop(heap: VirtualTimer[]): VirtualTimer | undefined {
  if (heap.length === 0) return undefined;
  const top = heap[0];
  const last = heap.pop()!;
  if (heap.length > 0) {
    heap[0] = last;
    let i = 0;
    while (true) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l], heap[m])) m = l;
      if (r < heap.length && before(heap[r], heap[m])) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  }
  return top;
}
