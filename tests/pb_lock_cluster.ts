/**
 * The primary/backup lock service's test harness: a primary and a backup
 * `LockServer` on the simulated network, killed (deleted from the network
 * and stopped) and restarted empty, clerks, and the history of every client
 * operation for the lock model.
 */
import assert from "node:assert/strict";
import { type LockInput, lockModel } from "../checker/mod.ts";
import { type Clock, delay, RpcServer, type Simulation } from "../net/mod.ts";
import { LockClerk } from "../pb/lock_clerk.ts";
import { LockServer, type LockServerOptions } from "../pb/lock_server.ts";
import { LATENCY_MS, OpLog } from "./kv_cluster.ts";

/** The primary's name. */
export const PRIMARY = "p";
/** The backup's name. */
export const BACKUP = "b";

/** A client of the cluster: its clerk, its number in the history, its node name. */
export interface Client {
  clerk: LockClerk;
  index: number;
  name: string;
}

/** A primary and a backup on the simulated network, clerks, and the history they make. */
export class LockCluster {
  readonly sim: Simulation;
  readonly log = new OpLog<LockInput, boolean | undefined>();
  readonly #servers = new Map<string, LockServer>();
  readonly #thresholds: { ops: number; reached: () => void }[] = [];
  readonly #options: Partial<LockServerOptions>;
  readonly #clockOf: ((id: string) => Clock) | undefined;
  #clients = 0;

  /**
   * `options` go to both servers; `clockOf` gives a server its machine
   * clock (tests/node_clock.ts), by name (default: the simulation's).
   */
  constructor(
    sim: Simulation,
    options: Partial<LockServerOptions> = {},
    clockOf?: (id: string) => Clock,
  ) {
    this.sim = sim;
    this.#options = options;
    this.#clockOf = clockOf;
    sim.net.setLatency(LATENCY_MS);
    // Both reachable before either starts, so the primary's first transfer finds the backup.
    const rpcs = [BACKUP, PRIMARY].map((id) => {
      const rpc = new RpcServer();
      sim.net.addServer(id, rpc);
      return [id, rpc] as const;
    });
    for (const [id, rpc] of rpcs) this.#start(id, rpc);
  }

  get primary(): LockServer {
    return this.#servers.get(PRIMARY)!;
  }

  get backup(): LockServer {
    return this.#servers.get(BACKUP)!;
  }

  /** A new clerk; its node is `c<index>`, so link rules can single it out. */
  client(): Client {
    const index = this.#clients++;
    const name = `c${index}`;
    const clerk = new LockClerk(this.sim.net.transportFor(name), {
      primary: PRIMARY,
      backup: BACKUP,
    }, { id: name, clock: this.sim.clock, random: this.sim.random.fork(), deadlineMs: Infinity });
    return { clerk, index, name };
  }

  lock(client: Client, name: string): Promise<boolean> {
    return this.#record(client, { op: "lock", name }, () => client.clerk.lock(name));
  }

  unlock(client: Client, name: string): Promise<boolean> {
    return this.#record(client, { op: "unlock", name }, () => client.clerk.unlock(name));
  }

  /** Resolves once `ops` operations have completed. */
  afterOps(ops: number): Promise<void> {
    if (this.log.operations.length >= ops) return Promise.resolve();
    return new Promise((reached) => this.#thresholds.push({ ops, reached }));
  }

  /** Stops a server like a crash: nothing reaches it any more, and it sends nothing more. */
  kill(server: LockServer): Promise<void> {
    this.sim.net.deleteServer(server.id);
    return server.stop();
  }

  /** Kills `server` and starts it again under its name, with nothing: a process restart. */
  async restart(server: LockServer): Promise<LockServer> {
    await this.kill(server);
    const rpc = new RpcServer();
    this.sim.net.addServer(server.id, rpc);
    return this.#start(server.id, rpc);
  }

  /**
   * Resolves once the backup has the primary's state, so it could take over:
   * both must say so (a primary learns that its backup restarted only from
   * its next forward, and a backup that its state is old only from the
   * primary's next transfer).
   */
  whole(): Promise<void> {
    return this.until(
      () => this.primary.status().backupReady && this.backup.role === "backup",
      "the pair to be whole",
    );
  }

  sleep(ms: number): Promise<void> {
    return delay(ms, { clock: this.sim.clock });
  }

  /** Waits until `condition` holds, checking every virtual millisecond; fails after `timeoutMs`. */
  async until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = this.sim.clock.now() + timeoutMs;
    while (!condition()) {
      assert.ok(this.sim.clock.now() < deadline, `timed out waiting for ${what}`);
      await this.sleep(1);
    }
  }

  /** Checks the history with the lock model (a failure writes the HTML report). */
  check(name: string): Promise<void> {
    assert.ok(this.log.operations.length > 0, "no operation was recorded");
    return this.log.check(name, lockModel);
  }

  #start(id: string, rpc: RpcServer): LockServer {
    const server = new LockServer({
      id,
      primary: PRIMARY,
      backup: BACKUP,
      transport: this.sim.net.transportFor(id),
      server: rpc,
      clock: this.#clockOf?.(id) ?? this.sim.clock,
      random: this.sim.random.fork(),
      incarnation: this.sim.newId(),
      ...this.#options,
    });
    this.#servers.set(id, server);
    return server;
  }

  async #record(client: Client, input: LockInput, fn: () => Promise<boolean>): Promise<boolean> {
    const result = await this.log.record(client.index, input, fn);
    const done = this.log.operations.length;
    for (let i = this.#thresholds.length - 1; i >= 0; i--) {
      if (this.#thresholds[i].ops <= done) this.#thresholds.splice(i, 1)[0].reached();
    }
    return result;
  }
}
