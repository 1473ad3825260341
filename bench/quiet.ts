/**
 * Waiting, a bounded time, for other work on the machine to pause before a
 * measurement: the benchmarks of bench/checker_files.ts and bench/mr_wc.ts
 * call {@linkcode waitQuiet} before each run and print what it saw beside the
 * run's time.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { machineCpuMs } from "./kv_load.ts";

/**
 * Waits until the machine's CPU was under `limitPercent` of one core busy over
 * the last second, or `limitMs` has passed; resolves with the busy share of
 * that last second (percent of one core, all cores together; NaN where
 * /proc/stat cannot be read).
 *
 * @example
 * ```ts ignore
 * import { waitQuiet } from "./quiet.ts";
 *
 * const busy = await waitQuiet(30_000, 25);
 * console.log(`measuring with ${busy.toFixed(0)}% of a core busy elsewhere`);
 * ```
 */
export async function waitQuiet(limitMs: number, limitPercent = 25): Promise<number> {
  const until = Date.now() + limitMs;
  while (true) {
    const before = machineCpuMs();
    await delay(1000);
    const busy = (machineCpuMs() - before) / 10;
    if (!(busy >= limitPercent) || Date.now() >= until) return busy;
  }
}
