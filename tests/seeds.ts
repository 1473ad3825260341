/**
 * The seed loop of the randomized simulation tests: `<ENV>` seeds (a
 * default number) from a random base, or the one seed `SEED=<n>` replays;
 * totals printed at the end.
 */
import { seedFromEnv } from "../net/mod.ts";

/** What one seed's run reports. */
export interface SeedResult {
  ops: number;
  faults: number;
}

/** What one seed's run reports in a test that sums what happened (`A`) and hashes its trace. */
export interface SeedRun<A> extends SeedResult {
  activity: A;
  trace: string;
}

/** Runs `runSeed` over the seeds and prints the totals (a failing seed throws, naming itself). */
export async function runSeeds(
  env: string,
  defaultCount: number,
  runSeed: (seed: number) => Promise<SeedResult>,
): Promise<void> {
  const replay = Deno.env.get("SEED");
  const count = replay ? 1 : Number(Deno.env.get(env) ?? defaultCount);
  // `KV_SEEDS` takes its base from `KV_SEED_BASE`, to rerun a whole batch.
  const baseEnv = Deno.env.get(env.replace(/SEEDS$/, "SEED_BASE"));
  const base = replay ? Number(replay) : baseEnv ? Number(baseEnv) >>> 0 : seedFromEnv();
  console.log(
    `  seeds ${base}..${base + count - 1} (replay one with SEED=<seed>, all with ` +
      `${env.replace(/SEEDS$/, "SEED_BASE")}=${base})`,
  );
  const start = performance.now();
  let ops = 0;
  let faults = 0;
  for (let k = 0; k < count; k++) {
    const r = await runSeed(base + k);
    ops += r.ops;
    faults += r.faults;
  }
  const secs = (performance.now() - start) / 1000;
  console.log(
    `  ${count} seeds in ${secs.toFixed(1)} s, ${ops} operations, ${faults} faults, ` +
      `all linearizable`,
  );
}

/**
 * Runs each of `<ENV>` seeds (a default number, from a random base; or the
 * one seed `SEED=<n>` names) twice and requires the same trace hash both
 * times: a simulation that read the real clock or real randomness anywhere
 * would not replay from its seed.
 */
export async function checkReplays(
  env: string,
  defaultCount: number,
  runSeed: (seed: number) => Promise<string>,
): Promise<void> {
  const replay = Deno.env.get("SEED");
  const count = replay ? 1 : Number(Deno.env.get(env) ?? defaultCount);
  const base = replay ? Number(replay) : seedFromEnv();
  const seeds = Array.from({ length: count }, (_, k) => (base + k * 7919) >>> 0);
  console.log(`  seeds ${seeds.join(", ")}, each run twice`);
  for (const seed of seeds) {
    const first = await runSeed(seed);
    const second = await runSeed(seed);
    if (first !== second) {
      throw new Error(
        `seed ${seed} ran differently the second time: trace hash ${first}, then ${second} ` +
          `(replay: SEED=${seed}); something in the run reads real time or real randomness`,
      );
    }
  }
}
