/**
 * The Raft test harness, after the course's config.go: a cluster of
 * RaftNodes on the simulated network, with crash/restart, connect/
 * disconnect, log checking on every apply, and the tester's helpers
 * (checkOneLeader, one, nCommitted, wait...).
 */
import assert from "node:assert/strict";
import { delay, type Random, RpcServer, type Simulation } from "../net/mod.ts";
import {
  type Applied,
  RaftNode,
  type RaftNodeOptions,
  type RaftStorage,
  type SimFs,
  type SimFsStats,
  SimStorage,
  type SimStorageOptions,
  StorageCorruptionError,
  type StorageDamage,
  type StoredState,
} from "../raft/mod.ts";
import { SimWiring } from "./sim_wiring.ts";
import { SimDisk, totalStats } from "./sim_disk.ts";

/** Options of a test cluster. */
export interface ClusterOptions {
  unreliable?: boolean;
  /** Snapshot every this many applied entries (the course's SnapShotInterval). */
  snapshotEvery?: number;
  /** Extra node options. */
  node?: Partial<RaftNodeOptions>;
  /** Only servers 0..initialVoters-1 form the initial cluster; the others start empty and must be added. */
  initialVoters?: number;
  /** Options of every server's SimStorage (clock, random and name are the harness's). */
  storage?: Partial<SimStorageOptions>;
  /**
   * Each server's storage is a data folder with an incarnation (`CoreOptions.incarnation`:
   * votes and acknowledgements counted only from the folder a membership binds); servers
   * outside the founding membership joined it.
   */
  folders?: boolean;
  /**
   * Each server's storage is the real `SegmentLogStorage` on a `SimFs` (segments of
   * `segmentBytes`), not a `SimStorage`: its crashes are power losses (unsynced writes
   * and folder changes lost, the last write torn), its damage done to the files.
   */
  segments?: { segmentBytes: number };
  /**
   * A node that stopped on its own (its storage failed) leaves its server on
   * the network, answering every call at once with an unknown service,
   * instead of taking it off (a process that exited). Default false.
   */
  stoppedServerStays?: boolean;
}

/**
 * What one incarnation of a server (one `RaftNode`, from its start to its
 * crash) has applied. A crashed incarnation's applier may still hand out
 * the items its node queued before the crash (committed entries, each once,
 * in order) while the next incarnation already applies from its snapshot:
 * each is checked against its own incarnation, so a dead node's backlog
 * never counts as the live one's (seed 3752570988 did: "applied index 82
 * again" was the dead node's 81..86 interleaved with the new one's 80, 81, 82).
 */
interface Incarnation {
  /** Index → command applied by this incarnation. */
  readonly log: Map<number, Command>;
  /** The last index this incarnation applied (snapshots included). */
  lastApplied: number;
}

interface Server {
  node?: RaftNode;
  /** Its storage when it is a `SimStorage` (the copy taken at each crash). */
  storage: SimStorage;
  /** Its disk when its storage is the segment log (`segments`). */
  disk?: SimDisk;
  /** Damage done to its storage, which its next start must find. */
  damaged?: StorageDamage;
  /** Why it refused to start (it found its storage damaged): it stays down for good. */
  failed?: Error;
  /** Its folder's incarnation number (`folders`): 1, then one more at each replacement. */
  generation: number;
  /** Whether its folder joined the cluster (it was replaced, or is not a founding member). */
  joins: boolean;
  /** The start, crash or replacement of it in progress (see `Cluster.#serially`). */
  busy: Promise<void>;
}

/** A command the tester proposes: a number or a string. */
export type Command = number | string;

/** A cluster of `n` Raft nodes named "0".."n-1". */
export class Cluster {
  readonly n: number;
  readonly sim: Simulation;
  readonly #options: ClusterOptions;
  readonly #servers: Server[];
  readonly wiring: SimWiring;
  /** Per server: index → command applied there by its running (or last) incarnation. */
  readonly logs: Map<number, Command>[];
  #failure: Error | undefined;
  #startTime: number;
  #startRpcs = 0;
  #startBytes = 0;
  #maxIndex = 0;
  #maxIndex0 = 0;
  #appliers: Promise<void>[] = [];
  /** Every command ever applied, by index, across restarts. */
  readonly #history = new Map<number, Command>();
  /** The term of every entry applied anywhere, by index. */
  readonly appliedTerms = new Map<number, number>();
  /**
   * For every applied index, the highest term any node had when it was first
   * applied: it was committed in that term or earlier, so every leader of a
   * later term must hold it (leader completeness).
   */
  readonly committedBy = new Map<number, number>();
  /** How many snapshots servers installed from the leader (or at restart). */
  snapshotsInstalled = 0;
  /** Every (index, command) a client saw committed through `one`. */
  readonly committed = new Map<number, Command>();
  readonly random: Random;
  /** The counts of every disk made (segment-log clusters), replaced ones too. */
  readonly #disks: SimFsStats[] = [];

  constructor(sim: Simulation, n: number, options: ClusterOptions = {}) {
    this.sim = sim;
    this.n = n;
    this.#options = options;
    this.random = sim.random.fork();
    sim.net.setReliable(!options.unreliable);
    sim.net.setLongDelays(true);
    this.#servers = Array.from({ length: n }, (_, i) => ({
      storage: new SimStorage({
        ...options.storage,
        clock: sim.clock,
        random: this.random.fork(),
        name: String(i),
      }),
      disk: options.segments
        ? new SimDisk({
          clock: sim.clock,
          random: this.random.fork(),
          segmentBytes: options.segments.segmentBytes,
          stats: this.#disks,
        })
        : undefined,
      generation: 1,
      joins: i >= (options.initialVoters ?? n),
      busy: Promise.resolve(),
    }));
    this.wiring = new SimWiring(sim.net, n);
    this.logs = Array.from({ length: n }, () => new Map());
    this.#startTime = sim.clock.now();
  }

  /** Creates and starts all nodes, connected. */
  static async start(sim: Simulation, n: number, options: ClusterOptions = {}): Promise<Cluster> {
    const cluster = new Cluster(sim, n, options);
    for (let i = 0; i < n; i++) await cluster.startServer(i);
    for (let i = 0; i < n; i++) cluster.connect(i);
    return cluster;
  }

  /** Which servers are connected to the main group. */
  get connected(): boolean[] {
    return this.wiring.connected;
  }

  get ids(): string[] {
    return Array.from({ length: this.n }, (_, i) => String(i));
  }

  node(i: number): RaftNode {
    const node = this.#servers[i].node;
    assert.ok(node, `server ${i} is not running`);
    return node;
  }

  isRunning(i: number): boolean {
    return this.#servers[i].node !== undefined;
  }

  /** Server i's storage: its `SimStorage`, or its segment log (closed while it is down). */
  storage(i: number): RaftStorage {
    const s = this.#servers[i];
    if (!s.disk) return s.storage;
    assert.ok(s.disk.log, `server ${i}'s segment log was never opened`);
    return s.disk.log;
  }

  /** Whether the servers' storage is the segment log on a `SimFs`. */
  get segments(): boolean {
    return this.#options.segments !== undefined;
  }

  /** Server i's disk (segment-log clusters only; a new copy at each crash). */
  disk(i: number): SimFs {
    const disk = this.#servers[i].disk;
    assert.ok(disk, "this cluster's servers run on SimStorage, not on a SimFs");
    return disk.fs;
  }

  /** What damage did to server i's files (segment-log clusters), if any. */
  damageDone(i: number): string | undefined {
    return this.#servers[i].disk?.damageDone;
  }

  /**
   * What server i's restart would find in its storage, read from a copy (its
   * own storage is left as it is). For a server that is not running.
   */
  async stored(i: number): Promise<StoredState> {
    const s = this.#servers[i];
    return s.disk ? await s.disk.stored() : await s.storage.load();
  }

  /** What every disk of the run saw (segment-log clusters; zeros otherwise). */
  diskStats(): SimFsStats {
    return totalStats(this.#disks);
  }

  /** Why server i refused to start, if it did (it found its storage damaged; it stays down). */
  failed(i: number): Error | undefined {
    return this.#servers[i].failed;
  }

  /**
   * Starts (or restarts) server i from what survived in its storage, with
   * fresh ends. A server whose storage was damaged and refuses to load stays
   * down for good (it fail-stops; see {@linkcode Cluster.failed}); any other
   * failure to start throws.
   */
  startServer(i: number): Promise<void> {
    return this.#serially(i, () => this.#start(i));
  }

  /**
   * Runs `step` on server i once the steps asked of it before are done: the
   * fault schedule and the operator (a replacement) may both start or crash
   * one server, and two starts on one store would overlap their saves.
   */
  #serially(i: number, step: () => Promise<void>): Promise<void> {
    const s = this.#servers[i];
    const done = s.busy.then(step);
    s.busy = done.catch(() => {});
    return done;
  }

  async #start(i: number): Promise<void> {
    await this.#crash(i);
    const s = this.#servers[i];
    if (s.failed) return;
    const id = String(i);
    const transport = this.wiring.serverTransport(i);
    const server = new RpcServer();
    const incarnation: Incarnation = { log: new Map(), lastApplied: 0 };
    this.logs[i] = incarnation.log;
    let node: RaftNode;
    let storage: RaftStorage = s.storage;
    try {
      if (s.disk) storage = await s.disk.open();
      node = await RaftNode.start({
        id,
        peers: s.joins ? [] : this.ids.slice(0, this.#options.initialVoters ?? this.n),
        ...(this.#options.folders ? { incarnation: `${id}#${s.generation}`, joined: s.joins } : {}),
        transport,
        server,
        storage,
        clock: this.sim.clock,
        random: this.random.fork(),
        ...this.#options.node,
      });
    } catch (err) {
      await s.disk?.closeFailed();
      if (s.damaged === undefined || !(err instanceof StorageCorruptionError)) throw err;
      s.failed = err;
      return;
    }
    s.damaged = undefined; // found nothing lost that mattered: it is as good as undamaged
    s.node = node;
    this.sim.net.addServer(id, server);
    this.#appliers.push(this.#applier(i, node, incarnation));
  }

  /**
   * Crashes server i: it stops, and a restart sees only what survived in its
   * storage (see `SimStorage.crash`), with `damage` done to it if given.
   */
  crash(i: number, damage?: StorageDamage): Promise<void> {
    return this.#serially(i, () => this.#crash(i, damage));
  }

  async #crash(i: number, damage?: StorageDamage): Promise<void> {
    const s = this.#servers[i];
    this.disconnect(i);
    this.sim.net.deleteServer(String(i));
    const node = s.node;
    s.node = undefined;
    if (node) {
      // The copy is taken before the old instance stops, like config.go's
      // persister.Copy(): whatever the zombie writes later is lost (a disk:
      // see SimDisk.crash).
      if (s.disk) s.disk.crash(damage);
      else s.storage = s.storage.crash();
      await node.stop();
      await s.disk?.stopped();
    }
    if (damage) {
      if (s.disk) s.disk.damage(damage);
      else s.storage.damage(damage);
      s.damaged = damage;
    }
  }

  /** Crashes server i and empties its storage (a lost data folder); `startServer` brings it back. */
  wipe(i: number): Promise<void> {
    return this.#serially(i, () => this.#wipe(i));
  }

  async #wipe(i: number): Promise<void> {
    await this.#crash(i);
    // A new store, mark included: the whole folder is gone (identity checks
    // are above Raft; this is the log a leader must rebuild).
    const s = this.#servers[i];
    s.storage = new SimStorage({
      ...this.#options.storage,
      clock: this.sim.clock,
      random: this.random.fork(),
      name: String(i),
    });
    s.disk?.wipe(this.random.fork());
  }

  /**
   * Replaces server i's folder by an empty one of a new incarnation that
   * joins (an operator replacing a dead node's disk), and crashes it; the
   * caller starts it. Its old folder must be out of the committed membership.
   */
  replace(i: number): Promise<void> {
    return this.#serially(i, () => this.#replace(i));
  }

  async #replace(i: number): Promise<void> {
    await this.#wipe(i);
    const s = this.#servers[i];
    s.damaged = undefined;
    s.failed = undefined;
    s.generation++;
    s.joins = true;
  }

  /** Cuts server i off from the others (both directions). */
  disconnect(i: number): void {
    this.wiring.disconnect(i);
  }

  /** Reconnects server i to the connected ones. */
  connect(i: number): void {
    this.wiring.connect(i);
  }

  async #applier(i: number, node: RaftNode, incarnation: Incarnation): Promise<void> {
    const snapshotEvery = this.#options.snapshotEvery;
    for await (const item of node.applied()) {
      try {
        this.#check(i, item, incarnation);
      } catch (err) {
        this.#failure ??= err as Error;
        return;
      }
      if (snapshotEvery && item.type === "command" && item.index % snapshotEvery === 0) {
        const data = new TextEncoder().encode(
          JSON.stringify({ index: item.index, log: [...incarnation.log] }),
        );
        await node.snapshot(item.index, data).catch(() => {});
      }
    }
    // The node stopped on its own (its storage failed): its process exits, as
    // `kv serve`'s does (exit 3), and is gone from the network until its
    // operator restarts it. Or (`stoppedServerStays`) its server stays and
    // answers every call at once with an unknown service: a leader sending it
    // a snapshot must not resend each chunk at once, for ever, in no virtual
    // time (seed 3221 found that; raft/progress.ts waits an election timeout).
    if (this.#servers[i].node === node && !this.#options.stoppedServerStays) {
      this.disconnect(i);
      this.sim.net.deleteServer(String(i));
    }
  }

  #check(i: number, item: Applied, incarnation: Incarnation): void {
    if (item.index <= incarnation.lastApplied) {
      throw new Error(
        `server ${i} applied index ${item.index} again (last applied ${incarnation.lastApplied})`,
      );
    }
    if (item.type === "snapshot") {
      const { log } = JSON.parse(new TextDecoder().decode(item.data)) as {
        log: [number, Command][];
      };
      incarnation.log.clear();
      for (const [index, command] of log) incarnation.log.set(index, command);
      this.snapshotsInstalled++;
      incarnation.lastApplied = item.index;
      return;
    }
    if (item.type === "internal") {
      incarnation.lastApplied = item.index;
      return;
    }
    const command = item.command as Command;
    // Stricter than the course: compare with everything ever applied, not
    // only with the logs of servers that have not restarted.
    const before = this.#history.get(item.index);
    if (before !== undefined && before !== command) {
      throw new Error(
        `commit index=${item.index} server=${i} ${command} != ${before} applied there earlier`,
      );
    }
    this.#history.set(item.index, command);
    for (let j = 0; j < this.n; j++) {
      const other = this.logs[j].get(item.index);
      if (other !== undefined && other !== command) {
        throw new Error(
          `commit index=${item.index} server=${i} ${command} != server=${j} ${other}`,
        );
      }
    }
    const term = this.appliedTerms.get(item.index);
    if (term !== undefined && term !== item.term) {
      throw new Error(
        `index ${item.index} applied with term ${item.term} on ${i} but ${term} elsewhere`,
      );
    }
    if (term === undefined) {
      this.appliedTerms.set(item.index, item.term);
      let maxTerm = 0;
      for (const server of this.#servers) {
        if (server.node) maxTerm = Math.max(maxTerm, server.node.status().term);
      }
      this.committedBy.set(item.index, maxTerm);
    }
    incarnation.log.set(item.index, command);
    incarnation.lastApplied = item.index;
    if (item.index > this.#maxIndex) this.#maxIndex = item.index;
  }

  /** Throws the first apply-time failure (log mismatch, out of order...). */
  checkFailure(): void {
    if (this.#failure) throw this.#failure;
  }

  async sleep(ms: number): Promise<void> {
    await delay(ms, { clock: this.sim.clock });
    this.checkFailure();
  }

  /** The course's checkOneLeader: a single leader among connected servers, checked up to 10 times. */
  async checkOneLeader(): Promise<number> {
    for (let iter = 0; iter < 10; iter++) {
      await this.sleep(450 + this.random.int(100));
      const leaders = new Map<number, number[]>();
      for (let i = 0; i < this.n; i++) {
        if (!this.connected[i] || !this.isRunning(i)) continue;
        const s = this.node(i).status();
        if (s.role === "leader") leaders.set(s.term, [...(leaders.get(s.term) ?? []), i]);
      }
      let lastTerm = -1;
      for (const [term, ids] of leaders) {
        assert.ok(ids.length <= 1, `term ${term} has ${ids.length} (>1) leaders`);
        if (term > lastTerm) lastTerm = term;
      }
      if (leaders.size > 0) return leaders.get(lastTerm)![0];
    }
    throw new Error("expected one leader, got none");
  }

  /** All connected servers agree on the term. */
  checkTerms(): number {
    let term = -1;
    for (let i = 0; i < this.n; i++) {
      if (!this.connected[i] || !this.isRunning(i)) continue;
      const t = this.node(i).status().term;
      if (term === -1) term = t;
      else assert.equal(t, term, "servers disagree on term");
    }
    return term;
  }

  /** No connected server thinks it is the leader. */
  checkNoLeader(): void {
    for (let i = 0; i < this.n; i++) {
      if (!this.connected[i] || !this.isRunning(i)) continue;
      assert.notEqual(
        this.node(i).status().role,
        "leader",
        `expected no leader, but ${i} claims to be leader`,
      );
    }
  }

  /** How many servers think the entry at `index` is committed, and its command. */
  nCommitted(index: number): [number, Command | undefined] {
    this.checkFailure();
    let count = 0;
    let command: Command | undefined;
    for (let i = 0; i < this.n; i++) {
      const c = this.logs[i].get(index);
      if (c === undefined) continue;
      if (count > 0) assert.equal(c, command, `committed values do not match: index ${index}`);
      count++;
      command = c;
    }
    return [count, command];
  }

  /** Waits for at least n servers to commit `index` (gives up if the term moved past startTerm). */
  async wait(index: number, n: number, startTerm: number): Promise<Command | undefined> {
    let to = 10;
    for (let iters = 0; iters < 30; iters++) {
      const [nd] = this.nCommitted(index);
      if (nd >= n) break;
      await this.sleep(to);
      if (to < 1000) to *= 2;
      if (startTerm > -1) {
        for (let i = 0; i < this.n; i++) {
          if (this.isRunning(i) && this.node(i).status().term > startTerm) return -1;
        }
      }
    }
    const [nd, cmd] = this.nCommitted(index);
    assert.ok(nd >= n, `only ${nd} decided for index ${index}; wanted ${n}`);
    return cmd;
  }

  /**
   * The course's one(): propose `cmd` on whichever server is leader until
   * `expectedServers` have committed it; with retry, re-propose after a
   * failed agreement. 10 s budget.
   */
  async one(cmd: Command, expectedServers: number, retry: boolean): Promise<number> {
    const t0 = this.sim.clock.now();
    let starts = 0;
    while (this.sim.clock.now() - t0 < 10_000) {
      let index = -1;
      for (let si = 0; si < this.n; si++) {
        starts = (starts + 1) % this.n;
        if (!this.connected[starts] || !this.isRunning(starts)) continue;
        try {
          const r = await this.node(starts).propose(cmd);
          index = r.index;
          break;
        } catch {
          continue;
        }
      }
      if (index !== -1) {
        const t1 = this.sim.clock.now();
        while (this.sim.clock.now() - t1 < 2000) {
          const [nd, cmd1] = this.nCommitted(index);
          if (nd > 0 && nd >= expectedServers && cmd1 === cmd) {
            this.committed.set(index, cmd);
            return index;
          }
          await this.sleep(20);
        }
        if (!retry) throw new Error(`one(${cmd}) failed to reach agreement`);
      } else {
        await this.sleep(50);
      }
    }
    throw new Error(`one(${cmd}) failed to reach agreement`);
  }

  /** Starts a test's statistics (like cfg.begin). */
  begin(): void {
    this.#startTime = this.sim.clock.now();
    this.#startRpcs = this.sim.net.totalCalls;
    this.#startBytes = this.sim.net.totalBytes;
    this.#maxIndex0 = this.#maxIndex;
  }

  get rpcTotal(): number {
    return this.sim.net.totalCalls;
  }

  /** Prints the course tester's summary line and checks for apply failures. */
  end(name: string): void {
    this.checkFailure();
    const secs = (this.sim.clock.now() - this.#startTime) / 1000;
    const rpcs = this.sim.net.totalCalls - this.#startRpcs;
    const bytes = this.sim.net.totalBytes - this.#startBytes;
    const commits = this.#maxIndex - this.#maxIndex0;
    console.log(
      `  ${name}: ${
        secs.toFixed(1)
      } s virtual, ${this.n} peers, ${rpcs} RPCs, ${bytes} bytes, ${commits} commits`,
    );
  }

  /** Stops everything. */
  async cleanup(): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.crash(i);
    await Promise.all(this.#appliers);
    this.checkFailure();
  }
}
