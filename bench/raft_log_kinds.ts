/**
 * Puts over HTTP against 3-node `kv serve` clusters, one keeping its Raft log
 * in Deno KV (`--log kv`), one in segment files (`--log segments`), in
 * interleaved rounds (a fresh cluster per run, the order alternating each
 * round): puts/s and p50/p99 per run, with the load average. The client is
 * `bench/http1.ts` through `bench/kv_load.ts`'s `runLoad`, always to the
 * leader.
 *
 * Run: `deno run -A bench/raft_log_kinds.ts [--clients 1] [--seconds 5]
 * [--warmup 1] [--rounds 3] [--ports 27500-27999]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LocalCluster } from "../cli/local_cluster.ts";
import { distkitHttpPuts, Keys, type LoadResult, runLoad } from "./kv_load.ts";
import { PortRange } from "./ports.ts";

const KINDS = ["kv", "segments"] as const;
const USAGE = "usage: deno run -A bench/raft_log_kinds.ts [--clients 1] [--seconds 5] " +
  "[--warmup 1] [--rounds 3] [--ports 27500-27999]";

async function runOne(
  kind: (typeof KINDS)[number],
  options: { clients: number; seconds: number; warmup: number; ports: PortRange },
): Promise<LoadResult> {
  const dataDir = await Deno.makeTempDir({ prefix: `raft_log_kinds_${kind}_` });
  const httpOffset = Math.floor(options.ports.size / 2);
  const cluster = await LocalCluster.start({
    dataDir,
    ports: options.ports.take(3, httpOffset),
    httpOffset,
    serveArgs: ["--log", kind],
  });
  try {
    const leader = await cluster.leader();
    const drivers = distkitHttpPuts(
      cluster.peers.map((_, i) => `http://${cluster.httpAddress(i)}`),
    );
    try {
      return await runLoad({
        put: drivers.put,
        member: leader,
        clients: options.clients,
        seconds: options.seconds,
        warmupSeconds: options.warmup,
        keys: new Keys(kind.slice(0, 5)),
      });
    } finally {
      drivers.close();
    }
  } finally {
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function load(): string {
  return Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        clients: { type: "string", default: "1" },
        seconds: { type: "string", default: "5" },
        warmup: { type: "string", default: "1" },
        rounds: { type: "string", default: "3" },
        ports: { type: "string", default: "27500-27999" },
      },
    }));
  } catch (err) {
    console.error(`raft_log_kinds: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const [clients, seconds, warmup, rounds] = [
    values.clients,
    values.seconds,
    values.warmup,
    values.rounds,
  ].map(Number);
  let ports: PortRange;
  try {
    ports = PortRange.parse(values.ports);
  } catch (err) {
    console.error(`raft_log_kinds: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!(clients >= 1 && seconds > 0 && warmup >= 0 && rounds >= 1)) {
    console.error(`raft_log_kinds: bad --clients, --seconds, --warmup or --rounds\n${USAGE}`);
    return 2;
  }
  console.log(
    `raft_log_kinds: ${clients} connection(s), ${seconds} s timed after ${warmup} s, ` +
      `${rounds} rounds; load average ${load()}`,
  );
  console.log("| round | log | puts/s | p50 ms | p99 ms | errors | load average (1 min) |");
  console.log("| --: | --- | --: | --: | --: | --: | --: |");
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? KINDS : [...KINDS].reverse();
    for (const kind of order) {
      const r = await runOne(kind, { clients, seconds, warmup, ports });
      console.log(
        `| ${round} | ${kind} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(2)} | ` +
          `${r.p99.toFixed(2)} | ${r.errors} | ${Deno.loadavg()[0].toFixed(2)} |`,
      );
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
