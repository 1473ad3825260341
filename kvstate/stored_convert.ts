/**
 * Between the two forms of the KV state's snapshot: the in-memory state's
 * (`KvStateMachine.snapshot`, a msgpack map) and the stored state's (a
 * stream of state pages, each behind a 4-byte length, as `storeSource`
 * sends it). A data folder that kept its state in memory moves to disk by
 * installing its last snapshot's pages; and in a cluster whose nodes keep
 * their state differently (during a rolling move to disk, or a new folder
 * added to a cluster of old ones), a follower takes either form.
 *
 * @module
 */
import { type Codec, defaultCodec } from "../net/codec.ts";
import type { AppliedPoint } from "../store/state_layout.ts";
import { digestRow, EMPTY_DIGEST, type StatePage, type StateRow } from "../store/state_view.ts";
import { readPages } from "../rsm/stored_machine.ts";
import { KvStateMachine, snapshotCodec } from "./state.ts";
import { COUNT_ROW, sessionKey } from "./stored_rows.ts";
import type { KvValue } from "./value.ts";

/** Rows per page: about what a page of a stored state's own stream holds. */
const ROWS_PER_PAGE = 1000;

/**
 * The pages of a stored state equal to the in-memory state `bytes`
 * encodes, at `point` (the snapshot's): its keys, one session row per
 * client, and the key count.
 *
 * @param bytes A snapshot from `KvStateMachine.snapshot`.
 * @param point The log point the snapshot reflects.
 * @param options The store's codec for session rows (default: the shared codec).
 * @throws {Error} when `bytes` is not such a snapshot (before any page is yielded).
 *
 * @example
 * ```ts
 * import { KvStateMachine } from "./state.ts";
 * import { memoryStatePages } from "./stored_convert.ts";
 *
 * const kv = new KvStateMachine();
 * kv.apply({ client: "c", seq: 1, write: { type: "put", key: "x", value: "1" } });
 * const pages = [...memoryStatePages(kv.snapshot(), { index: 5, term: 2 })];
 * pages[0].rows.length; // 3: the key, the session, the count
 * ```
 */
export function memoryStatePages(
  bytes: Uint8Array,
  point: AppliedPoint,
  options: { codec?: Codec } = {},
): Iterable<StatePage> {
  // Checked as a restore checks it, before anything is written.
  new KvStateMachine().restore(bytes);
  const { data, dedup } = snapshotCodec.decode(bytes) as {
    data: [string, KvValue][];
    dedup: [string, unknown][];
  };
  const codec = options.codec ?? defaultCodec;
  return rowPages(rowsOf(data, dedup, codec), point);
}

function* rowsOf(
  data: [string, KvValue][],
  dedup: [string, unknown][],
  codec: Codec,
): Generator<StateRow> {
  for (const [key, value] of data) yield ["d", key, value];
  for (const [client, entry] of dedup) yield ["s", sessionKey(client), codec.encode(entry)];
  if (data.length > 0) yield ["s", COUNT_ROW, codec.encode(data.length)];
}

/**
 * Rows cut into a stored state's pages at `point`, 1,000 rows a page, the
 * last with the count and digest an install checks.
 *
 * @example
 * ```ts
 * import { rowPages } from "./stored_convert.ts";
 *
 * const pages = [...rowPages([["d", "x", "1"]], { index: 5, term: 2 })];
 * pages[0].last?.count; // 1
 * ```
 */
export function* rowPages(rows: Iterable<StateRow>, point: AppliedPoint): Generator<StatePage> {
  let seq = 0;
  let count = 0;
  let digest = EMPTY_DIGEST;
  let page: StateRow[] = [];
  for (const row of rows) {
    if (page.length === ROWS_PER_PAGE) {
      yield { seq: seq++, point, rows: page };
      page = [];
    }
    page.push(row);
    count++;
    digest = digestRow(digest, row);
  }
  yield { seq, point, rows: page, last: { count, digest } };
}

/**
 * Whether a KV snapshot is the in-memory state's form (a msgpack map: first
 * byte 0x80–0x8f, or 0xde/0xdf), not a stream of pages (whose first byte
 * is the high byte of a page's length, 0 for any page under 16 MiB).
 *
 * @example
 * ```ts
 * import { KvStateMachine } from "./state.ts";
 * import { isMemorySnapshot } from "./stored_convert.ts";
 *
 * isMemorySnapshot(new KvStateMachine().snapshot()); // true
 * ```
 */
export function isMemorySnapshot(bytes: Uint8Array): boolean {
  const first = bytes[0];
  return first !== undefined && ((first & 0xf0) === 0x80 || first === 0xde || first === 0xdf);
}

/**
 * The pages to install from a snapshot of either form, for a follower that
 * stores its state.
 *
 * @param bytes The snapshot's bytes, as the leader sent them.
 * @param point The log point it reflects (used for the in-memory form, which does not carry it).
 * @param options The store's codec for session rows (default: the shared codec).
 *
 * @example
 * ```ts
 * import { KvStateMachine } from "./state.ts";
 * import { anySnapshotPages } from "./stored_convert.ts";
 *
 * const pages = [...anySnapshotPages(new KvStateMachine().snapshot(), { index: 3, term: 1 })];
 * pages[0].last; // { count: 0, digest: 2166136261 }
 * ```
 */
export function anySnapshotPages(
  bytes: Uint8Array,
  point: AppliedPoint,
  options: { codec?: Codec } = {},
): Iterable<StatePage> {
  return isMemorySnapshot(bytes) ? memoryStatePages(bytes, point, options) : readPages(bytes);
}

/**
 * The in-memory state's snapshot of a stored state's stream of pages (the
 * leader stores its state; this follower keeps it in memory). Sessions are
 * the `c/` rows; the key count row is left out (the in-memory state counts).
 *
 * @param bytes The concatenated pages (`storeSource`'s stream).
 * @param options The codec session rows were written with (default: the shared codec).
 * @throws {Error} when the bytes are not a complete stream of a stored KV state.
 *
 * @example
 * ```ts
 * import { KvStateMachine } from "./state.ts";
 * import { memorySnapshotOfPages } from "./stored_convert.ts";
 * import { storeSource } from "../rsm/stored_machine.ts";
 * import { SimKv, StateStore } from "../store/mod.ts";
 * import { concatBytes } from "../net/bytes.ts";
 *
 * const stream = await storeSource(await StateStore.open(new SimKv())).open();
 * const parts: Uint8Array[] = [];
 * for await (const part of stream.pages()) parts.push(part);
 * stream.close();
 * const bytes = concatBytes(parts, parts.reduce((n, p) => n + p.length, 0));
 * new KvStateMachine().restore(memorySnapshotOfPages(bytes));
 * ```
 */
export function memorySnapshotOfPages(
  bytes: Uint8Array,
  options: { codec?: Codec } = {},
): Uint8Array {
  const codec = options.codec ?? defaultCodec;
  const data: [string, KvValue][] = [];
  const dedup: [string, unknown][] = [];
  let last = false;
  for (const page of readPages(bytes)) {
    for (const [table, key, value] of page.rows) {
      if (table === "d") data.push([key, value]);
      else if (key.startsWith("c/")) dedup.push([key.slice(2), codec.decode(value as Uint8Array)]);
      else if (key !== COUNT_ROW) throw new Error(`not a stored KV state: session row ${key}`);
    }
    last ||= page.last !== undefined;
  }
  if (!last) throw new Error("not a stored KV state's stream: it ends before its last page");
  return snapshotCodec.encode({ data, dedup });
}
