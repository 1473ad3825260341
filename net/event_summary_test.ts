import assert from "node:assert/strict";
import { delay } from "./async.ts";
import { EventSummary } from "./event_summary.ts";
import { simulate } from "./sim/simulate.ts";

Deno.test("event summary: a flood of events is one line per interval, with counts; a quiet interval none", async () => {
  await simulate(async ({ clock }) => {
    const lines: string[] = [];
    let sampled = 0;
    const summary = new EventSummary({
      log: (l) => lines.push(l),
      clock,
      intervalMs: 1000,
      prefix: "n1: ",
      collect: () => summary.count("sampled", ++sampled === 1 ? 3 : 0),
    });
    for (let i = 0; i < 5000; i++) summary.count(i % 5 === 0 ? "bad secret" : "wrong cluster");
    await delay(1500, { clock });
    assert.deepEqual(lines, [
      "n1: in the last 1 s: 4000 × wrong cluster, 1000 × bad secret, 3 × sampled",
    ]);
    await delay(1000, { clock }); // nothing counted: no line
    assert.equal(lines.length, 1);
    summary.count("bad secret");
    summary.close();
    assert.equal(lines.length, 2);
    assert.match(lines[1], /^n1: in the last 1 s: 1 × bad secret$/);
  }, { seed: 1 });
});
