/**
 * How fast a stored state streams to a new member (issue 19, "new member
 * catch-up"), in process and without a load: N rows (`k%015d`, 64 B values
 * by default) are written straight into a `StateStore` over a Deno KV file in
 * a temp folder (the leader's), then streamed into a second one (the
 * follower's) through the real path: `storeSource` → `SnapshotStreamer`
 * (its chunking and window) → each message encoded and decoded with the
 * wire codec → `SnapshotReceiver` → `feedSink` → `StoreSink`. Only the
 * network is left out. It prints rows/s for each N, and for the sender alone
 * (reading and encoding the pages) and the receiver alone (writing chunks
 * gathered beforehand), so the time can be told apart.
 *
 * deno run -A bench/catchup_stream.ts [--keys 200k,1M] [--value-bytes 64]
 *   [--chunk-bytes 524288] [--dir /tmp] [--json FILE]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { defaultCodec } from "../net/codec.ts";
import { SnapshotStreamer } from "../raft/snapshot_stream.ts";
import { SnapshotReceiver } from "../raft/snapshot_receive.ts";
import { feedSink } from "../raft/snapshot_install.ts";
import type { Message, SnapshotMessage, SnapshotMeta } from "../raft/types.ts";
import { StateStore } from "../store/state_store.ts";
import { storeSource } from "../rsm/stored_machine.ts";
import { StoreSink } from "../rsm/stored_sink.ts";

/** What one N measured. */
export interface CatchupFigures {
  keys: number;
  /** Rows/s through the whole path. */
  rowsPerSec: number;
  /** Seconds through the whole path. */
  seconds: number;
  /** Rows/s of the sender alone: the view read, pages encoded and framed. */
  senderRowsPerSec: number;
  /** Rows/s of the receiver alone: chunks decoded and written. */
  receiverRowsPerSec: number;
  /** Bytes streamed. */
  bytes: number;
  /** Chunks sent. */
  chunks: number;
}

const membership = { voters: ["a", "b"], learners: [] };

/** `"200k"`, `"1M"`, `"1000"` as a number. */
function count(text: string): number {
  const match = /^(\d[\d_]*)([kKmM]?)$/.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a count (e.g. 200k, 1M, 5000)`);
  const unit = { "": 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6 }[match[2]]!;
  return Number(match[1].replaceAll("_", "")) * unit;
}

/** Writes `keys` rows into a fresh store at `path`, in entries of 900 rows (one commit each). */
async function fill(path: string, keys: number, valueBytes: number): Promise<void> {
  const kv = await Deno.openKv(path);
  const store = await StateStore.open(kv);
  const value = "x".repeat(valueBytes);
  let index = 0;
  for (let i = 0; i < keys; i += 900) {
    const batch = store.batch();
    for (let k = i; k < Math.min(keys, i + 900); k++) {
      batch.put(`k${String(k).padStart(15, "0")}`, value);
    }
    batch.endEntry({ index: ++index, term: 1 });
    await batch.commit();
  }
  await store.close();
  kv.close();
}

/** Opens the store at `path` (and its read connection, as a node does). */
async function openStore(path: string): Promise<{ store: StateStore; close(): Promise<void> }> {
  const kv = await Deno.openKv(path);
  const readKv = await Deno.openKv(path);
  const store = await StateStore.open(kv, { readKv });
  return {
    store,
    close: async () => {
      await store.close();
      readKv.close();
      kv.close();
    },
  };
}

/** The sender alone: every page read, encoded and framed; returns the chunks (to replay). */
async function sendOnly(store: StateStore, chunkBytes: number, keep: boolean) {
  const stream = await storeSource(store).open();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    for await (const page of stream.pages()) {
      bytes += page.length;
      if (!keep) continue;
      for (let at = 0; at < page.length; at += chunkBytes) {
        chunks.push(page.subarray(at, at + chunkBytes));
      }
    }
  } finally {
    stream.close();
  }
  return { index: stream.index, bytes, chunks };
}

/** The whole path in process: streamer → wire codec → receiver → sink. */
async function streamPair(
  from: StateStore,
  to: StateStore,
  chunkBytes: number,
): Promise<{ chunks: number; bytes: number }> {
  const sink = new StoreSink(to);
  const receiver = new SnapshotReceiver({ streamed: true });
  const signal = new AbortController().signal;
  let chunks = 0;
  let bytes = 0;
  let metaOf: SnapshotMeta | undefined;
  // The follower handles one message at a time, as its node does (ready by ready).
  let follower = Promise.resolve();
  const { promise: finished, resolve, reject } = Promise.withResolvers<void>();
  const streamer = new SnapshotStreamer({
    id: "a",
    source: storeSource(from),
    chunkBytes,
    meta: (index, term) => (metaOf ??= { index, term, membership, membershipIndex: 1 }),
    call: (m: SnapshotMessage) => {
      const wire = defaultCodec.encode(m);
      const turn = follower.then(async (): Promise<Message[]> => {
        const got = defaultCodec.decode(wire) as SnapshotMessage;
        chunks++;
        bytes += got.chunk.length;
        const { answer } = receiver.receive(got);
        await feedSink(sink, receiver.take(), { after: 0, signal });
        const reply = { type: "snapshotResp", from: "b", to: "a", term: m.term, ...answer };
        return [defaultCodec.decode(defaultCodec.encode(reply)) as Message];
      });
      follower = turn.then(() => {}, () => {});
      return turn;
    },
    step: (m) => {
      if (m.type === "snapshotResp" && m.done) resolve();
    },
    failed: () => reject(new Error("the stream failed")),
  });
  const first: SnapshotMessage = {
    type: "snapshot",
    from: "a",
    to: "b",
    term: 1,
    meta: { index: from.applied.index, term: 1, membership },
    offset: 0,
    size: 0,
    chunk: new Uint8Array(),
  };
  streamer.offer(first);
  await finished;
  await streamer.stop();
  return { chunks, bytes };
}

/** Measures one N in `dir`. */
export async function measure(
  keys: number,
  options: { valueBytes: number; chunkBytes: number; dir: string },
): Promise<CatchupFigures> {
  const dir = await Deno.makeTempDir({ dir: options.dir, prefix: "catchup-stream-" });
  try {
    const leaderPath = `${dir}/leader.kv`;
    await fill(leaderPath, keys, options.valueBytes);
    const leader = await openStore(leaderPath);
    try {
      let t = performance.now();
      const sent = await sendOnly(leader.store, options.chunkBytes, true);
      const senderMs = performance.now() - t;
      // The receiver alone: the chunks gathered above, written into a fresh store.
      const alone = await openStore(`${dir}/alone.kv`);
      const sink = new StoreSink(alone.store);
      const meta = { index: sent.index, term: 1, membership, membershipIndex: 1 };
      t = performance.now();
      await sink.begin(meta);
      for (const chunk of sent.chunks) await sink.write(chunk);
      await sink.finish({ after: 0, signal: new AbortController().signal });
      const receiverMs = performance.now() - t;
      await alone.close();
      sent.chunks.length = 0;
      // The whole path.
      const follower = await openStore(`${dir}/follower.kv`);
      t = performance.now();
      const streamed = await streamPair(leader.store, follower.store, options.chunkBytes);
      const ms = performance.now() - t;
      const got = await follower.store.get(`k${String(keys - 1).padStart(15, "0")}`);
      if (follower.store.applied.index !== sent.index || got === null) {
        throw new Error("the follower's store does not hold the leader's state");
      }
      await follower.close();
      return {
        keys,
        rowsPerSec: Math.round(keys / (ms / 1000)),
        seconds: Math.round(ms) / 1000,
        senderRowsPerSec: Math.round(keys / (senderMs / 1000)),
        receiverRowsPerSec: Math.round(keys / (receiverMs / 1000)),
        bytes: streamed.bytes,
        chunks: streamed.chunks,
      };
    } finally {
      await leader.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      keys: { type: "string", default: "200k,1M" },
      "value-bytes": { type: "string", default: "64" },
      "chunk-bytes": { type: "string", default: String(512 * 1024) },
      dir: { type: "string" },
      json: { type: "string" },
    },
  });
  const options = {
    valueBytes: count(values["value-bytes"]),
    chunkBytes: count(values["chunk-bytes"]),
    dir: values.dir ?? Deno.env.get("TMPDIR") ?? "/tmp",
  };
  const all: CatchupFigures[] = [];
  for (const keys of values.keys.split(",").map(count)) {
    const f = await measure(keys, options);
    all.push(f);
    console.log(
      `${keys} keys: ${f.rowsPerSec} rows/s (${f.seconds} s, ${f.chunks} chunks, ` +
        `${(f.bytes / 2 ** 20).toFixed(1)} MiB); sender alone ${f.senderRowsPerSec} rows/s, ` +
        `receiver alone ${f.receiverRowsPerSec} rows/s`,
    );
  }
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(all, null, 2));
}
