/**
 * A full garbage collection once a process has been idle for a while.
 *
 * V8 frees large garbage (1 MiB strings, the `ArrayBuffer`s behind request
 * bodies and encoded entries) only at a major collection, and a process that
 * allocates nothing runs none: after a load ends, a node's resident memory
 * stayed 100–300 MiB above what it holds (issue 16). One collection when the
 * load is over gives that memory back, and costs nothing while it goes on.
 *
 * @module
 */
import v8 from "node:v8";
import vm from "node:vm";
import type { Clock } from "./clock.ts";

/** Options of {@linkcode startIdleCollector}. */
export interface IdleCollectorOptions {
  /**
   * A number that changes whenever the process does work (entries appended,
   * requests answered); unchanged for `idleMs`, the process is idle.
   */
  activity: () => number;
  /** How long the activity must stay unchanged before a collection. Default 10,000 ms. */
  idleMs?: number;
  /** The clock the checks run on. */
  clock: Clock;
  /** Runs a full collection; default: V8's own (see {@linkcode fullCollection}). */
  collect?: () => void;
  /** Told of each collection, with the heap and buffers (MiB) before and after. Default: none. */
  log?: (line: string) => void;
}

/** A running idle collector: `stop()` ends its checks. */
export interface IdleCollector {
  /** Collections run so far. */
  readonly collections: number;
  /** Ends the checks (idempotent). */
  stop(): void;
}

/**
 * V8's full collection, or undefined where it cannot be had. `gc` is exposed
 * only to contexts made after the flag is set, so it is taken from a new one
 * (the flag changes nothing else).
 *
 * @example
 * ```ts
 * import { fullCollection } from "./idle_gc.ts";
 *
 * fullCollection()?.();
 * ```
 */
export function fullCollection(): (() => void) | undefined {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === "function") return own as () => void;
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc");
    return typeof gc === "function" ? gc : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checks the activity every `idleMs / 2`; once it has stayed unchanged for
 * `idleMs`, runs one full collection, and no other until the activity has
 * changed and stayed unchanged again. Does nothing where no collection can be
 * had.
 *
 * @example
 * ```ts
 * import { startIdleCollector } from "./idle_gc.ts";
 * import { realClock } from "./clock.ts";
 *
 * let requests = 0;
 * const collector = startIdleCollector({ activity: () => requests, clock: realClock });
 * collector.stop();
 * ```
 */
export function startIdleCollector(options: IdleCollectorOptions): IdleCollector {
  const idleMs = options.idleMs ?? 10_000;
  if (!(idleMs > 0)) throw new RangeError(`idleMs must be above 0, got ${options.idleMs}`);
  const gc = options.collect ?? fullCollection();
  const { clock, log } = options;
  const collect = gc && (() => {
    const before = heldMib();
    gc();
    log?.(`idle: garbage collected, heap and buffers ${before} → ${heldMib()} MiB`);
  });
  let last = options.activity();
  let since = clock.now();
  let collected = false;
  let collections = 0;
  let stopped = false;
  let timer = collect === undefined ? undefined : clock.setTimer(idleMs / 2, check);
  function check(): void {
    if (stopped) return;
    const now = options.activity();
    if (now !== last) {
      last = now;
      since = clock.now();
      collected = false;
    } else if (!collected && clock.now() - since >= idleMs) {
      collected = true;
      collections++;
      collect!();
    }
    timer = clock.setTimer(idleMs / 2, check);
  }
  return {
    get collections() {
      return collections;
    },
    stop() {
      stopped = true;
      timer?.cancel();
    },
  };
}

/** The V8 heap in use and the memory of buffers outside it, in MiB. */
function heldMib(): string {
  const m = Deno.memoryUsage();
  return ((m.heapUsed + m.external) / (1 << 20)).toFixed(0);
}
