/**
 * One replica group on the simulated network, after the course's config.go:
 * servers started from what they persisted, crashed (what survived in the
 * simulated storage kept, so whatever the stopping instance writes later is
 * lost; optionally with its storage damaged beyond the storage contract, so
 * that its restart must refuse it and the server stays down), connected and
 * partitioned. The KV, shard controller and shard group harnesses each
 * run their servers through one of these. Every server's Raft core reports
 * to the group's {@linkcode AppliedLedger}: an entry once applied by any
 * server is never replaced on any server, one leader per term; the harness
 * throws its first violation whenever it starts, stops or looks for a leader.
 */
import assert from "node:assert/strict";
import { type Clock, type Random, RpcServer, type Simulation, type Transport } from "../net/mod.ts";
import {
  AppliedLedger,
  type RaftNode,
  SimStorage,
  StorageCorruptionError,
  type StorageDamage,
} from "../raft/mod.ts";
import { SimWiring } from "./sim_wiring.ts";

/** What a started server must offer the harness. */
export interface GroupServer {
  readonly raft: RaftNode;
  stop(): Promise<void>;
}

/** What a server's start function gets. */
export interface ServerContext {
  id: string;
  peers: string[];
  transport: Transport;
  server: RpcServer;
  storage: SimStorage;
  clock: Clock;
  random: Random;
  /** The group's whole-run witness (pass it on as the Raft node's `observer`). */
  observer: AppliedLedger;
}

/** Servers `prefix0`... `prefix{n-1}` started by `start`. */
export class ReplicaCluster<S extends GroupServer> {
  readonly n: number;
  readonly sim: Simulation;
  readonly wiring: SimWiring;
  readonly random: Random;
  /** The whole run's witness of applied entries, shared by every server of the group. */
  readonly ledger: AppliedLedger = new AppliedLedger();
  readonly #start: (context: ServerContext) => Promise<S>;
  readonly #servers: {
    running?: S;
    storage: SimStorage;
    /** Damage done to its storage, which its next start must find. */
    damaged?: StorageDamage;
    /** Why it refused to start from its damaged storage: it stays down for good. */
    failed?: Error;
    /**
     * Its storage was replaced by an empty one (a new data folder, a new
     * incarnation): it starts with no membership and waits to be added, as
     * `kv serve --join` does.
     */
    joins?: boolean;
    /** Its storage's incarnation: 0, then one more at each replacement. */
    incarnation: number;
    /**
     * What its folder records of its peers (the identity model): the
     * incarnation each was first met under, and those retired (with the
     * log index of the membership that dropped the peer).
     */
    known: Map<number, number>;
    retired: Map<number, { index: number; incarnations: Set<number> }>;
  }[];
  readonly #identities: boolean;
  /** Servers 0..initialVoters-1 found the cluster; the others start empty and must be added. */
  readonly #initialVoters: number;

  constructor(
    sim: Simulation,
    n: number,
    options: {
      prefix?: string;
      start: (context: ServerContext) => Promise<S>;
      /** Only servers 0..initialVoters-1 found the cluster (default: all); the others join when added. */
      initialVoters?: number;
      /**
       * Model data folder identities (`rsm/identity.ts`): a server refuses a
       * peer under another incarnation than the one it first met, until it
       * applies the membership that drops the peer ({@linkcode ReplicaCluster.retire}).
       */
      identities?: boolean;
    },
  ) {
    this.sim = sim;
    this.n = n;
    this.random = sim.random.fork();
    this.wiring = new SimWiring(sim.net, n, options.prefix);
    this.#start = options.start;
    this.#initialVoters = options.initialVoters ?? n;
    assert.ok(
      this.#initialVoters >= 1 && this.#initialVoters <= n,
      `initialVoters ${this.#initialVoters} must be 1..${n}`,
    );
    this.#servers = Array.from({ length: n }, (_, i) => ({
      storage: this.#emptyStorage(i),
      joins: i >= this.#initialVoters,
      incarnation: 0,
      known: new Map(),
      retired: new Map(),
    }));
    this.#identities = options.identities ?? false;
    if (this.#identities) {
      this.wiring.setIdentityCheck((a, b) => this.#accepts(a, b), () => this.#meet());
    }
  }

  /**
   * Running servers that can talk meet, as the handshake and the identity
   * gossip of `rsm/identity.ts` have them do within a second: each records
   * the other's incarnation on first contact and, once both accept each
   * other, learns the incarnations the other knows of nodes it has none
   * for (never one it retired).
   */
  #meet(): void {
    for (let a = 0; a < this.n; a++) {
      for (let b = a + 1; b < this.n; b++) {
        if (!this.#servers[a].running || !this.#servers[b].running) continue;
        if (!this.wiring.reachable(a, b)) continue;
        if (!(this.#accepts(a, b) && this.#accepts(b, a))) continue;
        this.#learn(a, b);
        this.#learn(b, a);
      }
    }
  }

  /** What server i's folder records of its peers' incarnations (known, and retired), in words. */
  identities(i: number): string {
    const s = this.#servers[i];
    const known = [...s.known].map(([b, inc]) => `${b}@${inc}`).join(" ");
    const retired = [...s.retired].map(([b, r]) => `${b}@{${[...r.incarnations]}}#${r.index}`)
      .join(" ");
    return `incarnation ${s.incarnation}; knows ${known || "none"}; retired ${retired || "none"}`;
  }

  /** Server a takes in the incarnations server `from` knows (`NodeIdentity.learn`). */
  #learn(a: number, from: number): void {
    const s = this.#servers[a];
    for (const [node, incarnation] of this.#servers[from].known) {
      if (node === a || s.known.has(node)) continue;
      if (s.retired.get(node)?.incarnations.has(incarnation)) continue;
      s.known.set(node, incarnation);
    }
  }

  /**
   * Whether server a takes server b for the node it knows: first contact
   * records b's incarnation; a retired one, or another than recorded, is
   * refused (as `NodeIdentity.check` does in the TCP handshake).
   */
  #accepts(a: number, b: number): boolean {
    const s = this.#servers[a];
    const incarnation = this.#servers[b].incarnation;
    if (s.retired.get(b)?.incarnations.has(incarnation)) return false;
    const known = s.known.get(b);
    if (known === undefined) s.known.set(b, incarnation);
    return known === undefined || known === incarnation;
  }

  /**
   * Server a applied the membership at log `index`, which no longer has
   * server b: the incarnation it knew b by is retired, so a new one is
   * accepted on first contact (`NodeIdentity.retire`). A membership applied
   * again after a restart retires nothing twice.
   */
  retire(a: number, b: number, index: number): void {
    if (!this.#identities || a === b) return;
    const s = this.#servers[a];
    const before = s.retired.get(b);
    if (before !== undefined && before.index >= index) return;
    const incarnations = before?.incarnations ?? new Set<number>();
    const known = s.known.get(b);
    if (known !== undefined) incarnations.add(known);
    s.known.delete(b);
    s.retired.set(b, { index, incarnations });
    this.wiring.refresh();
  }

  #emptyStorage(i: number): SimStorage {
    return new SimStorage({
      clock: this.sim.clock,
      random: this.random.fork(),
      name: this.wiring.name(i),
    });
  }

  /** The founding members' ids. */
  get initialVoters(): string[] {
    return this.ids.slice(0, this.#initialVoters);
  }

  /** The servers' names (their Raft ids). */
  get ids(): string[] {
    return this.wiring.names;
  }

  /** Server i, which must be running. */
  server(i: number): S {
    const s = this.#servers[i].running;
    assert.ok(s, `server ${this.wiring.name(i)} is not running`);
    return s;
  }

  /** Server i, if it is running. */
  running(i: number): S | undefined {
    return this.#servers[i].running;
  }

  /** What server i has persisted (replaced by what survived at each crash). */
  storage(i: number): SimStorage {
    return this.#servers[i].storage;
  }

  /** Why server i refused to start, if it did (its storage was damaged; it stays down). */
  failed(i: number): Error | undefined {
    return this.#servers[i].failed;
  }

  /**
   * Replaces server i's storage by an empty one, the way an operator
   * replaces a dead disk: the server is stopped (a crash), its storage and
   * any damage or refusal forgotten, and its next start is a new incarnation
   * with no membership, which joins when a leader adds it (`kv serve
   * --join`). Its old state is gone for good, so it must have been removed
   * from the cluster first (the caller's duty: nothing here checks it).
   */
  async replace(i: number): Promise<void> {
    await this.shutdownServer(i);
    const s = this.#servers[i];
    s.storage = this.#emptyStorage(i);
    s.damaged = undefined;
    s.failed = undefined;
    s.joins = true;
    s.incarnation++;
    s.known = new Map();
    s.retired = new Map();
  }

  /**
   * Starts (or restarts) server i from what survived in its storage. A
   * server whose storage was damaged and refuses to load stays down for good
   * (it fail-stops; see {@linkcode ReplicaCluster.failed}); any other failure
   * to start throws.
   */
  async startServer(i: number): Promise<void> {
    await this.shutdownServer(i);
    this.ledger.check();
    const s = this.#servers[i];
    if (s.failed) return;
    const server = new RpcServer();
    try {
      s.running = await this.#start({
        id: this.wiring.name(i),
        peers: s.joins ? [] : this.initialVoters,
        transport: this.wiring.serverTransport(i),
        server,
        storage: s.storage,
        clock: this.sim.clock,
        random: this.random.fork(),
        observer: this.ledger,
      });
    } catch (err) {
      if (s.damaged === undefined || !(err instanceof StorageCorruptionError)) throw err;
      s.failed = err;
      return;
    }
    s.damaged = undefined; // it lost nothing that mattered
    this.sim.net.addServer(this.wiring.name(i), server);
  }

  /**
   * Stops server i like a crash: its calls in flight fail, and a restart
   * sees only what survived in its storage (see `SimStorage.crash`), with
   * `damage` done to it if given.
   */
  async shutdownServer(i: number, damage?: StorageDamage): Promise<void> {
    this.ledger.check();
    const s = this.#servers[i];
    this.wiring.disconnect(i);
    this.sim.net.deleteServer(this.wiring.name(i));
    const running = s.running;
    s.running = undefined;
    if (running) {
      s.storage = s.storage.crash();
      await running.stop();
    }
    if (damage) {
      s.storage.damage(damage);
      s.damaged = damage;
    }
  }

  /** Starts every server and connects them. */
  async startAll(): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.startServer(i);
    this.connectAll();
  }

  async shutdownAll(): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.shutdownServer(i);
  }

  connectAll(): void {
    this.wiring.partition(this.wiring.all);
  }

  /** The index of a server that thinks it is the leader (the course's Leader()). */
  leader(): number | undefined {
    this.ledger.check();
    for (let i = 0; i < this.n; i++) {
      if (this.#servers[i].running?.raft.status().role === "leader") return i;
    }
    return undefined;
  }

  /** The largest persisted Raft state of any server. */
  logSize(): number {
    return Math.max(...this.#servers.map((s) => s.storage.raftStateSize()));
  }

  /** The largest persisted snapshot of any server. */
  snapshotSize(): number {
    return Math.max(...this.#servers.map((s) => s.storage.snapshotSize()));
  }

  /** Raft state and snapshot bytes persisted by all servers together. */
  persistedBytes(): number {
    let total = 0;
    for (const s of this.#servers) total += s.storage.raftStateSize() + s.storage.snapshotSize();
    return total;
  }
}
