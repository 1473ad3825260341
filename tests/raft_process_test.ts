/**
 * Raft over real TCP with Deno KV storage: three `deno` processes on
 * 127.0.0.1. Entries are committed, the leader and then a follower are killed
 * with SIGKILL and restarted from their Deno KV files, and at the end every
 * committed entry is on every member, applied once, in the same order.
 */
import assert from "node:assert/strict";
import { delay } from "../net/mod.ts";
import { append, kill, leaderOf, spawn, startCluster } from "./raft_processes.ts";

Deno.test({
  name: "raft over TCP + Deno KV: kill -9 the leader, then a follower; nothing committed is lost",
  sanitizeResources: true,
  sanitizeOps: true,
  async fn() {
    const cluster = await startCluster(["a", "b", "c"], { snapshotEvery: 25 });
    const { members } = cluster;
    const committed = new Map<number, string>();
    try {
      await leaderOf(members);
      const round = async (tag: string, n: number) => {
        for (let i = 0; i < n; i++) {
          const command = `${tag}-${i}`;
          const index = await append(members, command);
          assert.ok(!committed.has(index), `index ${index} committed twice`);
          committed.set(index, command);
        }
      };
      await round("first", 40);

      const leader = await leaderOf(members);
      await kill(leader);
      await round("after-leader-kill", 40);
      leader.child = spawn(leader, members);

      const newLeader = await leaderOf(members);
      const follower = members.find((m) => m !== newLeader && m.child)!;
      await kill(follower);
      await round("after-follower-kill", 40);
      follower.child = spawn(follower, members);
      await round("after-restart", 10);

      // Every member ends with the same log, applied once each (strictly
      // increasing indexes), holding every acknowledged command at its index.
      // (A retried append may commit twice; only acknowledged ones are checked.)
      const lastIndex = Math.max(...committed.keys());
      const logs: [number, string][][] = [];
      for (const m of members) {
        let log: [number, string][] = [];
        const t0 = Date.now();
        while (Date.now() - t0 < 20_000) {
          log = await m.client.call<[number, string][]>("Log.Read", { from: 0 }, {
            timeoutMs: 2000,
          }).catch(() => []);
          if ((log.at(-1)?.[0] ?? 0) >= lastIndex) break;
          await delay(100);
        }
        for (let k = 1; k < log.length; k++) {
          assert.ok(
            log[k][0] > log[k - 1][0],
            `member ${m.id} applied index ${log[k][0]} out of order or twice`,
          );
        }
        const byIndex = new Map(log);
        for (const [index, command] of committed) {
          assert.equal(
            byIndex.get(index),
            command,
            `member ${m.id} lost acknowledged entry ${index}`,
          );
        }
        logs.push(log.filter(([index]) => index <= lastIndex));
      }
      assert.deepEqual(logs[1], logs[0]);
      assert.deepEqual(logs[2], logs[0]);
      const expected = logs[0];
      console.log(
        `  ${expected.length} entries committed and applied once on all 3 members after 2 kill -9s`,
      );
    } finally {
      await cluster.stop();
    }
  },
});
