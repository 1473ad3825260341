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
  VirtualClock,
} from "../net/mod.ts";
import { RequestAbortedError, RequestError } from "../rsm/errors.ts";
import { LockClerk } from "./lock_clerk.ts";
import {
  type LockForwardedOp,
  type LockForwardRequest,
  type LockReply,
  MAX_LOCK_NAME_BYTES,
  parseLockForward,
  parseLockRequest,
  parseLockTransfer,
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
    [{ ...good, seq: 0 }, /seq must be a positive integer/],
    [{ ...good, seq: 1.5 }, /field "seq" must be integer/],
    [{ ...good, name: 5 }, /field "name" must be string/],
    [{ ...good, name: "" }, /name must not be empty/],
    [{ ...good, name: "x".repeat(MAX_LOCK_NAME_BYTES + 1) }, /name is 1025 bytes; the limit/],
    [{ ...good, name: "\ud800" }, /name contains a lone surrogate/],
    [{ ...good, client: "" }, /client id must be 1 to 256 bytes/],
  ];
  for (const [args, message] of bad) {
    assert.throws(() => parseLockRequest(args), (e) => e instanceof ArgumentsError, String(args));
    assert.throws(() => parseLockRequest(args), message);
  }
  const op: LockForwardedOp = { op: "lock", ...good, result: true };
  const fwd = { from: "p", incarnation: "i1" };
  assert.deepEqual(parseLockForward({ ...fwd, batch: 2, ops: [op] }), {
    ...fwd,
    batch: 2,
    ops: [op],
  });
  assert.throws(() => parseLockForward({ ...fwd, batch: 0, ops: [] }), /batch must be at least 1/);
  assert.throws(
    () => parseLockForward({ from: "p", batch: 1, ops: [] }),
    /missing field "incarnation"/,
  );
  assert.throws(
    () => parseLockForward({ ...fwd, incarnation: "", batch: 1, ops: [] }),
    /incarnation must not be empty/,
  );
  assert.throws(
    () => parseLockForward({ ...fwd, batch: 1, ops: [op, { ...op, op: "steal" }] }),
    /ops\[1\]: op must be "lock" or "unlock", got "steal"/,
  );
  assert.throws(
    () => parseLockForward({ ...fwd, batch: 1, ops: [{ ...op, result: "yes" }] }),
    /ops\[0\]: field "result" must be boolean/,
  );
  const session = { client: "c1", seq: 1, digest: 7, result: true };
  const page = { ...fwd, batch: 3, page: 0, last: true, locks: ["a"], sessions: [session] };
  assert.deepEqual(parseLockTransfer({ ...page, extra: 1 }), page);
  const badPages: [unknown, RegExp][] = [
    [{ ...page, page: -1 }, /page must be at least 0/],
    [{ ...page, last: 1 }, /field "last" must be boolean/],
    [{ ...page, locks: ["a", ""] }, /locks\[1\]: name must not be empty/],
    [
      { ...page, sessions: [{ ...session, seq: 0 }] },
      /sessions\[0\]: seq must be a positive integer/,
    ],
    [{ ...page, sessions: [{ ...session, digest: 2 ** 32 }] }, /sessions\[0\]: digest must be/],
    [{ ...page, sessions: [{ ...session, client: 5 }] }, /sessions\[0\]: field "client"/],
    [{ ...page, incarnation: "x".repeat(65) }, /incarnation is 65 bytes/],
  ];
  for (const [args, message] of badPages) {
    assert.throws(() => parseLockTransfer(args), (e) => e instanceof ArgumentsError);
    assert.throws(() => parseLockTransfer(args), message);
  }
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

Deno.test("lock table: a snapshot loaded in pieces is the same table, and stays apart from it", () => {
  const table = new LockTable();
  for (let i = 1; i <= 5; i++) {
    table.apply({ op: "lock", client: `c${i}`, seq: i, name: `n${i % 3}` });
  }
  const snapshot = table.snapshot();
  assert.deepEqual(snapshot.locks.sort(), ["n0", "n1", "n2"]);
  assert.deepEqual(snapshot.sessions.map((s) => s.client), ["c1", "c2", "c3", "c4", "c5"]);
  table.apply({ op: "unlock", client: "c1", seq: 9, name: "n1" });
  assert.equal(snapshot.locks.length, 3, "the snapshot changed with the table");
  const copy = new LockTable();
  copy.load({ locks: snapshot.locks.slice(0, 2), sessions: [] });
  copy.load({ locks: snapshot.locks.slice(2), sessions: snapshot.sessions.slice(0, 3) });
  copy.load({ locks: [], sessions: snapshot.sessions.slice(3) });
  assert.deepEqual(copy.held(), ["n0", "n1", "n2"]);
  assert.equal(copy.sessions, 5);
  // Retries are answered with the first answers, which the copy did not compute.
  assert.deepEqual(copy.apply({ op: "lock", client: "c4", seq: 4, name: "n1" }), {
    kind: "done",
    result: false,
  });
  assert.deepEqual(copy.apply({ op: "lock", client: "c4", seq: 3, name: "n1" }), { kind: "stale" });
});

Deno.test("lock table: sessions idle for sessionIdleMs are forgotten; any request keeps one", async () => {
  await simulate(async ({ clock }) => {
    const table = new LockTable({ clock, sessionIdleMs: 1000 });
    const lock = { op: "lock", client: "live", seq: 1, name: "a" } as const;
    assert.equal(table.apply(lock).kind, "applied");
    table.install({ op: "lock", client: "idle", seq: 1, name: "b", result: true });
    table.apply({ op: "unlock", client: "gone", seq: 4, name: "z" });
    assert.equal(table.sessions, 3);
    await delay(600, { clock });
    // A retry (or a stale or conflicting request) shows the clerk is alive.
    assert.equal(table.apply(lock).kind, "done");
    await delay(600, { clock });
    assert.equal(table.sessions, 1, "idle sessions were kept");
    assert.equal(table.apply(lock).kind, "done", "a live session was forgotten");
    // The next request of a forgotten session is new, and applied.
    assert.deepEqual(table.apply({ op: "lock", client: "idle", seq: 2, name: "b" }), {
      kind: "applied",
      result: false,
    });
    assert.deepEqual(table.held(), ["a", "b"], "forgetting sessions changed the locks");
    await delay(1001, { clock });
    assert.equal(table.sessions, 0);
    assert.throws(() => new LockTable({ sessionIdleMs: 0 }), /sessionIdleMs must be a positive/);
  }, { seed: 1 });
});

// --- the server on the simulated network -------------------------------------------

interface Pair {
  p: LockServer;
  b: LockServer;
}

/** Starts server `id` ("p" or "b") of a pair on the simulated network. */
function startServer(
  sim: Simulation,
  id: string,
  options: Partial<LockServerOptions> = {},
  server = new RpcServer(),
): LockServer {
  return new LockServer({
    id,
    primary: "p",
    backup: "b",
    transport: sim.net.transportFor(id),
    server,
    clock: sim.clock,
    random: sim.random.fork(),
    incarnation: sim.newId(),
    ...options,
  });
}

/**
 * A primary "p" and a backup "b" on the simulated network, both reachable
 * before either starts, so the primary's first transfer finds the backup.
 */
function startPair(sim: Simulation, options: Partial<LockServerOptions> = {}): Pair {
  const rpc = { p: new RpcServer(), b: new RpcServer() };
  sim.net.addServer("p", rpc.p);
  sim.net.addServer("b", rpc.b);
  return { b: startServer(sim, "b", options, rpc.b), p: startServer(sim, "p", options, rpc.p) };
}

/** Stops a server like a crash: no more calls reach it, and it sends none. */
function kill(sim: Simulation, server: LockServer): Promise<void> {
  sim.net.deleteServer(server.id);
  return server.stop();
}

/** Kills `server` and starts a new incarnation of it, empty, under the same name. */
async function restart(
  sim: Simulation,
  server: LockServer,
  options: Partial<LockServerOptions> = {},
): Promise<LockServer> {
  await kill(sim, server);
  const rpc = new RpcServer();
  sim.net.addServer(server.id, rpc);
  return startServer(sim, server.id, options, rpc);
}

/** Waits until `condition` holds, checking every virtual millisecond; fails after `timeoutMs`. */
async function until(sim: Simulation, condition: () => boolean, what: string, timeoutMs = 5000) {
  const deadline = sim.clock.now() + timeoutMs;
  while (!condition()) {
    assert.ok(sim.clock.now() < deadline, `timed out waiting for ${what}`);
    await delay(1, { clock: sim.clock });
  }
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

Deno.test("lock server: a backup serves no one until it has a primary's state, taken in pages", async () => {
  await simulate(async (sim) => {
    // Only the backup: the test plays the primary, incarnation "i1".
    const rpc = new RpcServer();
    sim.net.addServer("b", rpc);
    const b = startServer(sim, "b", {}, rpc);
    const toB = sim.net.transportFor("p").connect("b");
    const op = (seq: number, name: string) => ({
      op: "lock" as const,
      client: "c1",
      seq,
      name,
      result: true,
    });
    const forward = (batch: number, incarnation = "i1", from = "p") =>
      toB.call("Lock.Forward", { from, incarnation, batch, ops: [op(batch + 10, `n${batch}`)] });
    const page = (batch: number, n: number, last: boolean, locks: string[], incarnation = "i1") =>
      toB.call("Lock.Transfer", {
        from: "p",
        incarnation,
        batch,
        page: n,
        last,
        locks,
        sessions: n === 0 ? [{ client: "c1", seq: 1, digest: 1, result: true }] : [],
      });
    const BEHIND = { status: "behind", reason: /./ };
    const expect = (reply: unknown, want: { status: string; reason?: RegExp }) => {
      const r = reply as { status: string; reason?: string };
      assert.equal(r.status, want.status, JSON.stringify(r));
      if (want.reason) assert.match(r.reason!, want.reason);
    };
    assert.equal(b.role, "joining");
    // Started with nothing: a forward cannot be applied, a client is sent away.
    expect(await forward(5), { status: "behind", reason: /does not have the primary's state/ });
    const client = sim.net.transportFor("c9").connect("b");
    const away = await lockCall(client, { client: "c9", seq: 1, name: "n0" });
    assert.equal(away.status, "not-primary");
    assert.match((away as { reason: string }).reason, /does not have the primary's state yet/);
    assert.equal(b.role, "joining", "a backup without the state took over");
    // A transfer out of order is sent back to its start.
    expect(await page(4, 1, true, ["x"]), BEHIND);
    expect(await page(4, 0, false, ["a", "b"]), { status: "ok" });
    expect(await page(4, 0, false, ["a", "b"]), { status: "ok" }); // a retry
    expect(await page(4, 2, true, ["c"]), BEHIND);
    assert.equal(b.role, "joining");
    expect(await page(4, 1, true, ["c"]), { status: "ok" });
    assert.equal(b.role, "backup");
    expect(await page(4, 1, true, ["c"]), { status: "ok" }); // the last page's retry
    assert.deepEqual(b.held(), ["a", "b", "c"]);
    assert.equal(b.status().sessions, 1);
    assert.equal(b.status().transfers, 1);
    // Forwards follow on from the transfer's number: a retry is not applied twice.
    expect(await forward(5), { status: "ok" });
    expect(await forward(5), { status: "ok" });
    expect(await forward(4), { status: "ok" });
    assert.equal(b.status().installed, 1);
    expect(await forward(7), { status: "behind", reason: /batch 7 follows batch 5/ });
    // Another incarnation of the primary (it restarted, with nothing) is refused.
    expect(await forward(6, "i2"), { status: "refused", reason: /another run of the primary/ });
    expect(await page(1, 0, true, [], "i2"), { status: "refused", reason: /another run/ });
    await assert.rejects(
      forward(6, "i1", "mallory"),
      (e) =>
        e instanceof BadArgumentsError &&
        /come from the primary "p", not "mallory"/.test(e.message),
    );
    expect(await forward(6), { status: "ok" });
    assert.deepEqual(b.held(), ["a", "b", "c", "n5", "n6"]);
    assert.equal(b.role, "backup");
    // A new transfer of the same primary replaces the state; until its last page the old
    // one is stale (the primary sends one only to a backup behind): no takeover meanwhile.
    expect(await page(7, 0, false, ["z"]), { status: "ok" });
    assert.equal(b.role, "joining");
    expect(await forward(8), BEHIND);
    expect(await page(7, 1, true, []), { status: "ok" });
    assert.deepEqual(b.held(), ["z"]);
    assert.equal(b.status().transfers, 2);
    // A client now makes it take over; the primary is then refused.
    assert.deepEqual(await lockCall(client, { client: "c9", seq: 2, name: "z" }), OK_FALSE);
    assert.equal(b.role, "alone");
    expect(await forward(8), { status: "refused", reason: /serves clients itself/ });
    await b.stop();
  }, { seed: 4 });
});

Deno.test("lock server: bad input gets BadArgumentsError and the server keeps serving", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim);
    const toP = sim.net.transportFor("c1").connect("p");
    const toB = sim.net.transportFor("c1").connect("b");
    const fwd = { from: "p", incarnation: p.incarnation };
    await until(sim, () => b.role === "backup", "the first transfer");
    const bad: [ClientEnd, string, unknown, RegExp][] = [
      [toP, "Lock.Lock", { client: "c1", seq: 1, name: 5 }, /field "name" must be string/],
      [toP, "Lock.Unlock", undefined, /arguments must be an object/],
      [toP, "Lock.Forward", { ...fwd, batch: "1", ops: [] }, /field "batch" must be integer/],
      [toB, "Lock.Lock", ["c1", 1, "a"], /arguments must be an object, got an array/],
      [toB, "Lock.Forward", { ...fwd, batch: 1, ops: [7] }, /ops\[0\]: arguments must be/],
      [toB, "Lock.Transfer", { ...fwd, batch: 1, page: 0 }, /missing field "last"/],
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

Deno.test("lock server: an operation applied just as a forward is acknowledged is forwarded too", async () => {
  // The backup is a hand-driven fake: each call waits until the test answers it. The
  // second request comes in 0 to 40 microtasks after the first one's forward is
  // acknowledged, so whatever the loop does in those steps, the request lands in it.
  const stuckAt: number[] = [];
  for (let depth = 0; depth <= 40; depth++) {
    const calls: { method: string; args: LockForwardRequest; answer: (r: unknown) => void }[] = [];
    const end = {
      peer: "b",
      call: (method: string, args: LockForwardRequest, options?: { signal?: AbortSignal }) =>
        new Promise((answer, fail) => {
          calls.push({ method, args, answer });
          options?.signal?.addEventListener("abort", () => fail(options.signal!.reason));
        }),
    } as unknown as ClientEnd;
    const rpc = new RpcServer();
    const p = new LockServer({
      id: "p",
      primary: "p",
      backup: "b",
      transport: { connect: () => end },
      server: rpc,
      clock: new VirtualClock(),
    });
    const carries = (c: (typeof calls)[number], client: string) =>
      c.method === "Lock.Forward" && c.args.ops.some((op) => op.client === client);
    let answered = 0;
    const request = (client: string, name: string) =>
      rpc.dispatch("Lock.Lock", { client, seq: 1, name }).then(() => answered++);
    const first = request("c1", "a");
    let second: Promise<unknown> | undefined;
    for (let turn = 0; turn < 10 && answered < 2; turn++) {
      await new Promise((r) => setTimeout(r, 0));
      for (const call of calls.splice(0)) {
        call.answer({ status: "ok" });
        if (second === undefined && carries(call, "c1")) {
          const nest = (n: number): unknown =>
            n === 0 ? (second = request("c2", "b")) : queueMicrotask(() => nest(n - 1));
          nest(depth);
        }
      }
    }
    await first;
    assert.ok(second !== undefined, "the first request was never forwarded");
    if (answered < 2) stuckAt.push(depth);
    await p.stop();
  }
  assert.deepEqual(stuckAt, [], "requests never forwarded, by microtask depth");
});

Deno.test("lock server: a restarted backup answers behind; the primary sends it the state and is not deposed", async () => {
  await simulate(async (sim) => {
    let { p, b } = startPair(sim);
    const toP = sim.net.transportFor("c1").connect("p");
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    b = await restart(sim, b);
    assert.equal(b.role, "joining");
    // The next forward finds it behind: the state goes over first, this operation in it.
    assert.deepEqual(await lockCall(toP, { client: "c2", seq: 1, name: "b" }), OK_TRUE);
    assert.equal(p.role, "primary");
    assert.equal(b.role, "backup");
    assert.deepEqual(b.held(), ["a", "b"]);
    assert.equal(p.status().transfers, 2, "the first at start, the second for the restart");
    // The sessions came too: a retry at the backup gets its first answer.
    await kill(sim, p);
    const toB = sim.net.transportFor("c1").connect("b");
    assert.deepEqual(await lockCall(toB, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    assert.deepEqual(await lockCall(toB, { client: "c3", seq: 1, name: "a" }), OK_FALSE);
    assert.equal(b.status().retries, 1);
    p = b; // the survivor
    assert.equal(p.role, "alone");
  }, { seed: 21 });
});

Deno.test("lock server: a restarted primary is refused by the backup, which keeps the locks", async () => {
  await simulate(async (sim) => {
    let { p, b } = startPair(sim);
    const client = (id: string) => sim.net.transportFor(id);
    assert.deepEqual(
      await lockCall(client("c1").connect("p"), { client: "c1", seq: 1, name: "a" }),
      OK_TRUE,
    );
    const old = p.incarnation;
    p = await restart(sim, p);
    assert.notEqual(p.incarnation, old);
    // Its first transfer (its empty state) is refused: it answers no client.
    await until(sim, () => p.role === "deposed", "the restarted primary to be deposed");
    const reply = await lockCall(client("c2").connect("p"), { client: "c2", seq: 1, name: "a" });
    assert.equal(reply.status, "not-primary");
    assert.deepEqual(b.held(), ["a"]);
    assert.equal(b.role, "backup");
    assert.deepEqual(
      await lockCall(client("c2").connect("b"), { client: "c2", seq: 1, name: "a" }),
      OK_FALSE,
    );
    assert.equal(b.role, "alone");
  }, { seed: 22 });
});

Deno.test("lock server: an idle primary finds a restarted backup by its empty forwards", async () => {
  await simulate(async (sim) => {
    let { p, b } = startPair(sim, { probeIntervalMs: 200 });
    const toP = sim.net.transportFor("c1").connect("p");
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    b = await restart(sim, b, { probeIntervalMs: 200 });
    const restartedAt = sim.clock.now();
    // No client comes, yet within a probe interval (and a round trip) it has the state.
    await until(sim, () => b.role === "backup", "the restarted backup to get the state");
    assert.ok(sim.clock.now() - restartedAt <= 300, `${sim.clock.now() - restartedAt} ms`);
    assert.deepEqual(b.held(), ["a"]);
    assert.equal(p.role, "primary");
  }, { seed: 23 });
});

Deno.test("lock server: a primary alone checks for its backup, and makes the pair whole again", async () => {
  await simulate(async (sim) => {
    const { p, b } = startPair(sim, { forwardTimeoutMs: 100, probeIntervalMs: 500 });
    const toP = sim.net.transportFor("c1").connect("p");
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 1, name: "a" }), OK_TRUE);
    // The backup cannot be reached for a while: the primary serves alone.
    sim.net.setLinkRule("p", "b", { dropRequests: 1 });
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 2, name: "b" }), OK_TRUE);
    assert.equal(p.role, "alone");
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 3, name: "c" }), OK_TRUE);
    assert.deepEqual(b.held(), ["a"]);
    await delay(2000, { clock: sim.clock });
    assert.equal(p.role, "alone");
    assert.equal(p.status().backupReady, false);
    const healed = sim.clock.now();
    sim.net.setLinkRule("p", "b", undefined);
    await until(sim, () => p.status().backupReady && b.role === "backup", "the pair to be whole");
    assert.ok(sim.clock.now() - healed <= 700, "it waited more than a probe interval");
    assert.deepEqual(b.held(), ["a", "b", "c"]);
    // Whole again: forwards go on, and the backup can take over with everything.
    assert.deepEqual(await lockCall(toP, { client: "c1", seq: 4, name: "d" }), OK_TRUE);
    assert.ok(b.isHeld("d"));
    await kill(sim, p);
    const toB = sim.net.transportFor("c2").connect("b");
    assert.deepEqual(await lockCall(toB, { client: "c2", seq: 1, name: "b" }), OK_FALSE);
  }, { seed: 24 });
});

Deno.test("lock server: the state goes in pages taken at one instant; operations meanwhile follow", async () => {
  await simulate(async (sim) => {
    sim.net.setLatency([1, 3]);
    let { p, b } = startPair(sim, { maxBatchOps: 3 });
    const toP = (c: string) => sim.net.transportFor(c).connect("p");
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(
        await lockCall(toP(`c${i}`), { client: `c${i}`, seq: 1, name: `n${i}` }),
        OK_TRUE,
      );
    }
    b = await restart(sim, b, { maxBatchOps: 3 });
    // 10 locks and 10 sessions or more: 7 pages or more. Requests keep coming meanwhile,
    // and each is answered only once the backup has it.
    const early: string[] = [];
    const during: Promise<LockReply>[] = [];
    for (let i = 0; i < 6; i++) {
      const name = i % 2 ? `n${i}` : `m${i}`;
      during.push(
        lockCall(toP(`d${i}`), { client: `d${i}`, seq: 1, name }).then((reply) => {
          if (b.role !== "backup" || !b.isHeld(name)) early.push(name);
          return reply;
        }),
      );
      await delay(4, { clock: sim.clock });
    }
    const replies = await Promise.all(during);
    assert.deepEqual(early, [], "answered before the backup had them");
    assert.deepEqual(replies, [OK_TRUE, OK_FALSE, OK_TRUE, OK_FALSE, OK_TRUE, OK_FALSE]);
    assert.ok(sim.net.count("b") >= 7 + 1, `${sim.net.count("b")} calls`);
    assert.equal(b.status().transfers, 1);
    assert.ok(b.status().installed > 0, "nothing came after the transfer as forwards");
    assert.deepEqual(b.held(), p.held());
    assert.equal(b.status().sessions, 16);
    assert.equal(p.role, "primary");
  }, { seed: 25 });
});

Deno.test("lock server: a backup that restarts during a transfer is sent the state from the start", async () => {
  await simulate(async (sim) => {
    sim.net.setLatency([1, 3]);
    let { p, b } = startPair(sim, { maxBatchOps: 2 });
    const toP = (c: string) => sim.net.transportFor(c).connect("p");
    for (let i = 0; i < 8; i++) {
      assert.deepEqual(
        await lockCall(toP(`c${i}`), { client: `c${i}`, seq: 1, name: `n${i}` }),
        OK_TRUE,
      );
    }
    b = await restart(sim, b, { maxBatchOps: 2 });
    const pending = lockCall(toP("d"), { client: "d", seq: 1, name: "x" });
    // Wait until part of the state is over, then restart it again.
    await until(sim, () => sim.net.count("b") >= 3, "the transfer to begin");
    assert.equal(b.role, "joining");
    b = await restart(sim, b, { maxBatchOps: 2 });
    assert.deepEqual(await pending, OK_TRUE);
    assert.equal(b.role, "backup");
    assert.deepEqual(b.held(), p.held());
    assert.equal(p.role, "primary");
  }, { seed: 26 });
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
    await assert.rejects(clerk.lock(""), RequestError);
    await assert.rejects(
      clerk.unlock("x".repeat(2000)),
      /lock: request refused: name is 2000 bytes/,
    );
    assert.equal(sim.net.totalCalls, calls);
    assert.equal(await clerk.lock("fine"), true);
  }, { seed: 11 });
});

Deno.test("lock clerk: two clerks with one id get a RequestError, not a wrong answer", async () => {
  await simulate(async (sim) => {
    startPair(sim);
    const one = clerkOf(sim, "same");
    const two = new LockClerk(sim.net.transportFor("other"), { primary: "p", backup: "b" }, {
      id: "same",
      clock: sim.clock,
      random: sim.random.fork(),
    });
    assert.equal(await one.lock("a"), true);
    await assert.rejects(two.unlock("a"), /two clerks use one id/);
    assert.throws(() => clerkOf(sim, "bad#id"), RangeError);
  }, { seed: 12 });
});

Deno.test("lock clerk: the signal gives up with RequestAbortedError, saying whether it was sent", async () => {
  await simulate(async (sim) => {
    // No server at all: every attempt fails unsent, and the clerk keeps trying.
    const clerk = clerkOf(sim, "c1");
    const controller = new AbortController();
    sim.clock.setTimer(500, () => controller.abort(new Error("enough")));
    const err = await clerk.lock("a", { signal: controller.signal }).catch((e) => e);
    assert.ok(err instanceof RequestAbortedError, String(err));
    assert.equal(err.mayHaveApplied, false, "nothing was ever sent");
    assert.match(err.message, /lock of "a" abandoned/);
    assert.equal(sim.clock.now(), 500);
    const before = await clerk.unlock("a", { signal: AbortSignal.abort() }).catch((e) => e);
    assert.ok(before instanceof RequestAbortedError);
    assert.equal(before.mayHaveApplied, false);
    // A primary that takes the request and does not answer: it may have run.
    const rpc = new RpcServer();
    rpc.addService("Lock", { Lock: () => new Promise(() => {}) });
    sim.net.addServer("p", rpc);
    const sent = new AbortController();
    sim.clock.setTimer(500, () => sent.abort(new Error("enough")));
    const maybe = await clerk.lock("a", { signal: sent.signal }).catch((e) => e);
    assert.ok(maybe instanceof RequestAbortedError, String(maybe));
    assert.equal(maybe.mayHaveApplied, true);
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
