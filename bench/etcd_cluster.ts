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
  log: string[];
}

/** A running etcd cluster; member i serves clients at `clientUrls[i]`. */
export class EtcdCluster {
  readonly clientUrls: string[];
  readonly #members: Member[];

  private constructor(clientUrls: string[], members: Member[]) {
    this.clientUrls = clientUrls;
    this.#members = members;
  }

  /**
   * Starts `nodes` members with their data under `dataDir` and waits for a
   * leader. `ports`: 2 × nodes ports (client ports first); default free ones.
   */
  static async start(
    options: { etcd: string; dataDir: string; nodes?: number; ports?: number[] },
  ) {
    const n = options.nodes ?? 3;
    const ports = options.ports ?? await freePorts(2 * n);
    if (ports.length !== 2 * n) throw new RangeError(`${n} members need ${2 * n} ports`);
    const clientUrls = ports.slice(0, n).map((p) => `http://${HOST}:${p}`);
    const peerUrls = ports.slice(n).map((p) => `http://${HOST}:${p}`);
    const initial = peerUrls.map((u, i) => `m${i}=${u}`).join(",");
    const token = `bench-${crypto.randomUUID()}`;
    const members: Member[] = [];
    const cluster = new EtcdCluster(clientUrls, members);
    for (let i = 0; i < n; i++) {
      const args = [
        "--name",
        `m${i}`,
        "--data-dir",
        `${options.dataDir}/m${i}`,
        "--listen-client-urls",
        clientUrls[i],
        "--advertise-client-urls",
        clientUrls[i],
        "--listen-peer-urls",
        peerUrls[i],
        "--initial-advertise-peer-urls",
        peerUrls[i],
        "--initial-cluster",
        initial,
        "--initial-cluster-token",
        token,
        "--initial-cluster-state",
        "new",
        "--logger",
        "zap",
        "--log-outputs",
        "stderr",
      ];
      const child = new Deno.Command(options.etcd, { args, stdout: "null", stderr: "piped" })
        .spawn();
      const member: Member = { child, log: [] };
      const decoder = new TextDecoder();
      const draining = (async () => {
        for await (const chunk of child.stderr) {
          member.log.push(decoder.decode(chunk));
          if (member.log.length > 50) member.log.shift();
        }
      })();
      member.exited = Promise.all([child.status, draining]);
      members.push(member);
    }
    try {
      await cluster.leader({ timeoutMs: 30_000 });
    } catch (err) {
      const logs = members.map((m, i) => `m${i}:\n${m.log.join("").slice(-2000)}`).join("\n");
      await cluster.stop();
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
    return cluster;
  }

  /** The members' process ids (undefined: killed). */
  pids(): number[] {
    return this.#members.flatMap((m) => m.child ? [m.child.pid] : []);
  }

  /** Member i's status: its id and the leader's, or undefined when it does not answer. */
  async #status(i: number): Promise<{ id: string; leader: string } | undefined> {
    try {
      const res = await fetch(`${this.clientUrls[i]}/v3/maintenance/status`, {
        method: "POST",
        body: "{}",
        signal: AbortSignal.timeout(500),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      const s = await res.json();
      return { id: String(s.header?.member_id), leader: String(s.leader) };
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
        const s = await this.#status(i);
        if (s !== undefined && s.leader !== "0" && s.id === s.leader) return i;
      }
      await delay(50);
    }
    throw new Error("no etcd member became leader in time");
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
  }

  /** Stops every member (SIGTERM). */
  async stop(): Promise<void> {
    await Promise.all(this.#members.map((_, i) => this.kill(i, "SIGTERM")));
  }
}
