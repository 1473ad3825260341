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
import { type Clock, Random, RpcServer, type Simulation, type Transport } from "../net/mod.ts";
import {
  AppliedLedger,
  type RaftNode,
  type RaftStorage,
  type SimFsStats,
  SimStorage,
  StorageCorruptionError,
  type StorageDamage,
} from "../raft/mod.ts";
import { SimDisk, totalStats } from "./sim_disk.ts";
import { type AppliedOptions, IdentityBook } from "../rsm/mod.ts";
import { SimWiring } from "./sim_wiring.ts";
import { SimKv } from "../store/mod.ts";

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
  storage: RaftStorage;
  clock: Clock;
  random: Random;
  /** The group's whole-run witness (pass it on as the Raft node's `observer`). */
  observer: AppliedLedger;
  /**
   * The latest removal the server's folder knows of, when identities are
   * simulated (pass it on as the Raft node's `campaignAfter`, as `kv serve` does).
   */
  campaignAfter?: () => number;
  /** The folder's incarnation, when identities are simulated (the Raft node's `incarnation`). */
  incarnation?: string;
  /** Whether the folder joined rather than founded the cluster (the Raft node's `joined`). */
  joined?: boolean;
  /**
   * The folder's database for a service that stores its state (a `SimKv`
   * on the simulation's clock): crashed with the server, its commits in
   * flight lost but a random prefix, and emptied with its storage.
   */
  stateKv: SimKv;
  /**
   * A trial start on copies of the server's storage and database, as they
   * were before damage was injected (the harness's check of what a refusal
   * was caused by): no network, its own throwaway `observer`, stopped at
   * once. The start function must record nothing of it (no store kept, no
   * hook of the test called).
   */
  probe?: boolean;
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
    /** Its disk when its storage is the segment log (`segments`). */
    disk?: SimDisk;
    /** Its state's database (see `ServerContext.stateKv`). */
    stateKv: SimKv;
    /** Damage done to its storage, which its next start must find. */
    damaged?: StorageDamage;
    /** Its `SimStorage` as it was before that damage (a disk keeps its own: `SimDisk.openUndamaged`). */
    undamaged?: SimStorage;
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
     * Its folder's identity record, kept by the library's own rules
     * (`IdentityBook`, as `NodeIdentity` keeps `node.json`); undefined when
     * identities are not simulated.
     */
    book?: IdentityBook;
  }[];
  readonly #identities: boolean;
  /** Servers 0..initialVoters-1 found the cluster; the others start empty and must be added. */
  readonly #initialVoters: number;
  readonly #segments: { segmentBytes: number } | undefined;
  /** The counts of every disk made (`segments`), replaced ones too. */
  readonly #disks: SimFsStats[] = [];

  constructor(
    sim: Simulation,
    n: number,
    options: {
      prefix?: string;
      start: (context: ServerContext) => Promise<S>;
      /** Only servers 0..initialVoters-1 found the cluster (default: all); the others join when added. */
      initialVoters?: number;
      /**
       * Simulate data folder identities with the library's own rules
       * (`IdentityBook` of `rsm/identity_book.ts`, which `kv serve` keeps in
       * `node.json`): a server refuses a peer under another incarnation than
       * the one it first met, until it applies (or hears of) the membership
       * that removed the peer ({@linkcode ReplicaCluster.membershipApplied}).
       */
      identities?: boolean;
      /**
       * Each server's storage is the real `SegmentLogStorage` on a `SimFs`
       * (tests/sim_disk.ts), not a `SimStorage`.
       */
      segments?: { segmentBytes: number };
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
    this.#identities = options.identities ?? false;
    this.#segments = options.segments;
    this.#servers = Array.from({ length: n }, (_, i) => {
      const joins = i >= this.#initialVoters;
      return {
        storage: this.#emptyStorage(i),
        disk: this.#newDisk(),
        stateKv: new SimKv({ clock: sim.clock }),
        joins,
        incarnation: 0,
        book: this.#newBook(i, 0, joins),
      };
    });
    if (this.#identities) {
      this.wiring.setIdentityCheck(
        (a, b) => this.#accepts(a, b),
        () => this.#meet(),
        (a, meant, reached) => this.#misdialed(a, meant, reached),
      );
    }
  }

  /** A new folder's identity record for server i (undefined when identities are not simulated). */
  #newBook(i: number, incarnation: number, joins: boolean): IdentityBook | undefined {
    if (!this.#identities) return undefined;
    const id = this.wiring.name(i);
    const founders = this.ids.slice(0, this.#initialVoters);
    return new IdentityBook({
      id,
      cluster: "",
      incarnation: `${id}#${incarnation}`,
      created: joins ? "join" : "bootstrap",
      members: {},
      // As NodeIdentity.open does: a founder starts from the founding membership.
      ...(joins ? {} : { applied: { index: 0, members: founders } }),
    }, {
      members: this.ids,
      dir: id,
      log: Deno.env.get("SIM_IDENTITY") ? (l) => console.log(`[${id}] ${l}`) : undefined,
    });
  }

  /**
   * Running servers that can talk meet, as the handshake and the identity
   * gossip of `rsm/identity.ts` have them do within a second: both check
   * each other's hello and, once both accept, each takes in what the other
   * knows (`IdentityBook.learn`).
   */
  #meet(): void {
    for (let a = 0; a < this.n; a++) {
      for (let b = a + 1; b < this.n; b++) {
        if (!this.#servers[a].running || !this.#servers[b].running) continue;
        if (!this.wiring.reachable(a, b)) continue;
        if (!(this.#accepts(a, b) && this.#accepts(b, a))) continue;
        const [bookA, bookB] = [this.#servers[a].book!, this.#servers[b].book!];
        bookA.learn(this.wiring.name(b), bookB.describe());
        bookB.learn(this.wiring.name(a), bookA.describe());
      }
    }
  }

  /** What server i's folder records of its peers (known, retired, last membership applied), in words. */
  identities(i: number): string {
    const book = this.#servers[i].book;
    if (!book) return "identities not simulated";
    const r = book.record();
    const known = Object.entries(r.members).map(([b, inc]) => `${b}@${inc}`).join(" ");
    const retired = Object.entries(r.retired ?? {})
      .map(([b, x]) => `${b}@{${x.incarnations}}#${x.index}`).join(" ");
    const applied = r.applied ? `{${r.applied.members}}#${r.applied.index}` : "none";
    const conflict = book.conflict ? `; STOPPED: ${book.conflict.message}` : "";
    return `incarnation ${r.incarnation}; knows ${known || "none"}; retired ${
      retired || "none"
    }; applied ${applied}${conflict}`;
  }

  /**
   * Whether server a takes server b for the node it knows: b's hello (its
   * incarnation, and the one it knows a by) checked by a's book, as
   * `NodeIdentity.check` does in the TCP handshake.
   */
  #accepts(a: number, b: number): boolean {
    const [bookA, bookB] = [this.#servers[a].book!, this.#servers[b].book!];
    const hello = {
      node: bookB.node,
      incarnation: bookB.incarnation,
      peerIncarnation: bookB.known(bookA.node) ?? null,
      peerNode: bookA.node,
    };
    return bookA.check(hello, bookB.node) === undefined;
  }

  /**
   * Servers that stopped because a peer dialed them at another's address
   * (each a sentence): none may (the handshake must refuse the peer, not
   * take it for a sign that this server's folder was lost).
   */
  readonly misdialStops: string[] = [];

  /**
   * Server a dialed server `meant` and reached server `reached` (its peers
   * in another order, `SimWiring.misdial`): the handshake at both ends, as
   * `NodeIdentity.check` runs it on each side of a TCP connection. Neither
   * side may stop over it.
   */
  #misdialed(a: number, meant: number, reached: number): void {
    const [bookA, bookR] = [this.#servers[a].book!, this.#servers[reached].book!];
    const hello = (from: IdentityBook, to: string) => ({
      node: from.node,
      incarnation: from.incarnation,
      peerIncarnation: from.known(to) ?? null,
      peerNode: to,
    });
    const stopped = [bookA.conflict, bookR.conflict];
    // The reached server checks the dialer (it expects no one in particular); had it accepted,
    // the dialer would check the reached one's welcome against the node it meant.
    const refusal = bookR.check(hello(bookA, this.wiring.name(meant)), undefined) ??
      bookA.check(hello(bookR, bookA.node), this.wiring.name(meant));
    assert.ok(refusal !== undefined, `server ${reached} accepted a dial meant for ${meant}`);
    if (bookR.conflict !== stopped[1]) {
      this.misdialStops.push(
        `server ${reached} stopped when server ${a} dialed it for server ${meant}: ${refusal}`,
      );
    }
    if (bookA.conflict !== stopped[0]) {
      this.misdialStops.push(`server ${a} stopped when its dial for ${meant} reached ${reached}`);
    }
  }

  /**
   * Server a applied `members` as the membership at log `index` (an entry,
   * or a snapshot's, set by the entry at `setAt`): what its book retires (`IdentityBook.applied`, as
   * `kv serve` tells `NodeIdentity`).
   */
  membershipApplied(
    a: number,
    members: Iterable<string>,
    index: number,
    options?: AppliedOptions,
  ): void {
    const book = this.#servers[a].book;
    if (!book) return;
    book.applied(members, index, options);
    if (book.take()) this.wiring.refresh();
  }

  #newDisk(): SimDisk | undefined {
    if (!this.#segments) return undefined;
    return new SimDisk({
      clock: this.sim.clock,
      random: this.random.fork(),
      segmentBytes: this.#segments.segmentBytes,
      stats: this.#disks,
    });
  }

  /** What every disk of the run saw (`segments`; zeros otherwise). */
  diskStats(): SimFsStats {
    return totalStats(this.#disks);
  }

  /** Whether the servers' storage is the segment log on a `SimFs`. */
  get segments(): boolean {
    return this.#segments !== undefined;
  }

  /** What damage did to server i's files (`segments`), if any. */
  damageDone(i: number): string | undefined {
    return this.#servers[i].disk?.damageDone;
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

  /** What server i has persisted: its `SimStorage`, or its segment log (closed while it is down). */
  storage(i: number): RaftStorage {
    const s = this.#servers[i];
    if (!s.disk) return s.storage;
    assert.ok(s.disk.log, `server ${i}'s segment log was never opened`);
    return s.disk.log;
  }

  /** Why server i refused to start, if it did (its storage was damaged; it stays down). */
  failed(i: number): Error | undefined {
    return this.#servers[i].failed;
  }

  /**
   * Refusals to start from damaged storage whose cause was checked: the
   * same storage undamaged started (a refusal it shares throws instead, see
   * {@linkcode ReplicaCluster.startServer}).
   */
  refusalsChecked = 0;

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
    s.disk?.wipe(this.random.fork());
    s.stateKv = new SimKv({ clock: this.sim.clock });
    s.damaged = undefined;
    s.undamaged = undefined;
    s.failed = undefined;
    s.joins = true;
    s.incarnation++;
    s.book = this.#newBook(i, s.incarnation, true);
  }

  /**
   * Starts (or restarts) server i from what survived in its storage. A
   * server whose storage was damaged and refuses to load stays down for good
   * (it fail-stops; see {@linkcode ReplicaCluster.failed}), once a trial
   * start on its storage as it was before the damage shows the damage caused
   * the refusal; any other failure to start throws: a refusal of a storage
   * the test did not damage (or that refuses undamaged too) is a bug, as a
   * pointer into a segment the log deleted would be.
   */
  async startServer(i: number): Promise<void> {
    await this.shutdownServer(i);
    this.ledger.check();
    // Started again, it is started with the right peers (`misdial` models a wrong start).
    if (this.wiring.misdialing.includes(i)) this.wiring.misdial(i, undefined);
    const s = this.#servers[i];
    if (s.failed) return;
    const server = new RpcServer();
    // Before the start touches it: the database as the crash left it, for a trial start.
    const stateKv = s.damaged === undefined ? undefined : s.stateKv.copy();
    try {
      const storage = s.disk ? await s.disk.open() : s.storage;
      s.running = await this.#start({
        ...this.#context(i),
        transport: this.wiring.serverTransport(i),
        server,
        storage,
        stateKv: s.stateKv,
        random: this.random.fork(),
        observer: this.ledger,
      });
    } catch (err) {
      await s.disk?.closeFailed();
      if (!(err instanceof StorageCorruptionError)) throw err;
      const where = `server ${i} refused to start from its storage`;
      if (s.damaged === undefined) {
        throw new Error(`${where}, which the test did not damage: ${err.message}`, { cause: err });
      }
      const undamaged = await this.#trialStart(i, stateKv!);
      if (undamaged !== undefined) {
        throw new Error(
          `${where} (damaged: ${s.damaged}), but refuses it undamaged too, so the damage did ` +
            `not cause it: ${undamaged.message}`,
          { cause: undamaged },
        );
      }
      this.refusalsChecked++;
      s.failed = err;
      return;
    }
    s.damaged = undefined; // it lost nothing that mattered
    s.undamaged = undefined;
    this.sim.net.addServer(this.wiring.name(i), server);
  }

  /** What every start of server i is given about its folder. */
  #context(i: number): Pick<ServerContext, "id" | "peers" | "clock"> & Partial<ServerContext> {
    const s = this.#servers[i];
    return {
      id: this.wiring.name(i),
      peers: s.joins ? [] : this.initialVoters,
      clock: this.sim.clock,
      ...(s.book
        ? {
          campaignAfter: () => this.#servers[i].book!.removalFloor(),
          incarnation: s.book.incarnation,
          joined: s.joins,
        }
        : {}),
    };
  }

  /**
   * A start of server i on copies of its storage as it was before the damage
   * and of its database (`stateKv`), off the network, stopped at once;
   * resolves why it was refused, or undefined when it started. Its
   * randomness is its own: the run goes on as it would have.
   */
  async #trialStart(i: number, stateKv: SimKv): Promise<Error | undefined> {
    const s = this.#servers[i];
    const storage = s.disk ? await s.disk.openUndamaged() : s.undamaged!.crash();
    try {
      const running = await this.#start({
        ...this.#context(i),
        transport: {
          connect: (peer) => ({
            peer,
            call: () => Promise.reject(new Error("a trial start calls no one")),
          }),
        },
        server: new RpcServer(),
        storage,
        stateKv,
        random: new Random(0x7e57),
        observer: new AppliedLedger(),
        probe: true,
      });
      await running.stop();
      return undefined;
    } catch (err) {
      if (err instanceof StorageCorruptionError) return err;
      throw err;
    } finally {
      if (s.disk) await storage.close();
    }
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
      // A disk: see SimDisk.crash.
      if (s.disk) s.disk.crash(damage);
      else s.storage = s.storage.crash();
      // The state's database crashes with it. Randomness is drawn only when a
      // commit is in flight, so services that store nothing there run as before.
      const inFlight = s.stateKv.pendingCommits;
      s.stateKv.crash({ keep: inFlight > 0 ? this.random.int(inFlight + 1) : 0 });
      s.stateKv = s.stateKv.reopen();
      await running.stop();
      await s.disk?.stopped();
    }
    if (damage) {
      if (s.disk) s.disk.damage(damage);
      else {
        s.undamaged = s.storage.crash(); // a copy (nothing is in flight now)
        s.storage.damage(damage);
      }
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
    return Math.max(...this.#servers.map((s) => this.#stored(s).raftStateSize()));
  }

  /** The largest persisted snapshot of any server. */
  snapshotSize(): number {
    return Math.max(...this.#servers.map((s) => this.#stored(s).snapshotSize()));
  }

  /** Raft state and snapshot bytes persisted by all servers together. */
  persistedBytes(): number {
    let total = 0;
    for (const s of this.#servers) {
      total += this.#stored(s).raftStateSize() + this.#stored(s).snapshotSize();
    }
    return total;
  }

  /** A server's storage, for its sizes (an empty one when its segment log was never opened). */
  #stored(s: { storage: SimStorage; disk?: SimDisk }): RaftStorage {
    return s.disk?.log ?? s.storage;
  }
}
