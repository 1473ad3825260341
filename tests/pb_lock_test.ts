/**
 * The primary/backup lock service's scenarios (after the course's 2013 lab
 * 1 tests), on the simulated network in virtual time: basic semantics, the
 * primary or the backup failing or restarting empty, the backup out of
 * reach for a while, many concurrent clients, and at-most-once under lost
 * replies and forgotten sessions. Every history is checked against the
 * lock model.
 * Seeds are random; a failure names its seed, and `SEED=<n>` replays it.
 */
import assert from "node:assert/strict";
import { checkOperations, lockModel } from "../checker/mod.ts";
import { simulate, type Simulation } from "../net/mod.ts";
import { BACKUP, type Client, LockCluster, PRIMARY } from "./pb_lock_cluster.ts";

const SIM_LIMIT_MS = 10 * 60_000;
function lockTest(name: string, body: (sim: Simulation) => Promise<void>): void {
  Deno.test(`pb lock: ${name}`, async () => {
    await simulate(body, { limitMs: SIM_LIMIT_MS });
  });
}

/** Expected answers, in order, from one client: [operation, name, answer]. */
type Script = ["lock" | "unlock", string, boolean][];

async function play(cfg: LockCluster, client: Client, script: Script): Promise<void> {
  for (const [op, name, expected] of script) {
    const got = op === "lock" ? await cfg.lock(client, name) : await cfg.unlock(client, name);
    assert.equal(got, expected, `${client.name}: ${op}(${name}) answered ${got}`);
  }
}

lockTest("basic", async (sim) => {
  const cfg = new LockCluster(sim);
  const ck = cfg.client();
  await play(cfg, ck, [
    ["lock", "a", true],
    ["lock", "a", false],
    ["unlock", "a", true],
    ["unlock", "a", false],
    ["unlock", "b", false],
    ["lock", "b", true],
    ["lock", "c", true],
    ["lock", "b", false],
    ["unlock", "b", true],
    ["lock", "a", true],
    ["lock", "b", true],
  ]);
  // Another client sees the same locks.
  await play(cfg, cfg.client(), [
    ["lock", "a", false],
    ["unlock", "c", true],
    ["lock", "c", true],
    ["lock", "d", true],
  ]);
  assert.deepEqual(cfg.primary.held(), ["a", "b", "c", "d"]);
  assert.equal(cfg.backup.status().held, 4);
  assert.deepEqual(cfg.backup.held(), cfg.primary.held(), "the backup is not a copy");
  assert.equal(cfg.primary.role, "primary");
  assert.equal(cfg.backup.role, "backup");
  await cfg.check("basic");
});

lockTest("primary fail: clients fail over to the backup, which has every lock", async (sim) => {
  const cfg = new LockCluster(sim);
  const ck = cfg.client();
  await play(cfg, ck, [
    ["lock", "a", true],
    ["lock", "b", true],
    ["unlock", "b", true],
    ["lock", "c", true],
    ["lock", "c", false],
  ]);
  await cfg.kill(cfg.primary);
  await play(cfg, ck, [
    ["lock", "a", false],
    ["lock", "b", true],
    ["lock", "c", false],
    ["unlock", "c", true],
    ["unlock", "c", false],
  ]);
  // A clerk that never talked to the primary tries it first, then the backup.
  await play(cfg, cfg.client(), [
    ["lock", "a", false],
    ["unlock", "a", true],
    ["lock", "a", true],
  ]);
  assert.equal(cfg.backup.role, "alone");
  assert.deepEqual(cfg.backup.held(), ["a", "b"]);
  await cfg.check("primary fail");
});

lockTest("backup fail: the primary goes on alone", async (sim) => {
  const cfg = new LockCluster(sim);
  const ck = cfg.client();
  await play(cfg, ck, [
    ["lock", "a", true],
    ["lock", "b", true],
    ["unlock", "b", true],
  ]);
  await cfg.kill(cfg.backup);
  await play(cfg, ck, [
    ["lock", "a", false],
    ["lock", "b", true],
    ["unlock", "a", true],
    ["lock", "c", true],
  ]);
  await play(cfg, cfg.client(), [["lock", "b", false], ["lock", "a", true]]);
  assert.equal(cfg.primary.role, "alone");
  assert.deepEqual(cfg.primary.held(), ["a", "b", "c"]);
  await cfg.check("backup fail");
});

const NAMES = ["a", "b", "c"];

/**
 * `clients` clerks, each making `ops` random lock and unlock calls at once,
 * mostly on the shared names and sometimes on its own; then `during` runs
 * beside them (a crash, say).
 */
async function concurrent(
  cfg: LockCluster,
  options: { clients: number; ops: number; during?: () => Promise<void> },
): Promise<void> {
  const random = cfg.sim.random.fork();
  const clients = Array.from({ length: options.clients }, () => cfg.client());
  await Promise.all([
    ...clients.map(async (client) => {
      for (let i = 0; i < options.ops; i++) {
        const name = random.chance(0.8) ? random.pick(NAMES) : client.name;
        if (random.chance(0.5)) await cfg.lock(client, name);
        else await cfg.unlock(client, name);
      }
    }),
    options.during?.(),
  ]);
  const ops = cfg.log.operations;
  assert.equal(ops.length, options.clients * options.ops);
  // Calls on one lock must really have overlapped, or the test checks little.
  const overlapping = ops.some((x) =>
    ops.some((y) =>
      x !== y && x.input.name === y.input.name && x.call < y.call && y.call < x.return
    )
  );
  assert.ok(overlapping, "no two operations on one lock overlapped");
}

/**
 * A new client locks every shared name, after the run: with the primary
 * killed, the backup answers, and the checker sees whether it had every lock.
 */
async function lockAll(cfg: LockCluster): Promise<void> {
  const client = cfg.client();
  for (const name of NAMES) await cfg.lock(client, name);
}

lockTest("concurrent clients on the same and different locks", async (sim) => {
  const cfg = new LockCluster(sim);
  await concurrent(cfg, { clients: 8, ops: 40 });
  assert.deepEqual(cfg.backup.held(), cfg.primary.held());
  // Operations that arrive while a forward is in flight go together in the next.
  const forwarded = cfg.primary.status().forwarded;
  assert.equal(forwarded, 8 * 40);
  assert.ok(sim.net.count(BACKUP) < forwarded, `${sim.net.count(BACKUP)} forwards, none batched`);
  assert.equal(cfg.primary.role, "primary");
  await cfg.check("concurrent clients");
});

for (const victim of ["primary", "backup"] as const) {
  lockTest(`concurrent clients, the ${victim} killed mid-run`, async (sim) => {
    const cfg = new LockCluster(sim);
    const clients = 8;
    const ops = 40;
    let doneAtKill = 0;
    await concurrent(cfg, {
      clients,
      ops,
      during: async () => {
        await cfg.afterOps(sim.random.between(10, (clients * ops) / 2));
        doneAtKill = cfg.log.operations.length;
        await cfg.kill(cfg[victim]);
      },
    });
    assert.ok(doneAtKill > 0 && doneAtKill < clients * ops, `killed after ${doneAtKill} ops`);
    const survivor = victim === "primary" ? cfg.backup : cfg.primary;
    assert.equal(survivor.role, "alone");
    await cfg.check(`concurrent clients, ${victim} killed`);
  });
}

lockTest("at-most-once: replies dropped for a while, retries get the first answer", async (sim) => {
  const cfg = new LockCluster(sim);
  const ck = cfg.client();
  // This client cannot reach the backup, so every retry goes to the primary.
  sim.net.setLinkRule(ck.name, BACKUP, { dropRequests: 1 });
  const dropReplies = async (ms: number, op: () => Promise<boolean>) => {
    sim.net.setLinkRule(ck.name, PRIMARY, { dropReplies: 1 });
    sim.clock.setTimer(ms, () => sim.net.setLinkRule(ck.name, PRIMARY, undefined));
    const before = cfg.primary.status().retries;
    const result = await op();
    assert.ok(cfg.primary.status().retries > before, "no retry reached the primary");
    return result;
  };
  // Run twice, either would answer false.
  assert.equal(await dropReplies(300, () => cfg.lock(ck, "a")), true);
  assert.equal(await dropReplies(300, () => cfg.unlock(ck, "a")), true);
  assert.equal(await dropReplies(50, () => cfg.lock(ck, "b")), true);
  const other = cfg.client();
  await play(cfg, other, [["lock", "a", true], ["lock", "b", false]]);
  assert.equal(cfg.backup.role, "backup");
  assert.deepEqual(cfg.backup.held(), ["a", "b"]);
  await cfg.check("at-most-once, dropped replies");
});

lockTest("at-most-once: the primary dies after forwarding, before replying", async (sim) => {
  const cfg = new LockCluster(sim);
  const ck = cfg.client();
  await play(cfg, ck, [["lock", "x", true]]);
  // The backup's acknowledgement is lost, so the primary waits to retry
  // the forward (25 ms or more): it dies in that window.
  sim.net.setLinkRule(PRIMARY, BACKUP, { dropReplies: 1 });
  const locking = cfg.lock(ck, "a");
  await cfg.until(() => cfg.backup.isHeld("a"), "the forward to reach the backup");
  await cfg.kill(cfg.primary);
  assert.equal(await locking, true, "a retry at the backup was applied again");
  assert.equal(cfg.backup.status().retries, 1);
  assert.equal(cfg.backup.role, "alone");
  await play(cfg, cfg.client(), [["lock", "a", false], ["lock", "x", false]]);
  await cfg.check("at-most-once, primary dies before replying");
});

lockTest(
  "at-most-once: many clients, requests and replies lost on every client link",
  async (sim) => {
    const cfg = new LockCluster(sim);
    const clients = 6;
    const lossy = { dropRequests: 0.1, dropReplies: 0.2 };
    for (let i = 0; i < clients; i++) sim.net.setLinkRule(`c${i}`, "*", lossy);
    await concurrent(cfg, { clients, ops: 30 });
    const retries = cfg.primary.status().retries + cfg.backup.status().retries;
    assert.ok(retries > 0, "no request was retried");
    await cfg.check("at-most-once, lossy client links");
  },
);

// --- restarts, and a backup out of reach for a while -----------------------------------

lockTest(
  "a restarted primary is deposed by the backup, where clients find every lock",
  async (sim) => {
    const cfg = new LockCluster(sim);
    const ck = cfg.client();
    await play(cfg, ck, [["lock", "a", true], ["lock", "b", true], ["unlock", "b", true]]);
    const old = cfg.primary.incarnation;
    // A crash and a supervisor's restart: the new primary has nothing, and numbers
    // its batches from the start again; the backup refuses it, by its incarnation.
    const primary = await cfg.restart(cfg.primary);
    await play(cfg, cfg.client(), [["lock", "a", false], ["lock", "b", true], ["lock", "c", true]]);
    await play(cfg, ck, [["lock", "a", false], ["unlock", "a", true]]);
    assert.notEqual(primary.incarnation, old);
    assert.equal(primary.role, "deposed");
    assert.equal(cfg.backup.role, "alone");
    assert.deepEqual(cfg.backup.held(), ["b", "c"]);
    await cfg.check("restarted primary");
  },
);

lockTest(
  "a restarted backup gets the state, the primary goes on; then the backup takes over with it",
  async (sim) => {
    const cfg = new LockCluster(sim);
    const ck = cfg.client();
    await play(cfg, ck, [["lock", "printer", true], ["lock", "x", true], ["unlock", "x", true]]);
    const backup = await cfg.restart(cfg.backup);
    // The next forward finds the backup behind: the primary sends it everything first.
    await play(cfg, cfg.client(), [["lock", "scanner", true], ["lock", "printer", false]]);
    assert.equal(cfg.primary.role, "primary", "the primary deposed itself for a restarted backup");
    assert.equal(backup.role, "backup");
    assert.deepEqual(backup.held(), ["printer", "scanner"]);
    await cfg.kill(cfg.primary);
    await play(cfg, ck, [["lock", "printer", false], ["unlock", "printer", true]]);
    await play(cfg, cfg.client(), [["lock", "scanner", false], ["lock", "x", true]]);
    await cfg.check("restarted backup");
  },
);

lockTest(
  "concurrent clients, the backup restarted mid-run, then the primary killed",
  async (sim) => {
    // Small pages, so the state goes over in many.
    const cfg = new LockCluster(sim, { maxBatchOps: 4 });
    const clients = 8;
    const ops = 40;
    let restartedAt = 0;
    let killedAt = 0;
    await concurrent(cfg, {
      clients,
      ops,
      during: async () => {
        await cfg.afterOps(sim.random.between(5, 100));
        restartedAt = cfg.log.operations.length;
        await cfg.restart(cfg.backup);
        await cfg.whole();
        await cfg.afterOps(Math.min(clients * ops - 20, restartedAt + sim.random.between(1, 60)));
        killedAt = cfg.log.operations.length;
        await cfg.kill(cfg.primary);
      },
    });
    assert.ok(restartedAt < killedAt && killedAt < clients * ops, `${restartedAt}, ${killedAt}`);
    assert.ok(cfg.backup.status().transfers >= 1);
    await lockAll(cfg);
    assert.equal(cfg.backup.role, "alone");
    await cfg.check("concurrent clients, backup restarted, primary killed");
  },
);

lockTest("concurrent clients, the primary restarted mid-run", async (sim) => {
  const cfg = new LockCluster(sim);
  const clients = 8;
  const ops = 40;
  await concurrent(cfg, {
    clients,
    ops,
    during: async () => {
      await cfg.afterOps(sim.random.between(10, (clients * ops) / 2));
      await cfg.restart(cfg.primary);
    },
  });
  assert.equal(cfg.primary.role, "deposed");
  assert.equal(cfg.backup.role, "alone");
  await cfg.check("concurrent clients, primary restarted");
});

lockTest(
  "concurrent clients, the backup out of reach for a while: the pair is made whole again, then the primary killed",
  async (sim) => {
    const cfg = new LockCluster(sim, { forwardTimeoutMs: 100, probeIntervalMs: 200 });
    const clients = 8;
    const ops = 40;
    let aloneSeen = false;
    await concurrent(cfg, {
      clients,
      ops,
      during: async () => {
        await cfg.afterOps(sim.random.between(10, 80));
        sim.net.setLinkRule(PRIMARY, BACKUP, { dropRequests: 1 });
        await cfg.until(() => cfg.primary.role === "alone", "the primary to serve alone");
        aloneSeen = true;
        const atAlone = cfg.log.operations.length;
        await cfg.sleep(sim.random.between(100, 1500));
        assert.ok(cfg.log.operations.length > atAlone, "no operation was answered alone");
        sim.net.setLinkRule(PRIMARY, BACKUP, undefined);
        await cfg.whole();
        const done = cfg.log.operations.length;
        await cfg.afterOps(Math.min(clients * ops - 10, done + sim.random.between(0, 40)));
        await cfg.kill(cfg.primary);
      },
    });
    assert.ok(aloneSeen);
    await lockAll(cfg);
    assert.equal(cfg.backup.role, "alone");
    await cfg.check("concurrent clients, backup away for a while");
  },
);

lockTest("a backup restarted while the primary serves alone is brought up to date", async (sim) => {
  const cfg = new LockCluster(sim, { forwardTimeoutMs: 100, probeIntervalMs: 300 });
  const ck = cfg.client();
  await play(cfg, ck, [["lock", "a", true]]);
  await cfg.kill(cfg.backup);
  await play(cfg, ck, [["lock", "b", true], ["unlock", "a", true]]);
  assert.equal(cfg.primary.role, "alone");
  await cfg.sleep(1000);
  await cfg.restart(cfg.backup);
  await cfg.whole();
  assert.deepEqual(cfg.backup.held(), ["b"]);
  await cfg.kill(cfg.primary);
  await play(cfg, cfg.client(), [["lock", "a", true], ["lock", "b", false]]);
  await cfg.check("backup restarted while the primary is alone");
});

lockTest(
  "idle sessions are forgotten on both servers; live clients keep at-most-once",
  async (sim) => {
    const sessionIdleMs = 3000;
    const cfg = new LockCluster(sim, { sessionIdleMs });
    const clients = 6;
    // Lossy links to the primary; the backup out of the clients' reach, so every retry
    // goes to the primary and the pair stays as it is.
    for (let i = 0; i < clients; i++) {
      sim.net.setLinkRule(`c${i}`, PRIMARY, { dropRequests: 0.1, dropReplies: 0.2 });
      sim.net.setLinkRule(`c${i}`, BACKUP, { dropRequests: 1 });
    }
    await concurrent(cfg, { clients, ops: 30 });
    const retries = cfg.primary.status().retries;
    assert.ok(retries > 0, "no request was retried");
    assert.equal(cfg.primary.status().sessions, clients);
    assert.equal(cfg.backup.status().sessions, clients);
    await cfg.sleep(sessionIdleMs + 1);
    // Forgotten, each server by its own clock.
    assert.equal(cfg.primary.status().sessions, 0);
    assert.equal(cfg.backup.status().sessions, 0);
    // Forgotten for good: request 1 of "c0" is new again (remembered, it would be stale).
    const raw = await sim.net.transportFor("raw").connect(PRIMARY).call("Lock.Lock", {
      client: "c0",
      seq: 1,
      name: "unrecorded",
    });
    assert.deepEqual(raw, { status: "ok", result: true });
    // The locks are all still there, on both servers.
    const held = cfg.primary.held().filter((name) => name !== "unrecorded");
    const ck = cfg.client();
    for (const name of NAMES) assert.equal(await cfg.lock(ck, name), !held.includes(name));
    await cfg.kill(cfg.primary);
    for (const name of NAMES) assert.equal(await cfg.lock(cfg.client(), name), false);
    await cfg.check("idle sessions forgotten");
  },
);

lockTest(
  "concurrent clients through backup restarts, outages and a lossy, duplicating link; then the primary killed",
  async (sim) => {
    const cfg = new LockCluster(sim, {
      forwardTimeoutMs: 100,
      probeIntervalMs: 150,
      maxBatchOps: 3,
    });
    const clients = 8;
    const ops = 50;
    const total = clients * ops;
    const events: string[] = [];
    await concurrent(cfg, {
      clients,
      ops,
      during: async () => {
        // Forwards and transfer pages are lost, answered twice, or their answers lost:
        // every one must be applied once, in order.
        sim.net.setLinkRule(PRIMARY, BACKUP, {
          dropRequests: 0.05,
          dropReplies: 0.05,
          duplicate: 0.1,
        });
        for (let round = 0; round < 4; round++) {
          await cfg.afterOps(
            Math.min(total - 40, cfg.log.operations.length + sim.random.between(5, 40)),
          );
          if (sim.random.chance(0.5)) {
            events.push("restart");
            await cfg.restart(cfg.backup);
          } else {
            events.push("outage");
            const rule = { dropRequests: 1 };
            sim.net.setLinkRule(PRIMARY, BACKUP, rule);
            await cfg.sleep(sim.random.between(50, 600));
            sim.net.setLinkRule(PRIMARY, BACKUP, {
              dropRequests: 0.05,
              dropReplies: 0.05,
              duplicate: 0.1,
            });
          }
        }
        await cfg.whole();
        sim.net.setLinkRule(PRIMARY, BACKUP, undefined);
        await cfg.afterOps(
          Math.min(total - 5, cfg.log.operations.length + sim.random.between(0, 20)),
        );
        await cfg.kill(cfg.primary);
      },
    });
    await lockAll(cfg);
    assert.equal(cfg.backup.role, "alone", `events: ${events.join(", ")}`);
    await cfg.check("restarts, outages, lossy link, primary killed");
  },
);

// --- the checker catches what goes wrong ---------------------------------------------

Deno.test("pb lock: the model refuses two successful locks of one name with no unlock between", () => {
  const history = [
    { client: 0, input: { op: "lock", name: "a" } as const, call: 1, output: true, return: 2 },
    { client: 1, input: { op: "lock", name: "a" } as const, call: 3, output: true, return: 4 },
  ];
  assert.equal(checkOperations(lockModel, history).verdict, "not linearizable");
  const unlock = { client: 0, input: { op: "unlock", name: "a" } as const, output: true };
  assert.equal(
    checkOperations(lockModel, [history[0], { ...unlock, call: 2.5, return: 2.7 }, history[1]])
      .verdict,
    "linearizable",
  );
});

lockTest("the checker catches the split brain of a lost primary/backup link", async (sim) => {
  // Outside the fault model: the link between the servers is cut, so the
  // primary takes the backup for dead and serves alone; when it dies, the
  // backup, which never saw its forwards, hands the lock out again.
  const cfg = new LockCluster(sim, { forwardTimeoutMs: 100 });
  await cfg.whole();
  sim.net.setLinkRule(PRIMARY, BACKUP, { dropRequests: 1 });
  assert.equal(await cfg.lock(cfg.client(), "a"), true);
  assert.equal(cfg.primary.role, "alone");
  await cfg.kill(cfg.primary);
  assert.equal(await cfg.lock(cfg.client(), "a"), true);
  const result = checkOperations(lockModel, cfg.log.operations);
  assert.equal(result.verdict, "not linearizable");
});
