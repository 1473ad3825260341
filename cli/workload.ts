/**
 * `AppendWorkload`: clients that alternate appends of unique values and
 * reads on a few shared keys, recording the history for the checker; and the
 * check afterwards that every acknowledged append is present exactly once,
 * in its client's order. Used by the demo, the tour and the crash tests.
 *
 * @module
 */
import type { KvInput } from "../checker/models.ts";
import type { Operation } from "../checker/types.ts";
import type { KvClerk } from "../kv/clerk.ts";

/**
 * Options of {@linkcode AppendWorkload}.
 *
 * @example
 * ```ts
 * import type { AppendWorkloadOptions } from "@distkit/distkit/cli";
 *
 * const options: AppendWorkloadOptions = { keys: 4, now: () => performance.now() };
 * ```
 */
export interface AppendWorkloadOptions {
  /** Keys shared by the clients (client c writes `<keyPrefix><c % keys>`). Default 4. */
  keys?: number;
  /** The keys' prefix. Default `k`. (The sharded service spreads keys "0".."9" over 10 shards.) */
  keyPrefix?: string;
  /** Time of events in the history. Default: a counter (the order of events, exact in one process). */
  now?: () => number;
}

/**
 * What the workload needs of a client: the KV {@linkcode KvClerk}, the
 * sharded service's clerk, or anything else with `append` and `get`.
 *
 * @example
 * ```ts
 * import type { AppendTarget } from "@distkit/distkit/cli";
 *
 * const store = new Map<string, string>();
 * const target: AppendTarget = {
 *   append: async (key, value) => void store.set(key, (store.get(key) ?? "") + value),
 *   get: async (key) => store.get(key) ?? null,
 * };
 * ```
 */
export type AppendTarget = Pick<KvClerk, "append" | "get">;

/**
 * Runs clients against a KV service and checks what they did.
 *
 * @example
 * ```ts ignore
 * import { connectKv } from "@distkit/distkit/kv";
 * import { AppendWorkload } from "@distkit/distkit/cli";
 *
 * const workload = new AppendWorkload();
 * const clerks = [connectKv(peers).clerk, connectKv(peers).clerk];
 * const running = workload.start(clerks);
 * // ... faults ...
 * await running.stop();
 * console.log(await workload.lostAppends(clerks[0])); // 0
 * ```
 */
export class AppendWorkload {
  /** Every completed operation, for the checker's kv model. */
  readonly history: Operation<KvInput, string | undefined>[] = [];
  /** Appends acknowledged, per client. */
  readonly acknowledged: number[] = [];
  readonly #keys: number;
  readonly #prefix: string;
  readonly #now: () => number;

  /** Creates a workload; nothing runs until {@linkcode AppendWorkload.start}. */
  constructor(options: AppendWorkloadOptions = {}) {
    this.#keys = options.keys ?? 4;
    this.#prefix = options.keyPrefix ?? "k";
    let events = 0;
    this.#now = options.now ?? (() => ++events);
  }

  /** Operations completed so far. */
  get completed(): number {
    return this.history.length;
  }

  /**
   * Starts one client per clerk; `stop()` lets each finish its operation in
   * progress and resolves when all have (it rejects if a client failed).
   */
  start(clerks: AppendTarget[]): { stop(): Promise<void> } {
    let stopping = false;
    const first = this.acknowledged.length;
    const loops = clerks.map(async (clerk, k) => {
      const c = first + k;
      this.acknowledged[c] = 0;
      const key = `${this.#prefix}${c % this.#keys}`;
      for (let j = 0; !stopping; j++) {
        const call = this.#now();
        if (j % 2 === 0) {
          const value = `(${c}.${this.acknowledged[c]})`;
          await clerk.append(key, value);
          this.acknowledged[c]++;
          const input = { op: "append" as const, key, value };
          this.history.push({ client: c, input, call, output: undefined, return: this.#now() });
        } else {
          const output = String(await clerk.get(key) ?? "");
          const input = { op: "get" as const, key };
          this.history.push({ client: c, input, call, output, return: this.#now() });
        }
      }
    });
    for (const loop of loops) loop.catch(() => {}); // observed by stop()
    return {
      stop: async () => {
        stopping = true;
        await Promise.all(loops);
      },
    };
  }

  /**
   * Reads every key through `clerk` and counts the acknowledged appends that
   * are missing, doubled or out of their client's order (0 when all is well).
   */
  async lostAppends(clerk: AppendTarget): Promise<number> {
    let lost = 0;
    for (let k = 0; k < this.#keys; k++) {
      const value = String(await clerk.get(`${this.#prefix}${k}`) ?? "");
      for (let c = k; c < this.acknowledged.length; c += this.#keys) {
        let at = -1;
        for (let n = 0; n < this.acknowledged[c]; n++) {
          const wanted = `(${c}.${n})`;
          const found = value.indexOf(wanted);
          if (found <= at || value.lastIndexOf(wanted) !== found) lost++;
          else at = found;
        }
      }
    }
    return lost;
  }
}
