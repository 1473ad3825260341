/**
 * The command line's side of "a write never sent is no maybe": `distkit kv
 * put` and `distkit shard append` whose servers are all down exit 3 with
 * what they tried, and do not say the write may or may not have taken
 * effect; one that reached a server that then did not answer still does.
 * The servers here are stand-ins in this process (a stopped node that
 * accepts connections and never answers, a port where nothing listens, a
 * controller that answers); the commands are real `distkit` processes.
 */
import assert from "node:assert/strict";
import { RpcServer, serveTcp } from "../net/mod.ts";
import { freePorts, HOST, runCli } from "./node_process.ts";

/** Listeners that accept connections and never read or write: stopped nodes (kill -STOP). */
function stoppedNodes(n: number): { addresses: string[]; close: () => Promise<void> } {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: HOST, port: 0 }));
  const conns: Deno.Conn[] = [];
  const accepting = listeners.map(async (listener) => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch {
      // closed
    }
  });
  return {
    addresses: listeners.map((l) => `${HOST}:${l.addr.port}`),
    close: async () => {
      for (const listener of listeners) listener.close();
      await Promise.all(accepting);
      for (const conn of conns) conn.close();
    },
  };
}

Deno.test("not sent process: kv put with every node down is no maybe", async () => {
  const stopped = stoppedNodes(3);
  try {
    // Every node stopped: connections are accepted, the handshake is never answered.
    const out = await runCli(
      "kv",
      "put",
      "--endpoints",
      stopped.addresses.join(","),
      "--timeout",
      "2s",
      "k",
      "v",
    );
    assert.equal(out.code, 3, out.stderr);
    assert.match(out.stderr, /^distkit kv put: no answer within 2s \(--timeout\); tried:/);
    assert.doesNotMatch(out.stderr, /may or may not/);
  } finally {
    await stopped.close();
  }
  // Every node gone: nothing listens.
  const gone = freePorts(3).map((p) => `${HOST}:${p}`);
  const out = await runCli("kv", "put", "--endpoints", gone.join(","), "--timeout", "2s", "k", "v");
  assert.equal(out.code, 3, out.stderr);
  assert.match(out.stderr, /cannot connect to any of .* \(connection refused\)/);
  assert.doesNotMatch(out.stderr, /may or may not/);
});

Deno.test("not sent process: kv put that reached a node which did not answer may have applied", async () => {
  const waiting: (() => void)[] = [];
  const rpc = new RpcServer();
  rpc.addService("KV", { Write: () => new Promise<void>((resolve) => waiting.push(resolve)) });
  const server = serveTcp(rpc);
  try {
    const out = await runCli(
      "kv",
      "put",
      "--endpoints",
      server.address,
      "--timeout",
      "2s",
      "k",
      "v",
    );
    assert.equal(out.code, 3, out.stderr);
    assert.match(out.stderr, /the write may or may not have been applied/);
    assert.ok(waiting.length >= 1, "the write reached the server");
  } finally {
    waiting.forEach((resolve) => resolve());
    await server.close();
  }
});

Deno.test("not sent process: shard append with the controller up and the group down is no maybe", async () => {
  const group = freePorts(3).map((p) => `${HOST}:${p}`);
  const config = { num: 1, shards: new Array(10).fill(100), groups: { 100: group } };
  const rpc = new RpcServer();
  rpc.addService("Ctrler", { Query: () => ({ status: "ok", config }) });
  const ctrler = serveTcp(rpc);
  try {
    const out = await runCli(
      "shard",
      "append",
      "--endpoints",
      ctrler.address,
      "--timeout",
      "2s",
      "k",
      "v",
    );
    assert.equal(out.code, 3, out.stderr);
    assert.match(out.stderr, /no answer within 2s \(--timeout\) from group 100/);
    assert.doesNotMatch(out.stderr, /may or may not/);
  } finally {
    await ctrler.close();
  }
});
