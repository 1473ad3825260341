/**
 * The leader's CPU per acknowledged HTTP put, and throughput, of two (or
 * more) source trees side by side (issue 20): for each round, connection
 * count and tree (the trees' order alternating between rounds), a fresh
 * 3-node `LocalCluster` of that tree, wrk with `bench/wrk/distkit_put.lua`
 * against its leader (`warmup` seconds, then `seconds` timed), and the
 * leader process's CPU time (utime + stime from `/proc/<pid>/stat`) over the
 * timed run divided by the puts acknowledged in it.
 *
 * ```sh
 * git archive <commit> | tar -x -C /tmp/base    # the tree to compare with
 * deno run -A bench/http_cpu.ts --trees base=/tmp/base,branch=. \
 *   --connections 1,16,64 --rounds 3 --seconds 5 --ports 24500-24999
 * ```
 *
 * `--state disk|memory` is passed to every tree's nodes (`kv serve --state`).
 *
 * With `--single`, each measurement is one node instead, in a process of
 * its own: a `KvServer` with in-memory storage (no disk, no followers)
 * behind `serveKvHttp`, so its CPU per put is the HTTP path, the replica
 * and Raft alone, without the fsync batching that moves a cluster's
 * figures with the machine's load.
 *
 * Prints one JSON line per measurement, then a table of medians with each
 * figure's range. Every tree must have `cli/local_cluster.ts`, `kv/mod.ts`
 * and `bench/wrk/distkit_put.lua`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { PortRange } from "./ports.ts";
import { cpuMs } from "./kv_load.ts";
import { quantile } from "./stats.ts";
import { parseWrk } from "./wrk_load.ts";

/** The leader changed during a timed run (its CPU then counts for no one put). */
class LeaderChangedError extends Error {
  constructor() {
    super("the leader changed during the run; run it again (on a less loaded machine)");
  }
}

interface Measurement {
  tree: string;
  connections: number;
  round: number;
  putsPerSecond: number;
  acked: number;
  errors: number;
  p50: number;
  p99: number;
  /** The leader's CPU time per acknowledged put, in µs. */
  leaderCpuUs: number;
  /** The followers' CPU time per acknowledged put, in µs (both together). */
  followersCpuUs: number;
  /** The 1-minute load average as the timed run started. */
  load: number;
}

function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

async function wrk(tree: string, url: string, connections: number, seconds: number) {
  const out = await new Deno.Command("wrk", {
    args: [
      `-t${Math.min(2, connections)}`,
      `-c${connections}`,
      `-d${seconds}s`,
      "--latency",
      "-s",
      `${tree}/bench/wrk/distkit_put.lua`,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  return parseWrk(text);
}

/** The child process of `--single`: one node of `tree` serving HTTP on `port`, until stdin closes. */
async function serveSingle(tree: string, port: number): Promise<void> {
  const { KvServer, serveKvHttp } = await import(`${tree}/kv/mod.ts`);
  const { RpcServer } = await import(`${tree}/net/mod.ts`);
  const { MemoryStorage } = await import(`${tree}/raft/mod.ts`);
  const rpc = new RpcServer();
  const kv = await KvServer.start({
    id: "0",
    peers: ["0"],
    transport: {
      connect: () => ({ peer: "none", call: () => Promise.reject(new Error("alone")) }),
    },
    server: rpc,
    storage: new MemoryStorage(),
    // The benchmark's log stays in memory: no snapshots, whose cost is not the subject.
    maxRaftState: -1,
  });
  while (kv.raft.status().role !== "leader") await new Promise((r) => setTimeout(r, 10));
  const http = serveKvHttp(kv, rpc, { port, addresses: { "0": `127.0.0.1:${port}` } });
  console.log("ready");
  for await (const _ of Deno.stdin.readable) {
    // Runs until the parent closes stdin.
  }
  await http.close();
  await kv.stop();
}

async function measureSingle(
  tree: { name: string; path: string },
  options: {
    connections: number;
    seconds: number;
    warmup: number;
    round: number;
    ports: PortRange;
  },
): Promise<Measurement> {
  const [port] = options.ports.take(1);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--serve-single",
      `${tree.path}:${port}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const { value } = await reader.read();
    if (!value?.includes("ready")) throw new Error(`the node did not start: ${value}`);
    reader.releaseLock();
    const url = `http://127.0.0.1:${port}`;
    if (options.warmup > 0) await wrk(tree.path, url, options.connections, options.warmup);
    const before = cpuMs(child.pid);
    const load = loadAverage();
    const result = await wrk(tree.path, url, options.connections, options.seconds);
    const used = cpuMs(child.pid) - before;
    return {
      tree: tree.name,
      connections: options.connections,
      round: options.round,
      putsPerSecond: Math.round(result.perSecond),
      acked: result.ops,
      errors: result.errors,
      p50: result.p50,
      p99: result.p99,
      leaderCpuUs: Math.round((used * 1000) / result.ops),
      followersCpuUs: 0,
      load,
    };
  } finally {
    await writer.close();
    await child.stdout.cancel().catch(() => {});
    await child.status;
  }
}

async function measure(
  tree: { name: string; path: string },
  options: {
    connections: number;
    seconds: number;
    warmup: number;
    round: number;
    ports: PortRange;
    /** The nodes' `--state` (a tree that has no such flag ignores it). Default: the tree's. */
    state?: string;
  },
): Promise<Measurement> {
  const { LocalCluster } = await import(`${tree.path}/cli/local_cluster.ts`);
  const dataDir = await Deno.makeTempDir({ prefix: "http-cpu-" });
  const httpOffset = Math.floor(options.ports.size / 2);
  const cluster = await LocalCluster.start({
    dataDir,
    ports: options.ports.take(3, httpOffset),
    httpOffset,
    ...(options.state === undefined ? {} : { state: options.state }),
  });
  try {
    const leader: number = await cluster.leader();
    const url = `http://${cluster.httpAddress(leader)}`;
    if (options.warmup > 0) await wrk(tree.path, url, options.connections, options.warmup);
    const pids = [0, 1, 2].map((i) => cluster.pid(i) as number);
    const before = pids.map((pid) => cpuMs(pid));
    const load = loadAverage();
    const result = await wrk(tree.path, url, options.connections, options.seconds);
    const used = pids.map((pid, i) => cpuMs(pid) - before[i]);
    const stillLeader: number = await cluster.leader();
    if (stillLeader !== leader) throw new LeaderChangedError();
    const followers = used.reduce((a, b) => a + b, 0) - used[leader];
    return {
      tree: tree.name,
      connections: options.connections,
      round: options.round,
      putsPerSecond: Math.round(result.perSecond),
      acked: result.ops,
      errors: result.errors,
      p50: result.p50,
      p99: result.p99,
      leaderCpuUs: Math.round((used[leader] * 1000) / result.ops),
      followersCpuUs: Math.round((followers * 1000) / result.ops),
      load,
    };
  } finally {
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const fmt = (x: number) => (Number.isInteger(x) ? x.toLocaleString("en") : x.toFixed(2));
  return `**${fmt(quantile(sorted, 0.5))}** (${fmt(sorted[0])}–${fmt(sorted[sorted.length - 1])})`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      trees: { type: "string", default: "branch=." },
      connections: { type: "string", default: "1,16,64" },
      rounds: { type: "string", default: "3" },
      seconds: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      ports: { type: "string", default: "24500-24999" },
      single: { type: "boolean", default: false },
      "serve-single": { type: "string" },
      state: { type: "string" },
    },
  });
  if (values["serve-single"] !== undefined) {
    const at = values["serve-single"].lastIndexOf(":");
    await serveSingle(
      values["serve-single"].slice(0, at),
      Number(values["serve-single"].slice(at + 1)),
    );
    Deno.exit(0);
  }
  const trees = values.trees.split(",").map((t) => {
    const [name, path] = t.split("=");
    if (!name || !path) throw new RangeError(`--trees takes NAME=PATH,..., got "${t}"`);
    return { name, path: resolve(path) };
  });
  const connections = values.connections.split(",").map(Number);
  const rounds = Number(values.rounds);
  const ports = PortRange.parse(values.ports);
  const results: Measurement[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const c of connections) {
      // Alternate which tree goes first, so neither always meets the machine warmer.
      const order = round % 2 === 1 ? trees : [...trees].reverse();
      for (const tree of order) {
        const run = () =>
          (values.single ? measureSingle : measure)(tree, {
            connections: c,
            seconds: Number(values.seconds),
            warmup: Number(values.warmup),
            round,
            ports,
            ...(values.state === undefined ? {} : { state: values.state }),
          });
        // A leader change (an overloaded machine) spoils the CPU split: that run is repeated.
        for (let attempt = 1;; attempt++) {
          try {
            const m = await run();
            results.push(m);
            console.log(JSON.stringify(m));
            break;
          } catch (err) {
            if (!(err instanceof LeaderChangedError) || attempt === 3) throw err;
            console.log(JSON.stringify({ tree: tree.name, connections: c, round, repeated: true }));
          }
        }
      }
    }
  }
  console.log(
    "\n| tree | connections | leader CPU µs/put | followers CPU µs/put | puts/s | p50 ms | p99 ms | load avg (1 min) | errors |",
  );
  console.log("| --- | --: | --: | --: | --: | --: | --: | --: | --: |");
  for (const c of connections) {
    for (const tree of trees) {
      const rows = results.filter((r) => r.tree === tree.name && r.connections === c);
      const col = (f: (m: Measurement) => number) => summary(rows.map(f));
      console.log(
        `| ${tree.name} | ${c} | ${col((m) => m.leaderCpuUs)} | ${col((m) => m.followersCpuUs)} | ${
          col((m) => m.putsPerSecond)
        } | ${col((m) => m.p50)} | ${col((m) => m.p99)} | ${
          rows.map((m) => m.load.toFixed(1)).join(", ")
        } | ${rows.reduce((n, m) => n + m.errors, 0)} |`,
      );
    }
  }
  // Each round's pair measured the same minutes: their ratio moves less with the load than either.
  console.log(`\nleader CPU per put against ${trees[0].name}, round by round (median):`);
  for (const tree of trees.slice(1)) {
    for (const c of connections) {
      const ratios = [];
      for (let round = 1; round <= rounds; round++) {
        const pick = (name: string) =>
          results.find((r) => r.tree === name && r.connections === c && r.round === round);
        const [base, other] = [pick(trees[0].name), pick(tree.name)];
        if (base && other) ratios.push(other.leaderCpuUs / base.leaderCpuUs);
      }
      const median = quantile([...ratios].sort((a, b) => a - b), 0.5);
      console.log(
        `${tree.name}, ${c} connections: ${ratios.map((r) => r.toFixed(2)).join(", ")} (${
          median.toFixed(2)
        })`,
      );
    }
  }
}
