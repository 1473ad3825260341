/**
 * The course's GenericTest with every server's state in a store (issue 19),
 * under crashes, partitions and an unreliable network, with a small
 * `maxRaftState` (the log compacted, nothing encoded, a tail kept): every
 * acknowledged append present once, the log bounded (≤ 8 × maxRaftState),
 * the history linearizable. Once with answers after the store on every
 * replica (`answerBeforeStore: false`), and once with the default (answers
 * once staged, batches stored in the background, on every replica).
 */
import { simulate } from "../net/mod.ts";
import { genericTest } from "./kv_cluster.ts";

const SIM_LIMIT_MS = 30 * 60_000;

const WHEN = new Map<boolean | undefined, string>([
  [false, "answered once stored"],
  [undefined, "answered once staged (the default)"],
]);

for (const [answerBeforeStore, when] of WHEN) {
  const name = `stored state, ${when}`;
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
        server: answerBeforeStore === undefined ? {} : { answerBeforeStore },
      }), { seed: 1919, limitMs: SIM_LIMIT_MS });
  });
}
