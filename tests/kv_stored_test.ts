/**
 * The course's GenericTest with every server's state in a store (issue 19),
 * under crashes, partitions and an unreliable network, with a small
 * `maxRaftState` (the log compacted, nothing encoded, a tail kept): every
 * acknowledged append present once, the log bounded (≤ 8 × maxRaftState),
 * the history linearizable. Once with answers after the store (the
 * default), once with `answerBeforeStore` (answers once staged, batches
 * stored in the background).
 */
import { simulate } from "../net/mod.ts";
import { genericTest } from "./kv_cluster.ts";

const SIM_LIMIT_MS = 30 * 60_000;

for (const answerBeforeStore of [false, true]) {
  const name = `stored state, ${
    answerBeforeStore ? "answered once staged" : "answered once stored"
  }`;
  Deno.test(`kv: ${name}: crashes, partitions, snapshots`, async () => {
    await simulate((sim) =>
      genericTest(sim, name, {
        clients: 5,
        servers: 5,
        unreliable: true,
        crash: true,
        partitions: true,
        maxRaftState: 1000,
        storedState: true,
        server: { answerBeforeStore },
      }), { seed: 1919, limitMs: SIM_LIMIT_MS });
  });
}
