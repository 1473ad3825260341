/**
 * Spurious elections: a 3-node `kv serve` cluster under steady load (16 TCP
 * clerk clients by default) for 60 s, with two CPU-bound processes beside it
 * (`yes > /dev/null` ×2, killed after), counting the leader changes every
 * node saw meanwhile (`/status` term, and `distkit_raft_leader_changes_total`
 * of `/metrics`). With nothing failing, both must stay put: any change is a
 * spurious election. Not part of CI (a minute or more a run).
 *
 * deno run -A bench/spurious_elections.ts [--seconds 60] [--clients 16] [--busy 2]
 *   [--runs 1] [--ports 25000-25499] [-- <kv serve arguments>]
 *
 * Exit code 1 when any run saw a leader change.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LocalCluster } from "../cli/local_cluster.ts";
import { connectKv } from "../kv/node.ts";
import { clerkPut, Keys, runLoad } from "./kv_load.ts";
import { PortRange } from "./ports.ts";

/** What one node said about itself: its term and the leaders it has seen since it started. */
interface NodeView {
  term: number;
  leaderChanges: number;
}

async function view(cluster: LocalCluster, i: number): Promise<NodeView> {
  const status = await cluster.status(i);
  const res = await fetch(`http://${cluster.httpAddress(i)}/metrics`);
  const text = await res.text();
  const line = text.split("\n").find((l) => l.startsWith("distkit_raft_leader_changes_total"));
  if (status === undefined || line === undefined) {
    throw new Error(`node ${i} gave no status or no leader-change counter`);
  }
  return { term: status.term, leaderChanges: Number(line.trim().split(/\s+/).at(-1)) };
}

async function run(
  n: number,
  options: {
    seconds: number;
    clients: number;
    busy: number;
    ports?: PortRange;
    serveArgs: string[];
  },
): Promise<number> {
  const dataDir = await Deno.makeTempDir({ prefix: "spurious-" });
  const offset = options.ports ? Math.floor(options.ports.size / 2) : undefined;
  const cluster = await LocalCluster.start({
    dataDir,
    ports: offset === undefined ? undefined : options.ports!.take(3, offset),
    httpOffset: offset,
    serveArgs: options.serveArgs,
  });
  const busy: Deno.ChildProcess[] = [];
  const { clerk, close } = connectKv(cluster.peers);
  try {
    const leader = await cluster.leader();
    const put = clerkPut(clerk);
    await put(leader, "warm-up"); // the first write settles the new leader's term
    for (let i = 0; i < options.busy; i++) {
      busy.push(new Deno.Command("yes", { stdout: "null", stderr: "null" }).spawn());
    }
    const before = await Promise.all([0, 1, 2].map((i) => view(cluster, i)));
    const load0 = Deno.loadavg()[0];
    const result = await runLoad({
      put,
      member: leader,
      clients: options.clients,
      seconds: options.seconds,
      warmupSeconds: 0,
      keys: new Keys(`s${n}`),
    });
    const after = await Promise.all([0, 1, 2].map((i) => view(cluster, i)));
    const changes = Math.max(
      ...after.map((a, i) =>
        Math.max(a.term - before[i].term, a.leaderChanges - before[i].leaderChanges)
      ),
    );
    console.log(
      `run ${n}: ${options.seconds} s, ${options.clients} clients, ${options.busy} busy processes: ` +
        `${Math.round(result.perSecond)} puts/s, p99 ${
          result.p99.toFixed(1)
        } ms, ${result.errors} errors; ` +
        `terms ${before.map((b) => b.term).join("/")} → ${after.map((a) => a.term).join("/")}, ` +
        `leader changes seen ${
          after.map((a, i) => a.leaderChanges - before[i].leaderChanges).join("/")
        }; load average ${load0.toFixed(2)} → ${Deno.loadavg()[0].toFixed(2)}` +
        `  => ${changes} spurious election(s)`,
    );
    return changes;
  } finally {
    for (const p of busy) {
      p.kill("SIGKILL");
      await p.status;
    }
    await close();
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      seconds: { type: "string", default: "60" },
      clients: { type: "string", default: "16" },
      busy: { type: "string", default: "2" },
      runs: { type: "string", default: "1" },
      ports: { type: "string" },
    },
  });
  const [seconds, clients, busy, runs] = [values.seconds, values.clients, values.busy, values.runs]
    .map(Number);
  if (!(seconds > 0 && clients >= 1 && busy >= 0 && Number.isInteger(runs) && runs >= 1)) {
    console.error(
      "usage: deno run -A bench/spurious_elections.ts [--seconds 60] [--clients 16] [--busy 2] " +
        "[--runs 1] [--ports LOW-HIGH] [-- <kv serve arguments>]",
    );
    return 2;
  }
  const ports = values.ports === undefined ? undefined : PortRange.parse(values.ports);
  let total = 0;
  for (let n = 1; n <= runs; n++) {
    total += await run(n, { seconds, clients, busy, ports, serveArgs: positionals });
  }
  console.log(`spurious elections in ${runs} run(s): ${total}`);
  return total === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
