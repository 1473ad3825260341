/**
 * The course's GenericTest with every server's state in a store (issue 19),
 * under crashes, partitions and an unreliable network, with a small
 * `maxRaftState` (the log compacted, nothing encoded, a tail kept): every
 * acknowledged append present once, the log bounded (≤ 8 × maxRaftState),
 * the history linearizable. Once with answers after the store on every
 * replica (`answerBeforeStore: false`), once with `answerBeforeStore`
 * (answers once staged, batches stored in the background), and once with
 * the default (after the store while leading, once staged otherwise).
 */
import { simulate } from "../net/mod.ts";
import { genericTest } from "./kv_cluster.ts";

const SIM_LIMIT_MS = 30 * 60_000;

const WHEN = new Map<boolean | undefined, string>([
  [false, "answered once stored"],
  [true, "answered once staged"],
  [undefined, "answered once stored while leading, once staged otherwise"],
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
