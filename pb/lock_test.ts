import assert from "node:assert/strict";
import {
  ArgumentsError,
  BadArgumentsError,
  type ClientEnd,
  delay,
  RpcServer,
  serveTcp,
  simulate,
  type Simulation,
  TcpTransport,
  UnknownServiceError,
} from "../net/mod.ts";
import { LockAbortedError, LockRequestError } from "./lock_errors.ts";
import { LockClerk } from "./lock_clerk.ts";
import {
  type LockForwardedOp,
  type LockReply,
  MAX_LOCK_NAME_BYTES,
  parseLockForward,
  parseLockRequest,
} from "./lock_protocol.ts";
import { LockServer, type LockServerOptions, type LockServerStatus } from "./lock_server.ts";
import { LockTable } from "./lock_table.ts";

// --- protocol and table ----------------------------------------------------------

Deno.test("lock protocol: requests and forwards are checked field by field", () => {
  const good = { client: "c1", seq: 1, name: "printer" };
  assert.deepEqual(parseLockRequest({ ...good, extra: 1 }), good);
  const bad: [unknown, RegExp][] = [
    [null, /arguments must be an object/],
    [{ seq: 1, name: "a" }, /missing field "client"/],
    [{ ...good, seq: 0 }, /seq must be at least 1/],
    [{ ...good, seq: 1.5 }, /field "seq" must be integer/],
    [{ ...good, name: 5 }, /field "name" must be string/],
    [{ ...good, name: "" }, /name must not be empty/],
    [{ ...good, name: "x".repeat(MAX_LOCK_NAME_BYTES + 1) }, /name is 1025 bytes; the limit/],
    [{ ...good, name: "\ud800" }, /name contains a lone surrogate/],
    [{ ...good, client: "" }, /client must not be empty/],
  ];
  for (const [args, message] of bad) {
    assert.throws(() => parseLockRequest(args), (e) => e instanceof ArgumentsError, String(args));
    assert.throws(() => parseLockRequest(args), message);
  }
  const op: LockForwardedOp = { op: "lock", ...good, result: true };
  assert.deepEqual(parseLockForward({ from: "p", batch: 2, ops: [op] }), {
    from: "p",
    batch: 2,
    ops: [op],
  });
  assert.throws(
    () => parseLockForward({ from: "p", batch: 0, ops: [] }),
    /batch must be at least 1/,
  );
  assert.throws(
    () => parseLockForward({ from: "p", batch: 1, ops: [op, { ...op, op: "steal" }] }),
    /ops\[1\]: op must be "lock" or "unlock", got "steal"/,
  );
  assert.throws(
    () => parseLockForward({ from: "p", batch: 1, ops: [{ ...op, result: "yes" }] }),
    /ops\[0\]: field "result" must be boolean/,
  );
});

Deno.test("lock table: lock and unlock answer whether they changed anything", () => {
  const table = new LockTable();
  let seq = 0;
  const run = (op: "lock" | "unlock", name: string) => {
    const outcome = table.apply({ op, client: "c", seq: ++seq, name });
    assert.equal(outcome.kind, "applied");
    return outcome.kind === "applied" && outcome.result;
  };
  assert.equal(run("lock", "a"), true);
  assert.equal(run("lock", "a"), false);
  assert.equal(run("unlock", "b"), false);
  assert.equal(run("lock", "b"), true);
  assert.equal(run("unlock", "a"), true);
  assert.equal(run("unlock", "a"), false);
  assert.deepEqual(table.held(), ["b"]);
  assert.equal(table.size, 1);
  assert.equal(table.sessions, 1);
});

Deno.test("lock table: a retry gets its first answer; stale and conflicting numbers are told apart", () => {
  const table = new LockTable();
  const lock = { op: "lock", client: "c1", seq: 1, name: "a" } as const;
  assert.deepEqual(table.apply(lock), { kind: "applied", result: true });
  // Running it again would say false: the table answers the first result.
  assert.deepEqual(table.apply(lock), { kind: "done", result: true });
  assert.deepEqual(table.apply({ ...lock, op: "unlock" }), { kind: "conflict" });
  assert.deepEqual(table.apply({ ...lock, name: "b" }), { kind: "conflict" });
  assert.deepEqual(table.apply({ ...lock, seq: 2, op: "unlock" }), {
    kind: "applied",
    result: true,
  });
  assert.deepEqual(table.apply(lock), { kind: "stale" });
  assert.deepEqual(table.held(), []);
});

Deno.test("lock table: install follows the primary's results and answers retries with them", () => {
  const table = new LockTable();
  const op = { client: "c1", name: "a" };
  table.install({ op: "lock", ...op, seq: 1, result: true });
  assert.ok(table.isHeld("a"));
  table.install({ op: "unlock", ...op, seq: 2, result: false });
  assert.ok(table.isHeld("a"), "a failed unlock changes nothing");
  assert.deepEqual(table.apply({ op: "unlock", ...op, seq: 2 }), { kind: "done", result: false });
  table.install({ op: "unlock", client: "c2", seq: 1, name: "a", result: true });
  assert.ok(!table.isHeld("a"));
  assert.equal(table.sessions, 2);
});

// --- the server on the simulated network -------------------------------------------

interface Pair {
  p: LockServer;
  b: LockServer;
}

/** A primary "p" and a backup "b" on the simulated network. */
function startPair(sim: Simulation, options: Partial<LockServerOptions> = {}): Pair {
  const start = (id: string) => {
    const server = new RpcServer();
    sim.net.addServer(id, server);
    return new LockServer({
      id,
      primary: "p",
      backup: "b",
      transport: sim.net.transportFor(id),
      server,
      clock: sim.clock,
      random: sim.random.fork(),
      ...options,
    });
  };
  return { p: start("p"), b: start("b") };
}

/** Stops a server like a crash: no more calls reach it, and it sends none. */
function kill(sim: Simulation, server: LockServer): Promise<void> {
  sim.net.deleteServer(server.id);
  return server.stop();
}

function lockCall(end: ClientEnd, request: { client: string; seq: number; name: string }) {
  return end.call<LockReply>("Lock.Lock", request);
}

const OK_TRUE: LockReply = { status: "ok", result: true };
const OK_FALSE: LockReply = { status: "ok", result: false };

Deno.test("lock server: the names are checked when it is made", () => {
  const base = { primary: "p", backup: "b", transport: { connect: () => ({}) as ClientEnd } };
  assert.throws(
    () => new LockServer({ ...base, id: "x", server: new RpcServer() }),
    /server "x" is neither the primary \("p"\) nor the backup \("b"\)/,
  );
  assert.throws(
    () => new LockServer({ ...base, id: "p", backup: "p", server: new RpcServer() }),
    /must differ; both are "p"/,
  );
  assert.throws(
    () => new LockServer({ ...base, id: "p", server: new RpcServer(), forwardAttempts: 0 }),
    /forwardAttempts must be a positive integer, got 0/,
  );
});

Deno.test("lock server: the primary answers only once the backup has the operation, retries too", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim);
    const c1 = sim.net.transportFor("c1").connect("p");
    const c2 = sim.net.transportFor("c2").connect("p");
    sim.net.setLinkRule("p", "b", { dropRequests: 1 });
    let answered = 0;
    const count = (r: LockReply) => (answered++, r);
    const request = { client: "c1", seq: 1, name: "a" };
    const first = lockCall(c1, request).then(count);
    const retry = lockCall(c1, request).then(count);
    const other = lockCall(c2, { client: "c2", seq: 1, name: "a" }).then(count);
    // The first forward was lost; the next is due 25 to 50 ms later.
    await delay(10, { clock: sim.clock });
    assert.equal(answered, 0, "the primary answered before the backup had the operation");
    assert.ok(p.isHeld("a") && !b.isHeld("a"));
    sim.net.setLinkRule("p", "b", undefined);
    assert.deepEqual(await first, OK_TRUE);
    assert.deepEqual(await retry, OK_TRUE);
    assert.deepEqual(await other, OK_FALSE);
    assert.ok(b.isHeld("a"));
    const status = p.status();
    assert.equal(status.role, "primary");
    assert.equal(status.forwarded, 2);
    assert.equal(status.retries, 1);
    assert.equal(b.status().installed, 2);
  }, { seed: 1 });
});

Deno.test("lock server: a forward carries at most maxBatchOps operations", async () => {
  await simulate(async (sim) => {
    const { b } = startPair(sim, { maxBatchOps: 2 });
    sim.net.setLinkRule("p", "b", { dropRequests: 1 });
    const end = sim.net.transportFor("c1").connect("p");
    const calls = ["a", "b", "c", "d", "e"].map((name, i) =>
      lockCall(end, { client: `c${i}`, seq: 1, name })
    );
    await delay(10, { clock: sim.clock });
    sim.net.setLinkRule("p", "b", undefined);
    for (const reply of await Promise.all(calls)) assert.deepEqual(reply, OK_TRUE);
    assert.equal(b.status().installed, 5);
    assert.ok(sim.net.count("b") >= 3, `5 operations in ${sim.net.count("b")} forwards`);
  }, { seed: 14 });
});

Deno.test("lock server: forwards carry the sessions, so the backup answers a retry with the first answer", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim);
    const request = { client: "c1", seq: 1, name: "a" };
    assert.deepEqual(await lockCall(sim.net.transportFor("c1").connect("p"), request), OK_TRUE);
    await kill(sim, p);
    const toBackup = sim.net.transportFor("c1").connect("b");
    // Applied again, the lock would fail: it is held.
    assert.deepEqual(await lockCall(toBackup, request), OK_TRUE);
    assert.deepEqual(await lockCall(toBackup, { ...request, client: "c2" }), OK_FALSE);
    assert.equal(b.role, "alone");
    assert.equal(b.status().retries, 1);
  }, { seed: 2 });
});

Deno.test("lock server: once the backup served a client it refuses forwards, and the primary answers no more", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim);
    const toP = sim.net.transportFor("c1").connect("p");
    const toB = sim.net.transportFor("c1").connect("b");
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    assert.equal(b.role, "backup");
    // The client could not reach the primary (in the lab's model: it stopped).
    assert.deepEqual(await lockCall(toB, { client: "c2", seq: 1, name: "b" }), OK_TRUE);
    assert.equal(b.role, "alone");
    const refused = await lockCall(toP, { client: "c3", seq: 1, name: "c" });
    assert.equal(refused.status, "not-primary");
    assert.match((refused as { reason: string }).reason, /p was deposed/);
    assert.equal(p.role, "deposed");
    assert.ok(!b.isHeld("c"), "the backup took a forward after serving a client");
    // Deposed for good, retries of answered requests included.
    const again = await lockCall(toP, { client: "c1", seq: 1, name: "a" });
    assert.equal(again.status, "not-primary");
    assert.deepEqual(b.held(), ["a", "b"]);
  }, { seed: 3 });
});

Deno.test("lock server: a forward batch is installed once; a gap or a stranger is refused", async () => {
  await simulate(async (sim) => {
    const { b } = startPair(sim);
    const forward = (batch: number, from = "p") =>
      sim.net.transportFor(`fwd-${batch}-${from}`).connect("b").call("Lock.Forward", {
        from,
        batch,
        ops: [{ op: "lock", client: "c1", seq: batch, name: `n${batch}`, result: true }],
      });
    assert.deepEqual(await forward(1), { status: "ok" });
    assert.deepEqual(await forward(1), { status: "ok" });
    assert.equal(b.status().installed, 1);
    await assert.rejects(
      forward(3),
      (e) =>
        e instanceof BadArgumentsError && /batch 3 follows batch 1: one is missing/.test(e.message),
    );
    await assert.rejects(
      forward(2, "mallory"),
      (e) =>
        e instanceof BadArgumentsError &&
        /come from the primary "p", not "mallory"/.test(e.message),
    );
    assert.deepEqual(await forward(2), { status: "ok" });
    assert.deepEqual(b.held(), ["n1", "n2"]);
    assert.equal(b.role, "backup");
  }, { seed: 4 });
});

Deno.test("lock server: bad input gets BadArgumentsError and the server keeps serving", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim);
    const toP = sim.net.transportFor("c1").connect("p");
    const toB = sim.net.transportFor("c1").connect("b");
    const bad: [ClientEnd, string, unknown, RegExp][] = [
      [toP, "Lock.Lock", { client: "c1", seq: 1, name: 5 }, /field "name" must be string/],
      [toP, "Lock.Unlock", undefined, /arguments must be an object/],
      [toP, "Lock.Forward", { from: "p", batch: "1", ops: [] }, /field "batch" must be integer/],
      [toB, "Lock.Lock", ["c1", 1, "a"], /arguments must be an object, got an array/],
      [toB, "Lock.Forward", { from: "p", batch: 1, ops: [7] }, /ops\[0\]: arguments must be/],
    ];
    for (const [end, method, args, message] of bad) {
      await assert.rejects(
        end.call(method, args),
        (e) => e instanceof BadArgumentsError && message.test(e.message),
        `${method} ${JSON.stringify(args)}`,
      );
    }
    assert.equal(b.role, "backup", "a malformed request made the backup take over");
    // Asking for the status is no client request either.
    const status = await toB.call<LockServerStatus>("Lock.Status");
    assert.deepEqual(status, b.status());
    assert.equal(status.role, "backup");
    assert.equal(b.status().installed, 0);
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    assert.ok(b.isHeld("a"));
    assert.equal(p.role, "primary");
  }, { seed: 5 });
});

Deno.test("lock server: two clerks sharing a session id are refused, not mixed up", async () => {
  await simulate(async (sim) => {
    startPair(sim);
    const end = sim.net.transportFor("c1").connect("p");
    assert.deepEqual(await lockCall(end, { client: "x", seq: 2, name: "a" }), OK_TRUE);
    const conflict = await end.call<LockReply>("Lock.Unlock", { client: "x", seq: 2, name: "a" });
    assert.equal(conflict.status, "refused");
    assert.match((conflict as { reason: string }).reason, /was a different operation/);
    const stale = await lockCall(end, { client: "x", seq: 1, name: "a" });
    assert.equal(stale.status, "refused");
    assert.match((stale as { reason: string }).reason, /has sent a request after 1/);
  }, { seed: 6 });
});

Deno.test("lock server: when the backup stops, the primary serves alone", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim, { forwardTimeoutMs: 200 });
    const end = sim.net.transportFor("c1").connect("p");
    assert.deepEqual(await lockCall(end, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    await kill(sim, b);
    const start = sim.clock.now();
    assert.deepEqual(await lockCall(end, { client: "c1", seq: 2, name: "a" }), OK_FALSE);
    assert.ok(sim.clock.now() > start, "the primary did not try the backup first");
    assert.equal(p.role, "alone");
    const alone = sim.clock.now();
    assert.deepEqual(await lockCall(end, { client: "c1", seq: 3, name: "b" }), OK_TRUE);
    assert.equal(sim.clock.now(), alone, "alone, the primary still waited for someone");
    assert.deepEqual(p.held(), ["a", "b"]);
  }, { seed: 7 });
});

Deno.test("lock server: a stopped backup is taken for dead, not as a refusal", async () => {
  await simulate(async (sim) => {
    // Stopped but still reachable: its service is gone, so calls fail with UnknownServiceError.
    const { p, b } = startPair(sim);
    await b.stop();
    const toB = sim.net.transportFor("c1").connect("b");
    await assert.rejects(lockCall(toB, { client: "c1", seq: 1, name: "a" }), UnknownServiceError);
    const toP = sim.net.transportFor("c1").connect("p");
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    assert.equal(p.role, "alone");
    assert.equal(b.role, "stopped");
  }, { seed: 8 });
});

Deno.test("lock server: stopping answers the waiting requests not-primary and forwards nothing more", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim, { forwardTimeoutMs: 100 });
    sim.net.setLinkRule("p", "b", { dropRequests: 1 });
    const end = sim.net.transportFor("c1").connect("p");
    const waiting = lockCall(end, { client: "c1", seq: 1, name: "a" });
    await delay(10, { clock: sim.clock });
    const stopAt = sim.clock.now();
    await p.stop();
    assert.equal(sim.clock.now(), stopAt, "stop waited for the forward's retries");
    const reply = await waiting;
    assert.equal(reply.status, "not-primary");
    assert.match((reply as { reason: string }).reason, /p has stopped; ask the other server/);
    sim.net.setLinkRule("p", "b", undefined);
    await delay(1000, { clock: sim.clock });
    assert.equal(b.status().installed, 0, "the stopped primary forwarded");
    assert.equal(p.role, "stopped");
  }, { seed: 9 });
});

// --- the clerk ------------------------------------------------------------------------

function clerkOf(sim: Simulation, id: string, attemptTimeoutMs?: number): LockClerk {
  return new LockClerk(sim.net.transportFor(id), { primary: "p", backup: "b" }, {
    id,
    clock: sim.clock,
    random: sim.random.fork(),
    attemptTimeoutMs,
  });
}

Deno.test("lock clerk: calls the primary, fails over to the backup and stays there", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim);
    const clerk = clerkOf(sim, "c1");
    assert.equal(clerk.server, "p");
    assert.equal(await clerk.lock("a"), true);
    assert.equal(await clerk.lock("a"), false);
    await kill(sim, p);
    assert.equal(await clerk.lock("a"), false);
    assert.equal(await clerk.unlock("a"), true);
    assert.equal(clerk.server, "b");
    assert.equal(b.role, "alone");
    assert.deepEqual(b.held(), []);
  }, { seed: 10 });
});

Deno.test("lock clerk: a bad name is refused before anything is sent", async () => {
  await simulate(async (sim) => {
    startPair(sim);
    const clerk = clerkOf(sim, "c1");
    const calls = sim.net.totalCalls;
    await assert.rejects(clerk.lock(""), LockRequestError);
    await assert.rejects(
      clerk.unlock("x".repeat(2000)),
      /lock request refused: name is 2000 bytes/,
    );
    assert.equal(sim.net.totalCalls, calls);
    assert.equal(await clerk.lock("fine"), true);
  }, { seed: 11 });
});

Deno.test("lock clerk: two clerks with one id get a LockRequestError, not a wrong answer", async () => {
  await simulate(async (sim) => {
    startPair(sim);
    const one = clerkOf(sim, "same");
    const two = new LockClerk(sim.net.transportFor("other"), { primary: "p", backup: "b" }, {
      id: "same",
      clock: sim.clock,
    });
    assert.equal(await one.lock("a"), true);
    await assert.rejects(two.unlock("a"), /two clerks use one id/);
    assert.throws(() => clerkOf(sim, "bad#id"), RangeError);
  }, { seed: 12 });
});

Deno.test("lock clerk: the signal gives up with LockAbortedError, saying whether it was sent", async () => {
  await simulate(async (sim) => {
    // No server at all: every attempt fails, and the clerk keeps trying.
    const clerk = clerkOf(sim, "c1");
    const controller = new AbortController();
    sim.clock.setTimer(500, () => controller.abort(new Error("enough")));
    const err = await clerk.lock("a", { signal: controller.signal }).catch((e) => e);
    assert.ok(err instanceof LockAbortedError, String(err));
    assert.equal(err.mayHaveApplied, true);
    assert.match(err.message, /lock of "a" abandoned/);
    assert.equal(sim.clock.now(), 500);
    const before = await clerk.unlock("a", { signal: AbortSignal.abort() }).catch((e) => e);
    assert.ok(before instanceof LockAbortedError);
    assert.equal(before.mayHaveApplied, false);
  }, { seed: 13 });
});

// --- over TCP ------------------------------------------------------------------------

Deno.test("lock service over TCP: the clerk fails over when the primary's process goes", async () => {
  const rpcs = { p: new RpcServer(), b: new RpcServer() };
  const listeners = { p: serveTcp(rpcs.p), b: serveTcp(rpcs.b) };
  const peers = { p: listeners.p.address, b: listeners.b.address };
  const transports = {
    p: new TcpTransport({ peers, timeoutMs: 2000 }),
    c: new TcpTransport({ peers, timeoutMs: 2000, backoff: { failFast: true } }),
  };
  const servers = {
    p: new LockServer({
      id: "p",
      primary: "p",
      backup: "b",
      transport: transports.p,
      server: rpcs.p,
    }),
    b: new LockServer({
      id: "b",
      primary: "p",
      backup: "b",
      transport: transports.p,
      server: rpcs.b,
    }),
  };
  try {
    const clerk = new LockClerk(transports.c, { primary: "p", backup: "b" });
    assert.equal(await clerk.lock("printer"), true);
    assert.ok(servers.b.isHeld("printer"));
    await listeners.p.close();
    await servers.p.stop();
    assert.equal(await clerk.lock("printer"), false);
    assert.equal(await clerk.unlock("printer"), true);
    assert.equal(clerk.server, "b");
    assert.equal(servers.b.role, "alone");
  } finally {
    await servers.b.stop();
    await transports.p.close();
    await transports.c.close();
    await listeners.p.close();
    await listeners.b.close();
  }
});
