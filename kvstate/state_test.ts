import assert from "node:assert/strict";
import { Codec, defaultCodec } from "../net/codec.ts";
import { FrameTooLargeError } from "../net/errors.ts";
import {
  type KvCommand,
  KvStateMachine,
  SNAPSHOT_MAX_BYTES,
  snapshotCodec,
  writeDigest,
} from "./state.ts";

const cmd = (client: string, seq: number, write: KvCommand["write"]): KvCommand => ({
  client,
  seq,
  write,
});

Deno.test("kv state: put, append, delete, get", () => {
  const kv = new KvStateMachine();
  assert.equal(kv.get("x"), null);
  assert.deepEqual(kv.apply(cmd("a", 1, { type: "append", key: "x", value: "1" })), { ok: true });
  kv.apply(cmd("a", 2, { type: "append", key: "x", value: "2" }));
  assert.equal(kv.get("x"), "12");
  kv.apply(cmd("a", 3, { type: "put", key: "x", value: "z" }));
  assert.equal(kv.get("x"), "z");
  kv.apply(cmd("a", 4, { type: "delete", key: "x" }));
  assert.equal(kv.get("x"), null);
  assert.equal(kv.size, 0);
});

Deno.test("kv state: a retried write is applied once and returns its first result", () => {
  const kv = new KvStateMachine();
  const append = cmd("a", 1, { type: "append", key: "x", value: "v" });
  kv.apply(append);
  kv.apply(cmd("b", 1, { type: "append", key: "x", value: "w" }));
  assert.deepEqual(kv.apply(append), { ok: true });
  assert.equal(kv.get("x"), "vw", "the retry did not append again");
  assert.deepEqual(kv.applied(append), { ok: true });
  assert.equal(kv.applied({ ...append, seq: 2 }), undefined);
  kv.apply(cmd("a", 2, { type: "append", key: "x", value: "!" }));
  assert.deepEqual(kv.apply(append), { ok: false, stale: true }, "an older retry is stale");
  assert.equal(kv.get("x"), "vw!");
});

Deno.test("kv state: compare-and-set, with absent keys and bytes", () => {
  const kv = new KvStateMachine();
  assert.deepEqual(kv.apply(cmd("a", 1, { type: "cas", key: "l", expected: null, value: "n1" })), {
    ok: true,
  });
  assert.deepEqual(kv.apply(cmd("b", 1, { type: "cas", key: "l", expected: null, value: "n2" })), {
    ok: false,
    current: "n1",
  });
  assert.deepEqual(kv.apply(cmd("b", 2, { type: "cas", key: "l", expected: "n1", value: "n2" })), {
    ok: true,
  });
  kv.apply(cmd("c", 1, { type: "put", key: "b", value: new Uint8Array([1, 2]) }));
  assert.deepEqual(
    kv.apply(cmd("c", 2, { type: "cas", key: "b", expected: new Uint8Array([1, 2]), value: "s" })),
    { ok: true },
  );
  kv.apply(cmd("c", 3, { type: "put", key: "b2", value: new Uint8Array([1]) }));
  kv.apply(cmd("c", 4, { type: "append", key: "b2", value: "A" }));
  assert.deepEqual(kv.get("b2"), new Uint8Array([1, 65]), "string appended to bytes gives bytes");
});

Deno.test("kv state: a snapshot restores data and the deduplication table", () => {
  const kv = new KvStateMachine();
  const w = cmd("a", 7, { type: "append", key: "k", value: "x" });
  kv.apply(w);
  kv.apply(cmd("b", 1, { type: "put", key: "bytes", value: new Uint8Array([9]) }));
  const copy = new KvStateMachine();
  copy.restore(kv.snapshot());
  assert.equal(copy.get("k"), "x");
  assert.deepEqual(copy.get("bytes"), new Uint8Array([9]));
  copy.apply(w);
  assert.equal(copy.get("k"), "x", "the restored dedup table still knows the write");
});

Deno.test("kv state: a garbage snapshot is refused with a clear error and changes nothing", () => {
  const kv = new KvStateMachine();
  kv.apply(cmd("a", 1, { type: "put", key: "k", value: "v" }));
  const garbage = [
    new Uint8Array([0x90]),
    new Uint8Array([0xc1, 0xff]),
    defaultCodec.encode({ data: [["k", 5]], dedup: [] }),
    defaultCodec.encode({ data: [], dedup: [["a", { seq: "x" }]] }),
    defaultCodec.encode(null),
  ];
  for (const bytes of garbage) {
    assert.throws(() => kv.restore(bytes), /not a KV snapshot/);
    assert.equal(kv.get("k"), "v");
  }
});

Deno.test("kv state: an append past the value limit is refused on apply, deterministically", () => {
  const kv = new KvStateMachine({ maxValueBytes: 4 });
  assert.deepEqual(kv.apply(cmd("a", 1, { type: "append", key: "k", value: "abc" })), { ok: true });
  const r = kv.apply(cmd("a", 2, { type: "append", key: "k", value: "dé" }));
  assert.equal(r.ok, false);
  assert.match(r.refused ?? "", /6 bytes; the limit is 4/);
  assert.equal(kv.get("k"), "abc");
  assert.deepEqual(kv.apply(cmd("a", 2, { type: "append", key: "k", value: "dé" })), r, "retry");
});

Deno.test("kv state: another write under a used session number is refused, not taken for a retry", () => {
  const kv = new KvStateMachine();
  kv.apply(cmd("same", 1, { type: "put", key: "x", value: "from A" }));
  const other = cmd("same", 1, { type: "put", key: "y", value: "from B" });
  assert.match(kv.applied(other)?.refused ?? "", /two clients use one id/);
  assert.match(kv.apply(other).refused ?? "", /two clients use one id/);
  assert.equal(kv.get("y"), null);
  for (
    const w of [
      { type: "put", key: "x", value: new TextEncoder().encode("from A") },
      { type: "append", key: "x", value: "from A" },
      { type: "cas", key: "x", expected: null, value: "from A" },
      { type: "delete", key: "x" },
    ] as const
  ) {
    assert.ok(kv.apply(cmd("same", 1, w)).refused, `${w.type} taken for the put`);
  }
});

Deno.test("kv state: stored bytes do not keep the buffer they were decoded from alive", () => {
  const kv = new KvStateMachine();
  const big = new Uint8Array(1000);
  kv.apply(cmd("a", 1, { type: "put", key: "p", value: big.subarray(0, 1) }));
  kv.apply(cmd("a", 2, { type: "append", key: "q", value: big.subarray(1, 3) }));
  assert.equal((kv.get("p") as Uint8Array).buffer.byteLength, 1);
  assert.equal((kv.get("q") as Uint8Array).buffer.byteLength, 2);
  const copy = new KvStateMachine();
  copy.restore(kv.snapshot());
  assert.equal((copy.get("p") as Uint8Array).buffer.byteLength, 1);
});

/** A store with `keys` keys (every 7th value bytes) written by `clients` clients. */
function filled(keys: number, clients = 3): KvStateMachine {
  const kv = new KvStateMachine();
  for (let i = 0; i < keys; i++) {
    const value = i % 7 === 0 ? new Uint8Array([i & 0xff, 1, 2]) : `v${i}`;
    kv.apply(
      cmd(`c${i % clients}`, Math.floor(i / clients) + 1, { type: "put", key: `k${i}`, value }),
    );
  }
  return kv;
}

Deno.test("kv state: a snapshot encoded in slices is the snapshot's bytes", async () => {
  // Around the msgpack array header sizes (16, 65,536) and the slice size (2,000).
  for (const keys of [0, 1, 15, 16, 1999, 2000, 2001, 4500, 65_535, 65_536, 70_001]) {
    const kv = filled(keys, keys > 20 ? 17 : 3);
    let pauses = 0;
    const sliced = await kv.snapshotInSlices(() => (pauses++, Promise.resolve()));
    assert.deepEqual(sliced, kv.snapshot(), `${keys} keys`);
    // Between slices of 2,000 keys encoded, and of 20,000 keys sized first.
    const between = (slice: number) => Math.max(0, Math.ceil(keys / slice) - 1);
    assert.equal(pauses, between(2000) + between(20_000), `${keys} keys`);
  }
});

Deno.test("kv state: a sliced snapshot of large values encodes about 256 KiB between pauses", async () => {
  // Eight values of 1 MiB, one per slice, and 64 of 100 KiB, two per slice:
  // by keys alone, all in one go (a leader held for seconds by 200 MiB).
  const kv = new KvStateMachine();
  let seq = 1;
  for (let i = 0; i < 8; i++) {
    kv.apply(cmd("a", seq++, { type: "put", key: `big${i}`, value: "x".repeat(1 << 20) }));
  }
  for (let i = 0; i < 64; i++) {
    kv.apply(cmd("a", seq++, { type: "put", key: `mid${i}`, value: new Uint8Array(100 * 1024) }));
  }
  let pauses = 0;
  const sliced = await kv.snapshotInSlices(() => (pauses++, Promise.resolve()));
  assert.deepEqual(sliced, kv.snapshot());
  // 8 + 32 slices of data, a pause between each two.
  assert.equal(pauses, 39);
});

Deno.test("kv state: a sliced snapshot is refused as soon as it passes the codec's limit", async () => {
  const kv = new KvStateMachine({ codec: new Codec({ maxMessageBytes: 3 << 20 }) });
  for (let i = 0; i < 8; i++) {
    kv.apply(cmd("a", i + 1, { type: "put", key: `big${i}`, value: "x".repeat(1 << 20) }));
  }
  let pauses = 0;
  await assert.rejects(
    kv.snapshotInSlices(() => (pauses++, Promise.resolve())),
    FrameTooLargeError,
  );
  assert.equal(pauses, 0, "sized before it is encoded: refused before any of it was");
});

Deno.test("kv state: writes during a sliced snapshot are not in it", async () => {
  const kv = filled(9000);
  const before = kv.snapshot();
  let seq = 1;
  const sliced = await kv.snapshotInSlices(() => {
    kv.apply(cmd("w", seq++, { type: "put", key: "k1", value: "changed" }));
    kv.apply(cmd("w", seq++, { type: "append", key: "k7", value: new Uint8Array([9]) }));
    kv.apply(cmd("w", seq++, { type: "delete", key: "k8000" }));
    kv.apply(cmd("w", seq++, { type: "put", key: `new${seq}`, value: "x" }));
    return Promise.resolve();
  });
  assert.deepEqual(sliced, before);
  const restored = new KvStateMachine();
  restored.restore(sliced);
  assert.equal(restored.get("k1"), "v1");
  assert.deepEqual(restored.get("k7"), new Uint8Array([7, 1, 2]));
  assert.equal(restored.get("k8000"), "v8000");
  assert.equal(restored.size, 9000);
});

Deno.test("kv state: a sliced snapshot over the codec's limit is refused", async () => {
  const kv = new KvStateMachine({ codec: new Codec({ maxMessageBytes: 20_000 }) });
  for (let i = 0; i < 3000; i++) {
    kv.apply(cmd("a", i + 1, { type: "put", key: `k${i}`, value: "v" }));
  }
  assert.throws(() => kv.snapshot(), FrameTooLargeError);
  await assert.rejects(kv.snapshotInSlices(() => Promise.resolve()), FrameTooLargeError);
});

Deno.test("kv state: pages of the state, in key order, rebuild it with its table", () => {
  const kv = new KvStateMachine();
  for (let i = 0; i < 50; i++) {
    kv.apply(cmd("a", i + 1, { type: "put", key: `k${String(i).padStart(2, "0")}`, value: "x" }));
  }
  kv.apply(cmd("b", 1, { type: "put", key: "", value: new Uint8Array([1, 2]) }));
  const copy = new KvStateMachine();
  let after: string | null = null;
  let pages = 0;
  do {
    const page = kv.page(after, 20);
    assert.equal(page.dedup !== undefined, after === null, "the table comes with the first page");
    assert.ok(page.data.length > 0);
    copy.addPage(page);
    after = page.next;
    pages++;
  } while (after !== null);
  assert.ok(pages > 5);
  assert.equal(copy.size, kv.size);
  assert.deepEqual(copy.get(""), new Uint8Array([1, 2]));
  for (let i = 0; i < 50; i++) assert.equal(copy.get(`k${String(i).padStart(2, "0")}`), "x");
  assert.deepEqual(
    copy.applied(cmd("a", 50, { type: "put", key: "k49", value: "x" })),
    { ok: true },
    "the table came along",
  );
  assert.throws(() => copy.addPage({ data: [["k", 5]] }), /not a KV page/);
  assert.throws(() => copy.addPage({ data: [], dedup: [["a", { seq: "x" }]] }), /dedup entry/);
});

Deno.test("kv state: a snapshot is not bound by a message's 64 MiB: 70 values of 1 MiB snapshot and restore", async () => {
  const kv = new KvStateMachine();
  const value = new Uint8Array(1024 * 1024).fill(7);
  for (let i = 0; i < 70; i++) {
    kv.apply({ client: "c", seq: i + 1, write: { type: "put", key: `k${i}`, value } });
  }
  const bytes = await kv.snapshotInSlices(() => Promise.resolve());
  assert.ok(
    bytes.length > defaultCodec.maxMessageBytes,
    `${bytes.length} bytes, over a message's limit`,
  );
  assert.deepEqual(kv.snapshot(), bytes);
  const copy = new KvStateMachine();
  copy.restore(bytes);
  assert.equal(copy.size, 70);
  assert.deepEqual(copy.get("k69"), value);
  assert.equal(snapshotCodec.maxMessageBytes, SNAPSHOT_MAX_BYTES);
});

Deno.test("kv state: a command's carried digest is what is recorded; without one the same is computed", () => {
  const write = { type: "put" as const, key: "x", value: "v" };
  const kv = new KvStateMachine();
  // Carried: recorded as it is (the leader computed it), so only a retry with it is recognised.
  kv.apply({ ...cmd("a", 1, write), digest: writeDigest(write) });
  assert.deepEqual(kv.applied(cmd("a", 1, write)), { ok: true }, "computed again: the same");
  const other = new KvStateMachine();
  other.apply({ ...cmd("a", 1, write), digest: 99 });
  assert.match(String(other.applied(cmd("a", 1, write))?.refused), /two clients use one id/);
  assert.deepEqual(other.applied({ ...cmd("a", 1, write), digest: 99 }), { ok: true });
  assert.notEqual(writeDigest(write), writeDigest({ ...write, value: "w" }));
});

Deno.test("kv state: a sliced snapshot is sized exactly for keys and values around MessagePack's header sizes", async () => {
  const kv = new KvStateMachine();
  let seq = 1;
  for (const n of [0, 1, 31, 32, 255, 256, 65_535, 65_536, 70_000]) {
    for (const ch of ["a", "é", "€", "𝄞"]) {
      const text = ch.repeat(Math.ceil(n / new TextEncoder().encode(ch).length));
      kv.apply(cmd("a", seq++, { type: "put", key: `${ch}${n}`.repeat(1 + (n % 7)), value: text }));
    }
    kv.apply(cmd("a", seq++, { type: "put", key: `b${n}`, value: new Uint8Array(n) }));
  }
  kv.apply(cmd("a", seq++, { type: "put", key: "é".repeat(40), value: "" }));
  const sliced = await kv.snapshotInSlices(() => Promise.resolve());
  assert.deepEqual(sliced, kv.snapshot());
});
