/**
 * The KV test harness, after the course's kvraft config.go and test_test.go:
 * a cluster of KvServers on the simulated network with crash/restart and
 * partitions, clerks wired to chosen servers, an operation log for the
 * linearizability checker, and the tester's helpers (GenericTest's client
 * loop, checkClntAppends, the partitioner...).
 */
import assert from "node:assert/strict";
import {
  checkOperations,
  kvModel,
  type Model,
  type Operation,
  renderHtml,
} from "../checker/mod.ts";
import type { KvInput } from "../checker/mod.ts";
import {
  KvClerk,
  KvServer,
  type KvServerOptions,
  type KvValue,
  type MemberReply,
  serveMembers,
} from "../kv/mod.ts";
import { type ClientEnd, delay, type Random, type Simulation } from "../net/mod.ts";
import type { Membership, RaftStorage, StorageDamage } from "../raft/mod.ts";
import { NodeClock } from "./node_clock.ts";
import { type SimKv, StateStore } from "../store/mod.ts";
import { ReplicaCluster } from "./replica_cluster.ts";
import type { SimWiring } from "./sim_wiring.ts";

/** The course's electionTimeout in the tester. */
export const ELECTION_TIMEOUT_MS = 1000;

/**
 * The latency of every call, in virtual milliseconds. labrpc's reliable
 * network takes no time of its own, but the course's Go servers do (an
 * operation takes a few milliseconds there); without some latency, clients
 * that loop for 5 s of virtual time would never see that time pass.
 */
export const LATENCY_MS: readonly [number, number] = [1, 3];

/** Options of a test KV cluster. */
export interface KvClusterOptions {
  unreliable?: boolean;
  /** Snapshot at this many bytes of Raft state; -1: never (the course's maxraftstate). */
  maxRaftState?: number;
  /** More server options (request timeout, limits...). */
  server?: Partial<KvServerOptions>;
  /**
   * Only servers 0..initialVoters-1 found the cluster (default: all); the
   * others start with no membership and join when a leader adds them.
   */
  initialVoters?: number;
  /**
   * Keep each server's state in a store on its folder's `SimKv` (issue 19),
   * not in memory; a function: for the servers it says (by position).
   */
  storedState?: boolean | ((i: number) => boolean);
  /** Each server's Raft storage is the segment log on a `SimFs` (tests/sim_disk.ts). */
  segments?: { segmentBytes: number };
  /** Called with each server's state store as a (non-trial) start opens it, before the server starts. */
  onStore?: (i: number, store: StateStore, kv: SimKv) => void;
}

/** How long a leader's `Member` change may wait (for a busy leader, then for its commit). */
export const MEMBER_CHANGE_MS = 2000;

/** The operations clients made, for the checker, in the order events happened. */
export class OpLog<I = KvInput, O = string | undefined> {
  readonly operations: Operation<I, O>[] = [];
  /** A logical clock: the simulation is single-threaded, so event order is exact. */
  #events = 0;

  /** Runs `fn` as an operation of `client` and records it with the output `fn` gives. */
  async record<T extends O | void>(client: number, input: I, fn: () => Promise<T>): Promise<T> {
    const call = ++this.#events;
    const output = await fn();
    this.operations.push({ client, input, call, output: output as O, return: ++this.#events });
    return output;
  }

  /**
   * Checks the history against `model`; on failure writes the checker's
   * HTML report and throws naming it. A timeout is a failure, not a pass.
   */
  async check<S>(name: string, model: Model<S, I, O>, timeoutMs = 30_000): Promise<void> {
    const result = checkOperations(model, this.operations, { timeoutMs });
    if (result.verdict === "linearizable") return;
    const file = await Deno.makeTempFile({ prefix: "distkit-kv-", suffix: ".html" });
    await Deno.writeTextFile(file, renderHtml(result, { model, title: name }));
    throw new Error(
      `history of ${this.operations.length} operations is ${result.verdict}; report: ${file}`,
    );
  }
}

/** A value as the course's tests see it: a string, "" when absent. */
export function text(v: KvValue | null): string {
  if (v === null) return "";
  return typeof v === "string" ? v : new TextDecoder().decode(v);
}

export class KvCluster {
  readonly n: number;
  readonly sim: Simulation;
  readonly group: ReplicaCluster<KvServer>;
  readonly wiring: SimWiring;
  readonly random: Random;
  readonly maxRaftState: number;
  /**
   * Called (from inside the Raft core, synchronously) when server i
   * becomes the leader of `term`; defer any work (`queueMicrotask`).
   */
  onLeader: ((i: number, term: number) => void) | undefined;
  /** Each server's state store, as its last start opened it (servers with a stored state). */
  readonly stores = new Map<number, StateStore>();
  #clients = 0;
  #admin: ClientEnd[] | undefined;
  /** Each server's machine clock, kept across its restarts (in step with the simulation's until told). */
  readonly #clocks: NodeClock[];
  readonly #appliedMemberships = new Map<string, Membership>();
  #startTime = 0;
  #startRpcs = 0;
  #ops = 0;

  constructor(sim: Simulation, n: number, options: KvClusterOptions = {}) {
    this.sim = sim;
    this.n = n;
    this.maxRaftState = options.maxRaftState ?? -1;
    const serverOptions = options.server ?? {};
    this.#clocks = Array.from({ length: n }, () => new NodeClock(sim.clock));
    const stored = (i: number) =>
      typeof options.storedState === "function" ? options.storedState(i) : !!options.storedState;
    this.group = new ReplicaCluster(sim, n, {
      initialVoters: options.initialVoters,
      identities: true,
      segments: options.segments,
      start: async (context) => {
        const clock = this.#clocks[this.ids.indexOf(context.id)];
        const ledger = context.observer;
        const i = this.ids.indexOf(context.id);
        const stateStore = stored(i) ? await StateStore.open(context.stateKv) : undefined;
        // A trial start (ServerContext.probe) is kept out of the test's records and hooks.
        if (stateStore && !context.probe) {
          this.stores.set(i, stateStore);
          options.onStore?.(i, stateStore, context.stateKv);
        }
        const kv = await KvServer.start({
          ...context,
          ...(stateStore ? { stateStore } : {}),
          clock,
          // The group's ledger, and the test's hook on new leaders.
          observer: context.probe ? ledger : {
            applied: (node, entries) => {
              ledger.applied(node, entries);
              for (const e of entries) {
                if (e.kind === "membership") {
                  this.#membershipApplied(node, e.index, e.membership, e.index);
                }
              }
            },
            installed: (node, meta) => {
              ledger.installed(node, meta);
              this.#membershipApplied(node, meta.index, meta.membership, meta.membershipIndex);
            },
            removed: (node, entries) => ledger.removed(node, entries),
            leader: (node, term) => {
              ledger.leader(node, term);
              this.onLeader?.(this.ids.indexOf(node), term);
            },
          },
          maxRaftState: this.maxRaftState,
          ...serverOptions,
        });
        // The membership API an operator uses (`distkit kv member`), as a kv node serves it.
        serveMembers(context.server, kv.raft, {
          clock,
          timeoutMs: MEMBER_CHANGE_MS,
          checkNode: (node) => this.ids.includes(node) ? undefined : `no server ${node}`,
        });
        return kv;
      },
    });
    this.wiring = this.group.wiring;
    this.random = this.group.random;
    sim.net.setReliable(!options.unreliable);
    sim.net.setLongDelays(true);
    sim.net.setLatency(LATENCY_MS);
  }

  /** Starts every server, connected. */
  static async start(
    sim: Simulation,
    n: number,
    options: KvClusterOptions = {},
  ): Promise<KvCluster> {
    const cfg = new KvCluster(sim, n, options);
    await cfg.group.startAll();
    return cfg;
  }

  get ids(): string[] {
    return this.group.ids;
  }

  server(i: number): KvServer {
    return this.group.server(i);
  }

  /** What server i has persisted (replaced by a copy at each restart). */
  storage(i: number): RaftStorage {
    return this.group.storage(i);
  }

  /** Why server i refused to start from its damaged storage, if it did (it stays down). */
  failed(i: number): Error | undefined {
    return this.group.failed(i);
  }

  /**
   * Server `node` applied `membership` at `index` (an entry, or a
   * snapshot): its folder's identity book retires whom it removed, as
   * `kv serve` does (`IdentityBook.applied`).
   */
  #membershipApplied(
    node: string,
    index: number,
    membership: Membership | undefined,
    setAt: number | undefined,
  ): void {
    if (membership === undefined) return;
    this.#appliedMemberships.set(node, membership);
    const members = [...membership.voters, ...membership.learners];
    if (Deno.env.get("SIM_IDENTITY")) {
      console.log(`[${node}] applied membership ${JSON.stringify(membership)} at ${index}`);
    }
    this.group.membershipApplied(this.ids.indexOf(node), members, index, {
      setAt,
      bindings: membership.bindings,
    });
  }

  /** The membership server i applied last (an entry's or a snapshot's), if any. */
  appliedMembership(i: number): Membership | undefined {
    return this.#appliedMemberships.get(this.ids[i]);
  }

  /** Server i's machine clock: set its rate (drift) or pause its process ({@linkcode KvCluster.pause}). */
  clock(i: number): NodeClock {
    return this.#clocks[i];
  }

  /**
   * Pauses server i's process for `ms` (virtual) milliseconds: its timers
   * wait and nothing reaches it or leaves it meanwhile.
   */
  pause(i: number, ms: number): void {
    this.#clocks[i].pause(ms);
    this.wiring.pause(i);
    this.sim.clock.setTimer(ms, () => {
      if (!this.#clocks[i].paused) this.wiring.resume(i);
    });
  }

  /** Server i, if it is running. */
  running(i: number): KvServer | undefined {
    return this.group.running(i);
  }

  /**
   * Replaces server i's storage by an empty one: its next start is a new
   * incarnation that joins when added (see {@linkcode ReplicaCluster.replace}).
   */
  async replace(i: number): Promise<void> {
    await this.group.replace(i);
  }

  /**
   * Calls the `Member` service (`List`, `Add`, `Remove`, `Promote`) of server
   * i, as `distkit kv member` does, over the simulated network (an admin
   * client that reaches every server); rejects when the call fails.
   */
  member(i: number, method: string, args: unknown = {}): Promise<MemberReply> {
    this.#admin ??= (() => {
      const transport = this.wiring.clientTransport("admin", this.wiring.all);
      return this.ids.map((id) => transport.connect(id));
    })();
    // Longer than the server may work on it (waiting while busy, then for
    // the commit: twice MEMBER_CHANGE_MS): a call given up on has no effect
    // left to come.
    return this.#admin[i].call<MemberReply>(`Member.${method}`, args, {
      timeoutMs: 2 * MEMBER_CHANGE_MS + 1000,
    });
  }

  /** Starts (or restarts) server i from a copy of what it persisted. */
  startServer(i: number): Promise<void> {
    return this.group.startServer(i);
  }

  /** Stops server i like a crash (see {@linkcode ReplicaCluster.shutdownServer}). */
  shutdownServer(i: number, damage?: StorageDamage): Promise<void> {
    return this.group.shutdownServer(i, damage);
  }

  connectAll(): void {
    this.wiring.partition(this.wiring.all);
  }

  partition(p1: number[], p2: number[]): void {
    this.wiring.partition(p1, p2);
  }

  /** A clerk (client) whose ends reach the servers in `to`; its name for `connectClient`. */
  makeClient(to: number[] = this.wiring.all): { clerk: KvClerk; name: string } {
    const name = `ck${this.#clients++}`;
    const transport = this.wiring.clientTransport(name, to);
    const clerk = new KvClerk(transport, this.ids, {
      clock: this.sim.clock,
      random: this.random.fork(),
      id: name,
      // The course's clerks retry until they succeed, through any outage.
      deadlineMs: Infinity,
    });
    return { clerk, name };
  }

  connectClient(name: string, to: number[]): void {
    this.wiring.connectClient(name, to);
  }

  /** The index of a server that thinks it is the leader (the course's Leader()). */
  leader(): number | undefined {
    return this.group.leader();
  }

  /** The largest persisted Raft state of any server. */
  logSize(): number {
    return this.group.logSize();
  }

  /** The largest persisted snapshot of any server. */
  snapshotSize(): number {
    return this.group.snapshotSize();
  }

  sleep(ms: number): Promise<void> {
    return delay(ms, { clock: this.sim.clock });
  }

  now(): number {
    return this.sim.clock.now();
  }

  /** Counts an operation for the summary line. */
  countOp(): void {
    this.#ops++;
  }

  begin(): void {
    this.#startTime = this.now();
    this.#startRpcs = this.sim.net.totalCalls;
    this.#ops = 0;
  }

  /** Prints the course tester's summary line: time, peers, RPCs, client operations. */
  end(name: string): void {
    const secs = (this.now() - this.#startTime) / 1000;
    const rpcs = this.sim.net.totalCalls - this.#startRpcs;
    console.log(
      `  ${name}: ${secs.toFixed(1)} s virtual, ${this.n} peers, ${rpcs} RPCs, ${this.#ops} ops`,
    );
  }

  cleanup(): Promise<void> {
    return this.group.shutdownAll();
  }
}

/** The tester's Get/Put/Append: run through the clerk, counted, and logged when `log` is given. */
export async function get(
  cfg: KvCluster,
  ck: KvClerk,
  key: string,
  log?: OpLog,
  client = -1,
): Promise<string> {
  const run = async () => text(await ck.get(key));
  const v = log ? await log.record(client, { op: "get", key }, run) : await run();
  cfg.countOp();
  return v;
}

/** The tester's Put and Append: one write through the clerk, counted, and logged when `log` is given. */
async function write(
  op: "put" | "append",
  cfg: KvCluster,
  ck: KvClerk,
  kv: { key: string; value: string },
  log?: OpLog,
  client = -1,
): Promise<void> {
  const run = () => op === "put" ? ck.put(kv.key, kv.value) : ck.append(kv.key, kv.value);
  if (log) await log.record(client, { op, key: kv.key, value: kv.value }, run);
  else await run();
  cfg.countOp();
}

export function put(...args: DropFirst<Parameters<typeof write>>): Promise<void> {
  return write("put", ...args);
}

export function append(...args: DropFirst<Parameters<typeof write>>): Promise<void> {
  return write("append", ...args);
}

type DropFirst<T extends unknown[]> = T extends [unknown, ...infer Rest] ? Rest : never;

/** The tester's check(): a Get must return `value`. */
export async function checkValue(
  cfg: KvCluster,
  ck: KvClerk,
  kv: { key: string; value: string },
): Promise<void> {
  const v = await get(cfg, ck, kv.key);
  assert.equal(v, kv.value, `Get(${kv.key}): expected ${kv.value}, got ${v}`);
}

/** checkClntAppends: client `clnt`'s `count` appends are in `v` once each, in order. */
export function checkClntAppends(clnt: number, v: string, count: number): void {
  let lastoff = -1;
  for (let j = 0; j < count; j++) {
    const wanted = `x ${clnt} ${j} y`;
    const off = v.indexOf(wanted);
    assert.ok(off >= 0, `${clnt} missing element ${wanted} in Append result ${v}`);
    assert.equal(v.lastIndexOf(wanted), off, `duplicate element ${wanted} in Append result`);
    assert.ok(off > lastoff, `wrong order for element ${wanted} in Append result`);
    lastoff = off;
  }
}

/** checkConcurrentAppends: every client's appends present once each, in its order. */
export function checkConcurrentAppends(v: string, counts: number[]): void {
  counts.forEach((count, i) => checkClntAppends(i, v, count));
}

/** The parameters of the course's GenericTest. */
export interface GenericParams {
  clients: number;
  servers: number;
  unreliable?: boolean;
  crash?: boolean;
  partitions?: boolean;
  maxRaftState?: number;
  randomKeys?: boolean;
  /** Keep the servers' state in stores (issue 19), and more server options. */
  storedState?: boolean;
  server?: Partial<KvServerOptions>;
}

/**
 * The course's GenericTest: 3 iterations of clients appending to and reading
 * their keys for 5 s under the given faults; afterwards every client's
 * appends must be present once and in order, the log bounded, and the whole
 * history linearizable.
 */
export async function genericTest(
  sim: Simulation,
  name: string,
  p: GenericParams,
): Promise<void> {
  const maxRaftState = p.maxRaftState ?? -1;
  const cfg = await KvCluster.start(sim, p.servers, {
    unreliable: p.unreliable,
    maxRaftState,
    storedState: p.storedState,
    server: p.server,
  });
  cfg.begin();
  const log = new OpLog();
  const { clerk: ck } = cfg.makeClient();
  const clerks = Array.from({ length: p.clients }, () => cfg.makeClient().clerk);
  const completed = new Array(p.clients).fill(0);
  for (let iteration = 0; iteration < 3; iteration++) {
    let doneClients = false;
    let donePartitioner = false;
    const clients = clerks.map(async (myck, cli) => {
      let j = 0;
      let last = "";
      if (!p.randomKeys) await put(cfg, myck, { key: String(cli), value: last }, log, cli);
      while (!doneClients) {
        const key = p.randomKeys ? String(cfg.random.int(p.clients)) : String(cli);
        const nv = `x ${cli} ${j} y`;
        if (cfg.random.int(1000) < 500) {
          await append(cfg, myck, { key, value: nv }, log, cli);
          if (!p.randomKeys) last += nv;
          j++;
        } else if (p.randomKeys && cfg.random.int(1000) < 100) {
          await put(cfg, myck, { key, value: nv }, log, cli);
          j++;
        } else {
          const v = await get(cfg, myck, key, log, cli);
          if (!p.randomKeys) {
            assert.equal(v, last, `get wrong value, key ${key}, wanted:\n${last}\n, got\n${v}`);
          }
        }
        completed[cli]++;
      }
      return j;
    });
    // A failing client fails the test when awaited below, not as an unhandled rejection now.
    for (const c of clients) c.catch(() => {});
    let partitioner: Promise<void> | undefined;
    if (p.partitions) {
      await cfg.sleep(1000);
      partitioner = (async () => {
        while (!donePartitioner) {
          const side = cfg.wiring.all.map(() => cfg.random.int(2));
          cfg.partition(
            cfg.wiring.all.filter((i) => side[i] === 0),
            cfg.wiring.all.filter((i) => side[i] === 1),
          );
          await cfg.sleep(ELECTION_TIMEOUT_MS + cfg.random.int(200));
        }
      })();
    }
    await cfg.sleep(5000);
    doneClients = true;
    donePartitioner = true;
    if (partitioner) {
      await partitioner;
      // A client may have a request in a minority: it returns once that
      // server learns of a new term.
      cfg.connectAll();
      await cfg.sleep(ELECTION_TIMEOUT_MS);
    }
    if (p.crash) {
      for (let i = 0; i < p.servers; i++) await cfg.shutdownServer(i);
      await cfg.sleep(ELECTION_TIMEOUT_MS);
      for (let i = 0; i < p.servers; i++) await cfg.startServer(i);
      cfg.connectAll();
    }
    const counts = await Promise.all(clients);
    for (let cli = 0; cli < p.clients; cli++) {
      const v = await get(cfg, ck, String(cli), log, 0);
      if (!p.randomKeys) checkClntAppends(cli, v, counts[cli]);
    }
    if (maxRaftState > 0) {
      const size = cfg.logSize();
      assert.ok(size <= 8 * maxRaftState, `logs were not trimmed (${size} > 8*${maxRaftState})`);
    }
    if (maxRaftState < 0) {
      const size = cfg.snapshotSize();
      assert.equal(size, 0, `snapshot used (${size} bytes) although maxraftstate is -1`);
    }
  }
  for (let cli = 0; cli < p.clients; cli++) {
    assert.ok(completed[cli] > 0, `client ${cli} completed no operation`);
  }
  await log.check(name, kvModel);
  cfg.end(name);
  await cfg.cleanup();
}
