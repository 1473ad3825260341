/**
 * Raft load benchmark: proposals committed per second and their latency
 * (p50/p99) on 3 nodes, with 1 and 64 concurrent proposers,
 * (a) in memory: the simulated network on the real clock, MemoryStorage;
 * (b) TCP + Deno KV: three `distkit raft serve` processes, a client over TCP;
 * and the failover time over TCP (leader killed with SIGKILL → a new leader
 * commits).
 *
 * deno run -A bench/raft_load.ts [--seconds 5] [--runs 3] [--only memory|tcp|failover]
 */
import { parseArgs } from "node:util";
import { delay, Random, realClock, SimNetwork } from "../net/mod.ts";
import { startSimCluster } from "../cli/raft_sim_cluster.ts";
import { append, kill, leaderOf, spawn, startCluster } from "../tests/raft_processes.ts";

interface Result {
  perSecond: number;
  p50: number;
  p99: number;
}

function summarize(latencies: number[], seconds: number): Result {
  latencies.sort((a, b) => a - b);
  const at = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return { perSecond: latencies.length / seconds, p50: at(0.5), p99: at(0.99) };
}

/** Runs `concurrency` proposers for `seconds`, each timing `one()`. */
async function load(
  concurrency: number,
  seconds: number,
  one: (k: number) => Promise<void>,
): Promise<Result> {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  let k = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await one(k++);
      latencies.push(performance.now() - t0);
    }
  }));
  return summarize(latencies, seconds);
}

async function memoryCluster() {
  const net = new SimNetwork({ clock: realClock, random: new Random(1) });
  const nodes = [
    ...(await startSimCluster(net, ["a", "b", "c"], { random: new Random(10) })).values(),
  ];
  for (const node of nodes) {
    (async () => {
      for await (const _ of node.applied()) { /* a state machine that does nothing */ }
    })();
  }
  while (!nodes.some((n) => n.status().role === "leader")) await delay(20);
  const leader = nodes.find((n) => n.status().role === "leader")!;
  return {
    propose: async (k: number) => {
      const { index, term } = await leader.propose(`cmd-${k}`);
      await leader.waitApplied(index, term);
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      net.close();
    },
  };
}

function line(name: string, results: Result[]): string {
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const per = median(results.map((r) => r.perSecond));
  const p50 = median(results.map((r) => r.p50));
  const p99 = median(results.map((r) => r.p99));
  const runs = results.map((r) => Math.round(r.perSecond)).join(", ");
  return `${name.padEnd(36)} ${Math.round(per).toString().padStart(7)}/s  p50 ${
    p50.toFixed(2)
  } ms  p99 ${p99.toFixed(2)} ms  (runs: ${runs})`;
}

const { values } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string" }, runs: { type: "string" }, only: { type: "string" } },
});
const seconds = Number(values.seconds ?? 5);
const runs = Number(values.runs ?? 3);
const only = values.only;

if (!only || only === "memory") {
  for (const concurrency of [1, 64]) {
    const results: Result[] = [];
    for (let r = 0; r < runs; r++) {
      const cluster = await memoryCluster();
      await load(concurrency, 0.5, cluster.propose); // warm-up
      results.push(await load(concurrency, seconds, cluster.propose));
      await cluster.stop();
    }
    console.log(line(`memory, ${concurrency} proposer(s)`, results));
  }
}

if (!only || only === "tcp") {
  for (const concurrency of [1, 64]) {
    const results: Result[] = [];
    for (let r = 0; r < runs; r++) {
      const cluster = await startCluster(["a", "b", "c"], { snapshotEvery: 0 });
      const leader = await leaderOf(cluster.members);
      const client = leader.client;
      const propose = async (k: number) => {
        const reply = await client.call<{ index?: number }>("Log.Append", { command: `cmd-${k}` });
        if (reply.index === undefined) throw new Error("the leader changed during the benchmark");
      };
      await load(concurrency, 0.5, propose);
      results.push(await load(concurrency, seconds, propose));
      await cluster.stop();
    }
    console.log(line(`tcp + Deno KV, ${concurrency} proposer(s)`, results));
  }
}

if (!only || only === "failover") {
  const cluster = await startCluster(["a", "b", "c"], { snapshotEvery: 0 });
  const times: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      await append(cluster.members, `warm-${r}`);
      const leader = await leaderOf(cluster.members);
      const t0 = performance.now();
      await kill(leader);
      await append(cluster.members, `after-kill-${r}`);
      times.push(performance.now() - t0);
      leader.child = spawn(leader, cluster.members, { snapshotEvery: 0 });
      await delay(1500);
    }
  } finally {
    await cluster.stop();
  }
  const sorted = times.slice().sort((a, b) => a - b);
  console.log(
    `failover over TCP (kill -9 leader → commit)  median ${
      sorted[Math.floor(sorted.length / 2)].toFixed(0)
    } ms  ` +
      `(runs: ${times.map((t) => t.toFixed(0)).join(", ")} ms)`,
  );
}
