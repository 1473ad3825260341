/**
 * The KV part of `distkit demo`: three replicas over TCP on 127.0.0.1 and a
 * few clerks appending and reading; the leader is stopped halfway, the
 * clerks carry on with the new one, and every acknowledged append must be
 * there exactly once. The history goes to the checker.
 *
 * @module
 */
import type { KvInput } from "../checker/models.ts";
import type { Operation } from "../checker/types.ts";
import { delay } from "../net/async.ts";
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, type TcpServer, TcpTransport } from "../net/tcp.ts";
import { MemoryStorage } from "../raft/storage.ts";
import { KvClerk } from "../kv/clerk.ts";
import { KvServer } from "../kv/server.ts";
import { AppendWorkload } from "./workload.ts";

/** What the KV tour reports. */
export interface KvTourReport {
  /** Operations completed. */
  operations: number;
  /** Operations completed when the first leader was stopped (fewer than `operations`: the service went on). */
  operationsAtStop: number;
  /** Wall-clock milliseconds of the client phase. */
  wallMs: number;
  /** The leader before and after the first one was stopped. */
  leaders: [string, string];
  /** Whether every acknowledged append is present exactly once, in order. */
  appendsIntact: boolean;
  /** The history, for the checker's kv model. */
  history: Operation<KvInput, string | undefined>[];
}

async function leaderOf(servers: Map<string, KvServer>): Promise<string> {
  while (true) {
    for (const [id, s] of servers) if (s.raft.status().role === "leader") return id;
    await delay(20);
  }
}

/** Runs the tour; `clients` clerks run for `ms` milliseconds of wall time. */
export async function kvTour(options: { clients?: number; ms?: number } = {}): Promise<
  KvTourReport
> {
  const { clients = 4, ms = 3000 } = options;
  const ids = ["a", "b", "c"];
  const rpc = new Map(ids.map((id) => [id, new RpcServer()]));
  const listeners = new Map<string, TcpServer>(
    ids.map((id) => [id, serveTcp(rpc.get(id)!, { hostname: "127.0.0.1", port: 0 })]),
  );
  const peers = Object.fromEntries([...listeners].map(([id, l]) => [id, l.address]));
  const transports: TcpTransport[] = [];
  const servers = new Map<string, KvServer>();
  for (const id of ids) {
    const transport = new TcpTransport({ peers });
    transports.push(transport);
    servers.set(
      id,
      await KvServer.start({
        id,
        peers: ids,
        server: rpc.get(id)!,
        transport,
        storage: new MemoryStorage(),
        maxRaftState: 64 * 1024,
      }),
    );
  }
  const clientTransport = new TcpTransport({ peers });
  transports.push(clientTransport);
  const start = performance.now();
  const workload = new AppendWorkload();
  const running = workload.start(
    Array.from(
      { length: clients },
      () => new KvClerk(clientTransport, ids, { attemptTimeoutMs: 1000 }),
    ),
  );
  await delay(ms / 2);
  const first = await leaderOf(servers);
  await servers.get(first)!.stop();
  const operationsAtStop = workload.completed;
  await listeners.get(first)!.close();
  servers.delete(first);
  await delay(ms / 2);
  // However slow the machine, go on until the new leader has served a client
  // (giving up after a while: the report then shows that it did not).
  const giveUpAt = performance.now() + 30_000;
  while (workload.completed === operationsAtStop && performance.now() < giveUpAt) await delay(20);
  const second = await leaderOf(servers);
  await running.stop();
  const wallMs = performance.now() - start;

  const lost = await workload.lostAppends(new KvClerk(clientTransport, ids));
  for (const s of servers.values()) await s.stop();
  for (const [id, l] of listeners) if (id !== first) await l.close();
  for (const t of transports) await t.close();
  return {
    operations: workload.completed,
    operationsAtStop,
    wallMs,
    leaders: [first, second],
    appendsIntact: lost === 0,
    history: workload.history,
  };
}
