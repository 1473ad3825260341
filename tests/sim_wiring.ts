/**
 * The wiring of a test cluster on the simulated network, after the course's
 * config.go: servers "0".."n-1" whose ends are enabled when both sides are in
 * the same group, fresh end names for every incarnation of a server (so a
 * crashed instance's calls in flight can never be delivered on its
 * successor's behalf), and clients whose ends reach a chosen set of servers.
 *
 * Servers are named `prefix + index` ("0", "1"... by default; "g100-0"...
 * when several replica groups share the network). A server's ends to names
 * outside its own group (another group, the shard controller) are enabled
 * while it is not cut off. A paused server (a process pause: see
 * `node_clock.ts`) is cut off from everyone, clients included, until it
 * resumes, whatever group it is in.
 */
import type { SimEnd, SimNetwork, Transport } from "../net/mod.ts";

interface WiredEnd {
  end: SimEnd;
  /** The peer's index, or -1 for a server outside this wiring. */
  to: number;
}

/** Connectivity of `n` servers and any number of clients. */
export class SimWiring {
  readonly n: number;
  readonly prefix: string;
  readonly #net: SimNetwork;
  /** Each server's group; null: cut off from everyone. */
  readonly #group: (number | null)[];
  readonly #serverEnds: WiredEnd[][];
  readonly #generation: number[];
  readonly #paused: boolean[];
  /**
   * Whether server a takes server b for the node it knows (the identity
   * handshake: see ReplicaCluster's `identities`); a link needs both ways.
   */
  #accepts: ((a: number, b: number) => boolean) | undefined;
  /** Called before links are checked: the servers that can talk meet (see `setIdentityCheck`). */
  #meet: (() => void) | undefined;
  /**
   * Where each server's dials land when an operator started it with its
   * peers in another order: `#misdial[a].get(b)` is the server its end to b
   * reaches (see {@linkcode SimWiring.misdial}).
   */
  readonly #misdial = new Map<number, Map<number, number>>();
  /** The handshake at the server a misdial reached (see `setIdentityCheck`). */
  #misdialed: ((a: number, meant: number, reached: number) => void) | undefined;
  readonly #clients = new Map<string, { ends: WiredEnd[]; allowed: Set<number> }>();

  constructor(net: SimNetwork, n: number, prefix = "") {
    this.#net = net;
    this.n = n;
    this.prefix = prefix;
    this.#group = new Array(n).fill(null);
    this.#serverEnds = Array.from({ length: n }, () => []);
    this.#generation = new Array(n).fill(0);
    this.#paused = new Array(n).fill(false);
  }

  /** Server i's name. */
  name(i: number): string {
    return `${this.prefix}${i}`;
  }

  /** Every server's name. */
  get names(): string[] {
    return this.all.map((i) => this.name(i));
  }

  /** The index of the server named `peer`, or -1 when it is not one of ours. */
  #indexOf(peer: string): number {
    if (!peer.startsWith(this.prefix)) return -1;
    const rest = peer.slice(this.prefix.length);
    const i = Number(rest);
    return /^\d+$/.test(rest) && i < this.n ? i : -1;
  }

  /** Every server's index. */
  get all(): number[] {
    return Array.from({ length: this.n }, (_, i) => i);
  }

  /** Which servers are in the main group (connected, in the course's terms). */
  get connected(): boolean[] {
    return this.#group.map((g) => g === 0);
  }

  /**
   * A transport for a new incarnation of server i: ends named
   * `i.generation->peer`, enabled while i and the peer share a group.
   */
  serverTransport(i: number): Transport {
    const generation = ++this.#generation[i];
    this.#serverEnds[i] = [];
    return {
      connect: (peer: string): SimEnd => {
        const name = `${this.name(i)}.${generation}->${peer}`;
        const end = this.#net.makeEnd(name, { owner: this.name(i) });
        this.#net.connect(name, peer);
        const wired = { end, to: this.#indexOf(peer) };
        this.#serverEnds[i].push(wired);
        this.#net.enable(name, this.#linked(i, wired.to));
        return end;
      },
    };
  }

  /** A transport for client `name`, whose ends reach only the servers in `allowed`. */
  clientTransport(name: string, allowed: Iterable<number>): Transport {
    if (this.#clients.has(name)) throw new Error(`client ${name} is wired already`);
    const client = { ends: [] as WiredEnd[], allowed: new Set(allowed) };
    this.#clients.set(name, client);
    return {
      connect: (peer: string): SimEnd => {
        const endName = `${name}->${peer}#${client.ends.length}`;
        const end = this.#net.makeEnd(endName);
        this.#net.connect(endName, peer);
        const wired = { end, to: this.#indexOf(peer) };
        client.ends.push(wired);
        this.#net.enable(endName, this.#reaches(client.allowed, wired.to));
        return end;
      },
    };
  }

  /** Lets client `name` reach exactly the servers in `allowed`. */
  connectClient(name: string, allowed: Iterable<number>): void {
    const client = this.#clients.get(name);
    if (client === undefined) throw new Error(`no client named ${name}`);
    client.allowed = new Set(allowed);
    for (const w of client.ends) this.#net.enable(w.end.name, this.#reaches(client.allowed, w.to));
  }

  /**
   * Pauses server i's process: nothing reaches it or leaves it (calls in
   * flight fail) until {@linkcode SimWiring.resume}; its groups are kept.
   */
  pause(i: number): void {
    this.#paused[i] = true;
    this.#update();
  }

  /** Ends server i's pause. */
  resume(i: number): void {
    this.#paused[i] = false;
    this.#update();
  }

  /** Joins server i to the main group. */
  connect(i: number): void {
    this.#group[i] = 0;
    this.#update();
  }

  /** Cuts server i off from every other server. */
  disconnect(i: number): void {
    this.#group[i] = null;
    this.#update();
  }

  /** Servers talk only within their group; the first group is the main one; unlisted servers are cut off. */
  partition(...groups: readonly (readonly number[])[]): void {
    this.#group.fill(null);
    groups.forEach((g, k) => {
      for (const i of g) this.#group[i] = k;
    });
    this.#update();
  }

  #reaches(allowed: Set<number>, to: number): boolean {
    return allowed.has(to) && !this.#paused[to];
  }

  /**
   * Links between servers need `accepts(a, b)` and `accepts(b, a)` too: a
   * model of the identity handshake (a node refuses a peer under another
   * incarnation than the one it knows). Links are checked again at once.
   */
  setIdentityCheck(
    accepts: (a: number, b: number) => boolean,
    meet: () => void,
    misdialed?: (a: number, meant: number, reached: number) => void,
  ): void {
    this.#accepts = accepts;
    this.#meet = meet;
    this.#misdialed = misdialed;
    this.#update();
  }

  /**
   * Server a dials its peers at the wrong addresses (`reaches.get(b)`: the
   * server its end to b reaches; undefined: right again), as a node started
   * with `--peers` in another order does. Such an end never links: the
   * handshake refuses it at both ends (the reached server is told of it
   * through `setIdentityCheck`'s `misdialed`). Its peers' own ends to it
   * still link: they dial its right address.
   */
  misdial(a: number, reaches: Map<number, number> | undefined): void {
    if (reaches === undefined) this.#misdial.delete(a);
    else this.#misdial.set(a, reaches);
    this.#update();
  }

  /** The servers that dial some peer at another's address. */
  get misdialing(): number[] {
    return [...this.#misdial.keys()];
  }

  /** Whether servers a and b can talk (same group, neither paused), identities aside. */
  reachable(a: number, b: number): boolean {
    return this.#group[a] !== null && this.#group[a] === this.#group[b] && !this.#paused[a] &&
      !this.#paused[b];
  }

  /** Checks every link again (after an identity was learned or retired). */
  refresh(): void {
    this.#update();
  }

  #linked(a: number, b: number): boolean {
    if (this.#group[a] === null || this.#paused[a] || (b !== -1 && this.#paused[b])) return false;
    const reached = b === -1 ? undefined : this.#misdial.get(a)?.get(b);
    if (reached !== undefined && reached !== b) {
      if (this.reachable(a, reached)) this.#misdialed?.(a, b, reached);
      return false;
    }
    if (b !== -1 && this.#accepts && !(this.#accepts(a, b) && this.#accepts(b, a))) return false;
    return b === -1 || this.#group[a] === this.#group[b];
  }

  #update(): void {
    this.#meet?.();
    for (let i = 0; i < this.n; i++) {
      for (const w of this.#serverEnds[i]) this.#net.enable(w.end.name, this.#linked(i, w.to));
    }
    for (const client of this.#clients.values()) {
      for (const w of client.ends) {
        this.#net.enable(w.end.name, this.#reaches(client.allowed, w.to));
      }
    }
  }
}
