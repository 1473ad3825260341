import assert from "node:assert/strict";
import { delay, VirtualClock } from "./mod.ts";
import { fullCollection, startIdleCollector } from "./idle_gc.ts";

Deno.test("idle collector: one collection per idle period, none while the activity changes", async () => {
  const clock = new VirtualClock();
  let activity = 0;
  let collections = 0;
  const logged: string[] = [];
  await clock.run(async () => {
    const collector = startIdleCollector({
      activity: () => activity,
      idleMs: 1000,
      clock,
      collect: () => collections++,
      log: (line) => logged.push(line),
    });
    // Busy for 5 s: a change every 200 ms.
    for (let t = 0; t < 25; t++) {
      activity++;
      await delay(200, { clock });
    }
    assert.equal(collections, 0, "collected while busy");
    // Idle: one collection within 1.5 s of the last change, and no more however long it lasts.
    await delay(1600, { clock });
    assert.equal(collections, 1);
    await delay(10_000, { clock });
    assert.equal(collections, 1, "collected again with nothing done in between");
    // Busy again, then idle again: one more.
    activity++;
    await delay(1600, { clock });
    assert.equal(collections, 2);
    assert.equal(collector.collections, 2);
    assert.equal(logged.length, 2);
    assert.match(logged[0], /^idle: garbage collected, heap and buffers \d+ → \d+ MiB$/);
    collector.stop();
  });
});

Deno.test("idle collector: V8's full collection can be had, and frees garbage outside the heap", () => {
  const gc = fullCollection();
  assert.equal(typeof gc, "function");
  let garbage: Uint8Array[] | undefined = Array.from({ length: 32 }, () => new Uint8Array(1 << 20));
  const held = Deno.memoryUsage().external;
  garbage = undefined;
  gc!();
  assert.ok(
    Deno.memoryUsage().external <= held - 16 * (1 << 20),
    `external ${Deno.memoryUsage().external} after a collection, ${held} before`,
  );
  assert.equal(garbage, undefined);
});
