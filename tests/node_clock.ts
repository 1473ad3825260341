/**
 * One simulated machine's clock, over the simulation's virtual clock: it may
 * run fast or slow (drift), and its process may be paused (a long garbage
 * collection, a stopped VM), during which none of its timers fire; those
 * due meanwhile fire when the pause ends, late and all at once. What it is
 * sent meanwhile is the wiring's business (`SimWiring.pause`).
 *
 * Raft must stay safe whatever a node's clock does: timeouts decide only
 * when it acts, never whether what it does is right.
 */
import type { Clock, Timer } from "../net/mod.ts";

/** The fastest and slowest rates {@linkcode NodeClock.setRate} takes. */
export const RATE_RANGE: readonly [number, number] = [0.5, 2];

/** A drifting, pausable clock over `base` (see the module doc). */
export class NodeClock implements Clock {
  readonly #base: Clock;
  #rate = 1;
  /** The base time and this clock's time when the rate last changed. */
  #baseAt: number;
  #ownAt: number;
  /** Base time until which the process is paused. */
  #pausedUntil = -Infinity;

  constructor(base: Clock) {
    this.#base = base;
    this.#baseAt = base.now();
    this.#ownAt = this.#baseAt;
  }

  /** How fast this clock runs against the base one (1: in step). */
  get rate(): number {
    return this.#rate;
  }

  now(): number {
    return this.#ownAt + (this.#base.now() - this.#baseAt) * this.#rate;
  }

  /** From now on, this clock advances `rate` ms per base ms (timers set before keep their pace). */
  setRate(rate: number): void {
    if (!(rate >= RATE_RANGE[0] && rate <= RATE_RANGE[1])) {
      throw new RangeError(`clock rate ${rate} is outside ${RATE_RANGE.join("..")}`);
    }
    this.#ownAt = this.now();
    this.#baseAt = this.#base.now();
    this.#rate = rate;
  }

  /** Pauses the process for `ms` base milliseconds (a longer pause in progress is kept). */
  pause(ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#base.now() + ms);
  }

  /** Whether the process is paused now. */
  get paused(): boolean {
    return this.#base.now() < this.#pausedUntil;
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    let current: Timer;
    let cancelled = false;
    const fire = () => {
      if (cancelled) return;
      const wait = this.#pausedUntil - this.#base.now();
      if (wait > 0) current = this.#base.setTimer(wait, fire);
      else callback();
    };
    current = this.#base.setTimer(delayMs / this.#rate, fire);
    return {
      cancel: () => {
        cancelled = true;
        current.cancel();
      },
    };
  }
}
