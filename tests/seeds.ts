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

/** Runs `runSeed` over the seeds and prints the totals (a failing seed throws, naming itself). */
export async function runSeeds(
  env: string,
  defaultCount: number,
  runSeed: (seed: number) => Promise<SeedResult>,
): Promise<void> {
  const replay = Deno.env.get("SEED");
  const count = replay ? 1 : Number(Deno.env.get(env) ?? defaultCount);
  const base = replay ? Number(replay) : seedFromEnv();
  console.log(`  seeds ${base}..${base + count - 1} (replay one with SEED=<seed>)`);
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
