/**
 * Randomized simulation of the KV service: per seed, a cluster of 3 or 5
 * servers (snapshotting or not) and several clients doing get, put, append,
 * delete and compare-and-set on a few shared keys, under a random schedule of
 * partitions, crashes and restarts, an unreliable network and lossy links.
 * Afterwards everything is healed, every operation must complete, the log
 * must be bounded, and the whole history must be linearizable.
 *
 * Every server's Raft core reports to the group's `AppliedLedger`
 * (tests/replica_cluster.ts), checked after every fault and at the end: over
 * the whole run, an entry once applied by any server is never replaced at
 * its index on any server, and no term has two leaders.
 *
 * Every server's storage is a `SimStorage` (a crash keeps a prefix of the
 * save in progress), and a crash damages it beyond the storage contract with
 * chance DAMAGE_CHANCE, on at most one server per run: that server must
 * refuse to start and stays down; 2 of 3 (or 4 of 5) remain, a majority.
 * A server that served from a shortened log would lose acknowledged writes:
 * the history would not be linearizable (or the ledger would fire, as it does
 * when the high-water mark's check is disabled).
 *
 * Runs KV_SEEDS seeds (default 200) from a random base; `SEED=<n>` replays
 * one. A second test runs KV_REPLAY_SEEDS seeds (default 3) twice each and
 * compares their trace hashes. A failure prints the seed and the fault schedule, and a history that
 * is not linearizable gets the checker's HTML report.
 */
import assert from "node:assert/strict";
import { type KvServiceInput, kvServiceModel, type KvServiceOutput } from "../checker/mod.ts";
import type { KvClerk, KvValue } from "../kv/mod.ts";
import { simulate } from "../net/mod.ts";
import { KvCluster, OpLog, text } from "./kv_cluster.ts";
import { checkReplays, runSeeds } from "./seeds.ts";

const FAULT_MS = 5_000;

/**
 * The chance that a crash also damages the server's storage beyond the
 * storage contract (a flipped bit, resolved saves lost, the file gone), while
 * no server of the run has been damaged yet.
 */
const DAMAGE_CHANCE = 0.15;
const DAMAGES = ["flip", "lose", "wipe"] as const;
/** Servers that refused to start from damaged storage, over all seeds. */
let failStops = 0;

/** An operation on one key, and what the clerk answered (the exported model's types). */
type Input = KvServiceInput;
type Output = KvServiceOutput;

function valueOf(v: KvValue | null): string | null {
  return v === null ? null : text(v);
}

async function clientLoop(
  cfg: KvCluster,
  ck: KvClerk,
  me: { id: number; keys: number; log: OpLog<Input, Output>; done: () => boolean },
): Promise<number> {
  let n = 0;
  const { random } = cfg;
  while (!me.done()) {
    await cfg.sleep(random.int(10));
    const key = `k${random.int(me.keys)}`;
    const value = `${me.id}.${n} `;
    const roll = random.int(100);
    if (roll < 40) {
      await me.log.record(me.id, { op: "get", key }, async () => valueOf(await ck.get(key)));
    } else if (roll < 65) {
      await me.log.record(me.id, { op: "append", key, value }, () => ck.append(key, value));
    } else if (roll < 80) {
      await me.log.record(me.id, { op: "put", key, value }, () => ck.put(key, value));
    } else if (roll < 88) {
      await me.log.record(me.id, { op: "delete", key }, () => ck.delete(key));
    } else {
      // Expect the value another client may just have written, or absence.
      const expected = random.chance(0.3) ? null : `${random.int(4)}.${random.int(n + 1)} `;
      await me.log.record(
        me.id,
        { op: "cas", key, expected, value },
        async () => {
          const outcome = await ck.cas(key, { expected, value });
          return outcome.ok
            ? { ok: true }
            : { ok: false, current: valueOf(outcome.current ?? null) };
        },
      );
    }
    n++;
  }
  return n;
}

async function runSeed(seed: number): Promise<{ ops: number; faults: number; trace: string }> {
  const schedule: string[] = [];
  try {
    return await simulate(async (sim) => {
      const { random } = sim;
      const servers = random.chance(0.5) ? 3 : 5;
      const maxRaftState = random.chance(0.5) ? -1 : 300 + random.int(1700);
      const unreliable = random.chance(0.3);
      const cfg = await KvCluster.start(sim, servers, { unreliable, maxRaftState });
      const ledger = cfg.group.ledger;
      schedule.push(`${servers} servers, maxRaftState ${maxRaftState}, unreliable ${unreliable}`);
      const log = new OpLog<Input, Output>();
      const keys = 1 + random.int(3);
      const clients = 2 + random.int(4);
      let done = false;
      const loops = Array.from(
        { length: clients },
        (_, id) => clientLoop(cfg, cfg.makeClient().clerk, { id, keys, log, done: () => done }),
      );
      for (const loop of loops) loop.catch(() => {}); // awaited below

      const down = new Set<number>();
      const disks = random.fork();
      let damaged: number | undefined;
      const end = cfg.now() + FAULT_MS;
      let faults = 0;
      while (cfg.now() < end) {
        await cfg.sleep(100 + random.int(500));
        ledger.check();
        faults++;
        const at = `${cfg.now().toFixed(0)} ms`;
        const roll = random.int(100);
        if (roll < 30) {
          const side = cfg.wiring.all.map(() => random.int(2));
          const a = cfg.wiring.all.filter((i) => side[i] === 0);
          const b = cfg.wiring.all.filter((i) => side[i] === 1);
          cfg.partition(a, b);
          schedule.push(`${at}: partition [${a}] [${b}]`);
        } else if (roll < 45) {
          cfg.connectAll();
          schedule.push(`${at}: heal`);
        } else if (roll < 65) {
          const i = random.int(servers);
          if (down.has(i)) {
            if (cfg.failed(i)) continue;
            await cfg.startServer(i);
            cfg.connectAll();
            if (cfg.failed(i)) {
              failStops++;
              schedule.push(`${at}: restart ${i}: refused its storage (fail-stop)`);
            } else {
              down.delete(i);
              schedule.push(`${at}: restart ${i} (and heal)`);
            }
          } else {
            // At most one server per run has its storage damaged beyond the
            // contract: it must refuse to start (fail-stop) and stay down;
            // the others (2 of 3, 4 of 5) are a majority.
            const damage = damaged === undefined && disks.chance(DAMAGE_CHANCE)
              ? disks.pick(DAMAGES)
              : undefined;
            if (damage) damaged = i;
            await cfg.shutdownServer(i, damage);
            down.add(i);
            schedule.push(`${at}: crash ${i}${damage ? ` (storage damaged: ${damage})` : ""}`);
          }
        } else if (roll < 72) {
          for (let i = 0; i < servers; i++) await cfg.shutdownServer(i);
          for (let i = 0; i < servers; i++) await cfg.startServer(i);
          cfg.connectAll();
          down.clear();
          for (let i = 0; i < servers; i++) if (cfg.failed(i)) down.add(i);
          schedule.push(`${at}: crash and restart all`);
        } else if (roll < 85) {
          const on = random.chance(0.5);
          sim.net.setReliable(!on);
          schedule.push(`${at}: unreliable ${on}`);
        } else {
          const from = String(random.int(servers));
          const to = String(random.int(servers));
          const rule = { dropRequests: random.next() / 2, delayMs: [0, random.int(50)] as const };
          sim.net.setLinkRule(from, to, rule);
          schedule.push(`${at}: link ${from}->${to} ${JSON.stringify(rule)}`);
        }
      }

      // Heal everything; every operation must then complete.
      schedule.push(`${cfg.now().toFixed(0)} ms: heal all`);
      sim.net.setReliable(true);
      for (let from = 0; from < servers; from++) {
        for (let to = 0; to < servers; to++) {
          sim.net.setLinkRule(String(from), String(to), undefined);
        }
      }
      for (const i of down) {
        if (cfg.failed(i)) continue;
        await cfg.startServer(i);
        if (cfg.failed(i)) failStops++;
      }
      cfg.connectAll();
      done = true;
      const counts = await Promise.all(loops);
      counts.forEach((n, id) => assert.ok(n > 0, `client ${id} completed no operation`));
      const final = cfg.makeClient().clerk;
      for (let k = 0; k < keys; k++) {
        const key = `k${k}`;
        await log.record(clients, { op: "get", key }, async () => valueOf(await final.get(key)));
      }
      if (maxRaftState > 0) {
        await cfg.sleep(1000);
        const size = cfg.logSize();
        assert.ok(size <= 8 * maxRaftState, `log not trimmed: ${size} > 8 × ${maxRaftState}`);
      }
      ledger.check();
      await log.check(`kv random seed ${seed}`, kvServiceModel);
      await cfg.cleanup();
      ledger.check();
      return { ops: log.operations.length, faults, trace: sim.traceHash() };
    }, { seed, limitMs: 10 * 60_000 });
  } catch (err) {
    console.error(`fault schedule of seed ${seed}:\n  ${schedule.join("\n  ")}`);
    throw err;
  }
}

Deno.test("kv: randomized faults, every history linearizable", async () => {
  failStops = 0;
  await runSeeds("KV_SEEDS", 200, runSeed);
  console.log(`  ${failStops} servers refused to start from damaged storage (fail-stop)`);
});

Deno.test("kv: a seed replays its run exactly (the same trace hash twice)", async () => {
  await checkReplays("KV_REPLAY_SEEDS", 3, async (seed) => (await runSeed(seed)).trace);
});
