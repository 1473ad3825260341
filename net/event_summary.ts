/**
 * `EventSummary`: counts events by kind and reports them as one log line
 * per interval, so a flood (thousands of refused connections a second)
 * leaves a trace in the log without writing a line per event.
 *
 * @module
 */
import { type Clock, realClock } from "./clock.ts";

/**
 * Options of {@linkcode EventSummary}.
 *
 * @example
 * ```ts
 * import type { EventSummaryOptions } from "./event_summary.ts";
 *
 * const options: EventSummaryOptions = { intervalMs: 10_000, log: console.log };
 * ```
 */
export interface EventSummaryOptions {
  /** Where the summary lines go. */
  log: (line: string) => void;
  /** How often a line is written (when anything was counted). Default 10,000 ms. */
  intervalMs?: number;
  /** The clock the interval runs on. Default: the real clock. */
  clock?: Clock;
  /** What the line starts with, e.g. the node's name. Default `""`. */
  prefix?: string;
  /** Called before each line, to count what is sampled rather than reported (deltas of counters). */
  collect?: () => void;
}

/**
 * Counts events by kind; every interval in which something was counted,
 * writes one line with the counts (largest first) and starts again.
 *
 * @example
 * ```ts
 * import { EventSummary } from "./event_summary.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const summary = new EventSummary({ log: (l) => lines.push(l), prefix: "node 1: " });
 * summary.count("connection refused: wrong secret");
 * summary.count("connection refused: wrong secret");
 * summary.count("leader changed", 1);
 * summary.flush();
 * assert.deepEqual(lines, [
 *   "node 1: in the last 0 s: 2 × connection refused: wrong secret, 1 × leader changed",
 * ]);
 * summary.close();
 * ```
 */
export class EventSummary {
  readonly #log: (line: string) => void;
  readonly #intervalMs: number;
  readonly #clock: Clock;
  readonly #prefix: string;
  readonly #collect: (() => void) | undefined;
  #counts = new Map<string, number>();
  #since: number;
  #timer: { cancel(): void } | undefined;

  /**
   * Creates the summary and starts its interval.
   *
   * @throws {RangeError} when `intervalMs` is not positive.
   */
  constructor(options: EventSummaryOptions) {
    this.#log = options.log;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#clock = options.clock ?? realClock;
    this.#prefix = options.prefix ?? "";
    this.#collect = options.collect;
    if (!(this.#intervalMs > 0)) {
      throw new RangeError(`intervalMs must be positive, got ${this.#intervalMs}`);
    }
    this.#since = this.#clock.now();
    this.#schedule();
  }

  /** Counts `n` (default 1) events of `kind`. */
  count(kind: string, n = 1): void {
    if (n <= 0) return;
    this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + n);
  }

  /** Writes the line for what was counted since the last one, if anything, and starts again. */
  flush(): void {
    try {
      this.#collect?.();
    } catch {
      // Sampling failed (the node is stopping): report what was counted.
    }
    const now = this.#clock.now();
    const seconds = Math.round((now - this.#since) / 1000);
    this.#since = now;
    if (this.#counts.size === 0) return;
    const parts = [...this.#counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} × ${k}`);
    this.#counts = new Map();
    try {
      this.#log(`${this.#prefix}in the last ${seconds} s: ${parts.join(", ")}`);
    } catch {
      // A failing log must not fail what is being counted.
    }
  }

  /** Writes what is left and stops the interval. */
  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.flush();
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimer(this.#intervalMs, () => {
      this.flush();
      this.#schedule();
    });
  }
}
