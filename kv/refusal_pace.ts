/**
 * Pacing of refusals: an overloaded node answers a large refused write after
 * a pause instead of at once, so that a client resending large bodies as
 * fast as it is refused cannot make the node spend more on refusals than on
 * writes (issue 16: 200 clients resending 1 MiB values every 100–300 ms
 * cost the leader about 0.5 ms of CPU per refusal, 650 refusals a second).
 *
 * @module
 */
import { delay } from "../net/async.ts";
import type { Clock } from "../net/clock.ts";

/** How long a large refused write waits for its answer, by default: Retry-After's 1 s. */
export const DEFAULT_REFUSAL_PACE_MS = 1000;

/**
 * Refusals held at once, at most; beyond it a refusal is answered at once.
 * The HTTP listener caps connections per address at 256 by default, so
 * this bounds what one client address can hold; the bound keeps timers and
 * held requests few whatever the listener's caps.
 */
export const MAX_PACED_REFUSALS = 512;

/** Options of {@linkcode RefusalPace}. */
export interface RefusalPaceOptions {
  /** The pause, at most, in ms; 0 answers at once. */
  ms: number;
  /** The clock that times the pause. */
  clock: Clock;
  /** Ends every pause at once (the listener is closing). */
  signal?: AbortSignal;
}

/** Holds refusals for a pause, a bounded number at a time. */
export class RefusalPace {
  readonly #options: RefusalPaceOptions;
  #held = 0;

  constructor(options: RefusalPaceOptions) {
    if (!(options.ms >= 0)) {
      throw new RangeError(`the pace must be 0 ms or more, got ${options.ms}`);
    }
    this.#options = options;
  }

  /** Refusals waiting now. */
  get held(): number {
    return this.#held;
  }

  /**
   * Waits before a refusal is answered: `ms` or the configured pause,
   * whichever is shorter; at once when the pace is off, when
   * {@linkcode MAX_PACED_REFUSALS} are waiting, or when the signal fired.
   * Never throws.
   */
  async hold(ms: number): Promise<void> {
    const { clock, signal } = this.#options;
    const pause = Math.min(ms, this.#options.ms);
    if (pause <= 0 || this.#held >= MAX_PACED_REFUSALS || signal?.aborted) return;
    this.#held++;
    try {
      await delay(pause, { clock, signal });
    } catch {
      // Closing: answer now.
    } finally {
      this.#held--;
    }
  }
}
