/**
 * `distkit demo`: a 3-node KV cluster as separate processes on 127.0.0.1,
 * concurrent clients for about ten seconds, the leader killed with SIGKILL
 * and restarted meanwhile; then throughput, latency percentiles, the
 * failover gap and the linearizability verdict of the whole history, with
 * the checker's HTML report (kill and restart annotated).
 *
 * @module
 */
import { checkOperations } from "../checker/check.ts";
import { renderHtml } from "../checker/html.ts";
import { kvModel } from "../checker/models.ts";
import type { Verdict } from "../checker/types.ts";
import { delay } from "../net/async.ts";
import { LocalCluster } from "./local_cluster.ts";
import { connectKv } from "../kv/node.ts";
import { AppendWorkload } from "./workload.ts";

/** Options of {@linkcode clusterDemo}. */
export interface ClusterDemoOptions {
  /** Seconds of client load. Default 10. */
  seconds?: number;
  /** Concurrent clients. Default 8. */
  clients?: number;
  /** Where progress lines go. Default: nowhere. */
  progress?: (line: string) => void;
  /** The folder for the nodes' data and the report (it must exist). Default: a new temporary folder. */
  dataDir?: string;
  /** Where the nodes keep their KV state (`kv serve --state`). Default: the node's default (memory for a new folder). */
  state?: "disk" | "memory";
}

/** What the demo measured. */
export interface ClusterDemoReport {
  /** The folder with the nodes' data and the HTML report. */
  dataDir: string;
  /** Where the checker's HTML report was written. */
  reportPath: string;
  /** Operations completed, and per second. */
  operations: number;
  opsPerSecond: number;
  /** Latency percentiles of completed operations, in milliseconds. */
  latency: { p50: number; p90: number; p99: number; max: number };
  /** From the leader's death to the first completion of an operation called after it, in ms. */
  failoverGapMs: number;
  /** The node killed and the node that led afterwards. */
  killed: number;
  newLeader: number;
  /** Acknowledged appends missing or doubled afterwards (must be 0). */
  appendsLost: number;
  /** The checker's verdict on the whole history. */
  verdict: Verdict;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs the demo and reports; the cluster is stopped before it returns. */
export async function clusterDemo(options: ClusterDemoOptions = {}): Promise<ClusterDemoReport> {
  const { seconds = 10, clients = 8 } = options;
  const say = options.progress ?? (() => {});
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "distkit-demo-" });
  say(`starting 3 nodes (distkit kv serve) with their data under ${dataDir}`);
  const cluster = await LocalCluster.start({ dataDir, state: options.state });
  try {
    return await drive(cluster, { dataDir, seconds, clients, say });
  } finally {
    await cluster.stop(); // also when something failed: no node process is left behind
  }
}

async function drive(
  cluster: LocalCluster,
  options: { dataDir: string; seconds: number; clients: number; say: (line: string) => void },
): Promise<ClusterDemoReport> {
  const { dataDir, seconds, clients, say } = options;
  for (let i = 0; i < 3; i++) {
    say(`  node ${i}: tcp ${cluster.peers[i]}, http http://${cluster.httpAddress(i)}`);
  }
  const first = await cluster.leader();
  say(`node ${first} leads; ${clients} clients start appending and reading`);

  const t0 = performance.now();
  const workload = new AppendWorkload({ now: () => performance.now() - t0 });
  const notes: { at: number; text: string }[] = [];
  const connections = Array.from({ length: clients }, () => connectKv(cluster.peers));
  const running = workload.start(connections.map((c) => c.clerk));
  const history = workload.history;

  let last = { ops: 0, at: 0 };
  // The rate over the time since the last line: a restart can take longer than a second.
  const tick = (down: string) => {
    const now = { ops: workload.completed, at: performance.now() - t0 };
    const rate = (now.ops - last.ops) / Math.max(0.001, (now.at - last.at) / 1000);
    say(`  t=${(now.at / 1000).toFixed(0)} s  ${now.ops} ops  (${rate.toFixed(0)}/s)${down}`);
    last = now;
  };
  const killAt = seconds * 0.3;
  const restartAt = seconds * 0.6;
  let killedAt = 0;
  for (let s = 1; s <= seconds; s++) {
    // Each line at its second since the start, not a second after the last (which may be late);
    // a second a slow restart took is passed over (its operations count in the next line).
    const wait = s * 1000 - (performance.now() - t0);
    const action = s === Math.round(killAt) || s === Math.round(restartAt);
    if (wait < 0 && !action && s < seconds) continue;
    await delay(Math.max(0, wait));
    if (s === Math.round(killAt)) {
      await cluster.kill(first);
      killedAt = performance.now() - t0;
      notes.push({ at: killedAt, text: `node ${first} (the leader) killed with SIGKILL` });
      tick(`  ← kill -9 node ${first}, the leader`);
    } else if (s === Math.round(restartAt)) {
      await cluster.restart(first);
      notes.push({ at: performance.now() - t0, text: `node ${first} restarted from its files` });
      tick(`  ← node ${first} restarted`);
    } else {
      tick(cluster.isRunning(first) ? "" : `  (node ${first} down)`);
    }
  }
  await running.stop();
  const elapsed = (performance.now() - t0) / 1000;
  const newLeader = await cluster.leader();

  const appendsLost = await workload.lostAppends(connections[0].clerk);
  for (const c of connections) await c.close();
  await cluster.stop();

  // A note marks the operation in flight when it happened (clients are
  // blocked through a failover, so the next one called would mark it late),
  // else the next one called.
  for (const note of notes) {
    const op = history.find((o) => !o.annotation && o.call <= note.at && note.at <= o.return) ??
      history.find((o) => !o.annotation && o.call >= note.at);
    if (op) op.annotation = note.text;
  }
  const result = checkOperations(kvModel, history, { timeoutMs: 60_000 });
  const reportPath = `${dataDir}/report.html`;
  await Deno.writeTextFile(
    reportPath,
    renderHtml(result, { model: kvModel, title: "distkit demo: 3 nodes, leader killed" }),
  );
  const sorted = history.map((o) => o.return - o.call).sort((a, b) => a - b);
  // Operations called after the process was gone had to find the new leader.
  let after = Infinity;
  for (const o of history) if (o.call >= killedAt && o.return < after) after = o.return;
  return {
    dataDir,
    reportPath,
    operations: history.length,
    opsPerSecond: history.length / elapsed,
    latency: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.at(-1) ?? 0,
    },
    failoverGapMs: after - killedAt,
    killed: first,
    newLeader,
    appendsLost,
    verdict: result.verdict,
  };
}
