/**
 * Raft over real TCP with Deno KV storage: three `deno` processes on
 * 127.0.0.1. Entries are committed, the leader and then a follower are killed
 * with SIGKILL and restarted from their Deno KV files, and at the end every
 * committed entry is on every member, applied once, in the same order.
 */
import assert from "node:assert/strict";
import { delay, TcpClient } from "../net/mod.ts";
import type { RaftStatus } from "../raft/mod.ts";
import type { AppendReply } from "../raft/commands.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

async function freePorts(n: number): Promise<number[]> {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  await delay(10);
  return ports;
}

interface Member {
  id: string;
  address: string;
  data: string;
  child?: Deno.ChildProcess;
  client: TcpClient;
}

function spawn(member: Member, members: Member[]): Deno.ChildProcess {
  const args = [
    "run",
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--allow-write",
    "--unstable-kv",
    CLI,
    "raft",
    "serve",
    "--id",
    member.id,
    "--listen",
    member.address,
    "--data",
    member.data,
    "--snapshot-every",
    "25",
    ...members.flatMap((m) => ["--peer", `${m.id}=${m.address}`]),
  ];
  return new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stdout: "null", stderr: "piped" })
    .spawn();
}

async function status(member: Member): Promise<RaftStatus | undefined> {
  try {
    return await member.client.call<RaftStatus>("Log.Status", {}, { timeoutMs: 500 });
  } catch {
    return undefined;
  }
}

async function leaderOf(members: Member[], deadlineMs = 20_000): Promise<Member> {
  const t0 = Date.now();
  while (Date.now() - t0 < deadlineMs) {
    for (const m of members) {
      if (!m.child) continue;
      const s = await status(m);
      if (s?.role === "leader") return m;
    }
    await delay(50);
  }
  throw new Error("no leader was elected within 20 s");
}

/** Appends through whichever member leads, retrying until it commits; returns the index. */
async function append(members: Member[], command: string): Promise<number> {
  const t0 = Date.now();
  let target = members.find((m) => m.child) ?? members[0];
  while (Date.now() - t0 < 30_000) {
    if (target.child) {
      try {
        const reply = await target.client.call<AppendReply>("Log.Append", { command }, {
          timeoutMs: 3000,
        });
        if ("index" in reply) return reply.index;
        const leader = members.find((m) => m.id === reply.leader && m.child);
        if (leader) {
          target = leader;
          continue;
        }
      } catch {
        // down, or the call timed out: try another member
      }
    }
    await delay(50);
    const alive = members.filter((m) => m.child);
    target = alive[Math.floor(Math.random() * alive.length)];
  }
  throw new Error(`append ${command} did not commit within 30 s`);
}

async function kill(member: Member): Promise<void> {
  member.child!.kill("SIGKILL");
  await member.child!.status;
  await member.child!.stderr.cancel();
  member.child = undefined;
  await member.client.close();
  member.client = new TcpClient(member.address, { timeoutMs: 3000 });
}

Deno.test({
  name: "raft over TCP + Deno KV: kill -9 the leader, then a follower; nothing committed is lost",
  sanitizeResources: true,
  sanitizeOps: true,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "distkit-raft-" });
    const ports = await freePorts(3);
    const members: Member[] = ["a", "b", "c"].map((id, i) => ({
      id,
      address: `127.0.0.1:${ports[i]}`,
      data: `${dir}/${id}.kv`,
      client: new TcpClient(`127.0.0.1:${ports[i]}`, { timeoutMs: 3000 }),
    }));
    const committed = new Map<number, string>();
    try {
      for (const m of members) m.child = spawn(m, members);
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
      for (const m of members) {
        if (m.child) {
          m.child.kill("SIGKILL");
          await m.child.status;
          await m.child.stderr.cancel();
        }
        await m.client.close();
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
