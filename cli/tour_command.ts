/**
 * `distkit tour`: the library in one process, step by step.
 *
 * @module
 */
import { runTour } from "./net_tour.ts";
import { raftTour } from "./raft_tour.ts";
import { kvTour } from "./kv_tour.ts";
import { checkOperations } from "../checker/check.ts";
import { kvModel, registerModel } from "../checker/models.ts";
import { renderHtml } from "../checker/html.ts";
import { SUMMARIES } from "./summaries.ts";
import type { CliCommand } from "./util.ts";

/** The Raft and checker steps of the tour, after the net steps. */
async function raftAndCheckerTour(): Promise<number> {
  console.log("\n5. Raft: 5 members in virtual time; the leader is cut off and the others go on");
  const report = await raftTour(2026);
  console.log(
    `  leader ${report.leaders[0]}, then ${report.leaders[1]} after the partition; ` +
      `${report.committed} commands committed in ${report.virtualSeconds} virtual s ` +
      `(${report.wallMs} ms of wall time)`,
  );
  if (!report.logsAgree || report.leaders[0] === report.leaders[1]) {
    console.error("  FAILED: the members' logs differ, or no new leader took over");
    return 1;
  }
  console.log("  ok  all 5 members applied the same commands in the same order");

  console.log("\n6. The checker: is the register history the clients saw linearizable?");
  const result = checkOperations(registerModel, report.history, { timeoutMs: 10_000 });
  console.log(
    `  ${report.history.length} operations: ${result.verdict} (${result.elapsedMs.toFixed(1)} ms)`,
  );
  if (result.verdict !== "linearizable") return 1;
  // Now a stale read, as a buggy system would return one: the checker must catch it.
  const tampered = report.history.map((op) => ({ ...op }));
  const read = tampered.findLast((op) => op.input.op === "read" && op.output !== 0);
  if (read) read.output = 0;
  const bad = checkOperations(registerModel, tampered, { timeoutMs: 10_000 });
  console.log(`  with one read made stale: ${bad.verdict}`);
  if (bad.verdict !== "not linearizable") return 1;
  let where = "";
  try {
    where = `${Deno.makeTempDirSync({ prefix: "distkit-demo-" })}/report.html`;
    Deno.writeTextFileSync(
      where,
      renderHtml(bad, { model: registerModel, title: "distkit demo: a stale read" }),
    );
    console.log(`  ok  report with the failing operation: ${where}`);
  } catch {
    console.log("  (run with --allow-write to get the HTML report of the stale read)");
  }
  return await kvStep();
}

/** The KV step of the tour. */
async function kvStep(): Promise<number> {
  console.log("\n7. The KV service: 3 replicas over TCP, 4 clerks; the leader is stopped halfway");
  const report = await kvTour();
  console.log(
    `  ${report.operations} operations in ${(report.wallMs / 1000).toFixed(1)} s; leader ` +
      `${report.leaders[0]}, then ${report.leaders[1]}`,
  );
  if (!report.appendsIntact || report.leaders[0] === report.leaders[1]) {
    console.error("  FAILED: an acknowledged append is missing or doubled, or no new leader");
    return 1;
  }
  console.log("  ok  every acknowledged append is there exactly once, in order");
  const result = checkOperations(kvModel, report.history, { timeoutMs: 10_000 });
  console.log(`  ok  the history is ${result.verdict} (${result.elapsedMs.toFixed(1)} ms)`);
  return result.verdict === "linearizable" ? 0 : 1;
}

/** `distkit tour`. */
export const tourCommand: CliCommand = {
  summary: SUMMARIES.tour,
  usage:
    "usage: distkit tour\n\nRuns the tour on 127.0.0.1 (needs --allow-net=127.0.0.1; --allow-write for the report).",
  run: async () => {
    const code = await runTour();
    return code !== 0 ? code : await raftAndCheckerTour();
  },
};
