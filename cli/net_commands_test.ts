import assert from "node:assert/strict";
import { simulatedWorkload } from "./net_commands.ts";

Deno.test("simulatedWorkload: the digest covers the whole trace, folded as it grows", async () => {
  // The expected digests are those of the whole trace joined by "\n", from
  // before the trace was folded in pieces: folding must not change them.
  const options = { servers: 3, clients: 5, seconds: 30, unreliable: true, reordering: true };
  const short = await simulatedWorkload({ ...options, seed: 1 });
  assert.deepEqual({ ...short, wallMs: 0 }, {
    seed: 1,
    virtualSeconds: 31.214,
    wallMs: 0,
    calls: 329,
    succeeded: 271,
    failed: 58,
    bytes: 12866,
    traceDigest: "38bafd493f2fec36",
  });
  // About 22,000 events: folded twice during the run, once at the end.
  const long = await simulatedWorkload({ ...options, clients: 20, seconds: 120, seed: 5 });
  assert.equal(long.calls, 5510);
  assert.equal(long.traceDigest, "cd56997f55b98018");
});
