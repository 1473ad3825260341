/**
 * A 3-member etcd cluster on 127.0.0.1 for the comparison benchmark: the
 * `etcd` on PATH, default settings (fsync of every WAL write, heartbeat
 * 100 ms, election timeout 1,000 ms), data in a folder of its own, free
 * ports, logs kept in memory for diagnostics.
 *
 * @module
 */
import { delay } from "../net/async.ts";

const HOST = "127.0.0.1";

/** The path of `name` on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    const path = `${dir}/${name}`;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not here */ }
  }
  return undefined;
}

/** `n` free TCP ports on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: HOST, port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  await delay(10);
  return ports;
}

interface Member {
  child?: Deno.ChildProcess;
  exited?: Promise<unknown>;
  /** The process has exited (killed, or on its own). */
  gone?: boolean;
  log: string[];
}

/** One member's `/v3/maintenance/status`, the fields the benchmarks read. */
export interface EtcdStatus {
  /** This member's id (decimal, as the gateway writes a uint64). */
  id: string;
  /** The leader's id; "0" when there is none. */
  leader: string;
  /** The key-value store's revision: one more per write applied. */
  revision: number;
  /** The Raft index this member has applied. */
  raftAppliedIndex: number;
}

/** A running etcd cluster; member i serves clients at `clientUrls[i]`. */
export class EtcdCluster {
  readonly clientUrls: string[];
  readonly peerUrls: string[];
  readonly #members: Member[];
  readonly #etcd: string;
  readonly #dataDir: string;
  readonly #token: string;

  private constructor(
    options: { etcd: string; dataDir: string },
    clientUrls: string[],
    peerUrls: string[],
  ) {
    this.clientUrls = clientUrls;
    this.peerUrls = peerUrls;
    this.#members = clientUrls.map(() => ({ log: [] }));
    this.#etcd = options.etcd;
    this.#dataDir = options.dataDir;
    this.#token = `bench-${crypto.randomUUID()}`;
  }

  /**
   * Starts `nodes` members with their data under `dataDir` and waits for a
   * leader. `ports`: 2 × nodes ports (client ports first); default free ones.
   */
  static async start(
    options: { etcd: string; dataDir: string; nodes?: number; ports?: number[] },
  ): Promise<EtcdCluster> {
    const n = options.nodes ?? 3;
    const ports = options.ports ?? await freePorts(2 * n);
    if (ports.length !== 2 * n) throw new RangeError(`${n} members need ${2 * n} ports`);
    const clientUrls = ports.slice(0, n).map((p) => `http://${HOST}:${p}`);
    const peerUrls = ports.slice(n).map((p) => `http://${HOST}:${p}`);
    const cluster = new EtcdCluster(options, clientUrls, peerUrls);
    for (let i = 0; i < n; i++) cluster.restart(i);
    try {
      await cluster.leader({ timeoutMs: 30_000 });
    } catch (err) {
      const logs = cluster.#members.map((_, i) => `m${i}:\n${cluster.log(i)}`).join("\n");
      await cluster.stop();
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    return cluster;
  }

  /** Member i's data folder. */
  dataDir(i: number): string {
    return `${this.#dataDir}/m${i}`;
  }

  /** The end of what member i wrote to stderr (for diagnostics). */
  log(i: number): string {
    return this.#members[i].log.join("").slice(-2000);
  }

  /**
   * Starts member i (again: it must not be running) from its data folder,
   * without waiting for it to serve. `join`: its folder is new and it joins
   * the running cluster, which must have been told with
   * {@linkcode EtcdCluster.addMember} (`--initial-cluster-state existing`).
   */
  restart(i: number, options: { join?: boolean } = {}): void {
    const m = this.#members[i];
    if (m.child) throw new Error(`etcd member ${i} is running; kill it first`);
    const initial = this.peerUrls.map((u, j) => `m${j}=${u}`).join(",");
    const args = [
      "--name",
      `m${i}`,
      "--data-dir",
      this.dataDir(i),
      "--listen-client-urls",
      this.clientUrls[i],
      "--advertise-client-urls",
      this.clientUrls[i],
      "--listen-peer-urls",
      this.peerUrls[i],
      "--initial-advertise-peer-urls",
      this.peerUrls[i],
      "--initial-cluster",
      initial,
      "--initial-cluster-token",
      this.#token,
      "--initial-cluster-state",
      options.join ? "existing" : "new",
      "--logger",
      "zap",
      "--log-outputs",
      "stderr",
    ];
    const child = new Deno.Command(this.#etcd, { args, stdout: "null", stderr: "piped" }).spawn();
    m.child = child;
    m.log = [];
    const decoder = new TextDecoder();
    const draining = (async () => {
      for await (const chunk of child.stderr) {
        m.log.push(decoder.decode(chunk));
        if (m.log.length > 50) m.log.shift();
      }
    })();
    m.gone = false;
    m.exited = Promise.all([child.status, draining]).then(() => {
      if (m.child === child) m.gone = true;
    });
  }

  /** Whether member i's process is running. */
  isRunning(i: number): boolean {
    const m = this.#members[i];
    return m.child !== undefined && !m.gone;
  }

  /** The members' process ids (undefined: killed). */
  pids(): number[] {
    return this.#members.flatMap((m) => m.child ? [m.child.pid] : []);
  }

  /** Member i's process id while it runs, else undefined. */
  pid(i: number): number | undefined {
    return this.#members[i].child?.pid;
  }

  /** Member i's status, or undefined when it does not answer within `timeoutMs` (500). */
  async status(i: number, options: { timeoutMs?: number } = {}): Promise<EtcdStatus | undefined> {
    try {
      const res = await fetch(`${this.clientUrls[i]}/v3/maintenance/status`, {
        method: "POST",
        body: "{}",
        signal: AbortSignal.timeout(options.timeoutMs ?? 500),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      const s = await res.json();
      return {
        id: String(s.header?.member_id),
        leader: String(s.leader),
        revision: Number(s.header?.revision ?? 0),
        raftAppliedIndex: Number(s.raftAppliedIndex ?? 0),
      };
    } catch {
      return undefined;
    }
  }

  /** The index of the member that leads, once one does. */
  async leader(options: { timeoutMs?: number } = {}): Promise<number> {
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    while (Date.now() < deadline) {
      for (let i = 0; i < this.#members.length; i++) {
        if (!this.#members[i].child) continue;
        const s = await this.status(i);
        if (s !== undefined && s.leader !== "0" && s.id === s.leader) return i;
      }
      await delay(50);
    }
    throw new Error("no etcd member became leader in time");
  }

  /** A cluster API call (`/v3/cluster/member/...`) through member `via`; throws on a refusal. */
  async #cluster(via: number, call: string, body: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.clientUrls[via]}/v3/cluster/member/${call}`, {
      method: "POST",
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`etcd member ${call}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text);
  }

  /**
   * Removes member i from the cluster (the v3 `MemberRemove` that `etcdctl
   * member remove` sends), asking member `via`; finds its id by its peer URL.
   */
  async removeMember(i: number, via: number): Promise<void> {
    const list = await this.#cluster(via, "list", {});
    const members = (list.members ?? []) as { ID: string; peerURLs?: string[] }[];
    const member = members.find((m) => m.peerURLs?.includes(this.peerUrls[i]));
    if (member === undefined) {
      throw new Error(`etcd member ${i} (${this.peerUrls[i]}) is not in the member list`);
    }
    await this.#cluster(via, "remove", { ID: member.ID });
  }

  /**
   * Adds member i back at its peer URL (the v3 `MemberAdd` that `etcdctl
   * member add` sends), asking member `via`; then start it with
   * `restart(i, { join: true })` on an empty folder.
   */
  async addMember(i: number, via: number): Promise<void> {
    // etcd refuses a change ("unhealthy cluster", 503) until its leader has
    // been connected to every peer for a while (5 s): retry, bounded.
    const deadline = Date.now() + 60_000;
    while (true) {
      try {
        await this.#cluster(via, "add", { peerURLs: [this.peerUrls[i]] });
        return;
      } catch (err) {
        if (!/unhealthy cluster/.test((err as Error).message) || Date.now() > deadline) throw err;
        await delay(250);
      }
    }
  }

  /** Sends `signal` (default SIGKILL) to member i and waits for it to exit. */
  async kill(i: number, signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const m = this.#members[i];
    if (!m.child) return;
    try {
      m.child.kill(signal);
    } catch { /* already gone */ }
    await m.exited;
    m.child = undefined;
    m.gone = true;
  }

  /** Stops every member (SIGTERM). */
  async stop(): Promise<void> {
    await Promise.all(this.#members.map((_, i) => this.kill(i, "SIGTERM")));
  }
}
