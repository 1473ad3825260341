/**
 * A MapReduce worker: asks the coordinator for tasks, runs them with the
 * application's `map` and `reduce`, reports each, and returns when the
 * coordinator says the job is over (or can no longer be reached after the
 * job started, which is how a finished coordinator that has exited looks).
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { type Clock, realClock } from "../net/clock.ts";
import { RpcError } from "../net/errors.ts";
import type { ClientEnd } from "../net/transport.ts";
import type { AppIdentity, MapReduceApp } from "./app.ts";
import type { Assignment } from "./coordinator.ts";
import { runMap, runReduce } from "./engine.ts";

/**
 * Options of {@linkcode runWorker}.
 *
 * @example
 * ```ts
 * import type { WorkerOptions } from "@distkit/distkit/mapreduce";
 *
 * const options: WorkerOptions = {
 *   id: "w1",
 *   giveUpMs: 5000,
 *   appIdentity: { id: "builtin:wc", name: "wc" },
 * };
 * ```
 */
export interface WorkerOptions {
  /**
   * Which app this worker runs (from {@linkcode appIdentity}, given the
   * spec the app was loaded from), sent with every request for a task: a
   * coordinator refuses a worker whose app is not its job's. Without it, a
   * coordinator whose job's app is known refuses this worker (as it would
   * a worker of an older distkit).
   */
  appIdentity?: AppIdentity;
  /** The worker's name, in the coordinator's view. Default: its process id and a random tag. */
  id?: string;
  /**
   * How long the coordinator may be unreachable, once it has answered,
   * before the worker stops (it has finished and exited, or died).
   * Default 3,000 ms.
   */
  giveUpMs?: number;
  /**
   * How long to keep trying to reach a coordinator that has not answered
   * yet (it may still be starting). Default 30,000 ms.
   */
  connectMs?: number;
  /** Reports each task as it starts and ends. Default: nothing. */
  log?: (line: string) => void;
  /** Time source. Default: the real clock. */
  clock?: Clock;
}

/**
 * What a worker did, from {@linkcode runWorker}.
 *
 * @example
 * ```ts
 * import type { WorkerReport } from "@distkit/distkit/mapreduce";
 *
 * const line = (r: WorkerReport) => `${r.maps} maps, ${r.reduces} reduces (${r.ended})`;
 * ```
 */
export interface WorkerReport {
  /** Map tasks it completed. */
  maps: number;
  /** Reduce tasks it completed. */
  reduces: number;
  /** Tasks whose app call failed (each reported to the coordinator). */
  failures: number;
  /**
   * Why it stopped: the job is done, it failed, the coordinator went away
   * (after answering), it never answered, or it refused this worker (before
   * giving it any task: the job runs another app).
   */
  ended: "done" | "job failed" | "coordinator gone" | "coordinator unreachable" | "refused";
  /** For a failed job, or a refused worker: the coordinator's reason. */
  reason?: string;
}

/**
 * Runs tasks from the coordinator at the other end of `coordinator` until
 * the job is over, or the coordinator refuses this worker (`ended:
 * "refused"`, with the reason: the job runs another app).
 *
 * @example
 * ```ts ignore
 * import { appIdentity, loadApp, runWorker } from "@distkit/distkit/mapreduce";
 * import { TcpClient } from "@distkit/distkit/net";
 *
 * const end = new TcpClient("127.0.0.1:7700");
 * const report = await runWorker(end, await loadApp("wc"), {
 *   appIdentity: await appIdentity("wc"),
 * });
 * if (report.ended === "refused") console.error(report.reason);
 * await end.close();
 * ```
 */
export async function runWorker(
  coordinator: ClientEnd,
  app: MapReduceApp,
  options: WorkerOptions = {},
): Promise<WorkerReport> {
  const clock = options.clock ?? realClock;
  const worker = options.id ?? `worker-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const log = options.log ?? (() => {});
  const giveUpMs = options.giveUpMs ?? 3000;
  const connectMs = options.connectMs ?? 30_000;
  // Who is asking, sent with every request for a task (an older coordinator ignores the app).
  const asker = options.appIdentity === undefined
    ? { worker }
    : { worker, app: options.appIdentity.id, appName: options.appIdentity.name };
  let answered = false;
  const report: WorkerReport = { maps: 0, reduces: 0, failures: 0, ended: "done" };
  let unreachableSince: number | undefined;
  /** One call, retried while the coordinator is unreachable; undefined once it has been gone too long. */
  const call = async (method: string, args: unknown): Promise<{ reply: unknown } | undefined> => {
    while (true) {
      try {
        const reply = await coordinator.call(`MR.${method}`, args, { timeoutMs: 5000 });
        unreachableSince = undefined;
        answered = true;
        return { reply };
      } catch (err) {
        if (!(err instanceof RpcError) || !["unreachable", "timeout"].includes(err.code)) throw err;
        unreachableSince ??= clock.now();
        if (clock.now() - unreachableSince >= (answered ? giveUpMs : connectMs)) return undefined;
        // Quick retries while it may be starting (every task waits for it:
        // a worker started with its coordinator should find it within a few
        // milliseconds of its listening), slower after the first second, and
        // slower still once it has answered and gone.
        const waited = clock.now() - unreachableSince;
        await delay(answered ? 100 : waited < 1000 ? 2 : 25, { clock });
      }
    }
  };
  /** A task done and not reported yet: the next request for a task reports it. */
  let unreported:
    | { worker: string; kind: "map" | "reduce"; id: number; attempt: number }
    | undefined;
  /** Whether the coordinator has `MR.Next` (Done and Task in one round trip). */
  let hasNext = true;
  const nextTask = async (): Promise<{ reply: unknown } | undefined> => {
    const done = unreported;
    unreported = undefined;
    if (done === undefined) return await call("Task", asker);
    if (hasNext) {
      try {
        return await call("Next", { ...asker, done });
      } catch (err) {
        if (!(err instanceof RpcError) || err.code !== "unknown_method") throw err;
        hasNext = false; // an older coordinator: report, then ask
      }
    }
    if (await call("Done", done) === undefined) return undefined;
    return await call("Task", asker);
  };
  while (true) {
    const answer = await nextTask();
    if (answer === undefined) {
      return { ...report, ended: answered ? "coordinator gone" : "coordinator unreachable" };
    }
    const assignment = answer.reply as Assignment;
    switch (assignment.kind) {
      case "exit":
        if (assignment.refused !== undefined) {
          return { ...report, ended: "refused", reason: assignment.refused };
        }
        return assignment.failed === undefined
          ? report
          : { ...report, ended: "job failed", reason: assignment.failed };
      case "wait":
        await delay(assignment.ms, { clock });
        continue;
      case "map":
      case "reduce": {
        const id = assignment.kind === "map" ? assignment.task.id : assignment.r;
        const name = `${assignment.kind} ${id}`;
        log(`${name}: started`);
        let error: string | undefined;
        try {
          if (assignment.kind === "map") {
            await runMap(app, assignment.task, assignment);
            report.maps++;
          } else {
            await runReduce(app, assignment);
            report.reduces++;
          }
        } catch (err) {
          error = (err as Error).message ?? String(err);
          report.failures++;
        }
        log(`${name}: ${error === undefined ? "done" : `failed: ${error}`}`);
        const done = { worker, kind: assignment.kind, id, attempt: assignment.attempt };
        if (error === undefined) {
          unreported = done; // reported with the next request for a task
          break;
        }
        if (await call("Failed", { ...done, error }) === undefined) {
          return { ...report, ended: "coordinator gone" };
        }
        break;
      }
      default:
        throw new Error(
          `the coordinator sent ${JSON.stringify(assignment)}, which this worker does not ` +
            `understand (another version of distkit?)`,
        );
    }
  }
}
