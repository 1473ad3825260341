/**
 * A write whose FIRST attempt was sent (and
 * timed out) and whose retry then fails to encode must still say "may have
 * applied", never "not sent, so not applied".
 */
import assert from "node:assert/strict";
import { KvClerk } from "../kv/mod.ts";
import {
  Codec,
  FrameTooLargeError,
  Random,
  RpcServer,
  serveTcp,
  TcpTransport,
  TimeoutError,
  unsentRequestError,
  VirtualClock,
} from "../net/mod.ts";
import type { CallOptions, ClientEnd, Transport } from "../net/mod.ts";
import { encodeEnvelope } from "../net/envelope.ts";
import { mayHaveApplied, OutcomeUnknownError, ReplicaClient } from "../rsm/mod.ts";
import { LockClerk, PrimaryBackupClerk } from "../pb/mod.ts";
import { ShardClerk } from "../shard/mod.ts";

/**
 * A transport whose first call of a data method is sent and times out, and
 * whose later ones cannot be encoded (as a retry whose envelope grew would).
 */
function sentThenUnsendable(): Transport & { sent: () => number } {
  let sent = 0;
  const config = { num: 1, shards: new Array(10).fill(100), groups: { 100: ["g1", "g2"] } };
  const end = (peer: string): ClientEnd => ({
    peer,
    call<T>(method: string, _args?: unknown, options: CallOptions = {}): Promise<T> {
      if (method === "View.Get") {
        return Promise.resolve({ num: 1, primary: "p", backup: "bk" } as T);
      }
      if (method === "Ctrler.Query") return Promise.resolve({ status: "ok", config } as T);
      if (sent++ === 0) return Promise.reject(new TimeoutError(method, options.timeoutMs ?? 1));
      return Promise.reject(unsentRequestError(method, new FrameTooLargeError(4100, 4096)));
    },
  });
  return { connect: end, sent: () => sent };
}

/**
 * The write may have applied: the error must say so, and only so (its
 * message must not also say it was not applied).
 */
function assertMayHaveApplied(err: unknown, what: string): void {
  assert.equal(mayHaveApplied(err), true, `${what}: ${err}`);
  assert.ok(err instanceof OutcomeUnknownError, `${what}: ${err}`);
  assert.doesNotMatch(err.message, /not applied/, `${what}: ${err.message}`);
}

Deno.test("a retry that cannot be encoded after a sent attempt stays 'may have applied'", async () => {
  const clock = new VirtualClock();
  const options = { clock, random: new Random(1), deadlineMs: 60_000 };
  const failures: string[] = [];
  const check = (err: unknown, what: string) => {
    try {
      assertMayHaveApplied(err, what);
    } catch (e) {
      failures.push((e as Error).message);
    }
  };
  await clock.run(async () => {
    const t1 = sentThenUnsendable();
    const rc = new ReplicaClient(t1, ["a", "b"], { ...options, id: "r" });
    check(await rc.submit("T.Take", {}).catch((e) => e), "ReplicaClient");
    assert.equal(t1.sent(), 2);

    const kv = new KvClerk(sentThenUnsendable(), ["a", "b"], { ...options, id: "k" });
    check(await kv.put("k", "v").catch((e) => e), "KvClerk");

    const shard = new ShardClerk(sentThenUnsendable(), ["ctrler"], { ...options, id: "s" });
    check(await shard.put("k", "v").catch((e) => e), "ShardClerk");

    const pb = new PrimaryBackupClerk(sentThenUnsendable(), {
      viewService: "vs",
      clock,
      id: "p",
      timeoutMs: 60_000,
    });
    check(await pb.put("k", "v").catch((e) => e), "PrimaryBackupClerk");

    const lock = new LockClerk(sentThenUnsendable(), { primary: "p", backup: "bk" }, {
      ...options,
      id: "l",
    });
    check(await lock.lock("n").catch((e) => e), "LockClerk");
  });
  assert.deepEqual(failures, []);
});

Deno.test("over TCP a retry's envelope grows (its id 127 -> 128) past the frame limit", async () => {
  const LIMIT = 4096;
  // Args whose request is exactly LIMIT bytes with id 127, one more with id 128.
  const probe = new Codec({ maxMessageBytes: 1 << 20 });
  const size = (id: number, n: number) =>
    encodeEnvelope(probe, { kind: "request", id, method: "Svc.Write", args: "x".repeat(n) })
      .length;
  let n = 0;
  while (size(127, n + 1) <= LIMIT) n++;
  assert.equal(size(127, n), LIMIT);
  assert.equal(size(128, n), LIMIT + 1);

  let writes = 0;
  const never = Promise.withResolvers<void>();
  const rpc = new RpcServer();
  rpc.addService("Svc", {
    Say: (s: unknown) => s,
    // Takes the write, never answers: the client's attempt times out.
    Write: async () => {
      writes++;
      await never.promise;
      return { status: "ok" };
    },
  });
  const tcp = serveTcp(rpc);
  const transport = new TcpTransport({ peers: { a: tcp.address }, maxFrameBytes: LIMIT });
  try {
    const end = transport.connect("a");
    for (let i = 1; i <= 126; i++) await end.call("Svc.Say", i); // ids 1..126
    const client = new ReplicaClient(transport, ["a"], {
      random: new Random(2),
      id: "c",
      attemptTimeoutMs: 200,
      deadlineMs: 20_000,
    });
    const err = await client
      .call("Svc.Write", "x".repeat(n), { operation: "write", write: true })
      .catch((e) => e);
    assert.equal(writes, 1, "the first attempt reached the handler");
    assertMayHaveApplied(err, "ReplicaClient over TCP");
  } finally {
    never.resolve();
    await transport.close();
    await tcp.close();
  }
});
