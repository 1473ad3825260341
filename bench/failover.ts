/**
 * The failover gap of a 3-node `kv serve` cluster, over the TCP clerk and
 * over HTTP: the leader is killed with SIGKILL, and the gap runs from the
 * kill to the next acknowledged write.
 *
 * Two ways to count it (`--mode`):
 * - `sequential` (default): one client putting back to back; the gap ends
 *   when a put it started after the kill is acknowledged (the TCP clerk
 *   finds the new leader by itself; over HTTP the client follows a 307 and
 *   moves to the next survivor 10 ms after a failure).
 * - `probes`: `bench/kv_vs_etcd.ts`'s measurement (16 clients, and a new put
 *   through a survivor every 10 ms after the kill).
 *
 * `--signal SIGSTOP` freezes the leader instead of killing it: its sockets
 * stay open, as when a host loses power or the network splits, so the
 * followers find out only by their election timeout (the frozen process is
 * killed once the trial is over).
 *
 * Each trial is a fresh cluster; trials interleave the APIs. Extra `kv serve`
 * arguments go after `--` (e.g. `-- --tick-ms 30`), to compare settings.
 *
 * deno run -A bench/failover.ts [--trials 9] [--api tcp,http] [--mode sequential|probes]
 *   [--signal SIGKILL|SIGSTOP] [--ports 25000-25499] [-- <kv serve arguments>]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { delay } from "../net/async.ts";
import { LocalCluster } from "../cli/local_cluster.ts";
import { connectKv } from "../kv/node.ts";
import { clerkPut, distkitHttpPuts, Keys, measureFailover, type Put } from "./kv_load.ts";
import { PortRange } from "./ports.ts";

/** One trial's outcome: the gap in ms (null: no write within the limit). */
export interface Trial {
  api: "tcp" | "http";
  gapMs: number | null;
  /** A survivor's Raft term after the new leader (2 = one election after the first). */
  term: number | undefined;
}

/** How long a sequential client may go without an acknowledged write before the trial fails. */
const LIMIT_MS = 20_000;
/** How long the sequential HTTP client waits for one answer (as `measureFailover`'s attempts). */
const ATTEMPT_MS = 2000;

/**
 * One sequential client: puts back to back through `put`; after `kill`,
 * the gap runs until a put started after the kill is acknowledged.
 * `next(member)` picks the member to try after a failure.
 */
async function sequentialGap(
  put: Put,
  options: {
    leader: number;
    members: number;
    kill: () => Promise<void>;
    keys: Keys;
    attemptMs: number;
  },
): Promise<number | null> {
  const survivors = Array.from({ length: options.members }, (_, i) => i)
    .filter((i) => i !== options.leader);
  let killedAt = Infinity;
  let gap: number | null | undefined;
  let member = options.leader;
  let turn = 0;
  const client = (async () => {
    while (gap === undefined) {
      const t0 = performance.now();
      try {
        await put(member, options.keys.next(), AbortSignal.timeout(options.attemptMs));
        if (t0 >= killedAt) gap = performance.now() - killedAt;
      } catch {
        if (t0 >= killedAt && performance.now() - killedAt > LIMIT_MS) gap = null;
        if (killedAt !== Infinity) member = survivors[turn++ % survivors.length];
        await delay(10);
      }
    }
  })();
  await delay(1000);
  killedAt = performance.now();
  await options.kill();
  await client;
  return gap ?? null;
}

async function trial(
  api: "tcp" | "http",
  options: {
    mode: string;
    signal: "SIGKILL" | "SIGSTOP";
    ports?: PortRange;
    serveArgs: string[];
    n: number;
  },
): Promise<Trial> {
  const dataDir = await Deno.makeTempDir({ prefix: "failover-" });
  const offset = options.ports ? Math.floor(options.ports.size / 2) : undefined;
  const cluster = await LocalCluster.start({
    dataDir,
    ports: offset === undefined ? undefined : options.ports!.take(3, offset),
    httpOffset: offset,
    serveArgs: options.serveArgs,
  });
  const urls = cluster.peers.map((_, i) => `http://${cluster.httpAddress(i)}`);
  const tcp = api === "tcp" ? connectKv(cluster.peers) : undefined;
  const http = api === "http" ? distkitHttpPuts(urls) : undefined;
  const put = tcp ? clerkPut(tcp.clerk) : http!.put;
  try {
    const leader = await cluster.leader();
    const keys = new Keys(`f${options.n}`);
    const kill = options.signal === "SIGKILL"
      ? () => cluster.kill(leader)
      : () => Promise.resolve(Deno.kill(cluster.pid(leader)!, "SIGSTOP"));
    // The clerk has deadlines of its own; the HTTP client's attempts are cut off here.
    const attemptMs = api === "tcp" ? LIMIT_MS : ATTEMPT_MS;
    const gapMs = options.mode === "probes"
      ? (await measureFailover({ put, members: 3, leader, clients: 16, kill, keys })).gapMs
      : await sequentialGap(put, { leader, members: 3, kill, keys, attemptMs });
    if (options.signal === "SIGSTOP") await cluster.kill(leader);
    const survivor = leader === 0 ? 1 : 0;
    const term = (await cluster.status(survivor))?.term;
    return { api, gapMs, term };
  } finally {
    await tcp?.close();
    http?.close();
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

function summary(gaps: number[]): string {
  const xs = [...gaps].sort((a, b) => a - b);
  if (xs.length === 0) return "no trials";
  const median = xs.length % 2
    ? xs[xs.length >> 1]
    : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2;
  return `median ${median.toFixed(0)} ms (${xs[0].toFixed(0)}–${xs[xs.length - 1].toFixed(0)})`;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      trials: { type: "string", default: "9" },
      api: { type: "string", default: "tcp,http" },
      mode: { type: "string", default: "sequential" },
      signal: { type: "string", default: "SIGKILL" },
      ports: { type: "string" },
    },
  });
  const trials = Number(values.trials);
  const apis = values.api.split(",");
  if (
    !Number.isInteger(trials) || trials < 1 ||
    !apis.every((a) => a === "tcp" || a === "http") ||
    !["sequential", "probes"].includes(values.mode) ||
    !["SIGKILL", "SIGSTOP"].includes(values.signal)
  ) {
    console.error(
      "usage: deno run -A bench/failover.ts [--trials 9] [--api tcp,http] " +
        "[--mode sequential|probes] [--signal SIGKILL|SIGSTOP] [--ports LOW-HIGH] " +
        "[-- <kv serve arguments>]",
    );
    return 2;
  }
  const ports = values.ports === undefined ? undefined : PortRange.parse(values.ports);
  console.log(
    `failover: ${trials} trials, ${values.mode}, ${values.signal}, kv serve ${
      positionals.join(" ") || "(defaults)"
    }` +
      `, load average ${Deno.loadavg()[0].toFixed(2)}`,
  );
  const gaps = new Map<string, number[]>();
  for (let n = 1; n <= trials; n++) {
    for (const api of apis as ("tcp" | "http")[]) {
      const signal = values.signal as "SIGKILL" | "SIGSTOP";
      const t = await trial(api, { mode: values.mode, signal, ports, serveArgs: positionals, n });
      console.log(
        `trial ${n} ${api.padEnd(4)} gap ${t.gapMs === null ? "none" : t.gapMs.toFixed(0)} ms` +
          `  survivor's term ${t.term}  load ${Deno.loadavg()[0].toFixed(2)}`,
      );
      if (t.gapMs !== null) gaps.set(api, [...(gaps.get(api) ?? []), t.gapMs]);
    }
  }
  for (const api of apis) console.log(`${api}: ${summary(gaps.get(api) ?? [])}`);
  console.log(`load average at the end ${Deno.loadavg()[0].toFixed(2)}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
