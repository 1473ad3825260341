/**
 * How distkit's KV service and etcd 3.4 scale with the number of keys (issue
 * 19): each system, 3 nodes on 127.0.0.1 with fresh data folders, is loaded
 * with N keys (`k%015d`, always through the leader, `--clients` keep-alive
 * connections, the HTTP driver of `bench/kv_load.ts`), then
 *
 * - throughput from 0 to the split (200k keys) and from there to N, and the
 *   seconds whose p99 latency was over 100 ms (puts grouped by the second
 *   they were acknowledged in);
 * - memory (RSS) of every node at the split, at N, and after a restart;
 * - restart to first write: all three killed (SIGKILL) and started again,
 *   the time until a put is acknowledged;
 * - new member catch-up: a follower killed, its folder deleted, removed and
 *   added back (distkit: `kv member remove` / `add`; etcd: the v3 cluster
 *   API `etcdctl member remove` / `add` calls), started on an empty folder;
 *   the time from its start until it has applied as much as the leader
 *   (distkit: `/status` applied index; etcd: the store's revision);
 * - disk (du) of every node's folder at N and after the restart.
 *
 * deno run -A bench/scale.ts [--keys 1M] [--value-bytes 64] [--clients 64]
 *   [--split 200k] [--systems distkit,etcd] [--ports 27000-27999]
 *   [--skip-restart] [--skip-catchup] [--json results.json]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { delay } from "../net/async.ts";
import { LocalCluster } from "../cli/local_cluster.ts";
import { git, machine, markdownTable } from "./bench_env.ts";
import { EtcdCluster, which } from "./etcd_cluster.ts";
import { distkitHttpPuts, etcdPuts, type HttpPuts, type Put } from "./kv_load.ts";
import { PortRange } from "./ports.ts";
import { median, quantile } from "./stats.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** The systems the benchmark knows. */
export type ScaleSystem = "distkit" | "etcd";

/** What the command line asks for. */
export interface ScaleOptions {
  /** How many keys to load. */
  keys: number;
  /** Bytes of every value. */
  valueBytes: number;
  /** Concurrent keep-alive connections to the leader. */
  clients: number;
  /** Where the first phase ends (at most `keys`). */
  split: number;
  /** Which systems, in the order they run. */
  systems: ScaleSystem[];
  /** The ports every cluster takes, or free ones. */
  ports?: PortRange;
  skipRestart: boolean;
  skipCatchup: boolean;
  /** Where to write every figure (per-second p99s included) as JSON. */
  json?: string;
  /** distkit's `--max-raft-state`, bytes; default the node's own. */
  maxRaftState?: number;
  /** distkit's `--state` (where the KV state is kept); default the node's own (memory). */
  state?: "disk" | "memory";
  /** distkit's `--log` (where the Raft log is kept); default the node's own (Deno KV). */
  raftLog?: "kv" | "segments";
}

/** A command line the benchmark cannot run: the message says what to change. */
export class ScaleUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScaleUsageError";
  }
}

/** The usage line printed with a {@linkcode ScaleUsageError}. */
export const USAGE = "usage: deno run -A bench/scale.ts [--keys 1M] [--value-bytes 64] " +
  "[--clients 64] [--split 200k] [--systems distkit,etcd] [--ports LOW-HIGH] " +
  "[--skip-restart] [--skip-catchup] [--max-raft-state BYTES] [--state disk|memory] [--log kv|segments] [--json FILE]";

/** `"200000"`, `"200k"`, `"1M"`, `"1_000_000"` as a whole number, or undefined. */
function count(text: string): number | undefined {
  const match = /^(\d[\d_]*)([kKmM]?)$/.exec(text.trim());
  if (!match) return undefined;
  const scale = { "": 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6 }[match[2]]!;
  const n = Number(match[1].replaceAll("_", "")) * scale;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses the command line; throws a {@linkcode ScaleUsageError} saying what is wrong. */
export function parseScaleArgs(args: string[]): ScaleOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        keys: { type: "string", default: "1M" },
        "value-bytes": { type: "string", default: "64" },
        clients: { type: "string", default: "64" },
        split: { type: "string", default: "200k" },
        systems: { type: "string", default: "distkit,etcd" },
        ports: { type: "string" },
        "skip-restart": { type: "boolean", default: false },
        "skip-catchup": { type: "boolean", default: false },
        "max-raft-state": { type: "string" },
        state: { type: "string" },
        log: { type: "string" },
        json: { type: "string" },
      },
    }));
  } catch (err) {
    throw new ScaleUsageError((err as Error).message);
  }
  const number = (name: string, text: string, min: number, max: number): number => {
    const n = count(text);
    if (n === undefined || n < min || n > max) {
      throw new ScaleUsageError(
        `--${name} takes a whole number from ${min} to ${max} (e.g. 200000, 200k, 1M), got "${text}"`,
      );
    }
    return n;
  };
  const keys = number("keys", values.keys, 1, 1e15);
  const systems = values.systems.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = systems.filter((s) => s !== "distkit" && s !== "etcd");
  if (systems.length === 0 || unknown.length > 0 || new Set(systems).size !== systems.length) {
    throw new ScaleUsageError(
      `--systems takes distkit, etcd or both, comma-separated, each once; got "${values.systems}"`,
    );
  }
  let ports: PortRange | undefined;
  try {
    ports = values.ports === undefined ? undefined : PortRange.parse(values.ports);
  } catch (err) {
    throw new ScaleUsageError((err as Error).message);
  }
  if (ports !== undefined && ports.size < 12) {
    throw new ScaleUsageError(
      `--ports needs at least 12 ports (6 per etcd cluster), got ${ports.size}`,
    );
  }
  const state = values.state;
  if (state !== undefined && state !== "disk" && state !== "memory") {
    throw new ScaleUsageError(`--state takes disk or memory, got "${state}"`);
  }
  const raftLog = values.log;
  if (raftLog !== undefined && raftLog !== "kv" && raftLog !== "segments") {
    throw new ScaleUsageError(`--log takes kv or segments, got "${raftLog}"`);
  }
  return {
    keys,
    state,
    raftLog,
    valueBytes: number("value-bytes", values["value-bytes"], 1, 64 * 1024),
    clients: number("clients", values.clients, 1, 4096),
    split: Math.min(keys, number("split", values.split, 1, 1e15)),
    systems: systems as ScaleSystem[],
    ports,
    skipRestart: values["skip-restart"],
    skipCatchup: values["skip-catchup"],
    json: values.json,
    maxRaftState: values["max-raft-state"] === undefined
      ? undefined
      : number("max-raft-state", values["max-raft-state"], 1024, 2 ** 40),
  };
}

/** Key number `i`: `k` and 15 digits (16 bytes), as the issue's runs wrote them. */
export function keyName(i: number): string {
  return `k${String(i).padStart(15, "0")}`;
}

/** What {@linkcode SecondBuckets.summary} reports about one phase. */
export interface SecondsSummary {
  /** Seconds from the phase's start to its last acknowledgement (the last one partial). */
  seconds: number;
  /** Seconds whose p99 was over the limit, or in which no put was acknowledged. */
  slow: number;
  /** Of those, the seconds in which no put was acknowledged at all. */
  empty: number;
  /** The highest p99 of any second, in ms. */
  worstP99: number;
  /** Each second's p99 in ms (NaN: nothing acknowledged that second). */
  p99s: number[];
}

/**
 * Latencies grouped by the second (since the phase began) in which each put
 * was acknowledged, for the per-second p99.
 */
export class SecondBuckets {
  readonly #seconds: number[][] = [];

  /** Records a put acknowledged `atMs` after the phase began, which took `latencyMs`. */
  add(atMs: number, latencyMs: number): void {
    if (!(atMs >= 0 && latencyMs >= 0)) {
      throw new RangeError(
        `a put is acknowledged at a time ≥ 0 and takes ≥ 0 ms, got ${atMs}, ${latencyMs}`,
      );
    }
    (this.#seconds[Math.floor(atMs / 1000)] ??= []).push(latencyMs);
  }

  /** Per-second p99s, and how many exceed `limitMs` (a second with no put counts too). */
  summary(limitMs = 100): SecondsSummary {
    const p99s: number[] = [];
    for (let s = 0; s < this.#seconds.length; s++) {
      const latencies = this.#seconds[s];
      p99s.push(
        latencies === undefined ? NaN : quantile(Float64Array.from(latencies).sort(), 0.99),
      );
    }
    const empty = p99s.filter((p) => Number.isNaN(p)).length;
    return {
      seconds: p99s.length,
      slow: p99s.filter((p) => Number.isNaN(p) || p > limitMs).length,
      empty,
      worstP99: p99s.reduce((m, p) => Number.isNaN(p) ? m : Math.max(m, p), 0),
      p99s,
    };
  }
}

/** How long the load may go without a put acknowledged before the run fails. */
const STALL_MS = 60_000;
/** Bound of every wait for a restart, a convergence or a catch-up. */
const WAIT_MS = 600_000;

/** What loading one range of keys gave. */
export interface PhaseResult {
  /** Keys put. */
  keys: number;
  /** From the first put to the last acknowledgement. */
  ms: number;
  perSecond: number;
  /** Attempts that failed and were sent again (distkit's 503 overloaded, say). */
  errors: number;
  firstError?: string;
  /** The failed attempts by kind (`HTTP 503`, or the error's first words). */
  errorKinds: Record<string, number>;
  latency: SecondsSummary;
}

/**
 * Puts keys `from` to `to` - 1 through member `member`, from `clients`
 * loops; a failed put is sent again (same key) after 100 ms, its latency
 * running from the first try. Fails once no put was acknowledged for
 * {@linkcode STALL_MS}.
 */
async function loadKeys(
  put: Put,
  member: number,
  options: { from: number; to: number; clients: number },
): Promise<PhaseResult> {
  const buckets = new SecondBuckets();
  const stalled = new AbortController();
  const start = performance.now();
  let lastAck = start;
  let next = options.from;
  let errors = 0;
  let firstError: string | undefined;
  const errorKinds: Record<string, number> = {};
  const watchdog = setInterval(() => {
    if (performance.now() - lastAck > STALL_MS) {
      stalled.abort(
        new Error(
          `no put acknowledged for ${STALL_MS / 1000} s at key ${next} of ${options.to}` +
            (firstError ? ` (first error: ${firstError})` : ""),
        ),
      );
    }
  }, 1000);
  try {
    await Promise.all(Array.from({ length: options.clients }, async () => {
      while (next < options.to) {
        const key = keyName(next++);
        const t0 = performance.now();
        while (true) {
          stalled.signal.throwIfAborted();
          try {
            await put(member, key, stalled.signal);
            break;
          } catch (err) {
            stalled.signal.throwIfAborted();
            errors++;
            firstError ??= (err as Error).message;
            const kind = errorKind(err);
            errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
            await delay(100);
          }
        }
        const t1 = performance.now();
        lastAck = t1;
        buckets.add(t1 - start, t1 - t0);
      }
    }));
  } finally {
    clearInterval(watchdog);
  }
  const ms = performance.now() - start;
  const keys = options.to - options.from;
  return {
    keys,
    ms,
    perSecond: keys / (ms / 1000),
    errors,
    firstError,
    errorKinds,
    latency: buckets.summary(),
  };
}

/** What kind of failure `err` is, for counting: `HTTP <status>`, or its message's first words. */
export function errorKind(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const status = /\bHTTP (\d{3})\b/.exec(message)?.[1];
  return status ? `HTTP ${status}` : message.split(/[:(]/)[0].slice(0, 60).trim() || "error";
}

/** One system's cluster, seen the same way for both. */
interface Subject {
  readonly system: ScaleSystem;
  readonly nodes: number;
  puts(value: string): HttpPuts;
  leader(): Promise<number>;
  pid(i: number): number | undefined;
  /** Whether node i's process runs (false once it exited, by itself or killed). */
  isRunning(i: number): boolean;
  dataDir(i: number): string;
  /** How far node i has applied: distkit's applied index, etcd's revision; undefined: no answer. */
  progress(i: number): Promise<number | undefined>;
  /** Snapshots node i has taken (distkit), or undefined. */
  snapshots(i: number): Promise<number | undefined>;
  killAll(): Promise<void>;
  /** Starts every node again; resolves once each runs (distkit: answers). */
  startAll(): Promise<void>;
  /** Follower `i` leaves the cluster for good (killed, folder deleted, removed) and is added back. */
  replace(i: number, leader: number): Promise<void>;
  /** Starts node i on its empty folder to join the cluster. */
  startJoined(i: number): Promise<void>;
  diagnostics(): string;
  stop(): Promise<void>;
}

async function distkitSubject(
  dataDir: string,
  options: ScaleOptions,
): Promise<Subject> {
  // With a range, each node's HTTP port is in its upper half.
  const httpOffset = options.ports ? Math.floor(options.ports.size / 2) : undefined;
  const cluster = await LocalCluster.start({
    dataDir,
    ports: httpOffset === undefined ? undefined : options.ports!.take(3, httpOffset),
    httpOffset,
    maxRaftState: options.maxRaftState,
    state: options.state,
    raftLog: options.raftLog,
    startTimeoutMs: WAIT_MS,
  });
  const urls = cluster.peers.map((_, i) => `http://${cluster.httpAddress(i)}`);
  const kvStatus = async (i: number) =>
    (await cluster.status(i) as unknown as {
      kv?: { appliedIndex: number; snapshots: number };
    } | undefined)?.kv;
  const member = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLI,
        "kv",
        "member",
        ...args.slice(0, 1),
        "--endpoints",
        cluster.peers.join(","),
        "--timeout",
        "120s",
        ...args.slice(1),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      throw new Error(`distkit kv member ${args.join(" ")} exited ${out.code}: ${text}`);
    }
  };
  return {
    system: "distkit",
    nodes: cluster.peers.length,
    puts: (value) => distkitHttpPuts(urls, { value }),
    leader: () => cluster.leader({ timeoutMs: WAIT_MS }),
    pid: (i) => cluster.pid(i),
    isRunning: (i) => cluster.isRunning(i),
    dataDir: (i) => cluster.dataDir(i),
    progress: async (i) => (await kvStatus(i))?.appliedIndex,
    snapshots: async (i) => (await kvStatus(i))?.snapshots,
    killAll: async () => {
      await Promise.all(cluster.peers.map((_, i) => cluster.kill(i, "SIGKILL")));
    },
    startAll: async () => {
      await Promise.all(cluster.peers.map((_, i) => cluster.restart(i)));
    },
    replace: async (i) => {
      await cluster.kill(i, "SIGKILL");
      await Deno.remove(cluster.dataDir(i), { recursive: true });
      await member("remove", String(i));
      await member("add", String(i));
    },
    startJoined: (i) => cluster.restart(i, { join: true }),
    diagnostics: () =>
      cluster.peers.map((_, i) => `node ${i}:\n${cluster.stderr(i).slice(-1500)}`).join("\n"),
    stop: () => cluster.stop(),
  };
}

async function etcdSubject(
  etcd: string,
  dataDir: string,
  options: ScaleOptions,
): Promise<Subject> {
  const cluster = await EtcdCluster.start({ etcd, dataDir, ports: options.ports?.take(6) });
  return {
    system: "etcd",
    nodes: cluster.clientUrls.length,
    puts: (value) => etcdPuts(cluster.clientUrls, { value }),
    leader: () => cluster.leader({ timeoutMs: WAIT_MS }),
    pid: (i) => cluster.pid(i),
    isRunning: (i) => cluster.isRunning(i),
    dataDir: (i) => cluster.dataDir(i),
    progress: async (i) => (await cluster.status(i, { timeoutMs: 2000 }))?.revision,
    snapshots: () => Promise.resolve(undefined),
    killAll: async () => {
      await Promise.all(cluster.clientUrls.map((_, i) => cluster.kill(i, "SIGKILL")));
    },
    startAll: () => {
      cluster.clientUrls.forEach((_, i) => cluster.restart(i));
      return Promise.resolve();
    },
    replace: async (i, leader) => {
      await cluster.kill(i, "SIGKILL");
      await Deno.remove(cluster.dataDir(i), { recursive: true });
      await cluster.removeMember(i, leader);
      await cluster.addMember(i, leader);
    },
    startJoined: (i) => {
      cluster.restart(i, { join: true });
      return Promise.resolve();
    },
    diagnostics: () => cluster.clientUrls.map((_, i) => `m${i}:\n${cluster.log(i)}`).join("\n"),
    stop: () => cluster.stop(),
  };
}

/** Process `pid`'s resident memory in bytes, or NaN. */
function rss(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const kb = /VmRSS:\s*(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
    return kb === undefined ? NaN : Number(kb) * 1024;
  } catch {
    return NaN;
  }
}

/** Bytes the folder takes on disk (`du -sk`), or NaN. */
async function du(path: string): Promise<number> {
  try {
    const out = await new Deno.Command("du", { args: ["-sk", path], stdout: "piped" }).output();
    const kb = Number(new TextDecoder().decode(out.stdout).split(/\s/)[0]);
    return out.success ? kb * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A figure per node, with the load average when it was taken. */
export interface PerNode {
  values: number[];
  load: number;
}

/** A single figure with the load average when it was taken. */
export interface Timed {
  ms: number;
  load: number;
}

/** Everything measured on one system; what a step left out (`--skip-restart`) is absent. */
export interface SystemResult {
  system: ScaleSystem;
  /** 0 → split, then split → N (when N is past the split); `load`: the load average at its end. */
  phases: (PhaseResult & { load: number })[];
  /** RSS in bytes. */
  memory: { split?: PerNode; end?: PerNode; restart?: PerNode };
  /** `du` in bytes. */
  disk: { end?: PerNode; restart?: PerNode };
  /** Snapshots each node took (distkit). */
  snapshots?: number[];
  /** The leader before the load and after it (the puts went to the first). */
  leaders?: [number, number];
  /** To the first write; `convergedMs`: until every node was at one position. */
  restart?: Timed & { convergedMs: number };
  /** From the new member's start; `replaceMs`: the kill, remove and add before it. */
  catchup?: Timed & { replaceMs: number; target: number };
}

const load1 = () => Deno.loadavg()[0];

function memoryNow(subject: Subject): PerNode {
  return {
    values: Array.from({ length: subject.nodes }, (_, i) => rss(subject.pid(i))),
    load: load1(),
  };
}

async function diskNow(subject: Subject): Promise<PerNode> {
  const values = await Promise.all(
    Array.from({ length: subject.nodes }, (_, i) => du(subject.dataDir(i))),
  );
  return { values, load: load1() };
}

/** Polls (bounded) until every node reports the same progress; returns it. */
async function converged(subject: Subject, what: string): Promise<number> {
  const deadline = Date.now() + WAIT_MS;
  let last: (number | undefined)[] = [];
  while (Date.now() < deadline) {
    last = await Promise.all(Array.from({ length: subject.nodes }, (_, i) => subject.progress(i)));
    if (last.every((p) => p !== undefined && p === last[0])) return last[0]!;
    await delay(200);
  }
  throw new Error(
    `${subject.system}: the nodes did not reach one ${what} within ${WAIT_MS / 1000} s ` +
      `(last seen ${JSON.stringify(last)})`,
  );
}

/**
 * Puts one key through any node, round robin, every 50 ms (each attempt
 * bounded by 2 s), until one is acknowledged or `failed()` says the start
 * failed; the time from `t0` to that acknowledgement.
 */
async function firstWrite(
  subject: Subject,
  value: string,
  t0: number,
  failed: () => Error | undefined,
): Promise<number> {
  const http = subject.puts(value);
  try {
    for (let attempt = 0; performance.now() - t0 < WAIT_MS; attempt++) {
      const err = failed();
      if (err) throw err;
      try {
        await http.put(attempt % subject.nodes, keyName(0), AbortSignal.timeout(2000));
        return performance.now() - t0;
      } catch {
        await delay(50);
      }
    }
  } finally {
    http.close();
  }
  throw new Error(
    `${subject.system}: no write acknowledged within ${WAIT_MS / 1000} s of the restart`,
  );
}

async function measure(subject: Subject, options: ScaleOptions, log: (s: string) => void) {
  const value = "0123456789abcdef".repeat(Math.ceil(options.valueBytes / 16)).slice(
    0,
    options.valueBytes,
  );
  const result: SystemResult = { system: subject.system, phases: [], memory: {}, disk: {} };
  const leader = await subject.leader();
  const http = subject.puts(value);
  try {
    const ranges = [[0, options.split], [options.split, options.keys]].filter(([a, b]) => b > a);
    for (const [from, to] of ranges) {
      const phase = await loadKeys(http.put, leader, { from, to, clients: options.clients });
      result.phases.push({ ...phase, load: load1() });
      log(
        `${subject.system}: keys ${from}→${to}: ${Math.round(phase.perSecond)}/s over ` +
          `${
            (phase.ms / 1000).toFixed(1)
          } s; ${phase.latency.slow} of ${phase.latency.seconds} s ` +
          `with p99 > 100 ms (worst ${phase.latency.worstP99.toFixed(0)} ms); ` +
          `${phase.errors} failed attempts sent again; load ${load1().toFixed(2)}`,
      );
      const memory = await memoryNow(subject);
      if (to === options.split) result.memory.split = memory;
      if (to === options.keys) result.memory.end = memory;
      log(`${subject.system}: RSS at ${to} keys: ${memory.values.map(mib).join(" / ")} MiB`);
    }
  } finally {
    http.close();
  }
  result.disk.end = await diskNow(subject);
  result.leaders = [leader, await subject.leader()];
  if (result.leaders[1] !== leader) {
    log(
      `${subject.system}: the leader changed during the load: node ${leader} → ${
        result.leaders[1]
      }`,
    );
  }
  log(
    `${subject.system}: disk at ${options.keys} keys: ${
      result.disk.end.values.map(mib).join(" / ")
    } MiB`,
  );
  if (subject.system === "distkit") {
    const snaps = await Promise.all(
      Array.from({ length: subject.nodes }, (_, i) => subject.snapshots(i)),
    );
    result.snapshots = snaps.map((s) => s ?? NaN);
  }

  if (!options.skipRestart) {
    await converged(subject, "applied position before the restart");
    await subject.killAll();
    const load = load1();
    const t0 = performance.now();
    let startError: Error | undefined;
    const starting = subject.startAll().catch((err) => {
      startError = err;
    });
    const exited = () => {
      const gone = Array.from({ length: subject.nodes }, (_, i) => i).filter((i) =>
        !subject.isRunning(i)
      );
      return gone.length === 0 ? undefined : new Error(
        `${subject.system}: node ${gone.join(", ")} exited during the restart`,
      );
    };
    const ms = await firstWrite(subject, value, t0, () => startError ?? exited());
    await starting;
    if (startError) throw startError;
    await converged(subject, "applied position after the restart");
    const convergedMs = performance.now() - t0;
    result.restart = { ms, load, convergedMs };
    result.memory.restart = await memoryNow(subject);
    result.disk.restart = await diskNow(subject);
    log(
      `${subject.system}: restart to first write ${(ms / 1000).toFixed(1)} s (all nodes at one ` +
        `position after ${(convergedMs / 1000).toFixed(1)} s); RSS ` +
        `${result.memory.restart.values.map(mib).join(" / ")} MiB, disk ` +
        `${result.disk.restart.values.map(mib).join(" / ")} MiB`,
    );
  }

  if (!options.skipCatchup) {
    const lead = await subject.leader();
    const follower = (lead + 1) % subject.nodes;
    const r0 = performance.now();
    await subject.replace(follower, lead);
    const replaceMs = performance.now() - r0;
    const load = load1();
    const t0 = performance.now();
    await subject.startJoined(follower);
    let target = 0;
    let traced = 0;
    const deadline = t0 + WAIT_MS;
    while (true) {
      const [mine, theirs] = await Promise.all([
        subject.progress(follower),
        subject.progress(lead),
      ]);
      if (theirs !== undefined) target = theirs;
      if (mine !== undefined && theirs !== undefined && mine >= theirs) break;
      // Where the time goes: the snapshot streamed, then the log after it replayed.
      const second = Math.floor((performance.now() - t0) / 1000);
      if (Deno.env.get("SCALE_TRACE_CATCHUP") && second > traced) {
        traced = second;
        log(`  ${second} s after its start: applied ${mine} of ${theirs}`);
      }
      if (!subject.isRunning(follower)) {
        throw new Error(`${subject.system}: the new member (node ${follower}) exited`);
      }
      if (performance.now() > deadline) {
        throw new Error(
          `${subject.system}: the new member reached ${mine} of ${theirs} within ${
            WAIT_MS / 1000
          } s`,
        );
      }
      await delay(100);
    }
    const ms = performance.now() - t0;
    result.catchup = { ms, load, replaceMs, target };
    log(
      `${subject.system}: node ${follower} replaced (kill, remove, add: ` +
        `${(replaceMs / 1000).toFixed(1)} s), caught up to ${target} ` +
        `${(ms / 1000).toFixed(1)} s after its start`,
    );
  }
  return result;
}

const mib = (bytes: number) => Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(0) : "–";
const int = (x: number) => Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–";
const secs = (ms: number) => Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "–";

/** One cell of the report: what it says, the number a ratio uses, the load average then. */
interface Cell {
  text: string;
  value: number;
  load: number;
}

/** The report's table: a row per figure, a column per system, distkit over etcd, load averages. */
export function reportTable(results: SystemResult[], options: ScaleOptions): string {
  const by = (s: ScaleSystem) => results.find((r) => r.system === s);
  const k = (n: number) =>
    n >= 1e6 && n % 1e5 === 0 ? `${n / 1e6}M` : n >= 1e3 ? `${Math.round(n / 1e3)}k` : String(n);
  const perNode = (p?: PerNode): Cell | undefined =>
    p && { text: `${p.values.map(mib).join(" / ")} MiB`, value: median(p.values), load: p.load };
  const rows: { label: string; cell: (r: SystemResult) => Cell | undefined }[] = [];
  const ranges = [[0, options.split], [options.split, options.keys]].filter(([a, b]) => b > a);
  ranges.forEach(([from, to], i) => {
    rows.push({
      label: `${options.valueBytes} B values, ${k(from)} → ${k(to)} keys: throughput`,
      cell: (r) => {
        const p = r.phases[i];
        return p && { text: `${int(p.perSecond)}/s`, value: p.perSecond, load: p.load };
      },
    });
    rows.push({
      label: `${k(from)} → ${k(to)}: seconds with p99 > 100 ms`,
      cell: (r) => {
        const p = r.phases[i];
        return p && {
          text: `${p.latency.slow} of ${p.latency.seconds} (worst ${int(p.latency.worstP99)} ms)` +
            (p.latency.empty ? `, ${p.latency.empty} with no put acknowledged` : "") +
            (p.errors
              ? `; ${p.errors} failed attempts sent again (${
                Object.entries(p.errorKinds).map(([k, n]) => `${k}: ${n}`).join(", ")
              })`
              : ""),
          value: p.latency.slow,
          load: p.load,
        };
      },
    });
  });
  rows.push(
    {
      label: `memory (RSS) per node at ${k(options.split)} keys`,
      cell: (r) => perNode(r.memory.split),
    },
    ...(options.keys > options.split
      ? [{
        label: `memory per node at ${k(options.keys)} keys`,
        cell: (r: SystemResult) => perNode(r.memory.end),
      }]
      : []),
    { label: "memory per node after the restart", cell: (r) => perNode(r.memory.restart) },
    {
      label: `restart to first write at ${k(options.keys)} keys`,
      cell: (r) =>
        r.restart && {
          text: `${secs(r.restart.ms)} (all at one position: ${secs(r.restart.convergedMs)})`,
          value: r.restart.ms,
          load: r.restart.load,
        },
    },
    {
      label: `new member catch-up, ${k(options.keys)} keys`,
      cell: (r) =>
        r.catchup && {
          text: `${secs(r.catchup.ms)} from its start (kill, remove, add before: ${
            secs(r.catchup.replaceMs)
          })`,
          value: r.catchup.ms,
          load: r.catchup.load,
        },
    },
    { label: `disk per node at ${k(options.keys)} keys`, cell: (r) => perNode(r.disk.end) },
    { label: "disk per node after the restart", cell: (r) => perNode(r.disk.restart) },
    {
      label: "snapshots taken per node during the load",
      cell: (r) =>
        r.snapshots && {
          text: r.snapshots.map(int).join(" / "),
          value: median(r.snapshots),
          load: NaN,
        },
    },
  );
  const systems = options.systems;
  const both = by("distkit") && by("etcd");
  const header = [
    "",
    ...systems.map((s) => s === "etcd" ? "etcd 3.4" : s),
    ...(both ? ["distkit / etcd"] : []),
    `load avg (${systems.join(" / ")})`,
  ];
  const body = rows.flatMap(({ label, cell }) => {
    const cells = systems.map((s) => {
      const r = by(s);
      return r ? cell(r) : undefined;
    });
    if (cells.every((c) => c === undefined)) return [];
    const d = cells[systems.indexOf("distkit")];
    const e = cells[systems.indexOf("etcd")];
    const ratio = d && e && e.value > 0 && Number.isFinite(d.value / e.value)
      ? `${(d.value / e.value).toFixed(2)}×`
      : "";
    const loads = cells.map((c) => c && Number.isFinite(c.load) ? c.load.toFixed(1) : "–");
    return [[
      label,
      ...cells.map((c) => c?.text ?? "–"),
      ...(both ? [ratio] : []),
      loads.join(" / "),
    ]];
  });
  return markdownTable(header, body, header.map(() => false));
}

async function main(): Promise<number> {
  let options: ScaleOptions;
  try {
    options = parseScaleArgs(Deno.args);
  } catch (err) {
    if (!(err instanceof ScaleUsageError)) throw err;
    console.error(`scale: ${err.message}\n${USAGE}`);
    return 2;
  }
  const etcd = which("etcd");
  if (options.systems.includes("etcd") && etcd === undefined) {
    console.error(
      "scale: etcd is not on PATH; install it (Debian/Ubuntu: `apt install etcd-server`) " +
        "or pass --systems distkit",
    );
    return 2;
  }
  const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const startedAt = new Date();
  const loadAtStart = load1();
  const results: SystemResult[] = [];
  let current: { subject?: Subject; dataDir: string } | undefined;
  const cleanup = async () => {
    if (!current) return;
    await current.subject?.stop().catch(() => {});
    await Deno.remove(current.dataDir, { recursive: true }).catch(() => {});
    current = undefined;
  };
  const interrupted = async () => {
    console.log("interrupted: stopping the cluster");
    await cleanup();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  try {
    for (const system of options.systems) {
      const dataDir = await Deno.makeTempDir({ prefix: `scale-${system}-` });
      current = { dataDir };
      log(`${system}: starting 3 nodes in ${dataDir}`);
      const subject = system === "etcd"
        ? await etcdSubject(etcd!, dataDir, options)
        : await distkitSubject(dataDir, options);
      current.subject = subject;
      try {
        results.push(await measure(subject, options, log));
      } catch (err) {
        console.error(
          `scale: ${system} failed: ${(err as Error).message}\n${subject.diagnostics()}`,
        );
        return 1;
      } finally {
        await cleanup();
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", interrupted);
    Deno.removeSignalListener("SIGTERM", interrupted);
  }

  const commit = await git("rev-parse", "--short", "HEAD");
  const command = ["deno run -A bench/scale.ts", ...Deno.args].join(" ");
  const summary = [
    `Run ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, \`${command}\`, on ` +
    `${machine()}, Deno ${Deno.version.deno}; distkit at commit ${commit || "?"}. Load average ` +
    `${loadAtStart.toFixed(2)} at the start, ${load1().toFixed(2)} at the end.`,
    "",
    reportTable(results, options),
  ].join("\n");
  console.log(`\n${summary}\n`);
  if (options.json) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify(
        { startedAt, command, commit, options: { ...options, ports: undefined }, results },
        null,
        1,
      ),
    );
    console.log(`wrote every figure to ${options.json}`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
