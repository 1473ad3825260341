/**
 * The primary/backup key/value test harness, after 6.824's pbservice
 * tests: a view service and PbKvServers on the simulated network, killed
 * (deleted from the network and closed) and started fresh, clerks, and a
 * history of every client operation in virtual time for the
 * linearizability checker.
 */
import assert from "node:assert/strict";
import {
  checkOperations,
  type KvInput,
  kvModel,
  type Operation,
  renderHtml,
} from "../checker/mod.ts";
import { RequestAbortedError } from "../kv/mod.ts";
import { type Clock, delay, type Random, RpcServer, type Simulation } from "../net/mod.ts";
import {
  PB_KV_SERVICE,
  PrimaryBackupClerk,
  PrimaryBackupServer,
  type PrimaryBackupServerOptions,
  RequestTimeoutError,
  type View,
  ViewServer,
} from "../pb/mod.ts";

/** Latency of every call: the servers' work takes time, so clients that loop see time pass. */
export const LATENCY_MS: readonly [number, number] = [1, 3];

/** The view service's name. */
export const VS = "vs";

/** Options of a test cluster. */
export interface PbClusterOptions {
  /** labrpc's unreliable mode (10 % of requests and of replies lost). */
  unreliable?: boolean;
  /** More server options (small pages make every transfer take several). */
  server?: Partial<PrimaryBackupServerOptions>;
  /**
   * The machine clock of the view service (`VS`) or of a server, by name
   * (tests/node_clock.ts: drift and process pauses). Default: the
   * simulation's clock for all.
   */
  clockOf?: (node: string) => Clock;
}

/** A client operation's history, as the checker reads it. */
export class History {
  readonly operations: Operation<KvInput, string | undefined>[] = [];
  readonly #sim: Simulation;
  #last = -Infinity;

  constructor(sim: Simulation) {
    this.#sim = sim;
  }

  /**
   * The virtual time, made strictly increasing: events at one virtual
   * instant keep the order they happened in (the simulation is
   * single-threaded), so the checker sees which came first.
   */
  #stamp(): number {
    const now = this.#sim.clock.now();
    this.#last = now > this.#last ? now : this.#last + 1e-6;
    return this.#last;
  }

  /**
   * Runs `fn` as an operation of `client` and records it. An operation
   * abandoned at its deadline or signal is recorded with an unknown outcome
   * and resolves undefined; any other failure is thrown.
   */
  async record<T extends string | void>(
    client: number,
    input: KvInput,
    fn: () => Promise<T>,
  ): Promise<T | undefined> {
    const call = this.#stamp();
    try {
      const output = await fn();
      const ret = this.#stamp();
      this.operations.push({
        client,
        input,
        call,
        output: output as string | undefined,
        return: ret,
      });
      return output;
    } catch (err) {
      if (!(err instanceof RequestTimeoutError || err instanceof RequestAbortedError)) throw err;
      this.operations.push({ client, input, call, output: undefined, return: call, unknown: true });
      return undefined;
    }
  }

  get(client: number, clerk: PrimaryBackupClerk, key: string): Promise<string | undefined> {
    return this.record(client, { op: "get", key }, () => clerk.get(key));
  }

  async put(client: number, clerk: PrimaryBackupClerk, key: string, value: string): Promise<void> {
    await this.record(client, { op: "put", key, value }, () => clerk.put(key, value));
  }

  async append(
    client: number,
    clerk: PrimaryBackupClerk,
    key: string,
    value: string,
  ): Promise<void> {
    await this.record(client, { op: "append", key, value }, () => clerk.append(key, value));
  }

  /**
   * Checks the history is linearizable; on failure writes the checker's
   * HTML report and throws naming it. A checker timeout is a failure.
   * `quiet`: print nothing when it is linearizable.
   */
  async check(name: string, options: { quiet?: boolean } = {}): Promise<void> {
    assert.ok(this.operations.length > 0, `${name}: no operations were recorded`);
    const result = checkOperations(kvModel, this.operations, { timeoutMs: 30_000 });
    if (result.verdict === "linearizable") {
      if (options.quiet) return;
      const unknown = this.operations.filter((op) => op.unknown).length;
      console.log(
        `  ${name}: ${this.operations.length} operations (${unknown} unknown) in ` +
          `${(this.#sim.clock.now() / 1000).toFixed(1)} s virtual, ${this.#sim.net.totalCalls} ` +
          `RPCs, linearizable`,
      );
      return;
    }
    const file = await Deno.makeTempFile({ prefix: "distkit-pb-kv-", suffix: ".html" });
    await Deno.writeTextFile(file, renderHtml(result, { model: kvModel, title: name }));
    throw new Error(
      `${name}: history of ${this.operations.length} operations is ${result.verdict} ` +
        `(seed ${this.#sim.seed}); report: ${file}`,
    );
  }
}

/** A view service and key/value servers on the simulated network. */
export class PbCluster {
  readonly sim: Simulation;
  readonly vs: ViewServer;
  readonly history: History;
  readonly random: Random;
  readonly #options: PbClusterOptions;
  readonly #running = new Map<string, PrimaryBackupServer>();
  /** When (simulation time) the view service last took a ping of each server. */
  readonly #heard = new Map<string, number>();
  #clerks = 0;

  constructor(sim: Simulation, options: PbClusterOptions = {}) {
    this.sim = sim;
    this.#options = options;
    this.random = sim.random.fork();
    this.history = new History(sim);
    this.vs = new ViewServer({ clock: options.clockOf?.(VS) ?? sim.clock });
    const rpc = new RpcServer();
    const methods = this.vs.methods();
    rpc.addService("View", {
      ...methods,
      Ping: (args: unknown) => {
        const view = methods.Ping(args);
        // Only a ping the view service took (it threw on a malformed one).
        this.#heard.set((args as { server: string }).server, sim.clock.now());
        return view;
      },
    });
    sim.net.addServer(VS, rpc);
    sim.net.setReliable(!options.unreliable);
    sim.net.setLatency(LATENCY_MS);
  }

  /**
   * A cluster whose servers started one after another, each once the one
   * before found its place: the first is primary, the second backup (up to
   * date), the others idle.
   */
  static async start(
    sim: Simulation,
    names: string[],
    options: PbClusterOptions = {},
  ): Promise<PbCluster> {
    const cluster = new PbCluster(sim, options);
    for (const [i, name] of names.entries()) {
      cluster.startServer(name);
      if (i < 2) {
        const role = i === 0 ? "primary" : "backup";
        await cluster.waitFor(`${name} becomes ${role}`, () => cluster.view[role] === name);
        await cluster.stable();
      } else await cluster.sleep(2 * cluster.pingMs);
    }
    assert.equal(cluster.view.primary, names[0]);
    if (names.length > 1) assert.equal(cluster.view.backup, names[1]);
    return cluster;
  }

  get pingMs(): number {
    return this.#options.server?.pingIntervalMs ?? 100;
  }

  /** The view service's current view. */
  get view(): View {
    return this.vs.view;
  }

  /**
   * When, in the simulation's time, the view service last took a ping of
   * `server` (-Infinity: never): what it judges the server alive by.
   */
  heardFrom(server: string): number {
    return this.#heard.get(server) ?? -Infinity;
  }

  /** Starts a fresh server (empty store, pinging 0) under `name`, replacing any. */
  startServer(name: string): PrimaryBackupServer {
    this.kill(name);
    const server = new PrimaryBackupServer(name, {
      transport: this.sim.net.transportFor(name),
      viewService: VS,
      clock: this.#options.clockOf?.(name) ?? this.sim.clock,
      ...this.#options.server,
    });
    const rpc = new RpcServer();
    rpc.addService(PB_KV_SERVICE, server.methods());
    this.sim.net.addServer(name, rpc);
    this.#running.set(name, server);
    return server;
  }

  /** Kills a server: its calls in flight fail, it never answers again, it stops pinging. */
  kill(name: string): void {
    this.sim.net.deleteServer(name);
    this.#running.get(name)?.close();
    this.#running.delete(name);
  }

  /** Server `name`, which must be running. */
  server(name: string): PrimaryBackupServer {
    const server = this.#running.get(name);
    assert.ok(server, `server ${name} is not running`);
    return server;
  }

  /** The names of the running servers. */
  get running(): string[] {
    return [...this.#running.keys()];
  }

  /** A clerk of a client of its own, and the client's number for the history. */
  clerk(options: { timeoutMs?: number } = {}): { clerk: PrimaryBackupClerk; client: number } {
    const client = this.#clerks++;
    const clerk = new PrimaryBackupClerk(this.sim.net.transportFor(`ck${client}`), {
      viewService: VS,
      id: `ck${client}`,
      clock: this.sim.clock,
      // The course's clerks retry until they succeed, through any outage.
      timeoutMs: Infinity,
      ...options,
    });
    return { clerk, client };
  }

  sleep(ms: number): Promise<void> {
    return delay(ms, { clock: this.sim.clock });
  }

  now(): number {
    return this.sim.clock.now();
  }

  /** Polls `done` every 10 ms of virtual time; fails naming `what` after `limitMs`. */
  async waitFor(what: string, done: () => boolean, limitMs = 10_000): Promise<void> {
    const until = this.now() + limitMs;
    while (!done()) {
      assert.ok(
        this.now() < until,
        `${what}: not after ${limitMs} ms (view ${JSON.stringify(this.view)}, ` +
          `running ${this.running.join(", ")})`,
      );
      await this.sleep(10);
    }
  }

  /**
   * Waits until the view's primary runs, serves and has acknowledged the
   * view, with its backup (if any) up to date: the service can lose either
   * server now.
   */
  stable(limitMs?: number): Promise<void> {
    return this.waitFor(
      "a primary serving with its backup up to date",
      () => this.isStable(),
      limitMs,
    );
  }

  /** Whether the service is stable now (see {@linkcode PbCluster.stable}). */
  isStable(): boolean {
    const view = this.view;
    const primary = this.#running.get(view.primary)?.status();
    const backup = view.backup === "" ? undefined : this.#running.get(view.backup)?.status();
    return primary !== undefined && primary.ready && primary.acknowledged === view.num &&
      primary.view.num === view.num &&
      (view.backup === "" || (backup?.ready === true && backup.view.num === view.num));
  }

  /** Stops every server and the view service's ticker. */
  close(): void {
    for (const name of this.running) this.kill(name);
    this.vs.close();
  }
}

/**
 * A client that runs random operations on `keys` until `stop()` holds or
 * it made `ops` of them: gets, puts and appends of values unique to it.
 * With `timeoutMs`, an operation is abandoned (recorded with an unknown
 * outcome) after that long; with `thinkMs`, the client waits up to that
 * long before each operation. `gets` is the share of gets (default 0.4;
 * puts and appends share the rest). Returns how many operations it made.
 */
export async function runClient(
  cluster: PbCluster,
  keys: string[],
  options: {
    stop?: () => boolean;
    ops?: number;
    timeoutMs?: number;
    thinkMs?: number;
    gets?: number;
  },
): Promise<number> {
  const { stop = () => false, ops = Infinity, timeoutMs, thinkMs = 0, gets = 0.4 } = options;
  const { clerk, client } = cluster.clerk({ timeoutMs });
  const random = cluster.random.fork();
  let n = 0;
  while (!stop() && n < ops) {
    if (thinkMs > 0) await cluster.sleep(random.int(thinkMs));
    const key = random.pick(keys);
    const roll = random.next();
    if (roll < gets) await cluster.history.get(client, clerk, key);
    else if (roll < (1 + gets) / 2) {
      await cluster.history.put(client, clerk, key, `p ${client} ${n} `);
    } else await cluster.history.append(client, clerk, key, `x ${client} ${n} y `);
    n++;
  }
  return n;
}

/**
 * Checks that a value made only of appends `x <client> <n> y ` holds each
 * client's appends 0 to count-1, once each and in order.
 */
export function checkAppends(value: string, counts: number[]): void {
  const seen = counts.map(() => -1);
  for (const match of value.matchAll(/x (\d+) (\d+) y /g)) {
    const client = Number(match[1]);
    const n = Number(match[2]);
    assert.ok(client < counts.length, `append of unknown client ${client} in ${value}`);
    assert.equal(
      n,
      seen[client] + 1,
      `client ${client}'s append ${n} follows its ${seen[client]}: lost, duplicated or reordered`,
    );
    seen[client] = n;
  }
  for (const [client, count] of counts.entries()) {
    assert.equal(seen[client] + 1, count, `client ${client} made ${count} appends`);
  }
  assert.equal(value.replace(/x \d+ \d+ y /g, ""), "", `stray text in ${value}`);
}
