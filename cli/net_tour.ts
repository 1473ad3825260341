/**
 * `distkit demo`: a tour of what works today, on real sockets and in
 * simulation. Every step does real work and checks its own result.
 *
 * @module
 */
import { delay } from "../net/async.ts";
import { simulatedWorkload } from "./net_commands.ts";
import { BadArgumentsError, TimeoutError, UnknownMethodError } from "../net/errors.ts";
import { expectShape, RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpClient, type TcpServer } from "../net/tcp.ts";

/** A small bank: transfers must never create or destroy money. */
function bankServer(): RpcServer {
  const accounts = new Map<string, number>([["alice", 1000], ["bob", 1000], ["carol", 1000]]);
  const server = new RpcServer();
  server.addService("Bank", {
    Transfer: (args: unknown) => {
      const { from, to, amount } = expectShape<{ from: string; to: string; amount: number }>(args, {
        from: "string",
        to: "string",
        amount: "integer",
      });
      const balance = accounts.get(from) ?? 0;
      if (amount > 0 && balance >= amount && accounts.has(to)) {
        accounts.set(from, balance - amount);
        accounts.set(to, (accounts.get(to) ?? 0) + amount);
        return true;
      }
      return false;
    },
    Total: () => [...accounts.values()].reduce((a, b) => a + b, 0),
    Slow: () => delay(300).then(() => "late"),
  });
  return server;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`demo check failed: ${what}`);
  console.log(`  ok  ${what}`);
}

/** Runs the tour; resolves with the exit code. */
export async function runTour(): Promise<number> {
  console.log("distkit tour\n");
  console.log("1. A TCP server on 127.0.0.1 and 4 clients making 4,096 calls, 64 in flight each");
  let server: TcpServer = serveTcp(bankServer(), { port: 0 });
  const address = server.address;
  const clients = Array.from({ length: 4 }, () => new TcpClient(address, { timeoutMs: 5000 }));
  try {
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(clients.map(async (client, c) => {
      const names = ["alice", "bob", "carol"];
      for (let batch = 0; batch < 16; batch++) {
        await Promise.all(Array.from({ length: 64 }, async (_, i) => {
          const start = performance.now();
          await client.call("Bank.Transfer", {
            from: names[(c + i) % 3],
            to: names[(c + i + 1) % 3],
            amount: 1 + (i % 7),
          });
          latencies.push(performance.now() - start);
        }));
      }
    }));
    const secs = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(
      `  ${latencies.length} calls in ${secs.toFixed(2)} s = ${
        Math.round(latencies.length / secs)
      } calls/s; ` +
        `latency p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${
          percentile(latencies, 0.99).toFixed(2)
        } ms`,
    );
    check((await clients[0].call("Bank.Total")) === 3000, "no money created or destroyed");

    console.log("\n2. Failures are typed and leave the server serving");
    const err = async (p: Promise<unknown>) => await p.then(() => undefined, (e) => e);
    check(
      (await err(clients[0].call("Bank.Steal"))) instanceof UnknownMethodError,
      "unknown method → UnknownMethodError",
    );
    check(
      (await err(clients[0].call("Bank.Transfer", { from: "alice", amount: "all" }))) instanceof
        BadArgumentsError,
      "wrong argument shape → BadArgumentsError",
    );
    check(
      (await err(clients[0].call("Bank.Slow", {}, { timeoutMs: 100 }))) instanceof TimeoutError,
      "deadline → TimeoutError",
    );
    check((await clients[1].call("Bank.Total")) === 3000, "the server still answers");

    console.log("\n3. The server restarts on the same port; clients reconnect");
    const port = server.addr.port;
    await server.close();
    server = serveTcp(bankServer(), { port });
    let reconnected = false;
    for (let attempt = 0; attempt < 50 && !reconnected; attempt++) {
      reconnected = await clients[2].call("Bank.Total").then(() => true, () => false);
      if (!reconnected) await delay(50);
    }
    check(reconnected, `client reconnected to ${address}`);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await server.close();
  }

  console.log(
    "\n4. Deterministic simulation: 5 servers, 20 clients, 10 virtual minutes, unreliable + reordering",
  );
  const options = { servers: 5, clients: 20, seconds: 600, unreliable: true, reordering: true };
  const a = await simulatedWorkload({ ...options, seed: 2026 });
  const b = await simulatedWorkload({ ...options, seed: 2026 });
  const c = await simulatedWorkload({ ...options, seed: 2027 });
  console.log(
    `  seed ${a.seed}: ${a.calls} calls (${a.succeeded} ok, ${a.failed} failed), ${a.bytes} bytes, ` +
      `${a.virtualSeconds} virtual s in ${a.wallMs} ms of wall time`,
  );
  check(
    a.traceDigest === b.traceDigest && a.calls === b.calls,
    `same seed, same trace (${a.traceDigest})`,
  );
  check(a.traceDigest !== c.traceDigest, `another seed, another trace (${c.traceDigest})`);
  return 0;
}
