/**
 * The sharded clerk's timeout says who did not answer: the group that holds
 * the key's shard once the controllers named it (`ShardGroupTimeoutError`,
 * with the shard, the group, the configuration and each server's last
 * failure), or a configuration that gives the shard to no group; a plain
 * `RequestTimeoutError` only when the controllers never answered. Found by
 * hand: `distkit shard get` with every server of the group down blamed the
 * controllers, which had answered.
 */
import assert from "node:assert/strict";
import { RpcServer, simulate, type Simulation } from "../net/mod.ts";
import { MemoryStorage } from "../raft/mod.ts";
import { RequestAbortedError, RequestTimeoutError } from "../rsm/errors.ts";
import { keyToShard } from "./config.ts";
import { ShardController, ShardControllerClerk } from "./controller.ts";
import { ShardClerk } from "./clerk.ts";
import { ShardGroupTimeoutError } from "./errors.ts";

/** One controller replica "c0" on a simulated network, with a clerk and an admin clerk of it. */
function withController(
  body: (sim: Simulation, clerk: ShardClerk, admin: ShardControllerClerk) => Promise<void>,
): Promise<void> {
  return simulate(async (sim) => {
    const server = new RpcServer();
    sim.net.addServer("c0", server);
    const ctrler = await ShardController.start({
      id: "c0",
      peers: ["c0"],
      transport: sim.net.transportFor("c0"),
      server,
      storage: new MemoryStorage(),
      clock: sim.clock,
      random: sim.random.fork(),
    });
    const options = { clock: sim.clock, random: sim.random.fork() };
    const admin = new ShardControllerClerk(sim.net.transportFor("admin"), ["c0"], {
      ...options,
      id: "admin",
    });
    const clerk = new ShardClerk(sim.net.transportFor("client"), ["c0"], {
      ...options,
      id: "client",
    });
    try {
      await body(sim, clerk, admin);
    } finally {
      await ctrler.stop();
    }
  });
}

/** The error `promise` rejects with (it must reject). */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  assert.fail("the call succeeded");
}

Deno.test("shard clerk: a timeout waiting for the key's group names the group, the shard, the configuration and the servers", async () => {
  await withController(async (sim, clerk, admin) => {
    // A group whose servers are all down (nothing serves these names).
    await admin.join({ 100: ["g100-0", "g100-1"] });
    const shard = keyToShard("greeting");
    const err = await failure(clerk.get("greeting", { deadlineMs: 2000 }));
    assert.ok(err instanceof ShardGroupTimeoutError, `${err}`);
    assert.ok(err instanceof RequestTimeoutError, "still a RequestTimeoutError");
    assert.equal(err.shard, shard);
    assert.equal(err.gid, 100);
    assert.equal(err.configNum, 1);
    assert.equal(err.controllersAnswered, true);
    assert.equal(err.mayHaveApplied, false);
    assert.deepEqual(err.tried.map((t) => t.server), ["g100-0", "g100-1"]);
    for (const t of err.tried) assert.notEqual(t.error, "not tried", t.server);
    assert.match(
      err.message,
      new RegExp(
        `^shard: get: no answer within 2000 ms from group 100, which holds shard ${shard} in ` +
          `configuration 1 \\(the controllers answered\\); tried g100-0 \\(.+\\), g100-1 \\(.+\\); ` +
          `check that group 100's servers are up and reachable at these addresses, .*then retry$`,
      ),
    );

    // The caller's own signal is no timeout: the clerk does not say why the caller gave up.
    const caller = new AbortController();
    sim.clock.setTimer(500, () => caller.abort());
    const aborted = await failure(clerk.get("greeting", { signal: caller.signal }));
    assert.ok(aborted instanceof RequestAbortedError, `${aborted}`);
    assert.ok(!(aborted instanceof RequestTimeoutError), `${aborted}`);

    // The controllers gone too: the clerk routes by the configuration it had, and says so.
    sim.net.deleteServer("c0");
    const both = await failure(clerk.get("greeting", { deadlineMs: 2000 }));
    assert.ok(both instanceof ShardGroupTimeoutError, `${both}`);
    assert.equal(both.controllersAnswered, false);
    assert.match(
      both.message,
      /from group 100, which holds shard \d in configuration 1 \(the last the controllers gave; they did not answer during this call\)/,
    );
  });
});

Deno.test("shard clerk: a timeout where the configuration gives the shard to no group says so", async () => {
  await withController(async (_sim, clerk, admin) => {
    await admin.query(); // the controller leads: a timeout now is not its
    const err = await failure(clerk.put("greeting", "hello", { deadlineMs: 1000 }));
    assert.ok(err instanceof ShardGroupTimeoutError, `${err}`);
    assert.equal(err.gid, 0);
    assert.equal(err.configNum, 0);
    assert.equal(err.controllersAnswered, true);
    assert.deepEqual(err.tried, []);
    assert.match(
      err.message,
      /^shard: put: no answer within 1000 ms from a group for shard \d: configuration 0 gives it to none \(the controllers answered\); join a group/,
    );
  });
});

Deno.test("shard clerk: a timeout where the controllers never answered is a plain RequestTimeoutError", async () => {
  await simulate(async (sim) => {
    const clerk = new ShardClerk(sim.net.transportFor("client"), ["c0"], {
      clock: sim.clock,
      random: sim.random.fork(),
      id: "client",
    });
    const err = await failure(clerk.get("greeting", { deadlineMs: 1000 }));
    assert.ok(err instanceof RequestTimeoutError, `${err}`);
    assert.ok(!(err instanceof ShardGroupTimeoutError), err.message);
  });
});
