/**
 * The key/value state machine the replicated service applies, with the
 * deduplication table that makes retried writes take effect exactly once.
 * Both are part of every snapshot.
 *
 * @module
 */
import { utf8Length } from "../net/bytes.ts";
import { Codec } from "../net/codec.ts";
import { FrameTooLargeError } from "../net/errors.ts";
import { DedupTable } from "../rsm/dedup.ts";
import { compareKeyStrings } from "../store/kv_key.ts";
import { type KvValue, valueBytes } from "./value.ts";
import { decideWrite, dedupAnswer } from "./write.ts";

export type { KvValue } from "./value.ts";
import type { KvCommand, KvResult, KvWrite } from "./kv_types.ts";
import { isPair, isResult, isValue } from "./page_checks.ts";
export type { KvCommand, KvResult, KvWrite } from "./kv_types.ts";

/**
 * A page of a {@linkcode KvStateMachine}'s state (see `page`).
 *
 * @example
 * ```ts
 * import type { KvPage } from "@distkit/distkit/kv";
 *
 * const page: KvPage = { data: [["a", "1"]], next: null };
 * ```
 */
export interface KvPage {
  /** Entries, in key order. */
  data: [string, KvValue][];
  /** On the first page: the deduplication table's entries. */
  dedup?: unknown;
  /** The page's last key when more pages follow; null when this is the last. */
  next: string | null;
}

/**
 * Options of {@linkcode KvStateMachine}.
 *
 * @example
 * ```ts
 * import { KvStateMachine, type KvStateOptions } from "@distkit/distkit/kv";
 *
 * const options: KvStateOptions = { maxValueBytes: 4096 };
 * new KvStateMachine(options).size; // 0
 * ```
 */
export interface KvStateOptions {
  /** Largest value an append may produce, in bytes (UTF-8 for strings). Default: no limit. */
  maxValueBytes?: number;
  /**
   * The codec of snapshots. Default: msgpack, taking snapshots of up to
   * {@linkcode SNAPSHOT_MAX_BYTES}.
   */
  codec?: Codec;
}

/**
 * The largest snapshot of a key/value state, in bytes (1 GiB). A snapshot
 * is stored and sent in chunks, so it is not bound by the 64 MiB limit of a
 * message: with that limit a state past 64 MiB (a million keys of 64-byte
 * values) never snapshotted, and its log was never compacted (issue 16).
 *
 * @example
 * ```ts
 * import { SNAPSHOT_MAX_BYTES } from "@distkit/distkit/kv";
 *
 * SNAPSHOT_MAX_BYTES; // 1073741824
 * ```
 */
export const SNAPSHOT_MAX_BYTES: number = 1024 * 1024 * 1024;

/**
 * The codec that encodes and decodes key/value snapshots (up to
 * {@linkcode SNAPSHOT_MAX_BYTES}).
 *
 * @example
 * ```ts
 * import { snapshotCodec } from "@distkit/distkit/kv";
 *
 * snapshotCodec.maxMessageBytes; // 1073741824
 * ```
 */
export const snapshotCodec: Codec = new Codec({ maxMessageBytes: SNAPSHOT_MAX_BYTES });

/** Keys `snapshotInSlices` encodes between pauses: about a millisecond's work. */
const SLICE_KEYS = 2000;
/**
 * Bytes of keys and values `snapshotInSlices` encodes between pauses (a
 * larger entry alone): slices by keys only encoded 200 values of 1 MiB in
 * one go, which held a leader's event loop for seconds, its heartbeats
 * with it (issue 16).
 */
const SLICE_BYTES = 256 * 1024;

/** Keys sized between pauses when a snapshot is sized (sizing costs less than encoding). */
const SIZE_SLICE_KEYS = 20_000;

/** Where the slice of `items` from `at` ends: up to SLICE_KEYS items and SLICE_BYTES bytes, one at least. */
function sliceEnd(items: unknown[], at: number): number {
  let end = at;
  let bytes = 0;
  do bytes += itemBytes(items[end++]); while (
    end < items.length && end - at < SLICE_KEYS && bytes + itemBytes(items[end]) <= SLICE_BYTES
  );
  return end;
}

/** The size of a key or value as MessagePack writes it: str or bin, with its header. */
function encodedSize(v: string | Uint8Array): number {
  const n = typeof v === "string" ? utf8Length(v) : v.length;
  if (typeof v === "string" && n < 32) return 1 + n;
  return (n < 0x100 ? 2 : n < 0x10000 ? 3 : 5) + n;
}

/** About how many bytes an item of the snapshot's arrays holds: a `[key, value]` pair's, else a few. */
function itemBytes(item: unknown): number {
  if (!Array.isArray(item)) return 16;
  let n = 16;
  for (const part of item) {
    if (typeof part === "string") n += part.length;
    else if (part instanceof Uint8Array) n += part.byteLength;
  }
  return n;
}

/**
 * The replicated state: the data and, per client, the last write applied
 * with its result. Applying the same command twice (a retry after a lost
 * reply or a leader change) changes nothing the second time and returns the
 * first result.
 *
 * @example
 * ```ts
 * import { KvStateMachine } from "@distkit/distkit/kv";
 * import assert from "node:assert/strict";
 *
 * const kv = new KvStateMachine();
 * const put = { client: "c1", seq: 1, write: { type: "append" as const, key: "x", value: "a" } };
 * kv.apply(put);
 * kv.apply(put); // a retry: applied once
 * assert.equal(kv.get("x"), "a");
 * ```
 */
export class KvStateMachine {
  #data = new Map<string, KvValue>();
  #dedup = new DedupTable<KvResult>();
  readonly #maxValueBytes: number;
  readonly #codec: Codec;

  /**
   * Creates an empty store.
   *
   * @param options The value limit and the snapshot codec. Every replica must use the same.
   */
  constructor(options: KvStateOptions = {}) {
    this.#maxValueBytes = options.maxValueBytes ?? Infinity;
    this.#codec = options.codec ?? snapshotCodec;
  }

  /** The value of `key`, or null when it is absent. */
  get(key: string): KvValue | null {
    return this.#data.get(key) ?? null;
  }

  /** How many keys there are. */
  get size(): number {
    return this.#data.size;
  }

  /** Applies a command once; a repeated one returns the result it had. */
  apply(command: KvCommand): KvResult {
    const digest = command.digest ?? writeDigest(command.write);
    const done = this.#lookup(command, digest);
    if (done) return done;
    const result = this.#write(command.write);
    this.#dedup.record(command.client, command.seq, digest, result);
    return result;
  }

  /** Whether `command` was already applied (the service answers a retry without proposing it). */
  applied(command: KvCommand): KvResult | undefined {
    // Most writes are new, and that needs no digest (which costs ms per MiB of value).
    if (this.#dedup.check(command.client, command.seq, NaN).kind === "new") return undefined;
    return this.#lookup(command, command.digest ?? writeDigest(command.write));
  }

  #lookup(command: KvCommand, digest: number): KvResult | undefined {
    return dedupAnswer(this.#dedup.check(command.client, command.seq, digest), command);
  }

  #write(w: KvWrite): KvResult {
    const { result, next } = decideWrite(w, this.#data.get(w.key), this.#maxValueBytes);
    if (next === null) this.#data.delete(w.key);
    // The write's own value is copied (see `own`); a concatenation is new already.
    else if (next !== undefined) {
      this.#data.set(w.key, w.type !== "delete" && next === w.value ? own(next) : next);
    }
    return result;
  }

  /**
   * A page of the state, for moving it in parts: the entries whose keys
   * come after `after` (all, when null) in code-point order (Deno KV's,
   * so that a stored replica cuts the same pages: a shard's pages may come
   * from either form, as its group's leader changes), up to about
   * `maxBytes` of keys and values (at least one entry), and the page's last
   * key when more remain (null when this page ends the state). The first
   * page (`after` null) also carries the deduplication table. Pages of an
   * unchanged state are the same on every replica.
   */
  page(after: string | null, maxBytes: number): KvPage {
    const keys = [...this.#data.keys()]
      .filter((k) => after === null || compareKeyStrings(k, after) > 0)
      .sort(compareKeyStrings);
    const data: [string, KvValue][] = [];
    let bytes = 0;
    for (const key of keys) {
      if (data.length > 0 && bytes >= maxBytes) break;
      const value = this.#data.get(key)!;
      data.push([key, value]);
      bytes += key.length + valueBytes(value);
    }
    const next = data.length < keys.length ? data[data.length - 1][0] : null;
    return after === null ? { data, dedup: this.#dedup.toJSON(), next } : { data, next };
  }

  /**
   * Adds a page from {@linkcode KvStateMachine.page} (and its
   * deduplication table, on the first page).
   *
   * @throws {Error} when the page is malformed; the state is then unchanged.
   */
  addPage(page: { data: unknown; dedup?: unknown }): void {
    if (!Array.isArray(page?.data) || page.data.some((p) => !isPair(p) || !isValue(p[1]))) {
      throw new Error("not a KV page: expected data: [key, string or bytes][]");
    }
    const dedup = page.dedup === undefined ? undefined : DedupTable.from(page.dedup, isResult);
    for (const [key, value] of page.data as [string, KvValue][]) this.#data.set(key, own(value));
    if (dedup) this.#dedup = dedup;
  }

  /** The whole state, encoded, for a Raft snapshot. */
  snapshot(): Uint8Array {
    return this.#codec.encode({ data: [...this.#data], dedup: this.#dedup.toJSON() });
  }

  /**
   * The same bytes as {@linkcode KvStateMachine.snapshot} gives now, encoded
   * a slice of keys at a time with `pause()` awaited in between, so a large
   * state does not hold up the caller's event loop (40,000 keys took 20–50
   * ms at once). The state may change meanwhile: what is encoded is a copy
   * of its entries taken at the call, cheap, since values are replaced and
   * never changed in place.
   *
   * @throws {FrameTooLargeError} when the encoding exceeds the codec's limit.
   */
  async snapshotInSlices(pause: () => Promise<void>): Promise<Uint8Array> {
    const data = [...this.#data];
    // { data, dedup }: a map of two keys, each array written as its header, then its elements
    // encoded a slice at a time (without their slices' headers). The table is small: its parts
    // are kept. The data is sized first and encoded into one buffer of that size: parts of it
    // and then their concatenation held the state twice (issue 16).
    const dedupParts: Uint8Array[] = [];
    await this.#encodeArray(this.#dedup.toJSON(), dedupParts, pause);
    const head = [new Uint8Array([0x82]), this.#codec.encode("data"), arrayHeader(data.length)];
    const tail = [this.#codec.encode("dedup"), ...dedupParts];
    let size = [...head, ...tail].reduce((n, p) => n + p.length, 0);
    for (let at = 0; at < data.length; at += SIZE_SLICE_KEYS) {
      if (at > 0) await pause();
      for (const [key, value] of data.slice(at, at + SIZE_SLICE_KEYS)) {
        size += 1 + encodedSize(key) + encodedSize(value);
      }
    }
    // Over the limit: refused before anything of the data is encoded.
    if (size > this.#codec.maxMessageBytes) {
      throw new FrameTooLargeError(size, this.#codec.maxMessageBytes);
    }
    const out = new Uint8Array(size);
    let offset = 0;
    const put = (bytes: Uint8Array) => {
      out.set(bytes, offset);
      offset += bytes.length;
    };
    head.forEach(put);
    for (let at = 0; at < data.length;) {
      if (at > 0) await pause();
      const end = sliceEnd(data, at);
      const slice = data.slice(at, end);
      put(this.#codec.encode(slice).subarray(arrayHeader(slice.length).length));
      at = end;
    }
    tail.forEach(put);
    if (offset !== size) {
      throw new Error(`a KV snapshot was sized at ${size} bytes and encoded to ${offset}`);
    }
    return out;
  }

  async #encodeArray(items: unknown[], parts: Uint8Array[], pause: () => Promise<void>) {
    parts.push(arrayHeader(items.length));
    for (let at = 0; at < items.length;) {
      if (at > 0) await pause();
      const end = sliceEnd(items, at);
      const slice = items.slice(at, end);
      parts.push(this.#codec.encode(slice).subarray(arrayHeader(slice.length).length));
      at = end;
      // Over the limit already: refused now, not after encoding the rest.
      const size = parts.reduce((n, p) => n + p.length, 0);
      if (size > this.#codec.maxMessageBytes) {
        throw new FrameTooLargeError(size, this.#codec.maxMessageBytes);
      }
    }
  }

  /**
   * Replaces the whole state with a snapshot from {@linkcode KvStateMachine.snapshot}.
   *
   * @throws {Error} when the bytes are not a snapshot of this state machine;
   * the state is then unchanged.
   */
  restore(bytes: Uint8Array): void {
    let decoded: { data?: unknown; dedup?: unknown };
    try {
      decoded = this.#codec.decode(bytes) as typeof decoded;
    } catch (err) {
      throw new Error(`not a KV snapshot: ${(err as Error).message}`, { cause: err });
    }
    const { data, dedup } = decoded ?? {};
    if (!Array.isArray(data) || !Array.isArray(dedup)) {
      throw new Error("not a KV snapshot: expected { data, dedup } arrays");
    }
    for (const pair of data) {
      if (!isPair(pair) || !isValue(pair[1])) {
        throw new Error("not a KV snapshot: a data entry is not [key, string or bytes]");
      }
    }
    let table: DedupTable<KvResult>;
    try {
      table = DedupTable.from(dedup, isResult);
    } catch (err) {
      throw new Error(`not a KV snapshot: ${(err as Error).message}`);
    }
    this.#data = new Map(data.map(([k, v]: [string, KvValue]) => [k, own(v)]));
    this.#dedup = table;
  }
}

/** The msgpack header of an array of `n` elements. */
function arrayHeader(n: number): Uint8Array {
  if (n < 16) return new Uint8Array([0x90 | n]);
  if (n < 0x10000) return new Uint8Array([0xdc, n >> 8, n & 0xff]);
  return new Uint8Array([0xdd, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

/**
 * A 32-bit FNV-1a digest of a write: the same for a retry, almost surely not
 * for another write. Recorded in the replicated table, so its result must
 * never change; written without a closure per character, which made it cost
 * 15–33 ms per MiB of value on the leader's event loop (issue 16).
 *
 * @example
 * ```ts
 * import { writeDigest } from "@distkit/distkit/kv";
 *
 * const put = { type: "put", key: "k", value: "v" } as const;
 * writeDigest(put) === writeDigest({ ...put }); // true
 * ```
 */
export function writeDigest(w: KvWrite): number {
  let h = 0x811c9dc5;
  h = feedDigest(h, w.type);
  h = feedDigest(h, w.key);
  if (w.type !== "delete") h = feedDigest(h, w.value);
  if (w.type === "cas") h = feedDigest(h, w.expected);
  return h;
}

/** FNV-1a over a tag for `v`'s kind, then its characters or bytes. */
function feedDigest(h: number, v: KvValue | null | undefined): number {
  const prime = 0x01000193;
  if (v === null || v === undefined) return Math.imul(h ^ 0x10000, prime) >>> 0;
  if (typeof v === "string") {
    h = Math.imul(h ^ 0x10001, prime);
    for (let i = 0; i < v.length; i++) h = Math.imul(h ^ v.charCodeAt(i), prime);
  } else {
    h = Math.imul(h ^ 0x10002, prime);
    for (let i = 0; i < v.length; i++) h = Math.imul(h ^ v[i], prime);
  }
  return h >>> 0;
}

/**
 * A value the store may keep: bytes are copied, since decoded bytes are
 * views into a whole message or snapshot that would otherwise stay alive.
 */
function own(value: KvValue): KvValue {
  return typeof value === "string" ? value : value.slice();
}
