/**
 * TCP transport benchmarks over 127.0.0.1: sequential round trips on one
 * connection, and 64 calls in flight pipelined over one connection.
 *
 * Each measured iteration gets its own server and client, opened before
 * `b.start()` and closed after `b.end()`, so nothing outlives an iteration
 * and the connect is never timed. Calls per second = calls per iteration
 * divided by the time per iteration.
 *
 * Run: deno bench --allow-net=127.0.0.1 bench/tcp_bench.ts
 */
import { RpcServer } from "../net/rpc_server.ts";
import { serveTcp, TcpClient } from "../net/tcp.ts";

const SEQUENTIAL_CALLS = 1_000;
const IN_FLIGHT = 64;
const PIPELINED_CALLS = 6_400;

function echoServer(): RpcServer {
  const rpc = new RpcServer();
  rpc.addService("Echo", { Say: (n: number) => n });
  return rpc;
}

/** Opens a server and a warmed-up client, runs `body` timed, then closes both. */
async function withConnection(
  b: Deno.BenchContext,
  body: (client: TcpClient) => Promise<void>,
): Promise<void> {
  const server = serveTcp(echoServer());
  const client = new TcpClient(server.address);
  try {
    await client.call("Echo.Say", 0); // connect outside the timed part
    b.start();
    await body(client);
    b.end();
  } finally {
    await client.close();
    await server.close();
  }
}

Deno.bench({
  name: `tcp: ${SEQUENTIAL_CALLS} sequential round trips, one connection`,
  async fn(b) {
    await withConnection(b, async (client) => {
      for (let i = 0; i < SEQUENTIAL_CALLS; i++) {
        if ((await client.call("Echo.Say", i)) !== i) throw new Error("wrong answer");
      }
    });
  },
});

Deno.bench({
  name: `tcp: ${PIPELINED_CALLS} calls, ${IN_FLIGHT} in flight, one connection`,
  async fn(b) {
    await withConnection(b, async (client) => {
      // IN_FLIGHT workers, each issuing its next call as soon as the last returns.
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async (_, w) => {
          for (let i = w; i < PIPELINED_CALLS; i += IN_FLIGHT) {
            if ((await client.call("Echo.Say", i)) !== i) throw new Error("wrong answer");
          }
        }),
      );
    });
  },
});
