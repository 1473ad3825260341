/** The tour behind `deno task demo` does what it says. */
import assert from "node:assert/strict";
import { checkOperations, kvModel, registerModel } from "../checker/mod.ts";
import { kvTour } from "../cli/kv_tour.ts";
import { clusterDemo } from "../cli/demo.ts";
import { runTour } from "../cli/net_tour.ts";
import { raftTour } from "../cli/raft_tour.ts";

Deno.test("demo: the net tour passes its own checks", async () => {
  assert.equal(await runTour(), 0);
});

Deno.test("demo: Raft survives a leader partition and its history is linearizable", async () => {
  const report = await raftTour(2026);
  assert.ok(report.logsAgree, "members applied different logs");
  assert.notEqual(report.leaders[0], report.leaders[1], "no new leader after the partition");
  assert.ok(report.committed > 100, `only ${report.committed} commands committed`);
  assert.equal(checkOperations(registerModel, report.history).verdict, "linearizable");
  const again = await raftTour(2026);
  assert.deepEqual(again.history, report.history, "the same seed gives the same run");
});

Deno.test("demo: the KV service keeps every acknowledged append through a leader stop", async () => {
  const report = await kvTour({ clients: 3, ms: 2000 });
  assert.ok(report.appendsIntact, "an acknowledged append is missing or doubled");
  assert.notEqual(report.leaders[0], report.leaders[1], "no new leader after the stop");
  // However slow the machine: clients were served after the leader stopped.
  assert.ok(
    report.operations > report.operationsAtStop,
    `no operation completed after the stop (${report.operations} in all)`,
  );
  assert.equal(checkOperations(kvModel, report.history).verdict, "linearizable");
});

Deno.test("demo: the cluster demo kills the leader process and loses nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-demo-test-" });
  try {
    const report = await clusterDemo({ seconds: 4, clients: 4, dataDir });
    assert.equal(report.appendsLost, 0);
    assert.equal(report.verdict, "linearizable");
    assert.notEqual(report.newLeader, report.killed, "the killed node cannot lead afterwards");
    // However slow the machine: the service answered after the kill.
    assert.ok(Number.isFinite(report.failoverGapMs), "no operation completed after the kill");
    assert.ok((await Deno.stat(report.reportPath)).size > 0);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
