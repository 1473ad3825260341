/**
 * The MapReduce coordinator: hands map tasks, then reduce tasks, to the
 * workers that ask (`MR.Task`), hears of their completion (`MR.Done`) or
 * failure (`MR.Failed`), and re-issues a task whose worker failed or has
 * not reported within the task timeout. A task is never given out again
 * otherwise, so each runs once unless something failed. The job is done
 * when every reduce task's output is final.
 *
 * @module
 */
import type { Clock } from "../net/clock.ts";
import type { AppIdentity } from "./app.ts";
import { ArgumentsError } from "../net/errors.ts";
import { expectShape } from "../net/rpc_server.ts";
import { DEFAULT_CHUNK_BYTES, type MapTask, splitInputs } from "./engine.ts";
import { defaultClock } from "../net/env.ts";

/**
 * What a worker is told to do next.
 *
 * - `map`: run map task `task`, partitioning into `nReduce` files in `dir`;
 * - `reduce`: run reduce task `r` over the files of `nMap` map tasks in `dir`;
 * - `wait`: nothing to do yet; ask again after `ms`;
 * - `exit`: the job is over (`failed` says why, if it failed), or this
 *   worker is refused (`refused` says why: it runs another app than the
 *   job's); it gets no task.
 *
 * @example
 * ```ts
 * import type { Assignment } from "@distkit/distkit/mapreduce";
 *
 * const a: Assignment = { kind: "wait", ms: 200 };
 * ```
 */
export type Assignment =
  | { kind: "map"; attempt: number; task: MapTask; nReduce: number; dir: string }
  | { kind: "reduce"; attempt: number; r: number; nMap: number; dir: string }
  | { kind: "wait"; ms: number }
  | { kind: "exit"; failed?: string; refused?: string };

/**
 * Options of {@linkcode Coordinator.create}.
 *
 * @example
 * ```ts
 * import type { CoordinatorOptions } from "@distkit/distkit/mapreduce";
 *
 * const options: CoordinatorOptions = { files: ["a.txt"], nReduce: 10, dir: "out" };
 * ```
 */
export interface CoordinatorOptions {
  /** The input files. */
  files: string[];
  /** Reduce tasks (and output files). Default 10. */
  nReduce?: number;
  /** Where intermediate and output files go (workers must see it too). Default: the working directory. */
  dir?: string;
  /** A task whose worker has not reported by then is given to another. Default 10,000 ms. */
  taskTimeoutMs?: number;
  /**
   * How long a worker's request for a task is held open when there is none
   * to give yet; it is answered the moment one is free (a task done, failed
   * or timed out, the next phase, the job's end), so no worker sits idle
   * between polls. Default 1,000 ms; 0 answers "wait" at once; at most
   * 4,000 (a worker gives up on a request after 5 s).
   */
  holdMs?: number;
  /** A larger input file is split into map tasks of about this many bytes. Default 64 MiB. */
  chunkBytes?: number;
  /** A task whose app fails (throws) this many times fails the job. Default 3. */
  maxFailures?: number;
  /**
   * A task whose worker goes silent (crashes, stalls past the timeout) this
   * many times fails the job: an input that kills every worker that takes
   * it must not hold the job forever. Default 10.
   */
  maxTimeouts?: number;
  /** Time source. Default: the real clock (none inside `simulate`: pass `sim.clock`). */
  clock?: Clock;
  /**
   * The job's app (from {@linkcode appIdentity}, with the spec its workers
   * are given): a worker that runs another, or does not say which it runs,
   * is refused before it gets any task. Recommended. Without it, the first
   * worker to get a task pins the job's app, and `log` says so.
   */
  appIdentity?: AppIdentity;
  /** Hears when the job's app is pinned by a worker, and of each worker refused (once). */
  log?: (line: string) => void;
}

/**
 * The app a job runs, once it is known ({@linkcode Coordinator.app}).
 *
 * @example
 * ```ts
 * import type { JobApp } from "@distkit/distkit/mapreduce";
 *
 * const pinned: JobApp = { identity: { id: "builtin:wc", name: "wc" } };
 * ```
 */
export interface JobApp {
  /**
   * The app; undefined when the first worker to get a task said nothing of
   * its app (a worker of an older distkit): then workers that do say are
   * refused, since the job's app cannot be checked against theirs.
   */
  identity?: AppIdentity;
  /** The worker whose request pinned it; undefined when the coordinator's options set it. */
  pinnedBy?: string;
}

/** A request's sender, as it names itself and its app. */
interface Asker {
  name: string;
  app?: AppIdentity;
}

/**
 * Where a job stands.
 *
 * @example
 * ```ts
 * import type { JobProgress } from "@distkit/distkit/mapreduce";
 *
 * const line = (p: JobProgress) => `${p.phase}: ${p.done}/${p.total}`;
 * ```
 */
export interface JobProgress {
  /** The phase now. */
  phase: "map" | "reduce" | "done" | "failed";
  /** Tasks of this phase done. */
  done: number;
  /** Tasks of this phase running. */
  running: number;
  /** Tasks of this phase. */
  total: number;
  /** Attempts that failed or timed out, over the whole job. */
  failed: number;
  /** Input bytes of the map tasks done. */
  bytesMapped: number;
  /** Why the job failed. */
  reason?: string;
}

/** How long a worker with nothing to do waits before asking again. */
const WAIT_MS = 50;

interface TaskState {
  state: "idle" | "running" | "done";
  attempt: number;
  startedAt: number;
  failures: number;
  timeouts: number;
  lastError?: string;
}

/**
 * A MapReduce job's coordinator. Serve {@linkcode Coordinator.methods} as
 * the `MR` service of an RPC server (`distkit mr coordinator` does, over
 * TCP) and start workers.
 *
 * @example
 * ```ts ignore
 * import { appIdentity, Coordinator } from "@distkit/distkit/mapreduce";
 * import { RpcServer, serveTcp } from "@distkit/distkit/net";
 *
 * const coordinator = await Coordinator.create({
 *   files: ["a.txt", "b.txt"],
 *   appIdentity: await appIdentity("wc"), // workers of another app are refused
 *   log: (line) => console.error(line),
 * });
 * const server = new RpcServer();
 * server.addService("MR", coordinator.methods());
 * const listener = serveTcp(server, { hostname: "127.0.0.1", port: 0 });
 * await coordinator.finished;
 * await listener.close();
 * ```
 */
export class Coordinator {
  readonly #maps: MapTask[];
  readonly #mapStates: TaskState[];
  readonly #reduceStates: TaskState[];
  readonly #nReduce: number;
  readonly #dir: string;
  readonly #timeoutMs: number;
  readonly #holdMs: number;
  readonly #maxFailures: number;
  readonly #maxTimeouts: number;
  readonly #clock: Clock;
  readonly #log: (line: string) => void;
  /** The job's app, set once (from the options, or by the first worker given a task), never changed. */
  #app: JobApp | undefined;
  /** Workers refused, by name and app, so each is logged once. */
  readonly #refused = new Set<string>();
  /** Workers that have asked for tasks, and whether they have been told to exit. */
  readonly #workers = new Map<string, { told: boolean }>();
  #failedAttempts = 0;
  #bytesMapped = 0;
  #failure: string | undefined;
  /** Resolved (and replaced) whenever a held request may now get something. */
  #changed = Promise.withResolvers<void>();
  readonly #finished = Promise.withResolvers<void>();

  private constructor(maps: MapTask[], options: CoordinatorOptions) {
    this.#maps = maps;
    this.#nReduce = options.nReduce ?? 10;
    this.#dir = options.dir ?? Deno.cwd();
    this.#timeoutMs = options.taskTimeoutMs ?? 10_000;
    this.#holdMs = options.holdMs ?? 1000;
    this.#maxFailures = options.maxFailures ?? 3;
    this.#maxTimeouts = options.maxTimeouts ?? 10;
    this.#clock = options.clock ?? defaultClock("Coordinator");
    this.#log = options.log ?? (() => {});
    if (options.appIdentity !== undefined) this.#app = { identity: options.appIdentity };
    const fresh = (): TaskState => ({
      state: "idle",
      attempt: 0,
      startedAt: 0,
      failures: 0,
      timeouts: 0,
    });
    this.#mapStates = maps.map(fresh);
    this.#reduceStates = Array.from({ length: this.#nReduce }, fresh);
    this.#finished.promise.catch(() => {}); // observed through `finished`
  }

  /**
   * Checks the inputs and splits them into map tasks.
   *
   * @throws {RangeError} for no input files, nReduce below 1, or an
   *   appIdentity without an id.
   * @throws {Error} naming an input file that cannot be read.
   */
  static async create(options: CoordinatorOptions): Promise<Coordinator> {
    if (options.files.length === 0) throw new RangeError("a MapReduce job needs input files");
    for (
      const [name, value] of [
        ["nReduce", options.nReduce],
        ["maxFailures", options.maxFailures],
        ["maxTimeouts", options.maxTimeouts],
      ] as const
    ) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
      }
    }
    if (options.taskTimeoutMs !== undefined && !(options.taskTimeoutMs > 0)) {
      throw new RangeError(`taskTimeoutMs must be above 0, got ${options.taskTimeoutMs}`);
    }
    if (options.holdMs !== undefined && !(options.holdMs >= 0 && options.holdMs <= 4000)) {
      throw new RangeError(`holdMs must be from 0 to 4,000, got ${options.holdMs}`);
    }
    const app = options.appIdentity;
    if (app !== undefined && !(typeof app.id === "string" && app.id.length > 0)) {
      throw new RangeError(
        `appIdentity.id must be a non-empty string (from appIdentity()), got ${app.id}`,
      );
    }
    const dir = options.dir ?? Deno.cwd();
    await Deno.mkdir(dir, { recursive: true });
    const maps = await splitInputs(options.files, {
      chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
    });
    return new Coordinator(maps, { ...options, dir: await Deno.realPath(dir) });
  }

  /** The map tasks. */
  get mapTasks(): readonly MapTask[] {
    return this.#maps;
  }

  /** Resolves when every output is final; rejects with the reason when the job fails. */
  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  /**
   * The job's app: from the options, or pinned by the first worker given a
   * task; undefined until then.
   */
  get app(): JobApp | undefined {
    return this.#app;
  }

  /** Whether the job is over (done or failed). */
  get over(): boolean {
    return this.#phase() === "done" || this.#failure !== undefined;
  }

  /** Where the job stands. */
  progress(): JobProgress {
    const phase = this.#failure !== undefined ? "failed" : this.#phase();
    const states = phase === "map" ? this.#mapStates : this.#reduceStates;
    return {
      phase,
      done: states.filter((s) => s.state === "done").length,
      running: states.filter((s) => s.state === "running").length,
      total: states.length,
      failed: this.#failedAttempts,
      bytesMapped: this.#bytesMapped,
      reason: this.#failure,
    };
  }

  /**
   * Workers that have asked for tasks and not yet been told the job is over
   * (a coordinator lingers for them before it exits).
   */
  get untoldWorkers(): number {
    let n = 0;
    for (const w of this.#workers.values()) if (!w.told) n++;
    return n;
  }

  /**
   * Deletes the intermediate files (`mr-<m>`) and any temporary file a
   * crashed worker left behind, once the job is done; the outputs stay.
   * Returns how many files it removed.
   */
  async cleanUp(): Promise<number> {
    let removed = 0;
    for await (const entry of Deno.readDir(this.#dir)) {
      if (!/^mr-\d+$/.test(entry.name) && !entry.name.startsWith(".mr-tmp-")) continue;
      try {
        await Deno.remove(`${this.#dir}/${entry.name}`);
        removed++;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
    return removed;
  }

  /**
   * The `MR` service's methods, for an RPC server: `Task` (the next
   * assignment: `{ worker, app?, appName? }`, `app` the id of the worker's
   * {@linkcode AppIdentity} and `appName` its name), `Done` and `Failed` (a
   * task's end), and `Next`, which is `Done` and `Task` in one call:
   * `{ worker, app?, appName?, done: { kind, id, attempt } }`. A worker that
   * has just finished a task uses `Next`, so each task costs one round trip
   * to the coordinator, not two. A worker whose app is not the job's is
   * answered `{ kind: "exit", refused }` (and its `done`, if any, ignored).
   */
  methods(): {
    Task(args: unknown): Promise<Assignment>;
    Next(args: unknown): Promise<Assignment>;
    Done(args: unknown): void;
    Failed(args: unknown): void;
  } {
    const task = async (asker: Asker) => {
      this.#workers.set(asker.name, { told: false });
      const assignment = await this.#assignOrHold(asker);
      this.#workers.set(asker.name, { told: assignment.kind === "exit" });
      return assignment;
    };
    return {
      Task: (args: unknown) => task(askerOf(args)),
      Next: (args: unknown) => {
        const asker = askerOf(args);
        const { done } = expectShape<{ done: unknown }>(args, { done: "object" });
        // A worker refused now was never given a task: its report is not of
        // this job's app, so it is dropped (`task` refuses it).
        if (this.#refusal(asker) === undefined) this.#report(done, undefined);
        return task(asker);
      },
      Done: (args: unknown) => this.#report(args, undefined),
      Failed: (args: unknown) => {
        const { error } = expectShape<{ error: string }>(args, { error: "string" });
        this.#report(args, error.slice(0, 2000));
      },
    };
  }

  #phase(): "map" | "reduce" | "done" {
    if (this.#mapStates.some((s) => s.state !== "done")) return "map";
    if (this.#reduceStates.some((s) => s.state !== "done")) return "reduce";
    return "done";
  }

  /**
   * An assignment, holding the request up to holdMs while the answer would
   * be "wait". The asker's app is checked, and the job's pinned, in the
   * same step as a task is handed out: two workers held while nothing is
   * pinned cannot both get a task for different apps.
   */
  async #assignOrHold(asker: Asker): Promise<Assignment> {
    const until = this.#clock.now() + this.#holdMs;
    while (true) {
      const refusal = this.#refusal(asker);
      if (refusal !== undefined) return refusal;
      const assignment = this.#assign();
      if (assignment.kind === "map" || assignment.kind === "reduce") {
        this.#pin(asker);
        return assignment;
      }
      if (assignment.kind !== "wait" || this.#holdMs === 0) return assignment;
      const left = until - this.#clock.now();
      // Held long enough: the worker asks again at once (a held request
      // must end well before the worker's call times out).
      if (left <= 0) return { kind: "wait", ms: 0 };
      // Wake for a change, or when the oldest running task times out.
      const woken = Promise.withResolvers<void>();
      const timer = this.#clock.setTimer(Math.min(left, this.#untilTimeout()), woken.resolve);
      await Promise.race([this.#changed.promise, woken.promise]);
      timer.cancel();
    }
  }

  /** The job's app, pinned by the first worker given a task when the options did not set it. */
  #pin(asker: Asker): void {
    if (this.#app === undefined) {
      this.#app = { identity: asker.app, pinnedBy: asker.name };
      this.#log(
        asker.app === undefined
          ? `app unknown: the first worker given a task, ${asker.name}, does not say which app ` +
            `it runs (an older distkit); workers that do say are refused (give the ` +
            `coordinator --app to choose the app)`
          : `app ${describeApp(asker.app)}, pinned by the first worker given a task, ` +
            `${asker.name}; workers with another app are refused (give the coordinator --app ` +
            `to choose the app)`,
      );
    }
    // Invariant: a task goes only to a worker of the job's app.
    if (this.#app.identity?.id !== asker.app?.id) {
      throw new Error(
        `coordinator invariant broken: a task for app ${asker.app?.id} in a job of app ` +
          `${this.#app.identity?.id}`,
      );
    }
  }

  /**
   * The exit that refuses `asker` when its app is not the job's (logged the
   * first time); undefined when it may have tasks.
   */
  #refusal(asker: Asker): Assignment | undefined {
    const job = this.#app;
    if (job === undefined || job.identity?.id === asker.app?.id) return undefined;
    const reason = refusalReason(asker.app, job);
    const key = `${asker.name}\n${asker.app?.id}`;
    if (!this.#refused.has(key)) {
      this.#refused.add(key);
      this.#log(`refused worker ${asker.name}: ${reason}`);
    }
    // `failed` too for a worker that says nothing of its app: an older
    // worker does not know `refused`, and would take a bare exit for "done".
    return asker.app === undefined
      ? { kind: "exit", refused: reason, failed: `refused: ${reason}` }
      : { kind: "exit", refused: reason };
  }

  /** Milliseconds until a running task of this phase may be given to another worker. */
  #untilTimeout(): number {
    const states = this.#phase() === "map" ? this.#mapStates : this.#reduceStates;
    let soonest = Infinity;
    for (const s of states) {
      if (s.state === "running") soonest = Math.min(soonest, s.startedAt + this.#timeoutMs);
    }
    return Math.max(0, soonest - this.#clock.now());
  }

  /** Wakes the held requests: something may be there to give. */
  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  #assign(): Assignment {
    if (this.#failure !== undefined) return { kind: "exit", failed: this.#failure };
    const phase = this.#phase();
    if (phase === "done") return { kind: "exit" };
    const states = phase === "map" ? this.#mapStates : this.#reduceStates;
    const now = this.#clock.now();
    let pick = states.findIndex((s) => s.state === "idle");
    if (pick < 0) {
      // Nothing idle: a running task whose worker has been silent too long goes to this one.
      pick = states.findIndex((s) => s.state === "running" && now - s.startedAt >= this.#timeoutMs);
      if (pick >= 0) {
        this.#failedAttempts++;
        if (++states[pick].timeouts >= this.#maxTimeouts) {
          this.#fail(
            `${phase} task ${pick} timed out ${states[pick].timeouts} times (its workers ` +
              `crashed or stalled past ${this.#timeoutMs} ms)`,
          );
          return { kind: "exit", failed: this.#failure };
        }
      }
    }
    if (pick < 0) return { kind: "wait", ms: WAIT_MS };
    const s = states[pick];
    s.state = "running";
    s.attempt++;
    s.startedAt = now;
    if (phase === "map") {
      return {
        kind: "map",
        attempt: s.attempt,
        task: this.#maps[pick],
        nReduce: this.#nReduce,
        dir: this.#dir,
      };
    }
    return { kind: "reduce", attempt: s.attempt, r: pick, nMap: this.#maps.length, dir: this.#dir };
  }

  /** A worker's report of a task: done (`error` undefined) or failed. */
  #report(args: unknown, error: string | undefined): void {
    const { kind, id, attempt } = expectShape<{ kind: string; id: number; attempt: number }>(
      args,
      { kind: "string", id: "integer", attempt: "integer" },
    );
    const states = kind === "map" ? this.#mapStates : kind === "reduce" ? this.#reduceStates : null;
    if (states === null) throw new ArgumentsError(`kind must be "map" or "reduce", got ${kind}`);
    const s = states[id];
    if (s === undefined) throw new ArgumentsError(`there is no ${kind} task ${id}`);
    // The outputs of every attempt are the same files, renamed into place
    // whole: the first completion counts; later reports change nothing.
    if (s.state === "done" || this.over) return;
    if (error === undefined) {
      s.state = "done";
      if (kind === "map") this.#bytesMapped += this.#maps[id].end - this.#maps[id].start;
      if (this.#phase() === "done") this.#finished.resolve();
      this.#notify();
      return;
    }
    // A failure of an attempt since given to another worker, or reported twice
    // (a retried call whose reply was lost), changes nothing.
    if (attempt !== s.attempt || s.state !== "running") return;
    this.#failedAttempts++;
    s.failures++;
    s.lastError = error;
    s.state = "idle";
    if (s.failures >= this.#maxFailures) {
      this.#fail(`${kind} task ${id} failed ${s.failures} times; last: ${error}`);
    }
    this.#notify();
  }

  #fail(reason: string): void {
    this.#failure = reason;
    this.#finished.reject(new Error(reason));
    this.#notify();
  }
}

/** The sender of a `Task` or `Next` request. */
function askerOf(args: unknown): Asker {
  const { worker, app, appName } = expectShape<
    { worker: string; app?: string; appName?: string }
  >(args, { worker: "string", app: "string?", appName: "string?" });
  const name = worker.slice(0, 200);
  if (app === undefined) return { name };
  if (app.length === 0 || app.length > 1000) {
    throw new ArgumentsError(`app must be an app identity of 1 to 1000 characters`);
  }
  return { name, app: { id: app, name: (appName ?? app).slice(0, 200) } };
}

/** Why a worker of app `app` (undefined: it does not say) may not work on a job of app `job`. */
function refusalReason(app: AppIdentity | undefined, job: JobApp): string {
  const setBy = job.pinnedBy === undefined
    ? "chosen with the coordinator's --app"
    : `pinned by its first worker given a task, ${job.pinnedBy}`;
  if (job.identity === undefined) {
    return `the worker runs app ${describeApp(app!)}, but this job's first worker given a ` +
      `task, ${job.pinnedBy}, does not say which app it runs (an older distkit), so the two ` +
      `cannot be checked to match: upgrade that worker, or start the coordinator with --app`;
  }
  const jobApp = describeApp(job.identity);
  if (app === undefined) {
    return `the worker does not say which app it runs (a worker of an older distkit?), and ` +
      `this job runs app ${jobApp} (${setBy}): upgrade the worker and start it with ` +
      `--app ${JSON.stringify(job.identity.name)}`;
  }
  return `the worker runs app ${describeApp(app)}, but this job runs app ${jobApp} ` +
    `(${setBy}): start the worker with --app ${JSON.stringify(job.identity.name)} (a module ` +
    `must have the same source), or run the other app as a job of its own`;
}

/** An app for messages: its name and, when it says more, its id. */
function describeApp(app: AppIdentity): string {
  return app.id === `builtin:${app.name}`
    ? JSON.stringify(app.name)
    : `${JSON.stringify(app.name)} (${app.id})`;
}
