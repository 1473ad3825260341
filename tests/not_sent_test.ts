/**
 * "What we answer, we mean" for requests that never left: a transport's
 * failure says `notSent` only when the request was certainly never handed
 * to a connection (TCP) or had no route (the simulated network), and a
 * write whose every attempt was never sent ends as a definite failure
 * (`mayHaveApplied` false), where one that was sent may still have applied.
 *
 * Found with `distkit kv put` / `distkit shard append` against servers that
 * were all down: the TCP client held the call in its reconnect backoff, the
 * caller's deadline cut that wait, and the write was reported as "may or may
 * not have taken effect" though nothing had been sent.
 */
import assert from "node:assert/strict";
import { connectKv } from "../kv/mod.ts";
import {
  AbortedError,
  ClosedError,
  neverSent,
  RefusedError,
  RpcError,
  RpcServer,
  serveTcp,
  simulate,
  TcpClient,
  TcpTransport,
  TimeoutError,
  UnreachableError,
} from "../net/mod.ts";
import { Random } from "../net/random.ts";
import {
  mayHaveApplied,
  ReplicaClient,
  RequestAbortedError,
  RequestTimeoutError,
} from "../rsm/mod.ts";
import { LockClerk, PrimaryBackupClerk } from "../pb/mod.ts";
import { ShardClerk } from "../shard/mod.ts";
import { rejectsWith, waitFor } from "./tcp_helpers.ts";

// --- helpers -------------------------------------------------------------------------------------

/** A port on 127.0.0.1 where nothing listens (connections are refused). */
function refusedAddress(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return `127.0.0.1:${port}`;
}

/**
 * A listener that accepts connections and never reads or writes: a node
 * that is stopped (or hung). A client's handshake with it never ends, so no
 * request is ever sent to it.
 */
function silentListener(): { address: string; accepted: () => number; close: () => Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    address: `127.0.0.1:${listener.addr.port}`,
    accepted: () => conns.length,
    close: async () => {
      listener.close();
      await accepting;
      for (const conn of conns) conn.close();
    },
  };
}

/** An RPC server whose `Svc.Hang` (and `Tickets.Take`) wait until `release()`. */
function hangingServer() {
  const waiting: (() => void)[] = [];
  const hang = () => new Promise<void>((resolve) => waiting.push(resolve));
  const rpc = new RpcServer();
  rpc.addService("Svc", { Hang: hang, Say: (s: unknown) => s });
  rpc.addService("Tickets", { Take: hang });
  return {
    rpc,
    waiting: () => waiting.length,
    release: () => waiting.splice(0).forEach((resolve) => resolve()),
  };
}

function assertNotSent(err: unknown, expected: boolean, what: string): void {
  assert.ok(err instanceof RpcError, `${what}: expected an RpcError, got ${err}`);
  assert.equal(err.notSent, expected, `${what}: notSent of ${err.name}: ${err.message}`);
  assert.equal(neverSent(err), expected, what);
}

// --- the TCP client ------------------------------------------------------------------------------

Deno.test("not sent: the TCP client says so for a call cut off in its reconnect backoff", async () => {
  // A long backoff: after the first refusal every call here finds the client waiting.
  const client = new TcpClient(refusedAddress(), { backoff: { baseMs: 60_000, maxMs: 60_000 } });
  try {
    const refused = await rejectsWith(client.call("Svc.Say", 1), UnreachableError);
    assert.ok(refused.cause instanceof Deno.errors.ConnectionRefused, `cause: ${refused.cause}`);
    assertNotSent(refused, true, "a refused connection");
    // A call with time to wait waits for the next attempt; the caller's signal cuts it off.
    const controller = new AbortController();
    const waiting = client.call("Svc.Say", 2, { signal: controller.signal, timeoutMs: 120_000 });
    controller.abort(new Error("the caller's deadline"));
    const aborted = await rejectsWith(waiting, AbortedError, (err) => {
      assert.match(err.message, /aborted by the caller before the request was sent/);
    });
    assertNotSent(aborted, true, "cut off in the backoff wait");
    // A call whose deadline ends before the next attempt fails at once.
    const early = await rejectsWith(client.call("Svc.Say", 3, { timeoutMs: 10 }), UnreachableError);
    assertNotSent(early, true, "a deadline before the next attempt");
    // A signal that already fired: nothing is sent.
    const already = await rejectsWith(
      client.call("Svc.Say", 4, { signal: AbortSignal.abort() }),
      AbortedError,
    );
    assertNotSent(already, true, "an aborted signal");
    // Closing the client fails the call waiting in the backoff: it was never sent either.
    const pending = rejectsWith(client.call("Svc.Say", 5, { timeoutMs: 120_000 }), ClosedError);
    await client.close();
    assertNotSent(await pending, true, "closed while waiting");
    assertNotSent(await rejectsWith(client.call("Svc.Say", 6), ClosedError), true, "closed");
  } finally {
    await client.close();
  }
});

Deno.test("not sent: the TCP client says so for a call cut off during the handshake", async () => {
  const silent = silentListener();
  const client = new TcpClient(silent.address, { timeoutMs: 60_000 });
  try {
    const timedOut = await rejectsWith(
      client.call("Svc.Say", 1, { timeoutMs: 100 }),
      TimeoutError,
      (err) => assert.match(err.message, /timed out after 100 ms before the request could be sent/),
    );
    assertNotSent(timedOut, true, "timed out while connecting");
    const controller = new AbortController();
    const call = client.call("Svc.Say", 2, { signal: controller.signal });
    await waitFor(() => silent.accepted() >= 1, "the connection");
    controller.abort(new Error("enough"));
    assertNotSent(await rejectsWith(call, AbortedError), true, "aborted while connecting");
  } finally {
    await client.close();
    await silent.close();
  }
});

Deno.test("not sent: a call cut off after its request was sent may have run", async () => {
  const server = hangingServer();
  const tcp = serveTcp(server.rpc);
  const client = new TcpClient(tcp.address, { backoff: { baseMs: 10, maxMs: 10 } });
  try {
    assert.equal(await client.call("Svc.Say", "warm up"), "warm up");
    // Cut off by the caller's signal while the handler runs.
    const controller = new AbortController();
    const aborted = client.call("Svc.Hang", 1, { signal: controller.signal });
    await waitFor(() => server.waiting() === 1, "the handler to start");
    controller.abort(new Error("enough"));
    assertNotSent(await rejectsWith(aborted, AbortedError), false, "aborted after sending");
    // Timed out while the handler runs.
    const timedOut = await rejectsWith(
      client.call("Svc.Hang", 2, { timeoutMs: 50 }),
      TimeoutError,
      (err) => assert.doesNotMatch(err.message, /before the request/),
    );
    assertNotSent(timedOut, false, "timed out after sending");
    // The client closed while the handler runs.
    const closedCall = rejectsWith(client.call("Svc.Hang", 3), ClosedError);
    await waitFor(() => server.waiting() === 3, "the third handler");
    await client.close();
    assertNotSent(await closedCall, false, "closed after sending");
    // The connection lost while the handler runs.
    const other = new TcpClient(tcp.address, { backoff: { baseMs: 10, maxMs: 10 } });
    const lost = rejectsWith(other.call("Svc.Hang", 4), UnreachableError);
    await waitFor(() => server.waiting() === 4, "the fourth handler");
    other.reconnect("the test cut the connection");
    assertNotSent(await lost, false, "connection lost");
    await other.close();
  } finally {
    server.release();
    await client.close();
    await tcp.close();
  }
});

Deno.test("not sent: a refusal is never sent; an error made without the option may have been", () => {
  assert.equal(new RefusedError("a", "a", "another cluster").notSent, true);
  assert.equal(new UnreachableError("a", "lost").notSent, false);
  assert.equal(new TimeoutError("Svc.Say", 10).notSent, false);
  assert.equal(new AbortedError("Svc.Say", { cause: "x" }).cause, "x");
  assert.equal(neverSent(new Error("boom")), false);
  assert.equal(neverSent(new ClosedError("x", { notSent: true })), true);
});

// --- the simulated network -----------------------------------------------------------------------

Deno.test("not sent: the simulated network says so only for calls it never routed", async () => {
  await simulate(async ({ net, clock }) => {
    const rpc = new RpcServer();
    rpc.addService("Svc", { Hang: () => new Promise(() => {}), Say: (s: unknown) => s });
    net.addServer("s", rpc);
    const end = net.makeEnd("c", { owner: "client" });
    net.connect("c", "s");
    // Disabled: never delivered.
    assertNotSent(await end.call("Svc.Say", 1).catch((e) => e), true, "a disabled end");
    net.enable("c", true);
    assert.equal(await end.call("Svc.Say", 2), 2);
    // Partitioned: never delivered, also when the caller gives up first.
    net.partition(["client"], ["s"]);
    net.setLongDelays(true);
    const outcomes = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => end.call("Svc.Say", i, { timeoutMs: 3500 }).catch((e) => e),
      ),
    );
    assert.ok(outcomes.some((e) => e instanceof TimeoutError), "some time out first");
    assert.ok(outcomes.some((e) => e instanceof UnreachableError), "some fail first");
    outcomes.forEach((e, i) => assertNotSent(e, true, `partitioned call ${i}`));
    const controller = new AbortController();
    clock.setTimer(10, () => controller.abort(new Error("enough")));
    const aborted = await end.call("Svc.Say", 3, { signal: controller.signal }).catch((e) => e);
    assert.ok(aborted instanceof AbortedError, String(aborted));
    assertNotSent(aborted, true, "aborted while partitioned");
    net.heal();
    net.setLongDelays(false);
    // Delivered: a timeout, or a deleted server, may have run the handler.
    assertNotSent(
      await end.call("Svc.Hang", 4, { timeoutMs: 50 }).catch((e) => e),
      false,
      "timeout",
    );
    const killed = end.call("Svc.Hang", 5).catch((e) => e);
    clock.setTimer(10, () => net.deleteServer("s"));
    assertNotSent(await killed, false, "server deleted during the call");
    // Deleted: never delivered.
    assertNotSent(await end.call("Svc.Say", 6).catch((e) => e), true, "no server");
    // A request the network dropped counts as sent: a real client cannot tell.
    net.addServer("s", rpc);
    net.setLinkRule("client", "s", { dropRequests: 1 });
    assertNotSent(await end.call("Svc.Say", 7).catch((e) => e), false, "a dropped request");
    net.close();
    assertNotSent(await end.call("Svc.Say", 8).catch((e) => e), true, "a closed network");
  }, { seed: 31 });
});

// --- clients of replicated services --------------------------------------------------------------

Deno.test("not sent: a write to servers that are all down (simulated) is a definite failure", async () => {
  await simulate(async (sim) => {
    const transport = sim.net.transportFor("client");
    const client = new ReplicaClient(transport, ["a", "b", "c"], {
      clock: sim.clock,
      random: sim.random.fork(),
      id: "c1",
      deadlineMs: 3000,
    });
    const err = await client.submit("Tickets.Take", { op: "take" }).catch((e) => e);
    assert.ok(err instanceof RequestTimeoutError, String(err));
    assert.equal(err.mayHaveApplied, false, err.message);
    assert.doesNotMatch(err.message, /may or may not/);
    // Cut off by the caller's signal instead: as definite.
    const controller = new AbortController();
    sim.clock.setTimer(700, () => controller.abort(new Error("enough")));
    const aborted = await client.submit("Tickets.Take", { op: "take" }, {
      signal: controller.signal,
    }).catch((e) => e);
    assert.ok(aborted instanceof RequestAbortedError, String(aborted));
    assert.equal(aborted.mayHaveApplied, false);
    // One server up whose handler does not answer: the write may be in its log.
    const server = hangingServer();
    sim.net.addServer("a", server.rpc);
    const maybe = await client.submit("Tickets.Take", { op: "take" }).catch((e) => e);
    assert.ok(maybe instanceof RequestTimeoutError, String(maybe));
    assert.equal(maybe.mayHaveApplied, true);
    assert.match(maybe.message, /may or may not have taken effect/);
    server.release();
  }, { seed: 32 });
});

Deno.test("not sent: shard, pb and lock clerks with their servers down fail definitely", async () => {
  await simulate(async (sim) => {
    const transport = sim.net.transportFor("client");
    const options = { clock: sim.clock, random: sim.random.fork(), id: "c1", deadlineMs: 3000 };
    // The controller answers; the group it names is down.
    const ctrler = new RpcServer();
    const config = { num: 1, shards: new Array(10).fill(100), groups: { 100: ["g1", "g2"] } };
    ctrler.addService("Ctrler", {
      Query: () => ({ status: "ok", config }),
    });
    sim.net.addServer("ctrler", ctrler);
    const shard = new ShardClerk(transport, ["ctrler"], options);
    const err = await shard.append("k", "v").catch((e) => e);
    assert.ok(err instanceof RequestTimeoutError, String(err));
    assert.equal(mayHaveApplied(err), false, err.message);
    const pb = new PrimaryBackupClerk(transport, {
      viewService: "vs",
      clock: sim.clock,
      id: "p1",
      timeoutMs: 3000,
    });
    const view = new RpcServer();
    view.addService("View", { Get: () => ({ num: 1, primary: "p", backup: "b" }) });
    sim.net.addServer("vs", view);
    const pbErr = await pb.put("k", "v").catch((e) => e);
    assert.ok(pbErr instanceof RequestTimeoutError, String(pbErr));
    assert.equal(mayHaveApplied(pbErr), false, pbErr.message);
    const lock = new LockClerk(transport, { primary: "p", backup: "b" }, options);
    const lockErr = await lock.lock("printer").catch((e) => e);
    assert.ok(lockErr instanceof RequestTimeoutError, String(lockErr));
    assert.equal(mayHaveApplied(lockErr), false, lockErr.message);
  }, { seed: 33 });
});

Deno.test("not sent: a write over TCP to servers that are all down is a definite failure", async () => {
  const silent = silentListener();
  const down = [refusedAddress(), refusedAddress(), silent.address];
  // As the shard clerk's transport: calls wait out the reconnect backoff.
  const transport = new TcpTransport({
    peers: { a: down[0], b: down[1], c: down[2] },
    timeoutMs: 500,
  });
  const client = new ReplicaClient(transport, ["a", "b", "c"], {
    random: new Random(34),
    id: "c1",
    attemptTimeoutMs: 500,
    deadlineMs: 1500,
  });
  // As `kv put`: connectKv's clients fail fast in their backoff.
  const kv = connectKv(down, { deadlineMs: 1500, attemptTimeoutMs: 500 });
  const server = hangingServer();
  const tcp = serveTcp(server.rpc);
  const up = new TcpTransport({ peers: { a: tcp.address }, timeoutMs: 300 });
  try {
    const err = await client.submit("Tickets.Take", { op: "take" }).catch((e) => e);
    assert.ok(err instanceof RequestTimeoutError, String(err));
    assert.equal(err.mayHaveApplied, false, err.message);
    const kvErr = await kv.clerk.put("k", "v").catch((e) => e);
    assert.ok(kvErr instanceof RequestTimeoutError, String(kvErr));
    assert.equal(kvErr.mayHaveApplied, false, kvErr.message);
    assert.doesNotMatch(kvErr.message, /may or may not/);
    // A server that takes the request and does not answer: it may apply it.
    const sent = new ReplicaClient(up, ["a"], {
      random: new Random(35),
      id: "c2",
      attemptTimeoutMs: 300,
      deadlineMs: 1000,
    });
    const maybe = await sent.submit("Tickets.Take", { op: "take" }).catch((e) => e);
    assert.ok(maybe instanceof RequestTimeoutError, String(maybe));
    assert.equal(maybe.mayHaveApplied, true);
  } finally {
    server.release();
    await transport.close();
    await kv.close();
    await up.close();
    await tcp.close();
    await silent.close();
  }
});
