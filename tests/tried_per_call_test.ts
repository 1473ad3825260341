/**
 * A call's error lists what ITS attempts did: a server the call never got
 * to is `not tried`, even when an earlier call of the same client heard an
 * error from it. Found in review: `ReplicaClient.tried()` (and so every
 * `RequestTimeoutError` of the KV and shard clerks) kept each server's last
 * error across calls, and the lock clerk did the same, so a timeout could
 * blame a server for what an earlier call heard.
 */
import assert from "node:assert/strict";
import { RpcServer, simulate } from "../net/mod.ts";
import { ReplicaClient, RequestTimeoutError, type ServerAttempt } from "../rsm/mod.ts";
import { LockClerk } from "../pb/mod.ts";
import { ShardClerk } from "../shard/mod.ts";

/** A server whose every listed method waits for ever. */
function hanging(services: string[]): RpcServer {
  const rpc = new RpcServer();
  const hang = () => new Promise(() => {});
  for (const service of services) rpc.addService(service, { Get: hang, Lock: hang });
  return rpc;
}

/** The servers of `tried` that the call did get to. */
function reached(tried: readonly ServerAttempt[]): string[] {
  return tried.filter((t) => t.error !== "not tried").map((t) => t.server);
}

/** Checks the second call's error: one server reached, cut off; the others `not tried`. */
function assertOwnAttempts(err: unknown, servers: string[], what: string): void {
  assert.ok(err instanceof RequestTimeoutError, `${what}: ${err}`);
  assert.deepEqual(err.tried.map((t) => t.server), servers, what);
  const got = reached(err.tried);
  assert.equal(got.length, 1, `${what}: ${err.message}`);
  for (const t of err.tried) {
    if (t.server === got[0]) assert.match(t.error, /cut off|aborted/, `${what}: ${t.error}`);
    else assert.equal(t.error, "not tried", `${what}: ${t.server} in ${err.message}`);
  }
  // Nothing the first call heard (no server there at all).
  assert.doesNotMatch(err.message, /no server named/, what);
}

Deno.test("tried per call: ReplicaClient's timeout names only its own call's attempts", async () => {
  await simulate(async (sim) => {
    const servers = ["a", "b", "c"];
    const client = new ReplicaClient(sim.net.transportFor("client"), servers, {
      clock: sim.clock,
      random: sim.random.fork(),
      attemptTimeoutMs: 60_000,
      deadlineMs: 2000,
    });
    const read = { operation: "get", write: false };
    // No servers at all: every one answers "no server named ...".
    const first = await client.call("Svc.Get", {}, read).catch((e) => e);
    assert.ok(first instanceof RequestTimeoutError, String(first));
    assert.deepEqual(reached(first.tried), servers, first.message);
    // Now each takes the request and never answers: the call waits on its first server.
    for (const name of servers) sim.net.addServer(name, hanging(["Svc"]));
    const second = await client.call("Svc.Get", {}, read).catch((e) => e);
    assertOwnAttempts(second, servers, "ReplicaClient");
    assert.deepEqual(client.tried(), second.tried, "tried(): the latest call's");
  }, { seed: 51 });
});

Deno.test("tried per call: the shard clerk's timeout names only its own call's attempts", async () => {
  await simulate(async (sim) => {
    const ctrler = new RpcServer();
    const config = { num: 1, shards: new Array(10).fill(100), groups: { 100: ["g1", "g2"] } };
    ctrler.addService("Ctrler", { Query: () => ({ status: "ok", config }) });
    sim.net.addServer("ctrler", ctrler);
    const shard = new ShardClerk(sim.net.transportFor("client"), ["ctrler"], {
      clock: sim.clock,
      random: sim.random.fork(),
      deadlineMs: 2000,
      id: "s1",
      attemptTimeoutMs: 60_000,
    });
    const first = await shard.get("k").catch((e) => e);
    assert.ok(first instanceof RequestTimeoutError, String(first));
    assert.deepEqual(reached(first.tried), ["g1", "g2"], first.message);
    for (const name of ["g1", "g2"]) sim.net.addServer(name, hanging(["ShardKV"]));
    assertOwnAttempts(await shard.get("k").catch((e) => e), ["g1", "g2"], "ShardClerk");
  }, { seed: 52 });
});

Deno.test("tried per call: the lock clerk's timeout names only its own call's attempts", async () => {
  await simulate(async (sim) => {
    const lock = new LockClerk(sim.net.transportFor("client"), { primary: "p", backup: "b" }, {
      clock: sim.clock,
      random: sim.random.fork(),
      deadlineMs: 2000,
      id: "l1",
      attemptTimeoutMs: 60_000,
    });
    const first = await lock.lock("printer").catch((e) => e);
    assert.ok(first instanceof RequestTimeoutError, String(first));
    assert.deepEqual(reached(first.tried), ["p", "b"], first.message);
    for (const name of ["p", "b"]) sim.net.addServer(name, hanging(["Lock"]));
    assertOwnAttempts(await lock.lock("printer").catch((e) => e), ["p", "b"], "LockClerk");
  }, { seed: 53 });
});
