import assert from "node:assert/strict";
import { DEFAULT_KV_LIMITS } from "../kv/mod.ts";
import { initialConfig, joinGroups, keyToShard, leaveGroups } from "./config.ts";
import { ShardGroupState } from "./group_state.ts";

const put = (client: string, seq: number, key: string, value: string) => ({
  kind: "op",
  command: { client, seq, write: { type: "put", key, value } },
});

Deno.test("shard group state: a shard moves: leaving, pulled, received, released, deleted", () => {
  const a = new ShardGroupState({ gid: 100, limits: DEFAULT_KV_LIMITS });
  const b = new ShardGroupState({ gid: 101, limits: DEFAULT_KV_LIMITS });
  const c1 = joinGroups(initialConfig(), { 100: ["a"] });
  const c2 = joinGroups(c1, { 101: ["b"] });
  a.apply({ kind: "config", config: c1, sources: {} });
  b.apply({ kind: "config", config: c1, sources: {} });
  assert.deepEqual(a.apply(put("c", 1, "7", "1")), { kind: "write", result: { ok: true } });
  const shard = keyToShard("7");
  assert.equal(c2.shards[shard], 101, "the shard of key 7 moves to 101 in c2");
  a.apply({ kind: "config", config: c2, sources: {} });
  const source = { gid: 100, servers: ["a"], leftAt: 2 };
  b.apply({ kind: "config", config: c2, sources: { [shard]: source } });
  assert.equal(a.statuses().get(shard), "leaving");
  assert.equal(b.statuses().get(shard), "pulling");
  assert.equal(b.serves(shard), false, "not served before its data arrives");
  assert.deepEqual(a.apply(put("c", 2, "7", "2")), { kind: "wrong-group" });
  // A damaged install changes nothing and does not stop the replica.
  assert.deepEqual(
    b.apply({ kind: "install", num: 2, shard, page: 0, data: new Uint8Array([1]) }),
    {
      kind: "done",
      changed: false,
    },
  );
  assert.equal(b.statuses().get(shard), "pulling");
  const { data, next } = a.leavingPage(shard, 2, { after: null, maxBytes: 1 << 20 })!;
  assert.equal(next, null, "one page holds it all");
  b.apply({ kind: "install", num: 2, shard, page: 0, data });
  assert.equal(b.statuses().get(shard), "received");
  assert.equal(b.store(shard)?.get("7"), "1");
  // The dedup table came along: a retry of write 1 is not applied again.
  assert.deepEqual(b.recall(put("c", 1, "7", "1")), { kind: "write", result: { ok: true } });
  assert.equal(b.settled, false, "the source has not been released yet");
  a.apply({ kind: "delete", shard, leftAt: 2 });
  assert.equal(a.statuses().has(shard), false, "the old owner dropped its copy");
  b.apply({ kind: "released", num: 2, shard });
  assert.equal(b.statuses().get(shard), "serving");
  assert.equal(a.settled, false, "its other shards are still leaving");
  // Snapshots carry everything.
  const copy = new ShardGroupState({ gid: 101, limits: DEFAULT_KV_LIMITS });
  copy.restore(b.snapshot());
  assert.deepEqual(copy.statuses(), b.statuses());
  assert.equal(copy.store(shard)?.get("7"), "1");
  // The next configuration waits while shards are still leaving; one out of order is ignored.
  assert.deepEqual(a.apply({ kind: "config", config: leaveGroups(c2, [101]), sources: {} }), {
    kind: "done",
    changed: false,
  });
  assert.deepEqual(a.apply({ kind: "config", config: c1, sources: {} }), {
    kind: "done",
    changed: false,
  });
});

Deno.test("shard group state: malformed entries are refused the same way everywhere", () => {
  const s = new ShardGroupState({ gid: 100, limits: DEFAULT_KV_LIMITS });
  for (const bad of [null, 7, { kind: "nope" }, { kind: "install", num: -1, shard: 0, data: 1 }]) {
    const result = s.apply(bad);
    assert.equal(result.kind, "write");
    assert.match(JSON.stringify(result), /malformed log entry/);
  }
  assert.throws(() => s.restore(new Uint8Array([0xc1])), /.+/);
});

Deno.test("shard group state: a large shard moves page by page; retries and stale pages change nothing", () => {
  const limits = DEFAULT_KV_LIMITS;
  const a = new ShardGroupState({ gid: 100, limits });
  const b = new ShardGroupState({ gid: 101, limits });
  const c1 = joinGroups(initialConfig(), { 100: ["a"] });
  const c2 = joinGroups(c1, { 101: ["b"] });
  a.apply({ kind: "config", config: c1, sources: {} });
  b.apply({ kind: "config", config: c1, sources: {} });
  // 300 keys of shard 5 ("7...": '7' is 55), 100 bytes each, and the empty key's shard too.
  const shard = keyToShard("7");
  for (let i = 0; i < 300; i++) {
    a.apply(put("c", i + 1, `7-${String(i).padStart(3, "0")}`, "v".repeat(100)));
  }
  a.apply({ kind: "config", config: c2, sources: {} });
  b.apply({
    kind: "config",
    config: c2,
    sources: { [shard]: { gid: 100, servers: ["a"], leftAt: 2 } },
  });
  let pages = 0;
  while (b.statuses().get(shard) === "pulling") {
    const progress = b.pulling().find((p) => p.shard === shard)!;
    assert.equal(progress.pages, pages);
    const page = a.leavingPage(shard, 2, { after: progress.after, maxBytes: 2048 })!;
    const install = { kind: "install", num: 2, shard, page: pages, data: page.data };
    assert.deepEqual(b.apply(install), { kind: "done", changed: true });
    assert.deepEqual(b.apply(install), { kind: "done", changed: false }, "a retried page");
    pages++;
  }
  assert.ok(pages >= 10, `${pages} pages`);
  assert.equal(b.statuses().get(shard), "received");
  for (let i = 0; i < 300; i++) {
    assert.equal(b.store(shard)?.get(`7-${String(i).padStart(3, "0")}`), "v".repeat(100));
  }
  // The dedup table came with the first page: write 300 of session c is known.
  assert.deepEqual(b.recall(put("c", 300, "7-299", "v".repeat(100))), {
    kind: "write",
    result: { ok: true },
  });
  // A page of an earlier pull, or for another configuration, changes nothing.
  const late = a.leavingPage(shard, 2, { after: null, maxBytes: 2048 })!;
  assert.deepEqual(b.apply({ kind: "install", num: 2, shard, page: 0, data: late.data }), {
    kind: "done",
    changed: false,
  });
});
