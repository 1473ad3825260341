/**
 * A request that fails while it is being encoded (a value MessagePack cannot
 * carry, a frame over the limit) was never sent: the transports say so
 * (`RpcError.notSent`), and every clerk ends such a write with a
 * {@linkcode RequestError} that says it was not applied, not with "it may or
 * may not have taken effect".
 *
 * Found in review: a `ReplicaClient` write of a value over the frame limit
 * failed with an `OutcomeUnknownError` although nothing had left the process.
 */
import assert from "node:assert/strict";
import { KvClerk } from "../kv/mod.ts";
import {
  Codec,
  CodecError,
  FrameTooLargeError,
  neverSent,
  Random,
  RpcError,
  RpcServer,
  serveTcp,
  SimNetwork,
  TcpClient,
  TcpTransport,
  VirtualClock,
} from "../net/mod.ts";
import { mayHaveApplied, ReplicaClient, RequestError } from "../rsm/mod.ts";
import { LockClerk, PrimaryBackupClerk } from "../pb/mod.ts";
import { ShardClerk } from "../shard/mod.ts";
import { rejectsWith } from "./tcp_helpers.ts";

/** The frame limit of these tests: far below any clerk's own value limit. */
const LIMIT = 4096;
const BIG = "x".repeat(2 * LIMIT);

/** An RPC server whose every method answers `ok` and counts the calls that reached it. */
function countingServer(services: string[]) {
  let calls = 0;
  const rpc = new RpcServer();
  const ok = () => {
    calls++;
    return { status: "ok" };
  };
  for (const service of services) {
    rpc.addService(service, { Write: ok, Take: ok, Lock: ok, Get: ok, Say: (s: unknown) => s });
  }
  return { rpc, calls: () => calls };
}

function assertUnsent(
  err: unknown,
  type: typeof CodecError | typeof FrameTooLargeError,
  what: string,
) {
  assert.ok(err instanceof type, `${what}: expected a ${type.name}, got ${err}`);
  assert.ok(err instanceof RpcError);
  assert.equal(err.notSent, true, `${what}: notSent of ${err.name}: ${err.message}`);
  assert.equal(neverSent(err), true, what);
  assert.match(err.message, /not sent/, what);
}

/** A clerk's answer to a write that could not be encoded: definite, and saying why. */
function assertRefusedUnsent(err: unknown, service: string, what: string): void {
  assert.ok(err instanceof RequestError, `${what}: expected a RequestError, got ${err}`);
  assert.equal(err.service, service, what);
  assert.equal(mayHaveApplied(err), false, `${what}: ${err.message}`);
  assert.doesNotMatch(err.message, /may or may not/, what);
  assert.match(err.message, /over the frame limit of 4096 bytes/, what);
  assert.match(err.message, /not sent, so it was not applied/, what);
  assert.ok(err.cause instanceof FrameTooLargeError, `${what}: cause ${err.cause}`);
}

/** A simulated network whose frames are at most {@linkcode LIMIT} bytes. */
function smallFrames(seed: number) {
  const clock = new VirtualClock();
  const net = new SimNetwork({
    clock,
    random: new Random(seed),
    codec: new Codec({ maxMessageBytes: LIMIT }),
  });
  return { clock, net };
}

Deno.test("not sent: the TCP client says so for a request it could not encode", async () => {
  const server = countingServer(["Svc"]);
  const tcp = serveTcp(server.rpc, { maxFrameBytes: LIMIT });
  const client = new TcpClient(tcp.address, { maxFrameBytes: LIMIT });
  try {
    // Before any connection, and on an open one.
    assertUnsent(await client.call("Svc.Say", BIG).catch((e) => e), FrameTooLargeError, "first");
    assert.equal(await client.call("Svc.Say", "small"), "small");
    const big = await rejectsWith(client.call("Svc.Say", BIG), FrameTooLargeError);
    assertUnsent(big, FrameTooLargeError, "on an open connection");
    assert.match(big.message, /the request for Svc\.Say is \d+ bytes, over the frame limit/);
    assertUnsent(
      await client.call("Svc.Say", { f: () => 1 }).catch((e) => e),
      CodecError,
      "a function",
    );
    assert.equal(server.calls(), 0);
    // The connection is still good.
    assert.equal(await client.call("Svc.Say", "again"), "again");
  } finally {
    await client.close();
    await tcp.close();
  }
});

Deno.test("not sent: the simulated network says so for a request it could not encode", async () => {
  const { clock, net } = smallFrames(41);
  const server = countingServer(["Svc"]);
  net.addServer("s", server.rpc);
  const end = net.makeEnd("c");
  net.connect("c", "s");
  net.enable("c", true);
  await clock.run(async () => {
    assertUnsent(await end.call("Svc.Say", BIG).catch((e) => e), FrameTooLargeError, "too big");
    assertUnsent(
      await end.call("Svc.Say", { f: Symbol("x") }).catch((e) => e),
      CodecError,
      "a symbol",
    );
    assert.equal(await end.call("Svc.Say", "small"), "small");
  });
  assert.equal(net.count("s"), 1);
  net.close();
});

Deno.test("not sent: a ReplicaClient write too large to send is refused, not 'may have applied'", async () => {
  // Simulated.
  const { clock, net } = smallFrames(42);
  const sim = countingServer(["Tickets"]);
  for (const name of ["a", "b", "c"]) net.addServer(name, sim.rpc);
  const client = new ReplicaClient(net.transportFor("client"), ["a", "b", "c"], {
    clock,
    random: new Random(42),
    id: "c1",
    deadlineMs: 3000,
  });
  const err = await clock.run(() => client.submit("Tickets.Take", { op: BIG }).catch((e) => e));
  assertRefusedUnsent(err, "Tickets", "simulated");
  assert.equal(sim.calls(), 0);
  net.close();
  // Over TCP.
  const server = countingServer(["Tickets"]);
  const tcp = serveTcp(server.rpc);
  const transport = new TcpTransport({ peers: { a: tcp.address }, maxFrameBytes: LIMIT });
  try {
    const overTcp = new ReplicaClient(transport, ["a"], { random: new Random(43), id: "c2" });
    assertRefusedUnsent(
      await overTcp.submit("Tickets.Take", { op: BIG }).catch((e) => e),
      "Tickets",
      "over TCP",
    );
    assert.equal(server.calls(), 0);
  } finally {
    await transport.close();
    await tcp.close();
  }
});

Deno.test("not sent: the KV, shard, pb and lock clerks refuse a write too large to send", async () => {
  const { clock, net } = smallFrames(44);
  const transport = net.transportFor("client");
  const options = { clock, random: new Random(44), deadlineMs: 3000 };
  const servers = countingServer(["KV", "ShardKV", "PbKV", "Lock"]);
  for (const name of ["a", "b", "g1", "g2", "p", "bk"]) net.addServer(name, servers.rpc);
  // The shard controller and the view service answer; only the write is too large.
  const ctrler = new RpcServer();
  const config = { num: 1, shards: new Array(10).fill(100), groups: { 100: ["g1", "g2"] } };
  ctrler.addService("Ctrler", { Query: () => ({ status: "ok", config }) });
  net.addServer("ctrler", ctrler);
  const view = new RpcServer();
  view.addService("View", { Get: () => ({ num: 1, primary: "p", backup: "bk" }) });
  net.addServer("vs", view);
  await clock.run(async () => {
    const kv = new KvClerk(transport, ["a", "b"], { ...options, id: "k1" });
    assertRefusedUnsent(await kv.put("k", BIG).catch((e) => e), "kv", "KvClerk.put");
    const shard = new ShardClerk(transport, ["ctrler"], { ...options, id: "s1" });
    assertRefusedUnsent(await shard.append("k", BIG).catch((e) => e), "shard", "ShardClerk");
    const pb = new PrimaryBackupClerk(transport, {
      viewService: "vs",
      clock,
      id: "p1",
      timeoutMs: 3000,
    });
    assertRefusedUnsent(await pb.put("k", BIG).catch((e) => e), "pb", "PrimaryBackupClerk");
  });
  assert.equal(servers.calls(), 0);
  // A lock name is at most 1,024 bytes: frames of 512 bytes refuse one of 1,000.
  const small = new SimNetwork({
    clock,
    random: new Random(45),
    codec: new Codec({ maxMessageBytes: 512 }),
  });
  const locks = countingServer(["Lock"]);
  small.addServer("p", locks.rpc);
  small.addServer("bk", locks.rpc);
  const lock = new LockClerk(small.transportFor("client"), { primary: "p", backup: "bk" }, {
    ...options,
    id: "l1",
  });
  const err = await clock.run(() => lock.lock("n".repeat(1000)).catch((e) => e));
  assert.ok(err instanceof RequestError, String(err));
  assert.equal(mayHaveApplied(err), false, err.message);
  assert.match(err.message, /over the frame limit of 512 bytes.*not sent, so it was not applied/);
  assert.equal(locks.calls(), 0);
  net.close();
  small.close();
});
