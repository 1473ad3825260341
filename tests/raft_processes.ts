/**
 * Helpers to run a Raft cluster as separate `deno` processes on 127.0.0.1
 * (`distkit raft serve`), for the crash test and the TCP benchmark.
 */
import { delay, TcpClient } from "../net/mod.ts";
import type { RaftStatus } from "../raft/mod.ts";
import type { AppendReply } from "../cli/raft_commands.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

export async function freePorts(n: number): Promise<number[]> {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  await delay(10);
  return ports;
}

export interface Member {
  id: string;
  address: string;
  data: string;
  child?: Deno.ChildProcess;
  client: TcpClient;
}

export function spawn(
  member: Member,
  members: Member[],
  options: { snapshotEvery?: number } = {},
): Deno.ChildProcess {
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
    String(options.snapshotEvery ?? 25),
    ...members.flatMap((m) => ["--peer", `${m.id}=${m.address}`]),
  ];
  return new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stdout: "null", stderr: "piped" })
    .spawn();
}

export async function status(member: Member): Promise<RaftStatus | undefined> {
  try {
    return await member.client.call<RaftStatus>("Log.Status", {}, { timeoutMs: 500 });
  } catch {
    return undefined;
  }
}

export async function leaderOf(members: Member[], deadlineMs = 20_000): Promise<Member> {
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
export async function append(members: Member[], command: string): Promise<number> {
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

export async function kill(member: Member): Promise<void> {
  member.child!.kill("SIGKILL");
  await member.child!.status;
  await member.child!.stderr.cancel();
  member.child = undefined;
  await member.client.close();
  member.client = new TcpClient(member.address, { timeoutMs: 3000 });
}

/** A running cluster of `distkit raft serve` processes, with their data in a temporary folder. */
export interface ProcessCluster {
  members: Member[];
  /** Kills every process, closes the clients and removes the data. */
  stop(): Promise<void>;
}

/** Starts members `ids` on free ports, each with its own Deno KV file. */
export async function startCluster(
  ids: string[],
  options: { snapshotEvery?: number } = {},
): Promise<ProcessCluster> {
  const dir = await Deno.makeTempDir({ prefix: "distkit-raft-" });
  const ports = await freePorts(ids.length);
  const members: Member[] = ids.map((id, i) => ({
    id,
    address: `127.0.0.1:${ports[i]}`,
    data: `${dir}/${id}.kv`,
    client: new TcpClient(`127.0.0.1:${ports[i]}`, { timeoutMs: 3000 }),
  }));
  for (const m of members) m.child = spawn(m, members, options);
  return {
    members,
    stop: async () => {
      for (const m of members) {
        if (m.child) {
          m.child.kill("SIGKILL");
          await m.child.status;
          await m.child.stderr.cancel();
        }
        await m.client.close();
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}
