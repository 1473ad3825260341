/**
 * The KV clerk's reach and deadline: given one follower it finds the leader
 * and learns the other members; every call ends by its deadline (30 s by
 * default, or the clerk's or the call's own) with an error naming each
 * server and its last failure; `Infinity` waits for the caller's signal.
 * The shard, primary/backup and lock clerks have the same default deadline.
 * All in virtual time.
 */
import assert from "node:assert/strict";
import {
  DEFAULT_DEADLINE_MS,
  KvClerk,
  OutcomeUnknownError,
  RequestAbortedError,
  RequestTimeoutError,
} from "../kv/mod.ts";
import { simulate, type Simulation } from "../net/mod.ts";
import { LockClerk, PrimaryBackupClerk } from "../pb/mod.ts";
import { ShardClerk } from "../shard/mod.ts";
import { KvCluster } from "./kv_cluster.ts";

function clientTest(name: string, body: (cfg: KvCluster, sim: Simulation) => Promise<void>) {
  Deno.test(`kv client: ${name}`, async () => {
    await simulate(async (sim) => {
      const cfg = await KvCluster.start(sim, 3);
      try {
        await body(cfg, sim);
      } finally {
        await cfg.cleanup();
      }
    }, { limitMs: 10 * 60_000 });
  });
}

/** A clerk that knows only `servers` (but whose ends may reach every server). */
function clerkOf(cfg: KvCluster, name: string, servers: string[], deadlineMs?: number): KvClerk {
  return new KvClerk(cfg.wiring.clientTransport(name, cfg.wiring.all), servers, {
    clock: cfg.sim.clock,
    random: cfg.random.fork(),
    id: name,
    deadlineMs,
  });
}

clientTest("a clerk given one follower finds the leader and learns the members", async (cfg) => {
  const { clerk } = cfg.makeClient();
  await clerk.put("x", "1"); // a leader exists
  const leader = cfg.leader();
  assert.ok(leader !== undefined);
  const follower = cfg.ids[(leader + 1) % 3];
  const solo = clerkOf(cfg, "solo", [follower]);
  assert.equal(await solo.get("x"), "1");
  await solo.put("y", "2");
  assert.equal(solo.leader, cfg.ids[leader]);
  // The follower named every member: the clerk now knows all three.
  const known = solo.tried().map((t) => t.server).sort();
  assert.deepEqual(known, [...cfg.ids].sort());
  // With the leader gone, it finds the new one among the members it learned.
  await cfg.shutdownServer(leader);
  assert.equal(await solo.get("y"), "2");
  assert.notEqual(solo.leader, cfg.ids[leader]);
});

clientTest(
  "with every server down a call fails at the default deadline, naming each",
  async (cfg) => {
    for (let i = 0; i < 3; i++) await cfg.shutdownServer(i);
    const clerk = clerkOf(cfg, "late", cfg.ids);
    const start = cfg.sim.clock.now();
    const err = await clerk.get("x").then(() => undefined, (e) => e);
    const waited = cfg.sim.clock.now() - start;
    assert.ok(err instanceof RequestTimeoutError, String(err));
    assert.ok(err instanceof RequestAbortedError); // what callers of aborts already handle
    assert.equal(err.deadlineMs, DEFAULT_DEADLINE_MS);
    assert.equal(err.mayHaveApplied, false);
    assert.ok(waited >= DEFAULT_DEADLINE_MS, `gave up after ${waited} ms`);
    assert.ok(waited < DEFAULT_DEADLINE_MS + 1000, `gave up after ${waited} ms`);
    assert.deepEqual(err.tried.map((t) => t.server), cfg.ids);
    for (const id of cfg.ids) assert.match(err.message, new RegExp(`${id} \\(`));
    assert.match(err.message, /^kv: get: no answer within 30000 ms; tried /);
    assert.equal(err.service, "kv");
  },
);

clientTest("a write cut off by the deadline says it may have applied", async (cfg) => {
  const { clerk } = cfg.makeClient();
  await clerk.put("x", "1");
  // The servers cannot reach each other: the leader takes the write but cannot commit it.
  cfg.wiring.partition([0], [1], [2]);
  const late = clerkOf(cfg, "late", cfg.ids, 5000);
  const err = await late.put("x", "2").then(() => undefined, (e) => e);
  assert.ok(
    (err instanceof RequestTimeoutError && err.mayHaveApplied) ||
      err instanceof OutcomeUnknownError,
    String(err),
  );
  assert.match(err.message, /may or may not have taken effect/);
});

clientTest(
  "the call's deadline overrides the clerk's; Infinity waits for the signal",
  async (cfg) => {
    for (let i = 0; i < 3; i++) await cfg.shutdownServer(i);
    const clerk = clerkOf(cfg, "c", cfg.ids, 60_000);
    let start = cfg.sim.clock.now();
    await assert.rejects(clerk.get("x", { deadlineMs: 1000 }), RequestTimeoutError);
    const waited = cfg.sim.clock.now() - start;
    assert.ok(waited >= 1000 && waited < 2000, `gave up after ${waited} ms`);
    const patient = clerkOf(cfg, "patient", cfg.ids, Infinity);
    const controller = new AbortController();
    cfg.sim.clock.setTimer(90_000, () => controller.abort(new Error("enough")));
    start = cfg.sim.clock.now();
    const err = await patient.get("x", { signal: controller.signal }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(
      err instanceof RequestAbortedError && !(err instanceof RequestTimeoutError),
      String(err),
    );
    assert.ok(cfg.sim.clock.now() - start >= 90_000);
    assert.throws(() => clerkOf(cfg, "bad", cfg.ids, 0), /deadlineMs must be a number > 0/);
  },
);

Deno.test("shard, pb and lock clerks: a call to servers that are all down ends at the deadline", async () => {
  await simulate(async (sim) => {
    const transport = sim.net.transportFor("client");
    const options = { clock: sim.clock, random: sim.random.fork(), id: "c1" };
    let start = sim.clock.now();
    const shard = new ShardClerk(transport, ["ctrler-0", "ctrler-1"], options);
    const err = await shard.get("k").then(() => undefined, (e) => e);
    assert.ok(err instanceof RequestTimeoutError, String(err));
    assert.equal(err.service, "shard");
    assert.ok(sim.clock.now() - start >= DEFAULT_DEADLINE_MS);
    // A call's own deadline.
    start = sim.clock.now();
    await assert.rejects(shard.put("k", "v", { deadlineMs: 2000 }), RequestTimeoutError);
    assert.ok(sim.clock.now() - start < 3000);
    start = sim.clock.now();
    const pb = new PrimaryBackupClerk(transport, { viewService: "vs", clock: sim.clock, id: "p1" });
    const pbErr = await pb.get("k").then(() => undefined, (e) => e);
    assert.ok(pbErr instanceof RequestTimeoutError, String(pbErr));
    assert.equal(pbErr.service, "pb");
    assert.ok(sim.clock.now() - start >= DEFAULT_DEADLINE_MS);
    start = sim.clock.now();
    const lock = new LockClerk(transport, { primary: "p", backup: "b" }, options);
    const lockErr = await lock.lock("printer").then(() => undefined, (e) => e);
    assert.ok(lockErr instanceof RequestTimeoutError, String(lockErr));
    assert.equal(lockErr.service, "lock");
    assert.match(
      lockErr.message,
      /^lock: lock of "printer": no answer within 30000 ms; tried p \(.+\), b \(.+\)/,
    );
    assert.ok(sim.clock.now() - start >= DEFAULT_DEADLINE_MS);
    const patient = new LockClerk(transport, { primary: "p", backup: "b" }, {
      ...options,
      deadlineMs: Infinity,
    });
    const controller = new AbortController();
    sim.clock.setTimer(60_000, () => controller.abort(new Error("enough")));
    start = sim.clock.now();
    await assert.rejects(
      patient.unlock("printer", { signal: controller.signal }),
      RequestAbortedError,
    );
    assert.ok(sim.clock.now() - start >= 60_000);
  }, { seed: 11, limitMs: 10 * 60_000 });
});
