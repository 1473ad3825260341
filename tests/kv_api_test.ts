/**
 * The KV service's API beyond the course's scenarios: delete and
 * compare-and-set, byte values, limits and malformed requests, aborts,
 * concurrent operations on one clerk, and exactly-once under lost replies.
 */
import assert from "node:assert/strict";
import { KvClerk, RequestAbortedError, RequestError } from "../kv/mod.ts";
import {
  BadArgumentsError,
  type CallOptions,
  MissingEnvironmentError,
  simulate,
  type Simulation,
} from "../net/mod.ts";
import { KvCluster, type KvClusterOptions } from "./kv_cluster.ts";

function kvApiTest(
  name: string,
  body: (cfg: KvCluster, sim: Simulation) => Promise<void>,
  options: KvClusterOptions = {},
) {
  Deno.test(`kv api: ${name}`, async () => {
    await simulate(async (sim) => {
      const cfg = await KvCluster.start(sim, 3, options);
      try {
        await body(cfg, sim);
      } finally {
        await cfg.cleanup();
      }
    }, { limitMs: 10 * 60_000 });
  });
}

kvApiTest("delete and compare-and-set", async (cfg) => {
  const { clerk } = cfg.makeClient();
  assert.deepEqual(await clerk.cas("lock", { expected: null, value: "a" }), { ok: true });
  assert.deepEqual(
    await clerk.cas("lock", { expected: null, value: "b" }),
    { ok: false, current: "a" },
  );
  assert.deepEqual(await clerk.cas("lock", { expected: "a", value: "b" }), { ok: true });
  assert.equal(await clerk.get("lock"), "b");
  await clerk.delete("lock");
  assert.equal(await clerk.get("lock"), null);
  await clerk.delete("lock"); // deleting an absent key is fine
  assert.equal(await clerk.get("never"), null);
});

kvApiTest("byte values round-trip, and appends join bytes", async (cfg) => {
  const { clerk } = cfg.makeClient();
  await clerk.put("b", new Uint8Array([0, 1, 255]));
  assert.deepEqual(await clerk.get("b"), new Uint8Array([0, 1, 255]));
  await clerk.append("b", new Uint8Array([7]));
  assert.deepEqual(await clerk.get("b"), new Uint8Array([0, 1, 255, 7]));
  assert.deepEqual(
    await clerk.cas("b", { expected: new Uint8Array([0, 1, 255, 7]), value: "s" }),
    { ok: true },
  );
  assert.equal(await clerk.get("b"), "s");
});

kvApiTest("getText and getBytes: one type, whatever the value was stored as", async (cfg) => {
  const { clerk } = cfg.makeClient();
  await clerk.put("s", "héllo");
  await clerk.put("b", new Uint8Array([104, 105]));
  await clerk.put("bad", new Uint8Array([0x66, 0xff]));
  assert.equal(await clerk.getText("s"), "héllo");
  assert.equal(await clerk.getText("b"), "hi");
  assert.equal(await clerk.getText("none"), null);
  assert.deepEqual(await clerk.getBytes("s"), new TextEncoder().encode("héllo"));
  assert.deepEqual(await clerk.getBytes("b"), new Uint8Array([104, 105]));
  assert.equal(await clerk.getBytes("none"), null);
  // Bytes that are not UTF-8 are refused as text (never replaced by U+FFFD), and read as bytes.
  await assert.rejects(
    clerk.getText("bad"),
    (err: Error) =>
      err instanceof TypeError && /"bad" is 2 bytes that are not valid UTF-8/.test(err.message),
  );
  assert.deepEqual(await clerk.getBytes("bad"), new Uint8Array([0x66, 0xff]));
});

kvApiTest("oversized keys and values are refused before and at the server", async (cfg) => {
  const { clerk } = cfg.makeClient();
  await assert.rejects(clerk.put("k".repeat(1025), "v"), RequestError);
  await assert.rejects(clerk.get("é".repeat(513)), /key is 1026 bytes; the limit is 1024/);
  await assert.rejects(clerk.put("k", new Uint8Array(1024 * 1024 + 1)), RequestError);
  // A clerk configured with looser limits than the servers': the server refuses.
  const loose = cfg.makeClient();
  const lax = new KvClerk(cfg.wiring.clientTransport("lax", cfg.wiring.all), cfg.ids, {
    clock: cfg.sim.clock,
    random: cfg.random.fork(),
    id: "lax",
    limits: { maxKeyBytes: 10_000 },
  });
  await assert.rejects(lax.put("k".repeat(2000), "v"), /key is 2000 bytes; the limit is 1024/);
  // Nothing was applied, and the service still serves.
  await loose.clerk.put("k", "fine");
  assert.equal(await clerk.get("k"), "fine");
});

kvApiTest(
  "an append that would outgrow the value limit is refused and changes nothing",
  async (cfg) => {
    const { clerk } = cfg.makeClient();
    const big = "x".repeat(700 * 1024);
    await clerk.put("big", big);
    await assert.rejects(clerk.append("big", big), /would make the value of big 1433600 bytes/);
    assert.equal((await clerk.get("big"))?.length, big.length);
  },
);

kvApiTest("malformed requests get BadArgumentsError and the servers keep serving", async (cfg) => {
  const transport = cfg.wiring.clientTransport("raw", cfg.wiring.all);
  const { clerk } = cfg.makeClient();
  await clerk.put("x", "1"); // a leader exists
  const bad: [string, unknown][] = [
    ["KV.Get", null],
    ["KV.Get", { key: 5 }],
    ["KV.Get", { key: ["a"] }],
    ["KV.Write", { client: "c", seq: 1 }],
    ["KV.Write", { client: "c", seq: 0, write: { type: "put", key: "x", value: "v" } }],
    ["KV.Write", { client: "c", seq: 1.5, write: { type: "put", key: "x", value: "v" } }],
    ["KV.Write", { client: "", seq: 1, write: { type: "put", key: "x", value: "v" } }],
    ["KV.Write", { client: "c", seq: 1, write: { type: "drop", key: "x" } }],
    ["KV.Write", { client: "c", seq: 1, write: { type: "put", key: "x", value: 3 } }],
    ["KV.Write", { client: "c", seq: 1, write: { type: "cas", key: "x", value: "v" } }],
    ["KV.Write", { client: "c", seq: 1, write: "put x" }],
  ];
  for (let i = 0; i < 3; i++) {
    const end = transport.connect(String(i));
    for (const [method, args] of bad) {
      await assert.rejects(
        end.call(method, args),
        (err) => err instanceof BadArgumentsError,
        `${method} ${JSON.stringify(args)}`,
      );
    }
  }
  assert.equal(await clerk.get("x"), "1");
  await clerk.append("x", "2");
  assert.equal(await clerk.get("x"), "12");
});

kvApiTest("an aborted operation says whether a write may have applied", async (cfg) => {
  const { clerk, name } = cfg.makeClient();
  await clerk.put("x", "1");
  cfg.connectClient(name, []); // nothing reachable: every attempt fails, none is sent
  const ac = new AbortController();
  const write = clerk.put("x", "2", { signal: ac.signal });
  const read = clerk.get("x", { signal: ac.signal });
  await cfg.sleep(500);
  ac.abort(new Error("caller gave up"));
  // Never sent: certainly not applied (a write that was sent: kv_client_test.ts).
  await assert.rejects(write, (err) => err instanceof RequestAbortedError && !err.mayHaveApplied);
  await assert.rejects(read, (err) => err instanceof RequestAbortedError && !err.mayHaveApplied);
  await assert.rejects(
    clerk.get("x", { signal: AbortSignal.abort() }),
    (err) => err instanceof RequestAbortedError,
  );
  cfg.connectClient(name, cfg.wiring.all);
  // The clerk is still sound after an abandoned write, which did not apply.
  await clerk.append("x", "3");
  assert.equal(await clerk.get("x"), "13");
});

kvApiTest("concurrent operations on one clerk each apply exactly once", async (cfg) => {
  const { clerk } = cfg.makeClient();
  cfg.sim.net.setReliable(false); // lost requests and replies force retries
  await Promise.all(
    Array.from({ length: 20 }, (_, i) => clerk.append("log", `<${i}>`)),
  );
  cfg.sim.net.setReliable(true);
  const v = String(await clerk.get("log"));
  for (let i = 0; i < 20; i++) {
    assert.equal(v.split(`<${i}>`).length, 2, `<${i}> should appear once in ${v}`);
  }
});

kvApiTest("the clerk finds the leader once and then goes straight to it", async (cfg) => {
  const calls: string[] = [];
  const inner = cfg.wiring.clientTransport("counted", cfg.wiring.all);
  const transport = {
    connect: (peer: string) => {
      const end = inner.connect(peer);
      return {
        peer,
        call: <T>(method: string, args?: unknown, options?: CallOptions) => {
          calls.push(peer);
          return end.call<T>(method, args, options);
        },
      };
    },
  };
  const clerk = new KvClerk(transport, cfg.ids, {
    clock: cfg.sim.clock,
    random: cfg.random.fork(),
    id: cfg.sim.newId(),
  });
  await clerk.put("x", "1");
  const leader = String(cfg.leader());
  assert.equal(clerk.leader, leader);
  calls.length = 0;
  for (let i = 0; i < 10; i++) {
    await clerk.get("x");
    await clerk.append("x", String(i));
  }
  assert.deepEqual(calls, new Array(20).fill(leader));
});

kvApiTest("two clerks sharing an id get an error, never a silently dropped write", async (cfg) => {
  const transport = cfg.wiring.clientTransport("twins", cfg.wiring.all);
  const options = { clock: cfg.sim.clock, random: cfg.random.fork(), id: "twin" };
  const a = new KvClerk(transport, cfg.ids, options);
  const b = new KvClerk(transport, cfg.ids, options);
  await a.put("x", "from a");
  await assert.rejects(b.put("y", "from b"), /two clients use one id/);
  assert.equal(await a.get("y"), null);
  // b's session is at 1; once a's is past it, b's next write is an old one.
  for (const v of ["2", "3", "4"]) await a.put("x", v);
  await assert.rejects(b.put("y", "late"), /later write of session twin/);
  assert.equal(await a.get("y"), null);
  assert.throws(() => new KvClerk(transport, cfg.ids, { ...options, id: "a#2" }), /without "#"/);
  // Inside a simulation a clerk needs its id (a random UUID would not replay).
  assert.throws(
    () => new KvClerk(transport, cfg.ids, { ...options, id: undefined }),
    MissingEnvironmentError,
  );
});

kvApiTest("strings that are not valid Unicode are refused", async (cfg) => {
  const { clerk } = cfg.makeClient();
  await assert.rejects(clerk.put("k", "\ud800"), /value contains a lone surrogate/);
  await assert.rejects(clerk.get("\udc00"), /key contains a lone surrogate/);
});

kvApiTest(
  "a write whose index goes to a new leader's own entry is answered at once",
  async (cfg) => {
    const { clerk } = cfg.makeClient();
    await clerk.put("a", "1");
    const old = cfg.leader()!;
    const majority = cfg.wiring.all.filter((i) => i !== old);
    cfg.partition([old], majority);
    const raw = cfg.wiring.clientTransport("raw", [old]).connect(String(old));
    const reply = raw.call("KV.Write", {
      client: "raw",
      seq: 1,
      write: { type: "put", key: "a", value: "lost" },
    });
    await cfg.sleep(10); // proposed at the old leader, never to be committed there
    assert.equal(cfg.server(old).pendingRequests, 1);
    // The majority elects a leader, which puts its no-op at that index.
    await cfg.makeClient(majority).clerk.put("b", "2");
    const healedAt = cfg.now();
    cfg.connectAll();
    const answer = await reply as { status: string; reason: string };
    assert.equal(answer.status, "retry");
    assert.match(answer.reason, /went to another command/);
    assert.ok(cfg.now() - healedAt < 500, `answered ${cfg.now() - healedAt} ms after the heal`);
    assert.equal(cfg.server(old).pendingRequests, 0);
    assert.equal(await clerk.get("a"), "1");
  },
  { server: { requestTimeoutMs: 60_000 } },
);

/** What the Raft nodes of the next test report through their logger. */
const nodeFailures: string[] = [];

kvApiTest(
  "a server whose Raft node fails stops serving KV and answers its pending writes",
  async (cfg) => {
    const { clerk } = cfg.makeClient();
    await clerk.put("a", "1");
    const leader = cfg.leader()!;
    const server = cfg.server(leader);
    const raw = cfg.wiring.clientTransport("raw", [leader]).connect(String(leader));
    const errors: string[] = [];
    const original = console.error;
    console.error = (...parts: unknown[]) => errors.push(parts.join(" "));
    try {
      cfg.storage(leader).save = () => Promise.reject(new Error("disk on fire"));
      const reply = await raw.call("KV.Write", {
        client: "raw",
        seq: 1,
        write: { type: "put", key: "b", value: "x" },
      });
      assert.equal((reply as { status: string }).status, "retry");
    } finally {
      console.error = original;
    }
    assert.match(nodeFailures.join("\n"), /disk on fire/);
    assert.equal(server.raft.status().stopped, true);
    assert.equal(server.pendingRequests, 0);
    await assert.rejects(
      raw.call("KV.Get", { key: "a" }),
      /no service named "KV"|unknown service/i,
    );
    // The others carry on.
    await clerk.put("b", "2");
    assert.equal(await clerk.get("b"), "2");
  },
  {
    server: {
      requestTimeoutMs: 60_000,
      logger: { log: (_level, message) => void nodeFailures.push(message) },
    },
  },
);

kvApiTest(
  "a state of thousands of keys is snapshotted in slices, and restarts come back to it",
  async (cfg) => {
    // 4,800 keys: more than one slice of the sliced snapshot encoding (2,000).
    const clients = Array.from({ length: 12 }, () => cfg.makeClient().clerk);
    await Promise.all(clients.map(async (clerk, c) => {
      for (let i = 0; i < 400; i++) await clerk.put(`k${c}-${i}`, `v${c}-${i}`);
    }));
    // Every entry puts a new key: a snapshot past index 2,000 holds over 2,000 keys.
    const snapshotIndexes = [0, 1, 2].map((i) => cfg.server(i).raft.status().snapshotIndex);
    assert.ok(snapshotIndexes.every((index) => index > 2000), `snapshots at ${snapshotIndexes}`);
    for (let i = 0; i < 3; i++) await cfg.shutdownServer(i);
    for (let i = 0; i < 3; i++) await cfg.startServer(i);
    cfg.connectAll();
    const { clerk } = cfg.makeClient();
    for (let c = 0; c < 12; c++) {
      for (const i of [0, 1, 199, 398, 399]) {
        assert.equal(
          await clerk.get(`k${c}-${i}`),
          `v${c}-${i}`,
        );
      }
    }
  },
  { maxRaftState: 20_000 },
);

kvApiTest("replicas take their snapshots at indexes apart, not all at once", async (cfg) => {
  const { clerk } = cfg.makeClient();
  // Every replica snapshots every ≈100 entries (a put is ≈60 bytes of log).
  const snapshots: number[][] = [[], [], []];
  // A follower a little behind may be sent the leader's snapshot instead of
  // entries: installed, not taken, it is the leader's index (and the
  // installer's next snapshot is put back in its own turn; the test sees it).
  const installs = [0, 0, 0];
  const installed: number[] = [];
  const seen = [-1, -1, -1];
  for (let i = 0; i < 500; i++) {
    await clerk.put(`k${i}`, "v");
    for (let s = 0; s < 3; s++) {
      const index = cfg.server(s).raft.status().snapshotIndex;
      const { installs: n } = cfg.server(s).stats();
      if (index !== seen[s]) snapshots[s].push(index);
      seen[s] = index;
      // The install may be counted a sample after its index showed.
      if (n > installs[s]) installed.push(snapshots[s].pop()!);
      installs[s] = n;
    }
  }
  // Past the first few, each replica's snapshots fall between the others'.
  const all = snapshots.flatMap((indexes, s) => indexes.slice(2).map((index) => ({ index, s })));
  all.sort((a, b) => a.index - b.index);
  const gaps = all.slice(1).map((x, k) => x.index - all[k].index);
  assert.ok(all.length >= 9, `snapshots: ${JSON.stringify(snapshots)}`);
  assert.ok(
    gaps.every((gap) => gap >= 10),
    `snapshots less than 10 entries apart: ${JSON.stringify(snapshots)} (installed: ${installed})`,
  );
}, { maxRaftState: 6000 });
