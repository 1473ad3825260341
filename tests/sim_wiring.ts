/**
 * The wiring of a test cluster on the simulated network, after the course's
 * config.go: servers "0".."n-1" whose ends are enabled when both sides are in
 * the same group, fresh end names for every incarnation of a server (so a
 * crashed instance's calls in flight can never be delivered on its
 * successor's behalf), and clients whose ends reach a chosen set of servers.
 */
import type { SimEnd, SimNetwork, Transport } from "../net/mod.ts";

interface WiredEnd {
  end: SimEnd;
  to: number;
}

/** Connectivity of `n` servers and any number of clients. */
export class SimWiring {
  readonly n: number;
  readonly #net: SimNetwork;
  /** Each server's group; null: cut off from everyone. */
  readonly #group: (number | null)[];
  readonly #serverEnds: WiredEnd[][];
  readonly #generation: number[];
  readonly #clients = new Map<string, { ends: WiredEnd[]; allowed: Set<number> }>();

  constructor(net: SimNetwork, n: number) {
    this.#net = net;
    this.n = n;
    this.#group = new Array(n).fill(null);
    this.#serverEnds = Array.from({ length: n }, () => []);
    this.#generation = new Array(n).fill(0);
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
        const name = `${i}.${generation}->${peer}`;
        const end = this.#net.makeEnd(name, { owner: String(i) });
        this.#net.connect(name, peer);
        const wired = { end, to: Number(peer) };
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
        const wired = { end, to: Number(peer) };
        client.ends.push(wired);
        this.#net.enable(endName, client.allowed.has(wired.to));
        return end;
      },
    };
  }

  /** Lets client `name` reach exactly the servers in `allowed`. */
  connectClient(name: string, allowed: Iterable<number>): void {
    const client = this.#clients.get(name);
    if (client === undefined) throw new Error(`no client named ${name}`);
    client.allowed = new Set(allowed);
    for (const w of client.ends) this.#net.enable(w.end.name, client.allowed.has(w.to));
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

  #linked(a: number, b: number): boolean {
    return this.#group[a] !== null && this.#group[a] === this.#group[b];
  }

  #update(): void {
    for (let i = 0; i < this.n; i++) {
      for (const w of this.#serverEnds[i]) this.#net.enable(w.end.name, this.#linked(i, w.to));
    }
  }
}
