/**
 * Large values kept in the Raft log (`kv serve --state disk --log segments
 * --values-in-log`) on real processes and a real disk: clients put 70 KB
 * values (over the 60 KiB threshold, so every one is a pointer into the
 * log) to keys of their own while leaders and followers are killed with
 * SIGKILL and restarted; then every node is stopped and started again. Each
 * key must hold exactly the bytes of a put made to it, no older than the
 * last one acknowledged (nothing acknowledged lost, never other bytes).
 */
import assert from "node:assert/strict";
import { connectKv } from "../kv/mod.ts";
import { LocalCluster } from "../cli.ts";
import { delay } from "../net/mod.ts";
import { StateStore } from "../store/mod.ts";

const ROUNDS = Number(Deno.env.get("KV_CRASH_ROUNDS") ?? 4);
const VALUE_CHARS = 70_000;

/** Put `seq` of client `n`: its tag, then bytes that depend on both (any change shows). */
function valueOf(n: number, seq: number): string {
  const tag = `${n}:${seq}:`;
  const body = Array.from(
    { length: 64 },
    (_, i) => String.fromCharCode(97 + (n * 7 + seq + i) % 26),
  )
    .join("");
  return (tag + body.repeat(Math.ceil(VALUE_CHARS / body.length))).slice(0, VALUE_CHARS);
}

Deno.test("kv processes (values in the log): kill -9 and full restarts keep every acknowledged put, byte for byte", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "distkit-kv-vil-test-" });
  const cluster = await LocalCluster.start({
    dataDir,
    // Compaction runs often, so segments are kept only for the values the state points at.
    maxRaftState: 1024 * 1024,
    state: "disk",
    raftLog: "segments",
    serveArgs: ["--values-in-log"],
  });
  const clients = 4;
  const acked = new Array(clients).fill(0);
  const tried = new Array(clients).fill(0);
  const connections = Array.from({ length: clients }, () => connectKv(cluster.peers));
  let stop = false;
  try {
    const loops = connections.map(async ({ clerk }, n) => {
      for (let seq = 1; !stop; seq++) {
        tried[n] = seq;
        try {
          await clerk.put(`key${n}`, valueOf(n, seq));
          acked[n] = seq;
        } catch {
          // An outcome not learned (a node killed under it): the next put goes on.
        }
      }
    });
    // Each round waits for puts to be acknowledged, not for time to pass: on a slow machine the
    // kills then still fall under load, and the count asserted below is reached.
    const progressed = async (more: number) => {
      const target = acked.reduce((a, b) => a + b, 0) + more;
      for (let waited = 0; acked.reduce((a, b) => a + b, 0) < target; waited += 20) {
        assert.ok(waited < 120_000, `no ${more} more puts acknowledged in 120 s`);
        await delay(20);
      }
    };
    for (let round = 0; round < ROUNDS; round++) {
      await progressed(6);
      const leader = await cluster.leader();
      const victim = round % 2 === 0 ? leader : (leader + 1) % 3;
      await cluster.kill(victim);
      await delay(300); // down for a moment, under load
      await cluster.restart(victim);
    }
    await progressed(6);
    stop = true;
    await Promise.all(loops);
    const check = async (when: string) => {
      const { clerk, close } = connectKv(cluster.peers);
      try {
        for (let n = 0; n < clients; n++) {
          const value = await clerk.get(`key${n}`);
          assert.equal(typeof value, "string", `${when}: key${n} holds ${value}`);
          const seq = Number((value as string).split(":")[1]);
          assert.ok(
            seq >= acked[n] && seq <= tried[n],
            `${when}: key${n} holds put ${seq}; acknowledged up to ${acked[n]}, tried ${tried[n]}`,
          );
          assert.ok(
            value === valueOf(n, seq),
            `${when}: key${n} holds other bytes than put ${seq}`,
          );
        }
      } finally {
        await close();
      }
    };
    await check("after the kills");
    for (let i = 0; i < 3; i++) await cluster.kill(i);
    for (let i = 0; i < 3; i++) await cluster.restart(i);
    await check("after every node restarted");
    const total = acked.reduce((a, b) => a + b, 0);
    assert.ok(total > 20, `only ${total} puts acknowledged`);
    // The values were kept in the log: the nodes' states point into it.
    await cluster.stop();
    let pointing = 0;
    for (let i = 0; i < 3; i++) {
      const kv = await Deno.openKv(`${cluster.dataDir(i)}/state.kv`);
      const store = await StateStore.open(kv);
      for (const rows of store.loggedRows.values()) pointing += rows;
      await store.close();
      kv.close();
    }
    assert.ok(pointing > 0, "no node's state points into its log");
    console.log(`  ${ROUNDS} kill -9 rounds, ${total} puts of ${VALUE_CHARS} bytes acknowledged`);
  } finally {
    stop = true;
    for (const c of connections) await c.close();
    await cluster.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
