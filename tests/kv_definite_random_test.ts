/**
 * No false "not applied", randomized: KV clerks whose calls have short
 * deadlines write to a simulated 3-server cluster while servers crash and
 * restart (sometimes all of them), the servers are partitioned, and clients
 * lose and regain their routes to the servers (a call without a route is
 * never delivered, so its failure says `notSent`). Every write that failed
 * with `mayHaveApplied` false is left out of the history: it must not have
 * taken effect, or a later read shows a value no operation wrote. A write
 * that may have applied is kept with an unknown outcome. The history must
 * be linearizable, and some writes must have failed definitely (else this
 * test would prove nothing).
 *
 * Runs NOT_SENT_SEEDS seeds (default 20) from a random base; `SEED=<n>`
 * replays one (`NOT_SENT_SEED_BASE=<n>` a whole batch).
 */
import assert from "node:assert/strict";
import { checkOperations, type KvInput, kvModel, type Operation } from "../checker/mod.ts";
import { KvClerk, mayHaveApplied, RequestAbortedError } from "../kv/mod.ts";
import { simulate } from "../net/mod.ts";
import { KvCluster, text } from "./kv_cluster.ts";
import { runSeeds } from "./seeds.ts";

/** How long the faults go on, in virtual milliseconds. */
const FAULT_MS = 20_000;

interface Tally {
  definite: number;
  unknown: number;
}

async function runSeed(seed: number, tally: Tally): Promise<{ ops: number; faults: number }> {
  const schedule: string[] = [];
  try {
    return await simulate(async (sim) => {
      const cfg = await KvCluster.start(sim, 3);
      const random = cfg.random.fork();
      const operations: Operation<KvInput, string | undefined>[] = [];
      let last = -Infinity;
      // Events at one virtual instant keep the order they happened in.
      const stamp = () => (last = Math.max(sim.clock.now(), last + 1e-6));
      const keys = ["a", "b"];
      const names = ["c0", "c1", "c2"];
      const clerks = names.map((name) =>
        new KvClerk(cfg.wiring.clientTransport(name, cfg.wiring.all), cfg.ids, {
          clock: sim.clock,
          random: random.fork(),
          id: name,
          attemptTimeoutMs: 100 + random.int(400),
        })
      );
      let done = false;
      const loop = async (client: number) => {
        const clerk = clerks[client];
        for (let n = 0; !done; n++) {
          await cfg.sleep(random.int(50));
          const key = random.pick(keys);
          const roll = random.int(3);
          const input: KvInput = roll === 0
            ? { op: "get", key }
            : { op: roll === 1 ? "put" : "append", key, value: `${client}.${n} ` };
          const deadlineMs = 50 + random.int(2000);
          const call = stamp();
          try {
            const output = input.op === "get"
              ? text(await clerk.get(key, { deadlineMs }))
              : input.op === "put"
              ? await clerk.put(key, input.value!, { deadlineMs })
              : await clerk.append(key, input.value!, { deadlineMs });
            operations.push({ client, input, call, output: output ?? undefined, return: stamp() });
          } catch (err) {
            if (!(err instanceof RequestAbortedError) && !mayHaveApplied(err)) throw err;
            if (input.op === "get") continue;
            if (mayHaveApplied(err)) {
              tally.unknown++;
              operations.push({
                client,
                input,
                call,
                output: undefined,
                return: call,
                unknown: true,
              });
            } else {
              tally.definite++; // left out: it must not have applied
            }
          }
        }
      };
      const loops = names.map((_, client) => loop(client));
      for (const l of loops) l.catch(() => {}); // awaited below
      const down = new Set<number>();
      let faults = 0;
      const end = cfg.now() + FAULT_MS;
      while (cfg.now() < end) {
        await cfg.sleep(100 + random.int(700));
        faults++;
        const at = `${cfg.now().toFixed(0)} ms`;
        const roll = random.int(10);
        if (roll < 3) {
          const client = random.int(names.length);
          const reach = cfg.wiring.all.filter(() => random.chance(0.4));
          cfg.connectClient(names[client], reach);
          schedule.push(`${at}: client ${client} reaches [${reach}]`);
        } else if (roll < 5) {
          const i = random.int(3);
          await cfg.shutdownServer(i);
          down.add(i);
          schedule.push(`${at}: crash ${i}`);
        } else if (roll < 7 && down.size > 0) {
          const i = random.pick([...down]);
          await cfg.startServer(i);
          cfg.wiring.connect(i);
          down.delete(i);
          schedule.push(`${at}: restart ${i}`);
        } else if (roll < 8) {
          const side = cfg.wiring.all.map(() => random.int(2));
          cfg.wiring.partition(
            cfg.wiring.all.filter((i) => side[i] === 0 && !down.has(i)),
            cfg.wiring.all.filter((i) => side[i] === 1 && !down.has(i)),
          );
          schedule.push(`${at}: partition ${side}`);
        } else {
          cfg.wiring.partition(cfg.wiring.all.filter((i) => !down.has(i)));
          for (const name of names) cfg.connectClient(name, cfg.wiring.all);
          schedule.push(`${at}: heal`);
        }
      }
      for (const i of down) await cfg.startServer(i);
      cfg.connectAll();
      for (const name of names) cfg.connectClient(name, cfg.wiring.all);
      done = true;
      await Promise.all(loops);
      // What every key holds in the end: a definite failure that applied shows here.
      const reader = cfg.makeClient().clerk;
      for (const key of keys) {
        const call = stamp();
        const output = text(await reader.get(key));
        operations.push({
          client: names.length,
          input: { op: "get", key },
          call,
          output,
          return: stamp(),
        });
      }
      const result = checkOperations(kvModel, operations, { timeoutMs: 60_000 });
      assert.equal(
        result.verdict,
        "linearizable",
        `seed ${seed} (replay: SEED=${seed}): ${operations.length} operations are ${result.verdict}`,
      );
      await cfg.cleanup();
      return { ops: operations.length, faults };
    }, { seed, limitMs: 10 * 60_000 });
  } catch (err) {
    console.error(`fault schedule of seed ${seed}:\n  ${schedule.join("\n  ")}`);
    throw err;
  }
}

Deno.test("kv: writes that failed definitely never applied, under crashes, partitions and lost routes", async () => {
  const tally: Tally = { definite: 0, unknown: 0 };
  let seeds = 0;
  await runSeeds("NOT_SENT_SEEDS", 20, (seed) => {
    seeds++;
    return runSeed(seed, tally);
  });
  console.log(
    `  ${tally.definite} writes failed definitely (left out), ${tally.unknown} may have applied`,
  );
  if (seeds >= 5) {
    assert.ok(tally.definite > 0, "no write failed definitely: the test proves nothing");
  }
});
