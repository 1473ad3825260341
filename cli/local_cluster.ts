/**
 * `LocalCluster`: a KV cluster of separate `deno` processes on this machine
 * (`distkit kv serve`), for trying things out (`distkit kv cluster`), the
 * demo, crash tests and benchmarks. Nodes can be killed with any signal and
 * restarted from their data folders.
 *
 * @module
 */
import { delay } from "../net/async.ts";

/**
 * Options of {@linkcode LocalCluster.start}.
 *
 * @example
 * ```ts
 * import type { LocalClusterOptions } from "@distkit/distkit/cli";
 *
 * const options: LocalClusterOptions = { nodes: 3, dataDir: "/tmp/kv-try" };
 * ```
 */
export interface LocalClusterOptions {
  /** How many nodes. Default 3. */
  nodes?: number;
  /** Folder under which each node keeps its data (`node0`, `node1`, ...). */
  dataDir: string;
  /** The nodes' TCP ports. Default: free ports (each with a free port `httpOffset` above, for HTTP). */
  ports?: number[];
  /** How far above its TCP port a node serves HTTP. Default 1000. */
  httpOffset?: number;
  /** Snapshot threshold of each node, in bytes. Default: the node's default. */
  maxRaftState?: number;
  /** Where each node keeps its KV state (`kv serve --state`). Default: the node's default (memory for a new folder). */
  state?: "disk" | "memory";
  /** Where each node keeps its Raft log (`kv serve --log`). Default: the node's default (Deno KV). */
  raftLog?: "kv" | "segments";
  /** How long to wait for a node to listen after a start. Default 15,000 ms. */
  startTimeoutMs?: number;
  /** The cluster id the nodes serve. Default `""`. */
  cluster?: string;
  /** A shared secret for the nodes (handed to them in `DISTKIT_SECRET`). Default: none. */
  secret?: string;
  /**
   * Called when a node's process exits by itself or at another's hand (not
   * by {@linkcode LocalCluster.kill} or {@linkcode LocalCluster.stop}), with
   * how it ended.
   */
  onExit?: (node: number, status: Deno.CommandStatus) => void;
  /** More `kv serve` arguments for every node (e.g. `["--tick-ms", "30"]`). Default: none. */
  serveArgs?: string[];
}

interface Member {
  child?: Deno.ChildProcess;
  stderr: string[];
  exited?: Promise<Deno.CommandStatus>;
  /** The process has exited (killed, or on its own). */
  gone: boolean;
  /** We are killing it: its exit is no news. */
  killing?: boolean;
}

const HTTP_OFFSET = 1000;
const HOST = "127.0.0.1";

/**
 * A cluster of node processes on 127.0.0.1. Node i serves Raft and clerks
 * on `peers[i]` and HTTP on the port 1000 above.
 *
 * @example
 * ```ts ignore
 * import { connectKv } from "@distkit/distkit/kv";
 * import { LocalCluster } from "@distkit/distkit/cli";
 *
 * const cluster = await LocalCluster.start({ dataDir: await Deno.makeTempDir() });
 * const { clerk, close } = connectKv(cluster.peers);
 * await clerk.put("x", "1");
 * await cluster.kill(await cluster.leader()); // SIGKILL
 * console.log(await clerk.get("x")); // "1", from the new leader
 * await close();
 * await cluster.stop();
 * ```
 */
export class LocalCluster {
  /** The nodes' TCP addresses, in id order. */
  readonly peers: string[];
  readonly #options: LocalClusterOptions;
  readonly #members: Member[];

  private constructor(peers: string[], options: LocalClusterOptions) {
    this.peers = peers;
    this.#options = options;
    this.#members = peers.map(() => ({ stderr: [], gone: true }));
  }

  /** Starts every node and waits until each one listens. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const n = options.nodes ?? 3;
    const ports = options.ports ?? await freePorts(n, options.httpOffset ?? HTTP_OFFSET);
    if (ports.length !== n) throw new RangeError(`${n} nodes need ${n} ports, got ${ports.length}`);
    const cluster = new LocalCluster(ports.map((p) => `${HOST}:${p}`), options);
    try {
      await Promise.all(ports.map((_, i) => cluster.restart(i)));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Node i's HTTP address. */
  httpAddress(i: number): string {
    const port = Number(this.peers[i].split(":")[1]);
    return `${HOST}:${port + (this.#options.httpOffset ?? HTTP_OFFSET)}`;
  }

  /**
   * Gives node i, which must not be running, a new free TCP port (with a
   * free HTTP port above it): its next start listens there, with the new
   * address in its `--peers`, as a node replaced on another machine does
   * (README: "Replacing a dead node"). The other nodes learn the new
   * address when it first calls them. Returns the new address.
   */
  async move(i: number): Promise<string> {
    if (!this.#members[i].gone) throw new Error(`node ${i} is running; kill it first`);
    const [port] = await freePorts(1, this.#options.httpOffset ?? HTTP_OFFSET);
    this.peers[i] = `${HOST}:${port}`;
    return this.peers[i];
  }

  /** Node i's data folder. */
  dataDir(i: number): string {
    return `${this.#options.dataDir}/node${i}`;
  }

  /** Whether node i's process is running. */
  isRunning(i: number): boolean {
    return !this.#members[i].gone;
  }

  /** Node i's process id while it runs (to read its memory or open files), else undefined. */
  pid(i: number): number | undefined {
    const m = this.#members[i];
    return m.gone ? undefined : m.child?.pid;
  }

  /** What node i wrote to stderr lately (for diagnostics). */
  stderr(i: number): string {
    return this.#members[i].stderr.join("");
  }

  /**
   * Starts node i (again) from its data folder and waits until it serves
   * HTTP. `join`: an empty folder joins the running cluster (`kv serve
   * --join`), as a node added back with `distkit kv member add` must.
   */
  async restart(i: number, options: { join?: boolean } = {}): Promise<void> {
    const m = this.#members[i];
    if (!m.gone) throw new Error(`node ${i} is running; kill it first`);
    const args = [...runnerArgs(), ...this.serveArgs(i, options)];
    // Always set, so a DISTKIT_SECRET of our own environment is not inherited by surprise.
    const env = { DISTKIT_SECRET: this.#options.secret ?? "" };
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    m.child = child;
    m.gone = false;
    m.killing = false;
    m.stderr = [];
    const decoder = new TextDecoder();
    const draining = (async () => {
      for await (const chunk of child.stderr) {
        m.stderr.push(decoder.decode(chunk));
        if (m.stderr.length > 50) m.stderr.shift();
      }
    })();
    m.exited = Promise.all([child.status, draining]).then(([status]) => {
      if (m.child === child) {
        m.gone = true;
        if (!m.killing) this.#options.onExit?.(i, status);
      }
      return status;
    });
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 15_000);
    while (!(await this.#answers(i))) {
      if (m.gone || Date.now() > deadline) {
        await this.kill(i);
        throw new Error(`node ${i} did not start; its stderr:\n${this.stderr(i)}`);
      }
      await delay(50);
    }
  }

  /**
   * The arguments of `distkit` that run node i as this cluster does (after
   * the runner: see {@linkcode distkitCommand}); `join` as for
   * {@linkcode LocalCluster.restart}.
   */
  serveArgs(i: number, options: { join?: boolean } = {}): string[] {
    return [
      "kv",
      "serve",
      "--id",
      String(i),
      "--peers",
      this.peers.join(","),
      "--data",
      this.dataDir(i),
      ...(options.join ? ["--join"] : []),
      ...(this.#options.maxRaftState === undefined
        ? []
        : ["--max-raft-state", String(this.#options.maxRaftState)]),
      ...(this.#options.state === undefined ? [] : ["--state", this.#options.state]),
      ...(this.#options.raftLog === undefined ? [] : ["--log", this.#options.raftLog]),
      ...(this.#options.cluster === undefined ? [] : ["--cluster-id", this.#options.cluster]),
      ...(this.#options.httpOffset === undefined
        ? []
        : ["--http-offset", String(this.#options.httpOffset)]),
      ...(this.#options.serveArgs ?? []),
    ];
  }

  async #answers(i: number): Promise<boolean> {
    return (await this.status(i)) !== undefined;
  }

  /** Node i's `/status`, or undefined when it does not answer within 500 ms. */
  async status(
    i: number,
  ): Promise<{ role: string; term: number; leader: string | null; stopped: boolean } | undefined> {
    try {
      const secret = this.#options.secret;
      const res = await fetch(`http://${this.httpAddress(i)}/status`, {
        signal: AbortSignal.timeout(500),
        headers: secret === undefined ? {} : { authorization: `Bearer ${secret}` },
      });
      return res.ok ? await res.json() : (await res.body?.cancel(), undefined);
    } catch {
      return undefined;
    }
  }

  /** The id of the node that leads, once one does (and the others agree). */
  async leader(options: { timeoutMs?: number } = {}): Promise<number> {
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    while (Date.now() < deadline) {
      for (let i = 0; i < this.peers.length; i++) {
        if (!this.isRunning(i)) continue;
        const s = await this.status(i);
        if (s?.role === "leader" && !s.stopped) return i;
      }
      await delay(50);
    }
    throw new Error("no node became leader in time");
  }

  /**
   * Sends `signal` (default SIGKILL: a crash) to node i and waits for it to
   * exit; a node that outlives another signal by `graceMs` is killed.
   */
  async kill(i: number, signal: Deno.Signal = "SIGKILL", graceMs = 5000): Promise<void> {
    const m = this.#members[i];
    if (!m.child) return;
    m.killing = true;
    try {
      m.child.kill(signal);
    } catch { /* already gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (signal !== "SIGKILL") {
      timer = setTimeout(() => {
        try {
          m.child?.kill("SIGKILL");
        } catch { /* gone meanwhile */ }
      }, graceMs);
    }
    await m.exited;
    clearTimeout(timer);
    m.child = undefined;
    m.gone = true;
  }

  /** Stops every node gracefully (SIGTERM; SIGKILL for one still up after 5 s). */
  async stop(): Promise<void> {
    await Promise.all(this.peers.map((_, i) => this.kill(i, "SIGTERM")));
  }
}

/** How this process runs `distkit`: itself when compiled, else `deno run` of cli.ts. */
function runnerArgs(): string[] {
  return Deno.build.standalone ? [] : [
    "run",
    `--allow-net=${HOST}`,
    "--allow-read",
    "--allow-write",
    "--allow-env=DISTKIT_SECRET",
    "--unstable-kv",
    new URL("../cli.ts", import.meta.url).href,
  ];
}

/**
 * A shell command that runs `distkit` with `args`, as it works from any
 * folder: the compiled binary's path, or `deno run -A <path>/cli.ts`.
 *
 * @example
 * ```ts
 * import { distkitCommand } from "@distkit/distkit/cli";
 *
 * console.log(distkitCommand(["kv", "get", "--endpoints", "127.0.0.1:7001", "greeting"]));
 * ```
 */
export function distkitCommand(args: readonly string[]): string {
  const cli = new URL("../cli.ts", import.meta.url);
  const runner = Deno.build.standalone
    ? [Deno.execPath()]
    : ["deno", "run", "-A", cli.protocol === "file:" ? decodeURIComponent(cli.pathname) : cli.href];
  return [...runner, ...args].map(shellQuote).join(" ");
}

/** `word` as one shell word. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * `n` free TCP ports on 127.0.0.1, each with the port 1000 above also free,
 * none of them another's HTTP port. All are held until the set is complete.
 */
async function freePorts(n: number, offset: number): Promise<number[]> {
  const ports: number[] = [];
  const held: Deno.Listener[] = [];
  try {
    while (ports.length < n) {
      const a = Deno.listen({ hostname: HOST, port: 0 });
      held.push(a);
      const port = (a.addr as Deno.NetAddr).port;
      const clash = ports.some((p) => Math.abs(p - port) === offset);
      if (clash || port + offset > 65535) continue;
      try {
        held.push(Deno.listen({ hostname: HOST, port: port + offset }));
        ports.push(port);
      } catch { /* taken: try another */ }
    }
  } finally {
    for (const l of held) l.close();
  }
  await delay(10);
  return ports;
}
