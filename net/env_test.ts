import assert from "node:assert/strict";
import { defaultClock, defaultId, defaultRandom, MissingEnvironmentError } from "./env.ts";
import { realClock } from "./clock.ts";
import { simulate } from "./sim/simulate.ts";

Deno.test("env: outside a simulation the defaults are the real clock, randomness and UUIDs", () => {
  assert.equal(defaultClock("t"), realClock);
  assert.equal(typeof defaultRandom("t").int(10), "number");
  assert.notEqual(defaultId("t"), defaultId("t"));
});

Deno.test("env: inside a simulation asking for a default fails loudly, naming what to pass", async () => {
  await simulate(() => {
    assert.throws(() => defaultClock("Thing"), (err: Error) => {
      assert.ok(err instanceof MissingEnvironmentError);
      assert.match(err.message, /Thing was given no `clock`.*pass `clock: sim.clock`/);
      return true;
    });
    assert.throws(() => defaultRandom("Thing"), /pass `random: sim.random.fork\(\)`/);
    assert.throws(() => defaultId("Thing", "incarnation"), /no `incarnation`.*sim.newId\(\)/);
    return Promise.resolve();
  }, { seed: 1 });
  // And after it, even one that failed, the defaults are back.
  await assert.rejects(simulate(() => Promise.reject(new Error("boom")), { seed: 2 }));
  assert.equal(defaultClock("t"), realClock);
});

Deno.test("env: a simulation's ids replay from its seed and do not shift its random stream", async () => {
  const run = (seed: number) =>
    simulate((sim) => Promise.resolve([sim.newId(), sim.newId(), sim.random.int(1e9)]), { seed });
  const [a, b] = [await run(7), await run(7)];
  assert.deepEqual(a, b);
  assert.notEqual(a[0], a[1]);
  assert.match(
    String(a[0]),
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
  const plain = await simulate((sim) => Promise.resolve(sim.random.int(1e9)), { seed: 7 });
  assert.equal(a[2], plain, "drawing ids changed the run's randomness");
});
