/**
 * `distkit demo`: a 3-node KV cluster as processes, its leader killed under load.
 *
 * @module
 */
import { type CliCommand, parseFlags } from "./util.ts";
import { clusterDemo } from "./demo.ts";
import { SUMMARIES } from "./summaries.ts";

/** `distkit demo`. */
export const demoCommand: CliCommand = {
  summary: SUMMARIES.demo,
  usage: `usage: distkit demo [--seconds 10] [--clients 8] [--state disk|memory]

Starts 3 \`distkit kv serve\` processes on 127.0.0.1 with their data in a fresh
folder, runs concurrent clients while it kills the leader with SIGKILL and
restarts it, then prints throughput, latency percentiles, the failover gap and
the linearizability verdict of the whole history, and writes the checker's
HTML report. --state is the nodes' \`kv serve --state\` (default: memory, as for a new folder). Needs --allow-net=127.0.0.1 --allow-read --allow-write --allow-run.`,
  run: async (args) => {
    let values;
    try {
      ({ values } = parseFlags(args, {
        seconds: { type: "string" },
        clients: { type: "string" },
        state: { type: "string" },
      }));
    } catch (err) {
      console.error(`distkit demo: ${(err as Error).message}`);
      return 2;
    }
    const seconds = Number(values.seconds ?? 10);
    const clients = Number(values.clients ?? 8);
    if (!(seconds >= 3 && Number.isInteger(clients) && clients >= 1)) {
      console.error("distkit demo: --seconds must be at least 3 and --clients at least 1");
      return 2;
    }
    const state = values.state;
    if (state !== undefined && state !== "disk" && state !== "memory") {
      console.error(`distkit demo: --state is disk or memory, not ${JSON.stringify(state)}`);
      return 2;
    }
    console.log("distkit demo: a replicated key/value cluster, its leader killed under load\n");
    const r = await clusterDemo({ seconds, clients, state, progress: (line) => console.log(line) });
    console.log(
      `\n${r.operations} operations in ${seconds} s: ${Math.round(r.opsPerSecond)}/s; latency ` +
        `p50 ${r.latency.p50.toFixed(1)} ms, p90 ${r.latency.p90.toFixed(1)} ms, p99 ` +
        `${r.latency.p99.toFixed(1)} ms, max ${r.latency.max.toFixed(0)} ms`,
    );
    console.log(
      `failover: node ${r.killed} killed; node ${r.newLeader} leads; the first operation ` +
        `after the kill completed ${r.failoverGapMs.toFixed(0)} ms later`,
    );
    console.log(
      r.appendsLost === 0
        ? "every acknowledged append is present exactly once"
        : `FAILED: ${r.appendsLost} acknowledged appends missing or doubled`,
    );
    console.log(`the whole history is ${r.verdict}; report: ${r.reportPath}`);
    return r.appendsLost === 0 && r.verdict === "linearizable" ? 0 : 1;
  },
};
