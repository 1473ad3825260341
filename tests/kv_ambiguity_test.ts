/**
 * No false "not applied": every client's refusal of a write either proves
 * the write was never proposed, or says it may have been applied
 * (`mayHaveApplied`). Deterministic: scripted transports in virtual time,
 * and the HTTP API of simulated KV nodes called with `Request`s directly.
 *
 * The path of issue 15 §3: a leader proposes a write, cannot commit it
 * (its followers are down), answers the clerk "retry", steps down, and the
 * clerk's retry in the same session is answered "not the leader". That
 * answer ended the request as if nothing had been proposed (HTTP 503 "no
 * leader is known yet; retry shortly"); the write was then committed when
 * the old leader won again, so a client that retried appended twice.
 */
import assert from "node:assert/strict";
import {
  KvClerk,
  kvHttpHandler,
  KvServer,
  mayHaveApplied,
  OutcomeUnknownError,
  RequestAbortedError,
  RequestError,
  WrongLeaderError,
} from "../kv/mod.ts";
import {
  AbortedError,
  BadArgumentsError,
  type CallOptions,
  deadline,
  delay,
  RefusedError,
  RpcServer,
  simulate,
  type Simulation,
  TimeoutError,
  type Transport,
} from "../net/mod.ts";
import { LockClerk, PrimaryBackupClerk } from "../pb/mod.ts";
import { MemoryStorage } from "../raft/mod.ts";
import { writeDigest } from "../kvstate/state.ts";
import { localWriteDigest } from "../kvstate/local_digest.ts";
import { ShardClerk } from "../shard/mod.ts";

// --- scripted transports -------------------------------------------------------------------------

/** One call a scripted server saw. */
interface Seen {
  peer: string;
  method: string;
  args: unknown;
}

/**
 * A transport whose servers answer from `script` (a reply, or a thrown
 * error); `"hang"` waits until the caller's signal fires.
 */
function scripted(
  script: (call: Seen, n: number) => unknown,
): { transport: Transport; calls: Seen[] } {
  const calls: Seen[] = [];
  const transport: Transport = {
    connect: (peer: string) => ({
      peer,
      call: <T>(method: string, args?: unknown, options: CallOptions = {}) => {
        const call = { peer, method, args };
        calls.push(call);
        let reply: unknown;
        try {
          reply = script(call, calls.filter((c) => c.method === method).length);
        } catch (err) {
          return Promise.reject(err);
        }
        if (reply === "hang") {
          return deadline(new Promise<T>(() => {}), {
            signal: options.signal,
            onAbort: (reason) => new AbortedError(method, { cause: reason }),
          });
        }
        return Promise.resolve(reply as T);
      },
    }),
  };
  return { transport, calls };
}

const RETRY = { status: "retry", reason: "not committed in time" };

function clerkOf(sim: Simulation, transport: Transport, servers: string[], followLeader = true) {
  return new KvClerk(transport, servers, {
    clock: sim.clock,
    random: sim.random.fork(),
    id: "c1",
    followLeader,
  });
}

Deno.test("clerk: a write proposed, then answered not-leader, ends with mayHaveApplied", async () => {
  await simulate(async (sim) => {
    const { transport, calls } = scripted((_, n) =>
      n === 1 ? RETRY : { status: "not-leader", leader: null }
    );
    const clerk = clerkOf(sim, transport, ["a"], false);
    const err = await clerk.append("k", "v").catch((e) => e);
    assert.ok(err instanceof OutcomeUnknownError, `expected OutcomeUnknownError, got ${err}`);
    assert.equal(err.mayHaveApplied, true);
    assert.ok(err.cause instanceof WrongLeaderError);
    assert.match(err.message, /may or may not have taken effect/);
    // Both attempts in one session, under one number: a resend is recognised.
    const sessions = calls.map((c) =>
      JSON.stringify([(c.args as { client: string }).client, (c.args as { seq: number }).seq])
    );
    assert.deepEqual(sessions, [sessions[0], sessions[0]]);
  }, { seed: 1 });
});

Deno.test("clerk: a not-leader answer to a first attempt is a definite refusal", async () => {
  await simulate(async (sim) => {
    const { transport, calls } = scripted(() => ({ status: "not-leader", leader: "b" }));
    const clerk = clerkOf(sim, transport, ["a"], false);
    const err = await clerk.put("k", "v").catch((e) => e);
    assert.ok(err instanceof WrongLeaderError, `expected WrongLeaderError, got ${err}`);
    assert.equal(err.leader, "b");
    assert.equal(mayHaveApplied(err), false);
    assert.equal(calls.length, 1);
    // A read is never ambiguous, whatever came before.
    const reads = scripted((_, n) => n === 1 ? RETRY : { status: "not-leader", leader: null });
    const reader = clerkOf(sim, reads.transport, ["a"], false);
    const readErr = await reader.get("k").catch((e) => e);
    assert.ok(readErr instanceof WrongLeaderError, `expected WrongLeaderError, got ${readErr}`);
  }, { seed: 2 });
});

Deno.test("clerk: every server refusing the connection after a proposal is no refusal", async () => {
  await simulate(async (sim) => {
    const refuse = (peer: string) => new RefusedError(peer, peer, "another cluster");
    // a answers "retry" (it may have proposed it), then both refuse.
    let proposed = false;
    const after = scripted((call) => {
      if (call.peer === "a" && !proposed) {
        proposed = true;
        return RETRY;
      }
      throw refuse(call.peer);
    });
    const err = await clerkOf(sim, after.transport, ["a", "b"]).append("k", "v").catch((e) => e);
    assert.ok(err instanceof OutcomeUnknownError, `expected OutcomeUnknownError, got ${err}`);
    assert.ok(err.cause instanceof RefusedError);
    // Refused from the start: certainly not applied.
    const before = scripted((call) => {
      throw refuse(call.peer);
    });
    const refused = await clerkOf(sim, before.transport, ["a", "b"]).append("k", "v")
      .catch((e) => e);
    assert.ok(refused instanceof RefusedError, `expected RefusedError, got ${refused}`);
    assert.equal(mayHaveApplied(refused), false);
  }, { seed: 3 });
});

Deno.test("clerk: a server's bad-arguments answer after a lost attempt is no refusal", async () => {
  await simulate(async (sim) => {
    const { transport } = scripted((call, n) => {
      if (n === 1) throw new TimeoutError(call.method, 100);
      throw new BadArgumentsError(call.method, "write 1 of session c1 is stale");
    });
    const err = await clerkOf(sim, transport, ["a"]).put("k", "v").catch((e) => e);
    assert.ok(err instanceof OutcomeUnknownError, `expected OutcomeUnknownError, got ${err}`);
    const first = scripted((call) => {
      throw new BadArgumentsError(call.method, "value is too long");
    });
    const refused = await clerkOf(sim, first.transport, ["a"]).put("k", "v").catch((e) => e);
    assert.ok(refused instanceof RequestError, `expected RequestError, got ${refused}`);
  }, { seed: 4 });
});

Deno.test("shard clerk: an abort while asking the controller, after a group may have the write", async () => {
  await simulate(async (sim) => {
    const config = { num: 1, shards: new Array(10).fill(1), groups: { 1: ["g1"] } };
    const { transport, calls } = scripted((call, n) => {
      if (call.method === "Ctrler.Query") return n === 1 ? { status: "ok", config } : "hang";
      return RETRY; // the group may have proposed it
    });
    const clerk = new ShardClerk(transport, ["c1"], {
      clock: sim.clock,
      random: sim.random.fork(),
      id: "s1",
      retryMs: 100,
    });
    const controller = new AbortController();
    sim.clock.setTimer(500, () => controller.abort(new Error("caller gave up")));
    const err = await clerk.append("k", "v", { signal: controller.signal }).catch((e) => e);
    assert.ok(err instanceof RequestAbortedError, `expected RequestAbortedError, got ${err}`);
    assert.equal(err.mayHaveApplied, true, "the group answered retry: the write may be in its log");
    assert.deepEqual(calls.map((c) => c.method), ["Ctrler.Query", "ShardKV.Write", "Ctrler.Query"]);
  }, { seed: 5 });
});

Deno.test("pb clerk: a refusal after an attempt the primary may have applied is no refusal", async () => {
  await simulate(async (sim) => {
    const view = { num: 1, primary: "p", backup: "b" };
    const { transport } = scripted((call, n) => {
      if (call.method === "View.Get") return view;
      if (n === 1) throw new TimeoutError(call.method, 100);
      throw new BadArgumentsError(call.method, "write 1 of session c1 is older than one applied");
    });
    const clerk = new PrimaryBackupClerk(transport, {
      viewService: "vs",
      clock: sim.clock,
      id: "c1",
    });
    const err = await clerk.append("k", "v").catch((e) => e);
    assert.ok(err instanceof OutcomeUnknownError, `expected OutcomeUnknownError, got ${err}`);
    assert.equal(err.mayHaveApplied, true);
  }, { seed: 6 });
});

Deno.test("lock clerk: a refusal after an attempt that may have run is no refusal", async () => {
  await simulate(async (sim) => {
    const { transport } = scripted((call, n) => {
      if (n === 1) throw new TimeoutError(call.method, 100);
      return { status: "refused", reason: "session c1 has sent a request after 1" };
    });
    const options = { clock: sim.clock, random: sim.random.fork(), id: "c1" };
    const clerk = new LockClerk(transport, { primary: "p", backup: "b" }, options);
    const err = await clerk.lock("printer").catch((e) => e);
    assert.ok(
      err instanceof OutcomeUnknownError,
      `expected OutcomeUnknownError, got ${err}`,
    );
    assert.equal(err.mayHaveApplied, true);
    // Refused at once: certainly not applied.
    const first = scripted(() => ({ status: "refused", reason: "two clerks use one id" }));
    const other = new LockClerk(first.transport, { primary: "p", backup: "b" }, options);
    await assert.rejects(other.lock("printer"), RequestError);
  }, { seed: 7 });
});

// --- the HTTP API of simulated nodes -------------------------------------------------------------

const IDS = ["a", "b", "c"];
const ADDRESSES = { a: "a.test:80", b: "b.test:80", c: "c.test:80" };

interface SimNode {
  id: string;
  kv: KvServer;
  storage: MemoryStorage;
  http: (req: Request) => Promise<Response>;
}

async function startNode(sim: Simulation, id: string, storage: MemoryStorage): Promise<SimNode> {
  const rpc = new RpcServer();
  const kv = await KvServer.start({
    id,
    peers: IDS,
    transport: sim.net.transportFor(id),
    server: rpc,
    storage,
    clock: sim.clock,
    random: sim.random.fork(),
  });
  sim.net.addServer(id, rpc);
  const http = kvHttpHandler(kv, rpc, {
    clock: sim.clock,
    random: sim.random.fork(),
    clerkId: sim.newId(),
    addresses: ADDRESSES,
    timeoutMs: 30_000,
  });
  return { id, kv, storage, http };
}

/** Stops a node like a crash; what it had persisted, for its restart. */
async function crash(sim: Simulation, node: SimNode): Promise<MemoryStorage> {
  sim.net.deleteServer(node.id);
  const kept = node.storage.copy();
  await node.kv.stop();
  return kept;
}

async function leaderOf(sim: Simulation, nodes: SimNode[]): Promise<SimNode> {
  for (let waited = 0; waited < 20_000; waited += 50) {
    const leader = nodes.find((n) => !n.kv.stopped && n.kv.raft.status().role === "leader");
    if (leader) return leader;
    await delay(50, { clock: sim.clock });
  }
  throw new Error("no leader within 20 s of virtual time");
}

function request(
  node: SimNode,
  path: string,
  init: RequestInit = {},
): Promise<Response> {
  return node.http(new Request(`http://${ADDRESSES[node.id as "a"]}${path}`, init));
}

/**
 * Crashes both followers, appends `<1>` through the leader's HTTP API (the
 * leader proposes it, cannot commit it, steps down), restarts them with the
 * old leader and one follower on one side, so the old leader wins again
 * and commits the append; returns the answer, the node that led, and the
 * nodes (to stop).
 */
async function appendWhileFollowersAreDown(
  sim: Simulation,
  headers: Record<string, string>,
): Promise<{ answer: Response; body: Record<string, unknown>; leader: SimNode; nodes: SimNode[] }> {
  let nodes = await Promise.all(IDS.map((id) => startNode(sim, id, new MemoryStorage())));
  const leader = await leaderOf(sim, nodes);
  assert.equal((await request(leader, "/kv/k", { method: "PUT", body: "<0>" })).status, 204);
  const followers = nodes.filter((n) => n !== leader);
  const kept = await Promise.all(followers.map((f) => crash(sim, f)));
  const answer = await request(leader, "/kv/k?op=append", { method: "POST", body: "<1>", headers });
  const body = await answer.json();
  // The followers come back; the old leader (the longer log) and one of them form a majority.
  const restarted = await Promise.all(followers.map((f, i) => startNode(sim, f.id, kept[i])));
  nodes = [leader, ...restarted];
  sim.net.partition([leader.id, restarted[0].id], [restarted[1].id]);
  assert.equal(await leaderOf(sim, nodes), leader, "the old leader leads again");
  sim.net.heal();
  return { answer, body, leader, nodes };
}

Deno.test("kv http: an append proposed by a leader that then lost leadership is answered mayHaveApplied", async () => {
  await simulate(async (sim) => {
    const { answer, body, leader, nodes } = await appendWhileFollowersAreDown(sim, {});
    assert.equal(answer.status, 503, JSON.stringify(body));
    assert.equal(body.mayHaveApplied, true, JSON.stringify(body));
    assert.equal(body.outcome, "unknown");
    assert.doesNotMatch(String(body.error), /retry shortly/);
    assert.match(String(body.error), /do not resend it blindly/);
    // No invitation to resend: no redirect, no Retry-After.
    assert.equal(answer.headers.get("location"), null);
    assert.equal(answer.headers.get("retry-after"), null);
    // And rightly so: the old leader committed it once it led again.
    const value = await request(leader, "/kv/k");
    assert.equal(await value.text(), "<0><1>");
    for (const n of nodes) await n.kv.stop();
  }, { seed: 11, limitMs: 120_000 });
});

Deno.test("kv http: with the client's own session, resending an ambiguous append applies it once", async () => {
  await simulate(async (sim) => {
    const headers = { "x-distkit-client": "web-1", "x-distkit-seq": "1" };
    const { answer, body, leader, nodes } = await appendWhileFollowersAreDown(sim, headers);
    assert.equal(answer.status, 503, JSON.stringify(body));
    assert.equal(body.mayHaveApplied, true);
    assert.match(String(body.error), /resend it with the same X-Distkit-Client and X-Distkit-Seq/);
    assert.equal(answer.headers.get("retry-after"), "1");
    // The resend: the log already holds the append, and it is applied once.
    const resend = await request(leader, "/kv/k?op=append", {
      method: "POST",
      body: "<1>",
      headers,
    });
    assert.equal(resend.status, 204, await resend.clone().text());
    assert.equal(await (await request(leader, "/kv/k")).text(), "<0><1>");
    // The session's next write, and a stale resend of the first: refused as ambiguous, not applied.
    const next = { "x-distkit-client": "web-1", "x-distkit-seq": "2" };
    const second = await request(leader, "/kv/k?op=append", {
      method: "POST",
      body: "<2>",
      headers: next,
    });
    assert.equal(second.status, 204);
    const stale = await request(leader, "/kv/k?op=append", {
      method: "POST",
      body: "<1>",
      headers,
    });
    assert.equal(stale.status, 409);
    assert.equal((await stale.json()).mayHaveApplied, true);
    assert.equal(await (await request(leader, "/kv/k")).text(), "<0><1><2>");
    for (const n of nodes) await n.kv.stop();
  }, { seed: 12, limitMs: 120_000 });
});

Deno.test("kv http: refusals that prove nothing was proposed say mayHaveApplied false", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(IDS.map((id) => startNode(sim, id, new MemoryStorage())));
    const leader = await leaderOf(sim, nodes);
    const follower = nodes.find((n) => n !== leader)!;
    const redirected = await request(follower, "/kv/k", { method: "PUT", body: "v" });
    assert.equal(redirected.status, 307);
    const body = await redirected.json();
    assert.equal(body.mayHaveApplied, false);
    assert.equal(redirected.headers.get("location"), `http://${ADDRESSES[leader.id as "a"]}/kv/k`);
    const bad = await request(leader, "/kv/k", {
      method: "PUT",
      body: "v",
      headers: { "x-distkit-client": "web-1" },
    });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /X-Distkit-Client and X-Distkit-Seq together/);
    // A read's refusal has nothing to say about applying.
    const read = await request(follower, "/kv/k");
    assert.equal(read.status, 307);
    assert.equal("mayHaveApplied" in await read.json(), false);
    for (const n of nodes) await n.kv.stop();
  }, { seed: 13, limitMs: 120_000 });
});

// A write's digest (what tells a retry from another write under the same session number) is
// computed once, by the leader that proposes it, and carried in its log entry to every replica
// (issue 16: computing it on each replica cost 1.7 ms per MiB of value, three times a put).
Deno.test("kv: the leader computes a write's digest, its log entry carries it, and a client's own is ignored", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(IDS.map((id) => startNode(sim, id, new MemoryStorage())));
    const leader = await leaderOf(sim, nodes);
    const write = { type: "put" as const, key: "k", value: "v".repeat(1000) };
    // A client that sends a digest of its own: the leader computes the real one instead.
    const first = await leader.kv.serveWrite({ client: "c1", seq: 1, write, digest: 12345 });
    assert.deepEqual(first, { status: "ok", result: { ok: true } });
    // Had the leader kept 12345, this other write under the same number would be taken for a
    // retry and answered with the first one's result.
    const other = await leader.kv.serveWrite({
      client: "c1",
      seq: 1,
      write: { ...write, value: "w" },
      digest: 12345,
    });
    assert.equal(other.status, "ok");
    assert.match(
      String((other as { result: { refused?: string } }).result.refused),
      /two clients use one id/,
    );
    // A retry without a digest is recognised on every replica as the same write.
    const retry = await leader.kv.serveWrite({ client: "c1", seq: 1, write });
    assert.deepEqual(retry, { status: "ok", result: { ok: true } });
    // Every replica's log entry carries the leader's digest (followers get it within a heartbeat).
    for (const n of nodes) {
      let digests: (number | undefined)[] = [];
      for (let waited = 0; waited <= 10_000 && digests.length === 0; waited += 50) {
        const { entries } = await n.storage.copy().load();
        digests = entries.flatMap((e) =>
          e.kind === "command" ? [(e.command as { digest?: number }).digest] : []
        );
        if (digests.length === 0) await delay(50, { clock: sim.clock });
      }
      assert.deepEqual(digests, [writeDigest(write)], "one entry, with the digest of its write");
    }
    for (const n of nodes) await n.kv.stop();
  }, { seed: 31, limitMs: 60_000 });
});

// The HTTP API's own sessions (no X-Distkit-Client) are sent only by the node that named them, so
// their digest is a native CRC-32 (0.09 against 2.2 ms per MiB); a client's session, which may be
// resent to another node of another version, keeps the FNV-1a every version computes.
Deno.test("kv: the HTTP API's own sessions carry the local digest, a client's session the shared one", async () => {
  await simulate(async (sim) => {
    const nodes = await Promise.all(IDS.map((id) => startNode(sim, id, new MemoryStorage())));
    const leader = await leaderOf(sim, nodes);
    const value = "v".repeat(100_000);
    const own = await request(leader, "/kv/own", { method: "PUT", body: value });
    assert.equal(own.status, 204);
    const given = await request(leader, "/kv/given", {
      method: "PUT",
      body: value,
      headers: { "x-distkit-client": "web-1", "x-distkit-seq": "1" },
    });
    assert.equal(given.status, 204);
    let digests = new Map<string, number | undefined>();
    for (let waited = 0; waited <= 10_000 && digests.size < 2; waited += 50) {
      const { entries } = await leader.storage.copy().load();
      digests = new Map(entries.flatMap((e) => {
        const c = e.kind === "command"
          ? e.command as { write?: { key: string }; digest?: number }
          : {};
        return c.write ? [[c.write.key, c.digest]] : [];
      }));
      if (digests.size < 2) await delay(50, { clock: sim.clock });
    }
    assert.equal(digests.get("own"), localWriteDigest({ type: "put", key: "own", value }));
    assert.equal(digests.get("given"), writeDigest({ type: "put", key: "given", value }));
    // In its own session a resend is still the same write, and another write under its number is not.
    const write = { type: "put" as const, key: "k", value };
    const options = { ownSession: true };
    const first = await leader.kv.serveWrite({ client: "h1", seq: 1, write }, options);
    assert.deepEqual(first, { status: "ok", result: { ok: true } });
    const resend = await leader.kv.serveWrite({ client: "h1", seq: 1, write }, options);
    assert.deepEqual(resend, { status: "ok", result: { ok: true } });
    const other = await leader.kv.serveWrite(
      { client: "h1", seq: 1, write: { ...write, value: value + "w" } },
      options,
    );
    assert.match(
      String((other as { result: { refused?: string } }).result.refused),
      /two clients use one id/,
    );
    for (const n of nodes) await n.kv.stop();
  }, { seed: 32, limitMs: 60_000 });
});
