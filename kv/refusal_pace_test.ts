import assert from "node:assert/strict";
import { delay, simulate } from "../net/mod.ts";
import { MAX_PACED_REFUSALS, RefusalPace } from "./refusal_pace.ts";

Deno.test("RefusalPace: holds for the shorter pause, at most MAX_PACED_REFUSALS at once, and ends at the signal", async () => {
  await simulate(async (sim) => {
    const closing = new AbortController();
    const pace = new RefusalPace({ ms: 1000, clock: sim.clock, signal: closing.signal });
    const start = sim.clock.now();
    await pace.hold(300);
    assert.equal(sim.clock.now() - start, 300, "the shorter of the two pauses");
    await pace.hold(5000);
    assert.equal(sim.clock.now() - start, 1300, "no longer than the configured pace");
    // Fill the bound: one more is answered at once.
    const held = Array.from({ length: MAX_PACED_REFUSALS }, () => pace.hold(1000));
    assert.equal(pace.held, MAX_PACED_REFUSALS);
    const before = sim.clock.now();
    await pace.hold(1000);
    assert.equal(sim.clock.now(), before, "over the bound: at once");
    // Closing ends every pause at once, without an error.
    await delay(10, { clock: sim.clock });
    closing.abort();
    await Promise.all(held);
    assert.equal(sim.clock.now() - before, 10);
    assert.equal(pace.held, 0);
    await pace.hold(1000);
    assert.equal(sim.clock.now() - before, 10, "after closing: at once");
    assert.throws(() => new RefusalPace({ ms: -1, clock: sim.clock }), RangeError);
  }, { seed: 1 });
});
